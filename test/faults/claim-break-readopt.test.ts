// Breaker (HK): the adoption's claim on run.json is skipped when run.json already names the same
// adopter (adoptedBy === owner), so a RETRIED plan (same execution run id) re-adopts a failed
// backfill without changing run.json, and a removal that read run.json before its lease lapsed
// still wins its If-Match claim. The interleaving:
//   1. A table's first export is a backfill R (2 segments), exported whole; its execution dies
//      (its lease lapses).
//   2. Execution X's Plan adopts R: run.json gets adoptedBy X, the lease {runId R, holder X}. The
//      Plan attempt then fails (another table's S3 503 makes the handler throw ThrottlingError,
//      or the invocation times out): Step Functions retries Plan later with the same run id X.
//   3. Meanwhile the operator re-runs with takeOver (X looks dead). That plan P1 takes X's live
//      lease, so it refuses to adopt R ("taken over") and its recovery removes R: it reads
//      run.json (adoptedBy X) and checks its lease, then stalls before its claim (a paused
//      process, a slow PUT).
//   4. P1's lease lapses. X's Plan retry takes the lapsed lease and adopts R again: adoptedBy is
//      already X, so run.json is NOT rewritten; its etag is the one P1 read.
//   5. P1 resumes: its claim over that etag succeeds (removing: true), it lists R's journals and
//      stalls again before its first delete. X exports nothing new and commits R: 3000 versions.
//   6. P1 resumes and deletes R's data keys: R's committed files.
// Expected: the removal loses its claim (the run changed hands since it read run.json) and readers
// keep all 3000 committed versions.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { type PendingRun } from '../../lambdas/core/protocol/table-state.ts';
import { newRunId } from '../../lambdas/core/protocol/run-model.ts';
import { createLake, exportDeps } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';
import { expire, exportAll, exportedBackfill, visibleVersions } from './claim-break-backfill.ts';

const db = fileDatabase();

describe('a retried plan re-adopts a failed backfill without rewriting run.json', () => {
  it('a removal that read run.json before loses its claim; readers keep the committed versions', async () => {
    const table = 'claim_readopt';
    const lake = createLake();
    try {
      // 1. R exported whole; its execution dies before Commit, its lease lapses.
      const { config, state, R } = await exportedBackfill(db, lake, table);
      await expire(state);

      // 2. X's Plan (first attempt) adopts R; its answer is lost (the attempt failed).
      const X = newRunId(new Date(Date.now() + 1000));
      const xDeps = exportDeps(db, lake.store, config);
      const xFirst = (await planRun(xDeps, { runId: X })).tables[0];
      await xDeps.close();
      expect(xFirst.runId, "X's first Plan attempt adopted R").toBe(R);
      const claimedByX = (await state.read<PendingRun>(state.pendingRunKey(R)))!;
      expect(claimedByX.value.adoptedBy).toBe(X);

      // 3. P1 takes X's live lease over, refuses R and removes it: stalled before its claim.
      const beforeClaim = pause('put', (key) => key === state.pendingRunKey(R));
      const beforeDelete = pause('delete', (keys) => keys.includes(state.stagedPrefix(R)));
      const p1Deps = exportDeps(db, pausingStore(lake.store, [beforeClaim, beforeDelete]), config);
      const p1 = planRun(p1Deps, { takeOver: true });
      expect(await reachedOrDone(beforeClaim, p1), 'P1 reached its claim on run.json').toBe('reached');

      // 4. P1's lease lapses; X's Plan is retried (same run id) and adopts R again.
      await expire(state);
      const xRetryDeps = exportDeps(db, lake.store, config);
      const xPlanned = (await planRun(xRetryDeps, { runId: X })).tables[0];
      await xRetryDeps.close();
      expect(xPlanned.runId, "X's retried Plan adopted R again").toBe(R);
      const afterRetry = (await state.read<PendingRun>(state.pendingRunKey(R)))!;
      console.log(`run.json etag P1 read: ${claimedByX.etag}; after X's retried adoption: ${afterRetry.etag} (${afterRetry.etag === claimedByX.etag ? 'unchanged' : 'changed'})`);

      // 5. P1 resumes: its claim; it stalls again before deleting. X commits R.
      beforeClaim.resume.open();
      const secondStall = await reachedOrDone(beforeDelete, p1);
      console.log(`P1 after its claim: ${secondStall === 'reached' ? 'claim won, stalled before deleting' : 'stopped'}`);
      const xTask = await exportAll(db, lake.store, config, xPlanned);
      const commitDeps = exportDeps(db, lake.store, config);
      const result = await commitTable(commitDeps, xTask).then((r) => r.status, (e: Error) => `failed: ${e.message}`);
      await commitDeps.close();
      const committed = await visibleVersions(lake, table);
      console.log(`X's Commit of R: ${result}; watermark run ${(await state.watermark())?.runId ?? '(none)'}; ${committed.n} rows visible`);

      // 6. P1 resumes.
      beforeDelete.resume.open();
      const plan1 = await p1;
      await p1Deps.close();
      const after = await visibleVersions(lake, table);
      const watermark = await state.watermark();
      console.log(`after the stalled removal P1 resumed: watermark run ${watermark?.runId ?? '(none)'}, ${after.n} rows visible (P1 planned ${plan1.tables.length} table(s), failed: ${plan1.failed.map((f) => f.error).join('; ') || 'none'})`);
      // Every row is committed once the watermark names a run (R is the table's only possible commit).
      expect(watermark?.runId ?? null, 'the committed run').toBe(result === 'succeeded' ? R : null);
      expect(after, 'versions readers keep').toEqual(watermark ? { n: '3000', versions: '3000' } : { n: '0', versions: '0' });
    } finally {
      lake.remove();
    }
  }, 120_000);
});
