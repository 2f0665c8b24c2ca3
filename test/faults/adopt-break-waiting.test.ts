// Breaker (HE): other work on a table while a failed {"full": true} re-run (a backfill, one
// segment finished) waits to be continued, with writers changing rows in between: a compaction
// (pg-lake-export compact --force), and a {"window": …} re-run. Each moves the watermark or never
// adopts, so the waiting run is not continued; whatever happens to it, the lake ends with every
// version once (checkLake, DuckDB against Postgres) after the next scheduled runs.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import type { ExportDeps, RunRequest, TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, exportDeps, testConfig } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const db = fileDatabase();

const FULL = '20260901T000000Z-dddd0001';

/** Plan, every segment, the table's task, commit. */
async function runOnce(deps: ExportDeps, request: RunRequest = {}): Promise<TableTask> {
  let [task] = (await planRun(deps, request)).tables;
  if (task.backfill) {
    for (const segment of await readSegments(new TableState(deps.store, 'raw', task.table), task)) {
      let child = segmentTask(task, segment);
      while (!child.done) child = await exportTable(deps, child, Date.now());
    }
  }
  while (!task.done) task = await exportTable(deps, task);
  await commitTable(deps, task);
  return task;
}

const meanwhile: { name: string; act: (deps: ExportDeps, table: string) => Promise<void> }[] = [
  // A compaction leaves the table to the run that continues the backfill (compacting around it
  // would remove its segments, or merge the manifests its commit replaces).
  { name: 'a forced compaction', act: async (deps, table) => { expect((await compactTable(deps, table, { force: true })).reason).toBe(`a failed backfill (run ${FULL}) waits for the table's next run to continue it`); } },
  { name: 'a window re-run', act: async (deps) => { await runOnce(deps, { window: { from: '2024-12-20 00:00:00+00', to: '2024-12-20 04:00:00+00' } }); } },
];

describe('a failed full re-run waiting while other work runs on the table', () => {
  for (const [i, m] of meanwhile.entries()) {
    it(`${m.name}, writers in between: every version once`, async () => {
      const table = `adopt_break_waiting_${i}`;
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
        INSERT INTO ${table} (id, payload, updated_at) SELECT g, 'p' || g, timestamptz '2024-12-20 00:00:00+00' + g * interval '10 seconds' FROM generate_series(1, 3000) g`);
      const lake = createLake();
      // No grace period and no automatic trigger: a last compaction call deletes the retired
      // generation (checkLake reads every visible file, an old generation too).
      const config = testConfig([{ name: table, backfill: { segments: 2 }, compaction: { minFiles: 1000 } }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 }, compaction: { graceMinutes: 0 } });
      const state = new TableState(lake.store, 'raw', table);
      const deps = exportDeps(db, lake.store, config);
      try {
        await runOnce(deps);
        await db.query(`UPDATE ${table} SET payload = 'u1', updated_at = clock_timestamp() WHERE id % 50 = 0`);
        await runOnce(deps);
        // The full re-run: segment 0 finishes, then the table fails.
        const [full] = (await planRun(deps, { runId: FULL, full: true })).tables;
        expect(full.backfill).toBeDefined();
        const segments = await readSegments(state, full);
        expect((await exportTable(deps, segmentTask(full, segments[0]))).done).toBe(true);
        await abandonRun(deps, table, FULL);
        await db.query(`UPDATE ${table} SET payload = 'u2', updated_at = clock_timestamp() WHERE id % 70 = 0;
          DELETE FROM ${table} WHERE id % 333 = 0;
          INSERT INTO ${table} (id, payload) SELECT g, 'n' || g FROM generate_series(3001, 3050) g`);
        await m.act(deps, table);
        await db.query(`UPDATE ${table} SET payload = 'u3', updated_at = clock_timestamp() WHERE id % 90 = 0`);
        // The next scheduled runs: whatever the waiting run became, the table goes on.
        const next = await runOnce(deps);
        if (next.runId === FULL) await runOnce(deps);
        expect((await compactTable(deps, table)).status).toBe('skipped');
      } finally {
        await deps.close();
      }
      await checkLake(db, lake, table, `full re-run waiting, then ${m.name}`);
      lake.remove();
    }, 60_000);
  }
});
