// Breaker (HK): Table Failed's abandonRun of a failed backfill does not claim run.json, and it
// moves "published" files back to staging without checking who holds the run now. The interleaving:
//   1. A table's first export is a backfill R (2 segments), exported whole; R's Commit fails (a
//      terminal error), so Table Failed runs abandonRun(R): it withdraws R's lease
//      (abandoning:R), finds no watermark to fence, then stalls before it lists pending/R (a
//      paused process, a slow LIST) past the withdrawn lease.
//   2. The next execution's plan P2 takes the lapsed lease and adopts R (run.json adoptedBy P2,
//      lease {R, holder P2}); its Commit of R publishes every file, then waits on its watermark
//      write (a slow PUT).
//   3. abandonRun resumes: R's journalled files are at their data keys, "published by a commit that
//      died", so it moves them back to staging; its lease release finds P2's lease and does nothing.
//   4. P2's Commit writes the watermark (its If-Match is on the object it read: nothing changed
//      it), the manifest, and clears pending/R, staged files included.
// Expected: readers keep the 3000 versions P2 committed (abandonRun leaves a run another
// execution adopted alone, or P2 does not adopt a run whose clean-up has not finished, or P2's
// Commit fails and nothing is committed).
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { expire, exportAll, exportedBackfill, visibleVersions } from './claim-break-backfill.ts';

const db = fileDatabase();

describe('abandonRun of a failed backfill stalled while the next execution adopts and commits it', () => {
  it('moves none of the committed files away', async () => {
    const table = 'claim_abandon_adopt';
    const lake = createLake();
    try {
      // 1. R exported whole; Table Failed's abandonRun(R) stalls before listing pending/R.
      const { config, state, R } = await exportedBackfill(db, lake, table);
      const beforeList = pause('list', (prefix) => prefix === state.pendingPrefix(R));
      const abandonDeps = exportDeps(db, pausingStore(lake.store, [beforeList]), config);
      const abandoning = abandonRun(abandonDeps, table, R);
      expect(await reachedOrDone(beforeList, abandoning), 'abandonRun reached its listing of pending/R').toBe('reached');
      const withdrawn = (await state.read<Lease>(state.leaseKey()))!.value;
      console.log(`lease while abandonRun stalls: ${JSON.stringify(withdrawn)}`);

      // 2. The withdrawn lease lapses; P2 adopts R and commits it, held before its watermark write.
      await expire(state);
      const p2Deps = exportDeps(db, lake.store, config);
      const p2Planned = (await planRun(p2Deps, {})).tables[0];
      await p2Deps.close();
      // On main P2 adopts R; a product that waits for abandonRun may refuse R and start over
      // instead (its own run, committed the same way): the test accepts either, and checks readers.
      console.log(`P2 ${p2Planned.runId === R ? 'adopted R' : 'started over (R not adopted)'}`);
      const p2Task = await exportAll(db, lake.store, config, p2Planned);
      const beforeWatermark = pause('put', (key) => key === state.watermarkKey());
      const commitDeps = exportDeps(db, pausingStore(lake.store, [beforeWatermark]), config);
      const commit = commitTable(commitDeps, p2Task).then((r) => r.status, (e: Error) => `failed: ${e.message}`);
      expect(await reachedOrDone(beforeWatermark, commit), "P2's Commit published and reached its watermark write").toBe('reached');
      const published = await visibleVersions(lake, table);

      // 3. abandonRun resumes and finishes.
      beforeList.resume.open();
      const abandoned = await abandoning.then(() => 'returned', (e: Error) => `failed: ${e.message}`);
      await abandonDeps.close();
      const between = await visibleVersions(lake, table);

      // 4. P2's Commit goes on.
      beforeWatermark.resume.open();
      const result = await commit;
      await commitDeps.close();
      const after = await visibleVersions(lake, table);
      const watermark = await state.watermark();
      console.log(`P2's files published: ${published.n} rows visible; abandonRun ${abandoned}: ${between.n} rows visible; P2's Commit: ${result}, watermark run ${watermark?.runId ?? '(none)'}: ${after.n} rows visible`);
      expect(watermark?.runId ?? null, 'the committed run').toBe(result === 'succeeded' ? p2Planned.runId : null);
      expect(after, 'versions readers keep').toEqual(watermark ? { n: '3000', versions: '3000' } : { n: '0', versions: '0' });
    } finally {
      lake.remove();
    }
  }, 120_000);
});
