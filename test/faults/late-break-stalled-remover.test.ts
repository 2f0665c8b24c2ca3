// Breaker (HJ): a removal that stalls past its lease, resumed after the run it was removing was
// adopted and committed by the next execution (a backfill keeps its run id when adopted, so its
// data keys become live). The interleaving:
//   1. A table's first export is a backfill R (2 segments); every segment is exported and R's
//      Commit dies after writing its pending schema, before any move (an S3 fault). The
//      execution dies with R's lease still live.
//   2. The operator re-runs with takeOver (R's execution is dead). That plan P1 takes the live
//      lease, so adoption refuses R ("taken over, not released or lapsed") and its recovery
//      removes R: the watermark fence, removed/R.json (R's Commit had begun publishing), then —
//      P1 stalls just before its first delete (a paused local run; on S3 a DeleteObjects in flight).
//   3. P1's lease lapses. The next execution's plan P2 adopts R (its lease lapsed, nothing is
//      missing), exports nothing new and commits R: 3000 versions visible; finishCommit drops
//      removed/R.json. (A product that fences the removal may refuse R and start over instead:
//      the test accepts either, and checks what readers keep.)
//   4. P1 resumes: it deletes R's staged files (gone) and then R's data keys, which are R's
//      committed files now.
// Expected: a removal that lost its lease touches nothing; readers keep every committed version.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { createLake, exportDeps, faultyStore } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';
import { expire, exportAll, exportedBackfill, visibleVersions } from './claim-break-backfill.ts';

const db = fileDatabase();

describe('a removal stalled past its lease while the next execution adopts and commits the run', () => {
  it('deletes none of the committed files when it resumes', async () => {
    const table = 'late_stalled_remover';
    const lake = createLake();
    try {
      // 1. R exported whole; its Commit dies at its first move (pending schema written).
      const { config, state, R, task } = await exportedBackfill(db, lake, table);
      const failing = exportDeps(db, faultyStore(lake.store, { move: async (from) => { throw new Error(`S3 503 SlowDown on COPY ${from}`); } }), config);
      await expect(commitTable(failing, task)).rejects.toThrow(/SlowDown/);
      await failing.close();
      expect(await lake.store.get(state.pendingSchemaKey(R)), "R's Commit had begun publishing").not.toBeNull();

      // 2. P1 takes the live lease over, refuses to adopt R and removes it: stalled before its first delete.
      const held = pause('delete', (keys) => keys.includes(state.stagedPrefix(R)));
      const p1Deps = exportDeps(db, pausingStore(lake.store, [held]), config);
      const p1 = planRun(p1Deps, { takeOver: true });
      expect(await reachedOrDone(held, p1), 'P1 reached its staged delete').toBe('reached');
      expect(await lake.store.get(state.removedKey(R)), 'P1 listed R as removed').not.toBeNull();

      // 3. P1's lease lapses; P2 adopts R (on main; a product that fences the removal may start
      // over instead) and commits.
      await expire(state);
      const p2Deps = exportDeps(db, lake.store, config);
      const p2Planned = (await planRun(p2Deps, {})).tables[0];
      await p2Deps.close();
      const p2Task = await exportAll(db, lake.store, config, p2Planned);
      const commit2 = exportDeps(db, lake.store, config);
      expect((await commitTable(commit2, p2Task)).status).toBe('succeeded');
      await commit2.close();
      expect((await state.watermark())?.runId).toBe(p2Planned.runId);
      console.log(`P2 ${p2Planned.runId === R ? 'adopted R' : 'started over (R not adopted)'} and committed`);
      const committed = await visibleVersions(lake, table);
      expect(committed).toEqual({ n: '3000', versions: '3000' });

      // 4. P1 resumes.
      held.resume.open();
      const plan1 = await p1;
      await p1Deps.close();
      const after = await visibleVersions(lake, table);
      console.log(`R committed by P2: ${committed.n} rows visible; after the stalled removal P1 resumed: ${after.n} rows visible (P1 planned ${plan1.tables.length} table(s), failed: ${plan1.failed.map((f) => f.error).join('; ') || 'none'})`);
      expect(after, 'committed versions readers keep').toEqual({ n: '3000', versions: '3000' });
    } finally {
      lake.remove();
    }
  }, 120_000);
});
