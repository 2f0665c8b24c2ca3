// Breaker (HJ): fence-break-late-copy's own interleaving, with readers looking while the next
// execution's Commit publishes. The interleaving:
//   1. The table is committed; 133 rows are updated; run R exports them; its Commit's copies are
//      in flight (sources read); its lease lapses.
//   2. E2's plan removes R (removed/R.json lists R's data key); R's copies land: R's late file is
//      visible (its rows ahead of the watermark, as README says).
//   3. E2 exports the same 133 rows and its Commit publishes them (moves to data keys, visible at
//      once), then writes the watermark, then finishCommit's sweep deletes R's late file.
// README: "its Commit deletes the late copies as those rows become visible: the two are never
// visible together". E2's rows become visible as they are published, before the commit point;
// the sweep runs after it. Readers in between (publishing thousands of files takes seconds to
// minutes) see R's versions twice. The test holds E2's Commit just before its watermark write
// and reads (failing on main: 133 versions seen twice), then lets it finish (holds).
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { createLake, exportDeps } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkReaders, readerView } from './compact-break-checks.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';
import { committedThenUpdated, dataFilesOf, expireLease, lateConfig, stallCommit } from './late-break-copies.ts';

const db = fileDatabase();

describe("late copies while the next execution's Commit publishes", () => {
  it('are never visible beside the rows published again', async () => {
    const name = 'late_publish_window';
    const config = lateConfig(name, 60);
    const lake = createLake();
    try {
      const seen = await committedThenUpdated(db, lake, config, name);
      const stalled = await stallCommit(db, lake, config, name);
      const { state, task } = stalled;
      await expireLease(state);

      // The first watermark write is the fence of E2's plan; the second, its Commit's commit point.
      const held = pause('put', (key) => key === state.watermarkKey(), 'before', 2);
      const e2 = exportDeps(db, pausingStore(lake.store, [held]), config);
      let next = (await planRun(e2, {})).tables[0];
      stalled.land.open();
      const outcome = await stalled.outcome;
      expect(outcome instanceof Error ? outcome.name : outcome.status).not.toBe('succeeded');
      const ahead = await readerView(config, lake, name);
      console.log(`R's late copies landed after E2's plan: ${(await dataFilesOf(lake, 'raw', name, task.runId)).length} file(s), ${ahead.duplicates.length} versions seen twice`);
      while (!next.done) next = await exportTable(e2, next);
      const commit = commitTable(e2, next);
      expect(await reachedOrDone(held, commit), "E2's Commit reached its watermark write").toBe('reached');
      const publishing = await readerView(config, lake, name);
      console.log(`E2 published, before its watermark: ${(await dataFilesOf(lake, 'raw', name, task.runId)).length} late file(s) of R visible, ${publishing.duplicates.length} versions seen twice (${publishing.duplicates.slice(0, 2).join(', ')}, …)`);
      held.resume.open();
      expect((await commit).status).toBe('succeeded');
      await e2.close();
      expect(await dataFilesOf(lake, 'raw', name, task.runId), "after E2's sweep").toEqual([]);
      await checkReaders(db, lake, config, name, 'after E2', { seenVersions: seen });
      expect(seen.size).toBe(400 + 133);

      expect(publishing.duplicates.length, "versions seen twice while E2's Commit publishes").toBe(0);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
