// Breaker (HK): the claims on run.json compare etags, and an etag is a digest of the body (the
// directory lake's, and S3's for a simple PUT: the MD5). An adoption writes {...run.json,
// adoptedBy: <plan>}: the same plan adopting again after another plan writes the same bytes, so
// the same etag (A -> B -> A), and a removal that read run.json at A wins its If-Match claim. The
// interleaving (as claim-break-readopt, with a third execution in between):
//   1. A table's first export is a backfill R, exported whole; its execution dies.
//   2. Execution X's Plan adopts R (adoptedBy X); the attempt fails (its answer is lost).
//   3. P1, a re-run with takeOver, refuses R (X's live lease taken over) and removes it: it reads
//      run.json (adoptedBy X), checks its lease, and stalls before its claim.
//   4. P1's lease lapses. Execution P2's Plan adopts R (adoptedBy P2); that attempt fails too, its
//      lease lapses. X's Plan is retried and adopts R again: adoptedBy P2 -> X, the very bytes P1 read.
//   5. P1 resumes: its claim wins, it stalls before its first delete; X commits R (3000 versions).
//   6. P1 resumes and deletes R's committed files.
// Expected: P1's claim fails (run.json changed twice since it read it); readers keep 3000 versions.
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

describe('run.json rewritten back to the bytes a stalled removal read (A -> B -> A)', () => {
  it('the removal loses its claim; readers keep the committed versions', async () => {
    const table = 'claim_aba';
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

      // 4. P1's lease lapses; P2 adopts R, its answer is lost, its lease lapses; X's Plan is retried
      // (same run id) and adopts R again.
      await expire(state);
      const P2 = newRunId(new Date(Date.now() + 2000));
      const p2Deps = exportDeps(db, lake.store, config);
      expect((await planRun(p2Deps, { runId: P2 })).tables[0].runId, 'P2 adopted R').toBe(R);
      await p2Deps.close();
      const claimedByP2 = (await state.read<PendingRun>(state.pendingRunKey(R)))!;
      expect(claimedByP2.value.adoptedBy).toBe(P2);
      console.log(`run.json etag P1 read: ${claimedByX.etag}; after P2's adoption: ${claimedByP2.etag}`);
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
