// Breaker (HI): two recoveries of one table at once. Execution X1 plans and, recovering a first
// run whose Commit had begun publishing, is about to create the fence; execution X2 takes the
// table over (--take-over), recovers the same run (creating the fence first) and exports. X1's
// create-once fence then fails and it rewrites the fence (If-Match), though it lost the lease.
// Whatever that costs X2 (at worst its commit fails on the moved etag and its own Table Failed
// removes its run), no row may be lost or doubled and the table must not be stuck.
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';

const db = fileDatabase();

const NAME = 'two_recoveries';
const config: LakeConfig = testConfig([{ name: NAME }], { export: { pageRows: 50, safetyLagSeconds: 0 } });

const exportRun = (lake: TestLake): Promise<string[]> => exportStatuses(db, lake, config);

describe('two recoveries of a first run racing to fence', () => {
  it('lose no row, double none, and leave the table free', async () => {
    const lake = createLake();
    try {
      await db.query(`CREATE TABLE ${NAME} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${NAME} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
      const state = new TableState(lake.store, 'raw', NAME);
      const deps0 = exportDeps(db, lake.store, config);
      let task = (await planRun(deps0, {})).tables[0];
      while (!task.done) task = await exportTable(deps0, task);
      await deps0.close();
      // The first run's Commit stalls at its watermark PUT (its pending schema written).
      const commitAt = pause('put', (k) => k === state.watermarkKey());
      const commitDeps = exportDeps(db, pausingStore(lake.store, [commitAt]), config);
      const commit = commitTable(commitDeps, task).then((r) => r, (e: Error) => e);
      expect(await reachedOrDone(commitAt, commit)).toBe('reached');
      const lease = (await state.read<Lease>(state.leaseKey()))!.value;
      await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
      // X1 plans and is held at its fence PUT.
      const x1At = pause('put', (k) => k === state.watermarkKey());
      const x1Deps = exportDeps(db, pausingStore(lake.store, [x1At]), config);
      const x1 = planRun(x1Deps, {}).then((r) => r, (e: Error) => e);
      expect(await reachedOrDone(x1At, x1)).toBe('reached');
      // X2 takes the table over, recovers (its fence lands first) and exports; its Commit is held at its start.
      const x2Deps = exportDeps(db, lake.store, config);
      const x2Plan = await planRun(x2Deps, { takeOver: true });
      expect(x2Plan.failed).toEqual([]);
      let x2 = x2Plan.tables[0];
      while (!x2.done) x2 = await exportTable(x2Deps, x2);
      const x2CommitAt = pause('get', (k) => k === state.leaseKey());
      const x2CommitDeps = exportDeps(db, pausingStore(lake.store, [x2CommitAt]), config);
      const x2Commit = commitTable(x2CommitDeps, x2).then((r) => r, (e: Error) => e);
      expect(await reachedOrDone(x2CommitAt, x2Commit)).toBe('reached');
      // X1 goes on: its create-once fence fails, it rewrites the fence X2's Commit read.
      x1At.resume.open();
      const x1Plan = await x1;
      console.log(`X1's plan: ${x1Plan instanceof Error ? `${x1Plan.name}: ${x1Plan.message}` : JSON.stringify(x1Plan.failed)}`);
      x2CommitAt.resume.open();
      const x2Outcome = await x2Commit;
      console.log(`X2's commit: ${x2Outcome instanceof Error ? `${x2Outcome.name}: ${x2Outcome.message}` : x2Outcome.status}`);
      if (x2Outcome instanceof Error) await abandonRun(x2Deps, NAME, x2.runId);
      if (!(x1Plan instanceof Error) && x1Plan.tables[0]) await abandonRun(x1Deps, NAME, x1Plan.tables[0].runId);
      commitAt.resume.open();
      const stalled = await commit;
      console.log(`the stalled first Commit: ${stalled instanceof Error ? `${stalled.name}: ${stalled.message}` : stalled.status}`);
      for (const d of [commitDeps, x1Deps, x2Deps, x2CommitDeps]) await d.close();
      expect(await exportRun(lake)).toEqual(['succeeded']);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, NAME, 'after the runs that follow', { seenVersions: seen });
      expect(seen.size).toBe(400);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
