// A Commit stalled past its lease while publishing, its moves modelled as S3 performs them: a
// move is CopyObject (the source is read as the request starts, the destination written when it
// completes) then DeleteObject. The next execution removes the run: staged files, then the data
// keys its journals name, then pending/. The copies in flight complete afterwards: their files
// land at data keys removeRun has already deleted, named by no manifest and no pending run, and
// readers see their rows twice once the next run exports the same window (left open last
// session as "B2 residue"). removeRun now lists the run's data keys under removed/, and every
// later commit and recovery deletes them again until compaction.graceMinutes have passed.
import { utimesSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import type { Removed } from '../../lambdas/core/protocol/recovery.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { committedThenUpdated, createTable, dataFilesOf, expireLease, lateConfig, stallCommit } from './late-break-copies.ts';

const db = fileDatabase();

const exportRun = (lake: TestLake, config: LakeConfig): Promise<string[]> => exportStatuses(db, lake, config);

describe('a Commit whose copies land after its run was removed', () => {
  for (const graceMinutes of [0, 60]) {
    it(`leaves no visible file once the rows are committed again (compaction.graceMinutes ${graceMinutes})`, async () => {
      const name = `late_copy_${graceMinutes}`;
      const config = lateConfig(name, graceMinutes);
      const lake = createLake();
      try {
        const seen = await committedThenUpdated(db, lake, config, name);

        // The next run exported; its Commit's copies read their sources and hang before landing.
        const { task, state, keys, land, outcome: commit } = await stallCommit(db, lake, config, name);
        const files = keys.length;
        expect(files).toBeGreaterThan(0);

        // Its lease runs out; the next execution's plan removes the run, then exports and commits
        // its window, the stalled run's rows included.
        await expireLease(state);
        const nextDeps = exportDeps(db, lake.store, config);
        let next = (await planRun(nextDeps, {})).tables[0];
        expect(await lake.store.get(state.pendingRunKey(task.runId)), 'the stalled run was removed').toBeNull();
        const removed = await state.read<Removed>(state.removedKey(task.runId));

        // The copies in flight land now, at data keys the removal already deleted.
        land.open();
        const outcome = await commit;
        expect(outcome instanceof Error ? outcome.name : outcome.status).not.toBe('succeeded');
        expect(await dataFilesOf(lake, 'raw', name, task.runId), 'the late copies are visible').toHaveLength(files);

        while (!next.done) next = await exportTable(nextDeps, next);
        expect((await commitTable(nextDeps, next)).status).toBe('succeeded');
        await nextDeps.close();
        // Gone as the rows exported again become visible: never both at once.
        expect(await dataFilesOf(lake, 'raw', name, task.runId), 'late copies visible beside the rows exported again').toEqual([]);
        await checkReaders(db, lake, config, name, 'after the next execution', { seenVersions: seen });

        expect(await exportRun(lake, config)).toEqual(['succeeded']);
        await checkReaders(db, lake, config, name, 'after the run that follows', { seenVersions: seen, noOrphans: true });
        expect(seen.size).toBe(400 + 133);
        // The removal listed the run's data keys; the list stays at least 15 minutes (longer than
        // any Commit lives), whatever the grace, and each commit and recovery deletes them again.
        expect(removed?.value.files.length, 'its data keys were listed as removed').toBe(files);
        expect(await lake.store.get(state.removedKey(task.runId)), 'the list, kept 15 minutes at least').not.toBeNull();
        // Written 16 minutes ago: past the 15-minute floor, not past a 60-minute grace.
        const past = new Date(Date.now() - 16 * 60_000);
        utimesSync(path.join(lake.dir, state.removedKey(task.runId)), past, past);
        expect(await exportRun(lake, config)).toEqual(['succeeded']);
        expect(await lake.store.get(state.removedKey(task.runId)) === null, 'the list dropped after the grace').toBe(graceMinutes === 0);
      } finally {
        lake.remove();
      }
    }, 120_000);
  }

  it('never deletes the files of a run that commits after a removal of it was listed', async () => {
    // A removal that stopped half-way (the list written, pending/ still there) leaves the run to
    // the next plan, which may adopt it (a backfill) and commit it: its files are then live.
    const name = 'late_copy_listed_then_committed';
    const config = lateConfig(name, 0);
    const lake = createLake();
    try {
      await createTable(db, name);
      const deps = exportDeps(db, lake.store, config);
      let task = (await planRun(deps, {})).tables[0];
      while (!task.done) task = await exportTable(deps, task);
      const state = new TableState(lake.store, 'raw', name);
      const keys = (await state.pendingPages(task.runId)).flatMap((p) => p.files.map((f) => f.key));
      await state.write(state.removedKey(task.runId), { files: keys, removedAt: new Date(Date.now() - 3_600_000).toISOString() } satisfies Removed);
      expect((await commitTable(deps, task)).status).toBe('succeeded');
      await deps.close();
      expect(await lake.store.get(state.removedKey(task.runId)), 'the committed run dropped the list').toBeNull();
      expect((await dataFilesOf(lake, 'raw', name, task.runId)).sort()).toEqual([...keys].sort());
      expect(await exportRun(lake, config)).toEqual(['succeeded']);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, name, 'after the next run', { seenVersions: seen, noOrphans: true });
      expect(seen.size).toBe(400);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
