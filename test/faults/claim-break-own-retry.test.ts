// Breaker (HK): a retried Plan of the failed backfill's OWN execution (same run id R: a Plan
// attempt that hung to its timeout, 300 s by default like the lease, is retried 60-70 s later;
// or the failed execution redriven) takes the lease back from the execution that adopted R, and
// re-plans R from scratch: run.json is rewritten without If-Match (the adopter's claim is gone),
// with a new window, while the segments the adopter finished keep their progress. The interleaving:
//   1. The table's first Plan (run R) plans a backfill of 3000 rows (2 segments); the attempt's
//      answer is lost, and its lease lapses before Step Functions retries it.
//   2. The next execution's plan P1 adopts R (adoptedBy P1, lease {R, holder P1}) and exports both
//      segments (window up to U1).
//   3. 300 rows are updated (their new versions lie after U1).
//   4. R's Plan is retried: acquireLease sees a lease whose runId is R and takes it as its own
//      (holder P1 dropped, no takeOver); R is re-planned: run.json rewritten (adoptedBy gone), the
//      window now ends at U2 > U1, the segment list written again.
//   5. P1's Commit fails its lease check. R's execution exports the segments: their progress says
//      done (P1 exported them up to U1), and R commits with the watermark at U2.
// Also with P1's lease lapsed before R's retry (P1's execution died after exporting): the retry
// takes the lapsed lease and re-plans R the same way.
// Expected: after the next two executions, every version Postgres holds at or below the watermark is in
// the lake once (on main the 300 updated rows' new versions lie below U2 and are never exported).
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { TableState, type Lease, type PendingRun } from '../../lambdas/core/protocol/table-state.ts';
import { newRunId } from '../../lambdas/core/protocol/run-model.ts';
import { createLake, exportDeps, testConfig } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { expire, exportAll } from './claim-break-backfill.ts';

const db = fileDatabase();

describe("the failed backfill's own Plan retried after another execution adopted it", () => {
  it.each(['live', 'lapsed'])("P1's lease %s: R's retry does not re-plan R over P1's progress; every version below the watermark is in the lake once", async (p1Lease) => {
    const table = `claim_own_retry_${p1Lease}`;
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-09 00:00:00+00' + g * interval '10 seconds' FROM generate_series(1, 3000) g`);
    const lake = createLake();
    try {
      const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 }, compaction: { enabled: false } });
      const state = new TableState(lake.store, 'raw', table);
      // 1. R's first Plan attempt; its answer is lost, its lease lapses.
      const R = newRunId(new Date());
      const deps0 = exportDeps(db, lake.store, config);
      const first = (await planRun(deps0, { runId: R })).tables[0];
      await deps0.close();
      expect(first.backfill, 'the first export is a backfill').toBeTruthy();
      await expire(state);

      // 2. P1 adopts R and exports both segments.
      const p1Deps = exportDeps(db, lake.store, config);
      const p1Planned = (await planRun(p1Deps, { runId: newRunId(new Date(Date.now() + 1000)) })).tables[0];
      await p1Deps.close();
      expect(p1Planned.runId, 'P1 adopted R').toBe(R);
      const p1Task = await exportAll(db, lake.store, config, p1Planned);
      const adopted = (await state.read<PendingRun>(state.pendingRunKey(R)))!.value;
      const leaseAdopted = (await state.read<Lease>(state.leaseKey()))!.value;

      // 3. Rows updated after P1's window.
      await db.query(`UPDATE ${table} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id <= 300`);
      await new Promise((resolve) => setTimeout(resolve, 20));

      // 4. R's Plan retried (with P1's lease still live, or lapsed: P1's execution died too).
      if (p1Lease === 'lapsed') await expire(state);
      const retryDeps = exportDeps(db, lake.store, config);
      const retried = await planRun(retryDeps, { runId: R });
      await retryDeps.close();
      const leaseAfter = (await state.read<Lease>(state.leaseKey()))?.value ?? null;
      const replanned = (await state.read<PendingRun>(state.pendingRunKey(R)))!.value;
      console.log(`lease while P1 holds R: ${JSON.stringify(leaseAdopted)}; after R's retried Plan: ${JSON.stringify(leaseAfter)} (skipped: ${retried.skipped.map((s) => s.reason).join('; ') || 'none'})`);
      console.log(`run.json adoptedBy ${adopted.adoptedBy} window to ${adopted.window.to}; after the retry: adoptedBy ${replanned.adoptedBy ?? '(none)'} window to ${replanned.window.to}`);

      // 5. P1's Commit, then R's execution.
      const p1Commit = exportDeps(db, lake.store, config);
      const p1Result = p1Lease === 'lapsed' ? 'not run (P1 died)' : await commitTable(p1Commit, p1Task).then((r) => r.status, (e: Error) => `failed: ${e.message}`);
      await p1Commit.close();
      let rResult = 'not planned';
      if (retried.tables[0]) {
        const rTask = await exportAll(db, lake.store, config, retried.tables[0]);
        const rCommit = exportDeps(db, lake.store, config);
        rResult = await commitTable(rCommit, rTask).then((r) => `${r.status}, ${r.rows} rows`, (e: Error) => `failed: ${e.message}`);
        await rCommit.close();
      }
      const watermark = await state.watermark();
      console.log(`P1's Commit: ${p1Result}; R's Commit: ${rResult}; watermark ${watermark?.cursor ?? '(none)'}`);
      // The next two executions (any lease left lapsed first): what readers keep for good.
      if (await state.read<Lease>(state.leaseKey())) await expire(state);
      console.log(`the next two executions: ${(await exportStatuses(db, lake, config)).join(', ')}, ${(await exportStatuses(db, lake, config)).join(', ')}`);
      await checkReaders(db, lake, config, table, 'after the next two executions');
    } finally {
      lake.remove();
    }
  }, 120_000);
});
