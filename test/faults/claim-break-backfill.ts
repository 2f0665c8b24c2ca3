// Breaker (HK) tools for the run.json claim: a failed backfill exported whole, and what readers see.
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { duckdb, exportDeps, parquetGlob, type TestDatabase, type TestLake } from '../support/local-stack.ts';

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
