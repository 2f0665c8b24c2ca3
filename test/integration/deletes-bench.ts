// Issue 15's must-show on wall time, for a quiet machine: a 1M-row table (ROWS to change it) in
// the embedded Postgres is exported to a directory lake, vacuumed as autovacuum would leave it,
// then the unchanged table is reconciled five times (findDeletedKeys: the lake's key span, then
// both sides' hash aggregates side by side). Prints the query counts and the medians, and exits
// 1 when reconciling takes a tenth of the export's wall time or more. The test suite measures
// the same (deletes.test.ts) but cannot hold wall time to a bound on a shared runner.
//
//   source scripts/use-node24.sh && node test/integration/deletes-bench.ts
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { resolveTable } from '../../lambdas/core/config.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { findDeletedKeys, type Detection } from '../../lambdas/core/protocol/reconcile.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { shapeTable } from '../../lambdas/core/source/table-shape.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig } from '../support/local-stack.ts';
import { loadAverage, measure, median, type Cost } from './deletes-timing.ts';

const ROWS = Number(process.env.ROWS ?? 1_000_000);
const db = await createDatabase();
const lake = createLake();
let failed = false;
try {
  await db.query(`CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(12,2), tags int[], payload jsonb, updated_at timestamptz NOT NULL)`);
  await db.query(`INSERT INTO orders SELECT i, 'c' || (i % 9973), (i % 100000) / 100.0, CASE WHEN i % 3 = 0 THEN ARRAY[i % 7, i % 11] END,
      CASE WHEN i % 5 = 0 THEN jsonb_build_object('n', i) END, timestamptz '2024-03-01 00:00:00+00' + i * interval '97 millisecond'
    FROM generate_series(1, ${ROWS}) i`);
  await db.query('CREATE INDEX ON orders (updated_at, id)');
  await db.query('VACUUM ANALYZE orders');
  const config = testConfig([{ name: 'public.orders', deletes: { detect: true } }], { export: { pageRows: 100_000, safetyLagSeconds: 0 } });

  const exportRun = exportDeps(db, lake.store, config);
  const { result: outcome, cost: exported } = await measure(db, () => runExport(exportRun)).finally(() => exportRun.close());
  if (outcome.tables[0]?.status !== 'succeeded') throw new Error(`the export failed: ${JSON.stringify(outcome.tables)}`);
  await db.query('VACUUM ANALYZE orders');

  const column = { name: 'id', typeName: 'int8', typeKind: 'b', elementTypeName: null, elementTypeKind: null, typmod: -1, formatted: 'bigint', notNull: true } as const;
  const shape = shapeTable(resolveTable(config.tables[0]), { columns: [column, { ...column, name: 'updated_at', typeName: 'timestamptz', formatted: 'timestamp with time zone' }], primaryKey: ['id'] }, config);
  const state = new TableState(lake.store, 'raw', 'orders');
  const schema = (await state.read<LakeSchema>(state.schemaKey()))!.value;
  const query = await LakeQuery.open(config, lake.store);
  const engine = query.engine();
  const deps = { ...exportDeps(db, lake.store, config), engine };
  // DUCKDB_THREADS=n: the lake engine's threads (default: one core fewer than the machine has).
  if (process.env.DUCKDB_THREADS) await engine.query(`SET threads = ${Number(process.env.DUCKDB_THREADS)}`);
  const reconciles: { detection: Detection; cost: Cost }[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const { result: detection, cost } = await measure(db, () => findDeletedKeys(deps, shape, schema, 'orders'));
      if (detection.missing.length > 0 || detection.levels > 0) throw new Error(`the unchanged table bisected: ${JSON.stringify({ ...detection, missing: detection.missing.length })}`);
      reconciles.push({ detection, cost });
    }
  } finally {
    await deps.close();
    await engine.close();
  }
  const wall = median(reconciles.map((r) => r.cost.wallMillis));
  const cpu = median(reconciles.map((r) => r.cost.cpuMillis));
  const { aggregateQueries, keyQueries } = reconciles[0].detection;
  const ratio = wall / exported.wallMillis;
  console.log(`unchanged ${ROWS}-row table: ${aggregateQueries.lake + aggregateQueries.source} aggregate queries (lake ${aggregateQueries.lake}, source ${aggregateQueries.source}), ${keyQueries.lake + keyQueries.source} key listings`);
  console.log(`reconcile ${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU (medians of ${reconciles.length}: ${reconciles.map((r) => `${r.cost.wallMillis.toFixed(0)} [lake ${r.detection.sideMillis.lake}, source ${r.detection.sideMillis.source}]`).join(', ')})`);
  console.log(`export ${exported.wallMillis.toFixed(0)} ms wall, ${exported.cpuMillis.toFixed(0)} ms CPU`);
  console.log(`reconcile / export = ${ratio.toFixed(3)} wall, ${(cpu / exported.cpuMillis).toFixed(3)} CPU (load average ${loadAverage()})`);
  if (ratio >= 0.1) {
    console.error(`FAIL: reconciling took ${(ratio * 100).toFixed(1)} % of the export's wall time (bound: 10 %)`);
    failed = true;
  }
} finally {
  await db.close();
  lake.remove();
  await stopPostgres();
}
process.exit(failed ? 1 : 0);
