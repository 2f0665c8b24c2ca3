// Breaker (HG; failed before compaction left failed backfills alone): a {"full": true} re-run exported as a backfill (2 segments) fails after its first
// segment; the failed execution's Summarize keeps the finished segment staged (README
// "Backfill": "the next run continues it"). Before the next run, the operator runs
// `pg-lake-export compact` on the table. Does the compaction keep the backfill for the next run
// to continue, and does the lake stay exact whichever way it goes?
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { checkReaders } from './compact-break-checks.ts';

let db: TestDatabase;
let lake: TestLake;
beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
}, 120_000);
afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

const configOf = (name: string): LakeConfig => testConfig([{ name, backfill: { segments: 2 } }], {
  export: { pageRows: 200, safetyLagSeconds: 0 }, lake: { rowGroupRows: 200 }, compaction: { minFiles: 2, graceMinutes: 60 },
});

describe('a compaction between a failed backfill and the run that continues it', () => {
  // Without the compaction (the control): the next run continues the backfill.
  it.each([['without', false], ['with', true]] as const)('%s a compaction in between: the next run continues the backfill, and the lake is exact', async (_label, compact) => {
    const NAME = compact ? 'refilled_compacted' : 'refilled';
    const BACKFILL = compact ? '20260401T000000Z-fffffff2' : '20260401T000000Z-fffffff1';
    const config = configOf(NAME);
    await db.query(`CREATE TABLE ${NAME} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${NAME} SELECT g, 'v1-' || g, timestamptz '2024-12-05 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 3000) g`);
    const deps = exportDeps(db, lake.store, config);
    try {
      expect((await runExport(deps, {})).tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
      for (const slice of [0, 1]) {
        await db.query(`UPDATE ${NAME} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 9 = ${slice}`);
        expect((await runExport(deps, {})).tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
      }
      const seen = new Set<string>();
      await checkReaders(db, lake, config, NAME, 'before', { seenVersions: seen });
      // The full re-run: segment 0 done, segment 1 not; the execution fails and Summarize abandons it.
      const [task] = (await planRun(deps, { full: true, runId: BACKFILL })).tables;
      expect(task.backfill, 'planned as a backfill').toBeDefined();
      const state = new TableState(lake.store, 'raw', NAME);
      const segments = await readSegments(state, task);
      expect((await exportTable(deps, segmentTask(task, segments[0]))).done).toBe(true);
      await abandonRun(deps, NAME, BACKFILL);
      expect(await state.pendingRuns(), 'the failed backfill is kept for the next run').toEqual([BACKFILL]);

      if (compact) {
        // Before the fix the compaction removed the backfill (its recovery saw a dead run). It
        // now leaves the table to the run that continues the backfill, even when forced.
        const compacted = await compactTable({ store: lake.store, config }, NAME, { force: true });
        expect([compacted.status, compacted.reason]).toEqual(['skipped', `a failed backfill (run ${BACKFILL}) waits for the table's next run to continue it`]);
        expect(await state.pendingRuns(), 'the failed backfill is still kept').toEqual([BACKFILL]);
      }
      // The next run continues the backfill (its finished segment is not exported again).
      const logs: string[] = [];
      const next = await runExport({ ...deps, log: (message: string) => { logs.push(message); } }, {});
      expect(next.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, NAME, 'after the next run', { seenVersions: seen });
      expect(logs.filter((m) => m.startsWith('continuing a failed backfill')), 'the next run continues the failed backfill').toHaveLength(1);
    } finally {
      await deps.close();
    }
  }, 120_000);
});
