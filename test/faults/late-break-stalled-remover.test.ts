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
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { createLake, duckdb, exportDeps, faultyStore, parquetGlob, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';

const db = fileDatabase();

async function visibleVersions(lake: TestLake, table: string): Promise<{ n: string; versions: string }> {
  if (!(await lake.store.list(`raw/${table}/year=`)).some((k) => k.endsWith('.parquet'))) return { n: '0', versions: '0' };
  const [row] = await duckdb<{ n: string; versions: string }>(`SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions FROM read_parquet(${parquetGlob(lake, table)})`);
  return row;
}

/** Every segment of `task` and the task itself exported through `store`; the task returned. */
async function exportAll(store: ObjectStore, config: LakeConfig, planned: TableTask): Promise<TableTask> {
  const deps = exportDeps(db, store, config);
  try {
    let task = planned;
    for (const segment of task.backfill ? await readSegments(new TableState(store, 'raw', task.table), task) : []) {
      let child = segmentTask(task, segment);
      while (!child.done) child = await exportTable(deps, child);
    }
    while (!task.done) task = await exportTable(deps, task);
    return task;
  } finally {
    await deps.close();
  }
}

async function expire(state: TableState): Promise<void> {
  const lease = (await state.read<Lease>(state.leaseKey()))!.value;
  await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
}

describe('a removal stalled past its lease while the next execution adopts and commits the run', () => {
  it('deletes none of the committed files when it resumes', async () => {
    const table = 'late_stalled_remover';
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-09 00:00:00+00' + g * interval '10 seconds' FROM generate_series(1, 3000) g`);
    const lake = createLake();
    try {
      const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 } });
      const state = new TableState(lake.store, 'raw', table);
      // 1. R exported whole; its Commit dies at its first move (pending schema written).
      const deps0 = exportDeps(db, lake.store, config);
      const planned = (await planRun(deps0, {})).tables[0];
      await deps0.close();
      expect(planned.backfill, 'the first export is a backfill').toBeTruthy();
      const R = planned.runId;
      const task = await exportAll(lake.store, config, planned);
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
      const p2Task = await exportAll(lake.store, config, p2Planned);
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
