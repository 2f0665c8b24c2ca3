// Breaker (HJ): late copies where the removal list holds.
//   1. A scheduled run removed by its own execution's Table Failed step (abandonRun: the lease
//      withdrawn, the watermark fenced, then removeRun) while its Commit's three copies are in
//      flight; they land after abandonRun returned. The next execution exports the same rows
//      and commits: its recovery and commit delete the late files (fence-break-late-copy covers
//      only a removal by the next plan's recovery).
//   2. A snapshot table: the stalled run's files belong in its own snapshot=<run>/ folder, which
//      no reader reads; they land after the next plan removed the run, and are deleted by the
//      next commit all the same (nothing left for ever).
// Both hold: no file of the removed run after the next commit, every version once, no orphans.
// Both fail when removeRun writes no list (checked on a scratch copy of the product).
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { createLake, exportDeps, testConfig } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { committedThenUpdated, createTable, dataFilesOf, expireLease, lateConfig, stallCommit } from './late-break-copies.ts';

const db = fileDatabase();

describe('late copies the removal list deletes', () => {
  it("of a scheduled run removed by its own Table Failed step: gone when the next execution commits", async () => {
    const name = 'late_holds_abandon';
    const config = lateConfig(name, 0);
    const lake = createLake();
    try {
      const seen = await committedThenUpdated(db, lake, config, name);
      const stalled = await stallCommit(db, lake, config, name, {}, true);
      const { state, task } = stalled;
      const deps = exportDeps(db, lake.store, config);
      await abandonRun(deps, name, task.runId);
      await deps.close();
      expect(await lake.store.get(state.pendingRunKey(task.runId)), 'the run was removed').toBeNull();
      stalled.land.open();
      const outcome = await stalled.outcome;
      expect(outcome instanceof Error ? outcome.name : outcome.status).not.toBe('succeeded');
      expect(await dataFilesOf(lake, 'raw', name, task.runId), 'the late copies landed').toHaveLength(3);

      expect(await exportStatuses(db, lake, config)).toEqual(['succeeded']);
      expect(await dataFilesOf(lake, 'raw', name, task.runId), 'late copies after the next commit').toEqual([]);
      await checkReaders(db, lake, config, name, 'after the next execution', { seenVersions: seen });
      expect(await exportStatuses(db, lake, config)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, name, 'after the run that follows', { seenVersions: seen, noOrphans: true });
      expect(seen.size).toBe(400 + 133);
    } finally {
      lake.remove();
    }
  }, 60_000);

  it('of a snapshot run removed by the next plan: never read, and gone when the next execution commits', async () => {
    const name = 'late_holds_snapshot';
    const config = testConfig([{ name, mode: 'snapshot' }], { export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { enabled: false, graceMinutes: 60 } });
    const lake = createLake();
    try {
      await createTable(db, name);
      expect(await exportStatuses(db, lake, config)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, name, 'after the first snapshot');
      await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 3 = 0`);
      const stalled = await stallCommit(db, lake, config, name, {}, true);
      const { state, task } = stalled;
      expect(stalled.keys.every((k) => k.includes(`/snapshot=${task.runId}/`)), "the run's files go to its own snapshot folder").toBe(true);
      await expireLease(state);
      const e2 = exportDeps(db, lake.store, config);
      let next = (await planRun(e2, {})).tables[0];
      expect(await lake.store.get(state.pendingRunKey(task.runId)), 'the run was removed').toBeNull();
      stalled.land.open();
      const outcome = await stalled.outcome;
      expect(outcome instanceof Error ? outcome.name : outcome.status).not.toBe('succeeded');
      expect(await dataFilesOf(lake, 'raw', name, task.runId), 'the late copies landed').toHaveLength(stalled.keys.length);
      while (!next.done) next = await exportTable(e2, next);
      expect((await commitTable(e2, next)).status).toBe('succeeded');
      await e2.close();
      expect(await dataFilesOf(lake, 'raw', name, task.runId), 'late copies after the next commit').toEqual([]);
      await checkReaders(db, lake, config, name, 'after the next snapshot', { noOrphans: true });
    } finally {
      lake.remove();
    }
  }, 60_000);
});
