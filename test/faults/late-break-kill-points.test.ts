// Breaker (HJ): the removal of a run whose Commit's copies are in flight, killed at each step
// between its list and its pending/ folder, then done again by the next execution after the
// copies landed. The interleaving:
//   1. The table is committed; 133 rows are updated; run R exports them in 3 pages (a file
//      each); its Commit's three copies are in flight (sources read); R's lease lapses.
//   2. E2's plan removes R and dies at one point: after writing removed/R.json (before the
//      staged deletes), after the staged deletes, or after the published deletes (before
//      clearing pending/). R is still pending.
//   3. The copies land at R's data keys: before E3, or after E3's plan removed R again (then
//      only the list deletes them).
//   4. E3 removes R again, exports the 133 rows again and commits; E4 runs.
// Holds: after E3 no file of R is visible, readers see every version once, nothing is orphaned.
// (Killed inside clearPending's delete, after some journals: late-break-relist, failing.)
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { createLake, exportDeps, faultyStore } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { committedThenUpdated, dataFilesOf, expireLease, lateConfig, stallCommit } from './late-break-copies.ts';

const db = fileDatabase();

/** Which of removeRun's deletes the kill comes before: staged files, published keys, pending/. */
const killPoints = [
  { label: 'after its list', before: 'staged' },
  { label: 'after its staged deletes', before: 'published' },
  { label: 'after its published deletes', before: 'pending' },
] as const;

describe('a removal killed between its list and its pending/ folder, done again after late copies landed', () => {
  for (const [n, point] of killPoints.entries()) for (const landAfterPlan of [false, true]) {
    it(`killed ${point.label}, copies landing ${landAfterPlan ? "after the next plan's removal" : 'before the next plan'}: no late file stays visible`, async () => {
      const name = `late_kill_point_${n}_${landAfterPlan ? 'after' : 'before'}`;
      const config = lateConfig(name, 0);
      const lake = createLake();
      try {
        const seen = await committedThenUpdated(db, lake, config, name);
        const stalled = await stallCommit(db, lake, config, name, {}, true);
        const { state, task } = stalled;
        expect(stalled.keys).toHaveLength(3);
        await expireLease(state);

        const pending = state.pendingPrefix(task.runId);
        const kind = (keys: readonly string[]) => keys.some((k) => k.startsWith(state.stagedPrefix(task.runId))) ? 'staged'
          : keys.some((k) => stalled.keys.includes(k)) ? 'published' : keys.some((k) => k.startsWith(pending)) ? 'pending' : null;
        const killed = faultyStore(lake.store, {
          delete: async (keys) => {
            if (kind(keys) === point.before) throw new Error(`killed ${point.label}`);
            return lake.store.delete(keys);
          },
        });
        const e2 = exportDeps(db, killed, config);
        const plan2 = await planRun(e2, {});
        await e2.close();
        expect(plan2.failed.map((f) => f.error).join(' ')).toContain(`killed ${point.label}`);
        expect(await lake.store.get(state.pendingRunKey(task.runId)), 'R is still pending').not.toBeNull();

        const land = async () => {
          stalled.land.open();
          const outcome = await stalled.outcome;
          expect(outcome instanceof Error ? outcome.name : outcome.status).not.toBe('succeeded');
          expect(await dataFilesOf(lake, 'raw', name, task.runId), 'the late copies landed').toHaveLength(3);
        };
        if (!landAfterPlan) await land();
        const e3 = exportDeps(db, lake.store, config);
        let next = (await planRun(e3, {})).tables[0];
        expect(await lake.store.get(state.pendingRunKey(task.runId)), 'E3 removed R').toBeNull();
        if (landAfterPlan) await land();
        while (!next.done) next = await exportTable(e3, next);
        expect((await commitTable(e3, next)).status).toBe('succeeded');
        await e3.close();
        expect(await dataFilesOf(lake, 'raw', name, task.runId), 'late copies of R after E3 committed').toEqual([]);
        await checkReaders(db, lake, config, name, 'after E3', { seenVersions: seen });
        expect(await exportStatuses(db, lake, config)).toEqual(['succeeded']);
        await checkReaders(db, lake, config, name, 'after E4', { seenVersions: seen, noOrphans: true });
        expect(seen.size).toBe(400 + 133);
      } finally {
        lake.remove();
      }
    }, 60_000);
  }
});
