// Breaker (HI): a table whose watermark.json holds only a fence ({"fencedAt": …}, written by a
// recovery before the table's first commit) as every reader meets it: the CLI (validate,
// compact, query, run --window), compaction, Summarize's freshness, the plan (first-run
// semantics: the window from the beginning) and the next runs. Built the way production gets
// there: a first Commit stalls at its commit point past its lease, the next execution recovers
// (creating the fence) and then fails itself, so nothing is committed.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { summarizeRun } from '../../lambdas/core/protocol/summarize.ts';
import { lastCommittedRun } from '../../lambdas/core/lake/validate.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { cli } from '../support/cli.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';

const db = fileDatabase();

const NAME = 'fence_only';
const config: LakeConfig = testConfig([{ name: NAME }], { export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 2 } });

const exportRun = (lake: TestLake, request = {}): Promise<string[]> => exportStatuses(db, lake, config, request);

/** A first Commit stalled at its watermark PUT; the next execution recovers (fence) and fails. */
async function fenceOnly(lake: TestLake): Promise<void> {
  const state = new TableState(lake.store, 'raw', NAME);
  const deps0 = exportDeps(db, lake.store, config);
  const plan = await planRun(deps0, {});
  let task = plan.tables[0];
  while (!task.done) task = await exportTable(deps0, task);
  await deps0.close();
  const atWatermark = pause('put', (k) => k === state.watermarkKey());
  const commitDeps = exportDeps(db, pausingStore(lake.store, [atWatermark]), config);
  const commit = commitTable(commitDeps, task).then((r) => r, (e: Error) => e);
  expect(await reachedOrDone(atWatermark, commit)).toBe('reached');
  const lease = (await state.read<Lease>(state.leaseKey()))!.value;
  await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
  const deps = exportDeps(db, lake.store, config);
  const next = await planRun(deps, {});
  expect(next.failed).toEqual([]);
  // The next execution's table fails (its Table Failed step abandons its run).
  await abandonRun(deps, NAME, next.tables[0].runId);
  await deps.close();
  atWatermark.resume.open();
  const outcome = await commit;
  await commitDeps.close();
  expect(outcome instanceof Error ? outcome.name : outcome.status).toBe('WindowConflictError');
  const raw = (await lake.store.get(state.watermarkKey()))?.body.toString();
  expect(Object.keys(JSON.parse(raw!))).toEqual(['fencedAt']);
}

describe('watermark.json holding only a fence', () => {
  it('reads as "nothing committed yet" everywhere, and the next run exports from the beginning', async () => {
    const lake = createLake();
    try {
      await db.query(`CREATE TABLE ${NAME} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${NAME} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
      await fenceOnly(lake);
      const state = new TableState(lake.store, 'raw', NAME);
      expect(await state.watermark()).toBeNull();
      expect(await lastCommittedRun(state)).toBeNull();
      // Compaction: nothing to do, and it leaves the fence and no lease.
      const compacted = await compactTable({ store: lake.store, config }, NAME, { force: true });
      expect(compacted.status).toBe('skipped');
      expect(await lake.store.get(state.leaseKey())).toBeNull();
      // Summarize: never succeeded.
      const summary = await summarizeRun({ store: lake.store, config }, { runId: 'r', startedAt: new Date().toISOString(), results: [], skipped: [], failed: [] });
      expect(summary.stalenessSeconds).toEqual({ [NAME]: null });
      // A window re-run is refused: the table was never exported.
      expect((await exportRun(lake, { window: { from: '2024-01-01', to: '2024-04-01' } }))[0]).toMatch(/never been exported/);
      // The CLI.
      const file = path.join(lake.dir, 'lake.config.yaml');
      writeFileSync(file, `export: { pageRows: 50, safetyLagSeconds: 0 }\ntables:\n  - name: ${NAME}\n`);
      const validate = await cli(['validate', '--config', file, '--lake', lake.url]);
      expect(validate.stdout + validate.stderr).toContain('never committed');
      expect(validate.code).toBe(0);
      const compact = await cli(['compact', '--config', file, '--lake', lake.url]);
      expect(compact.code, compact.stdout + compact.stderr).toBe(0);
      // The next run: the whole table, once.
      expect(await exportRun(lake)).toEqual(['succeeded']);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, NAME, 'after the next run', { seenVersions: seen });
      expect(seen.size).toBe(400);
      const query = await cli(['query', `SELECT count(*) AS n FROM ${NAME}`, '--config', file, '--lake', lake.url, '--json']);
      expect(query.code, query.stderr).toBe(0);
      expect(query.stdout).toContain('400');
      await db.query(`UPDATE ${NAME} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 4 = 0`);
      expect(await exportRun(lake)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, NAME, 'after one more run', { seenVersions: seen });
      expect(seen.size).toBe(500);
    } finally {
      lake.remove();
    }
  }, 180_000);
});
