// Breaker (HJ): a removal of a stalled run killed part-way through clearing its pending/ folder,
// then done again by the next plan. The interleaving:
//   1. Run R exported 3 pages (133 updated rows); its Commit's three copies are in flight on S3.
//   2. R's lease lapses. Execution E2's plan removes R: removed/R.json lists R's 3 data keys, the
//      staged files and the published keys are deleted, then clearPending's multi-key delete dies
//      after the index and the first page journal (a Lambda timeout between DeleteObjects chunks
//      of a run with over 1000 journals; here the chunk boundary is put after p000001). R's
//      run.json and pending schema are still there, so R is still pending.
//   3. The three copies land, at the data keys E2 deleted.
//   4. Execution E3's plan removes R again: its journals now name 2 files, and removeRun rewrites
//      removed/R.json with those 2 keys only, dropping the first page's key from the sweep.
//   5. E3 exports the 133 rows again and commits; a later run commits too.
// Expected: no file of R stays visible (the list made at step 2 covered every key). On main the
// late copy of R's first page stays visible for good, its 50 versions seen twice.
import { describe, expect, it } from 'vitest';
import type { Removed } from '../../lambdas/core/protocol/recovery.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { createLake, exportDeps, faultyStore } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders, readerView } from './compact-break-checks.ts';
import { committedThenUpdated, dataFilesOf, expireLease, lateConfig, stallCommit } from './late-break-copies.ts';

const db = fileDatabase();

describe('a removal killed while clearing pending/, done again after late copies landed', () => {
  it('still deletes every data key the first removal listed', async () => {
    const name = 'late_relist';
    const config = lateConfig(name, 60);
    const lake = createLake();
    try {
      const seen = await committedThenUpdated(db, lake, config, name);

      const stalled = await stallCommit(db, lake, config, name, {}, true);
      const { state, task } = stalled;
      expect(stalled.keys).toHaveLength(3);
      await expireLease(state);

      // E2's plan: the removal dies inside clearPending, after the index and the first journal.
      const firstJournal = state.pendingPageKey(task.runId, 1);
      const killed = faultyStore(lake.store, {
        delete: async (keys) => {
          const cut = keys.indexOf(firstJournal);
          if (cut < 0) return lake.store.delete(keys);
          await lake.store.delete(keys.slice(0, cut + 1));
          throw new Error('killed between DeleteObjects chunks');
        },
      });
      const e2 = exportDeps(db, killed, config);
      const plan2 = await planRun(e2, {});
      await e2.close();
      expect(plan2.failed.map((f) => f.error).join(' '), 'E2 died removing R').toContain('killed between DeleteObjects chunks');
      const listed = (await state.read<Removed>(state.removedKey(task.runId)))!.value.files;
      expect([...listed].sort(), 'the first removal listed all 3 keys').toEqual([...stalled.keys].sort());
      expect(await lake.store.get(state.pendingRunKey(task.runId)), 'R is still pending').not.toBeNull();

      // The copies in flight land now.
      stalled.land.open();
      const outcome = await stalled.outcome;
      expect(outcome instanceof Error ? outcome.name : outcome.status).not.toBe('succeeded');
      expect(await dataFilesOf(lake, 'raw', name, task.runId), 'the late copies are visible').toHaveLength(3);

      // E3 removes R again, exports the same rows and commits; then one more run.
      expect(await exportStatuses(db, lake, config)).toEqual(['succeeded']);
      const relisted = (await state.read<Removed>(state.removedKey(task.runId)))?.value.files ?? [];
      console.log(`removed/${task.runId}.json: ${listed.length} keys after the first removal, ${relisted.length} after the second`);
      const after = await readerView(config, lake, name);
      const left = await dataFilesOf(lake, 'raw', name, task.runId);
      console.log(`after E3 committed: ${left.length} late file(s) of R visible, ${after.duplicates.length} versions seen twice`);
      expect(await exportStatuses(db, lake, config)).toEqual(['succeeded']);
      const later = await readerView(config, lake, name);
      console.log(`after one more run: ${(await dataFilesOf(lake, 'raw', name, task.runId)).length} late file(s) of R visible, ${later.duplicates.length} versions seen twice`);
      expect(left, 'late copies of R visible after the next commit').toEqual([]);
      await checkReaders(db, lake, config, name, 'after the runs that follow', { seenVersions: seen, noOrphans: true });
      expect(seen.size).toBe(400 + 133);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
