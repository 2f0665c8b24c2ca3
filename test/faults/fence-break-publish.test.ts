// Breaker (HI): a Commit stalled in the middle of publishing (its moves from staging hang: a
// paused process, requests in flight) past its lease. The next lease holder recovers the table:
// it fences the watermark and removes the run — first the data keys the journals name (files
// already published), then everything under pending/ (journals and staged files). Moves that land
// between those two deletes put files at their data keys after the first delete; the second
// delete no longer finds them staged. The stalled Commit then fails (its lease is gone, the
// watermark is fenced), but its late-moved files stay visible in the table folder, named by no
// manifest and no pending run: nothing ever removes them, and readers see their rows again once
// the next run exports the same window.
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, faultyStore, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { gate, pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';

const db = fileDatabase();

async function createTable(name: string): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
}

const exportRun = (lake: TestLake, config: LakeConfig): Promise<string[]> => exportStatuses(db, lake, config);

/** The next run planned and exported, its Commit started with every move held until `moves.open()`. */
async function commitHeldAtPublish(lake: TestLake, config: LakeConfig) {
  const reached = gate();
  const moves = gate();
  const deps0 = exportDeps(db, lake.store, config);
  const plan = await planRun(deps0, {});
  let task = plan.tables[0];
  while (!task.done) task = await exportTable(deps0, task);
  await deps0.close();
  const deps = exportDeps(db, faultyStore(lake.store, {
    move: async (from, to) => {
      reached.open();
      await moves.wait;
      return lake.store.move(from, to);
    },
  }), config);
  const commit = commitTable(deps, task).then((r) => r, (e: Error) => e);
  await reached.wait;
  return { task, commit, moves, close: () => deps.close() };
}

async function expireLease(lake: TestLake, name: string): Promise<void> {
  const state = new TableState(lake.store, 'raw', name);
  const lease = (await state.read<Lease>(state.leaseKey()))!.value;
  await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
}

describe('a Commit stalled mid-publish while its run is removed', () => {
  for (const remover of ['the next execution (recover)', 'its own execution (abandonRun)'] as const) {
    it(`leaves no visible file behind when removed by ${remover}`, async () => {
      const name = remover.includes('recover') ? 'publish_stall_recover' : 'publish_stall_abandon';
      const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
      const lake = createLake();
      try {
        await createTable(name);
        expect(await exportRun(lake, config)).toEqual(['succeeded']);
        const seen = new Set<string>();
        await checkReaders(db, lake, config, name, 'after the first run', { seenVersions: seen });
        await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 3 = 0`);
        const stalled = await commitHeldAtPublish(lake, config);
        const state = new TableState(lake.store, 'raw', name);
        // The remover is held right after deleting the published keys (before it lists pending/ to delete it).
        const atPendingList = pause('delete', (k) => k.includes('.parquet') && !k.includes('/pending/'), 'after');
        let removal: Promise<unknown>;
        let nextDeps: ReturnType<typeof exportDeps> | null = null;
        if (remover.includes('recover')) {
          await expireLease(lake, name);
          nextDeps = exportDeps(db, pausingStore(lake.store, [atPendingList]), config);
          removal = planRun(nextDeps, {});
        } else {
          removal = abandonRun({ store: pausingStore(lake.store, [atPendingList]), config }, name, stalled.task.runId);
        }
        expect(await reachedOrDone(atPendingList, removal)).toBe('reached');
        // The stalled moves land now.
        stalled.moves.open();
        const outcome = await stalled.commit;
        await stalled.close();
        atPendingList.resume.open();
        const planned = await removal;
        console.log(`${remover}: stalled commit ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : outcome.status}`);
        if (nextDeps) {
          // The next execution exports and commits its window (the stalled run's rows included).
          let task = (planned as Awaited<ReturnType<typeof planRun>>).tables[0];
          const plainDeps = { ...nextDeps, store: lake.store };
          while (!task.done) task = await exportTable(plainDeps, task);
          expect((await commitTable(plainDeps, task)).status).toBe('succeeded');
          await nextDeps.close();
        } else {
          expect(await exportRun(lake, config)).toEqual(['succeeded']);
        }
        await checkReaders(db, lake, config, name, 'after the next run', { seenVersions: seen });
        expect(seen.size).toBe(400 + 133);
      } finally {
        lake.remove();
      }
    }, 120_000);
  }
});
