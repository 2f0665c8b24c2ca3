// Breaker (HK) tools for the run.json claim: a failed backfill exported whole, and what readers see.
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { expect } from 'vitest';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { duckdb, exportDeps, parquetGlob, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

/** Rows and distinct versions (id, updated_at) of the table's visible files, as DuckDB reads them. */
export async function visibleVersions(lake: TestLake, table: string): Promise<{ n: string; versions: string }> {
  if (!(await lake.store.list(`raw/${table}/year=`)).some((k) => k.endsWith('.parquet'))) return { n: '0', versions: '0' };
  const [row] = await duckdb<{ n: string; versions: string }>(`SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions FROM read_parquet(${parquetGlob(lake, table)})`);
  return row;
}

/** Every segment of `planned` and the task itself exported through `store`; the task returned. */
export async function exportAll(db: TestDatabase, store: ObjectStore, config: LakeConfig, planned: TableTask): Promise<TableTask> {
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

/** The table's lease made to have lapsed a second ago. */
export async function expire(state: TableState): Promise<void> {
  const lease = (await state.read<Lease>(state.leaseKey()))!.value;
  await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
}

/** A failed backfill's start: the table (3,000 rows, 10 s apart) created, its first export a backfill R of 2 segments, planned and exported whole, not committed. `options`: more of the config. */
export async function exportedBackfill(db: TestDatabase, lake: TestLake, table: string, options: Record<string, unknown> = {}): Promise<{ config: LakeConfig; state: TableState; R: string; task: TableTask }> {
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-09 00:00:00+00' + g * interval '10 seconds' FROM generate_series(1, 3000) g`);
  const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 }, ...options });
  const deps = exportDeps(db, lake.store, config);
  const planned = (await planRun(deps, {})).tables[0];
  await deps.close();
  expect(planned.backfill, 'the first export is a backfill').toBeTruthy();
  const task = await exportAll(db, lake.store, config, planned);
  return { config, state: new TableState(lake.store, 'raw', table), R: planned.runId, task };
}
