// Deletes without CDC on real parts: a 1M-row table in the embedded Postgres, exported to a
// directory lake, 1 % of its rows deleted scattered plus one key range wholesale and some of the
// deleted keys inserted again; after one run `<table>_current` (DuckDB) equals the table, by
// content hashes both engines compute with their own SQL, and the Parquet files hold exactly one
// tombstone per deleted key. Reconciling the unchanged table costs one hash aggregate per side
// (and the lake's key span), the source's over an index-only scan. A composite (text, uuid) key
// takes the hash line; a failed run's tombstones are not published and the next run writes them
// once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import type { LakeSchema, ObjectStore } from '../../lambdas/core/ports.ts';
import { findDeletedKeys, tombstonesOfRun, type Detection } from '../../lambdas/core/protocol/reconcile.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { resolveTable } from '../../lambdas/core/config.ts';
import { keyAggregateQuery } from '../../lambdas/core/source/queries.ts';
import { shapeTable } from '../../lambdas/core/source/table-shape.ts';
import { createDatabase, createLake, duckdb, exportDeps, faultyStore, parquetGlob, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { loadAverage, measure, median, type Cost } from './deletes-timing.ts';

const ROWS = 1_000_000;
let db: TestDatabase;
let lake: TestLake;

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(12,2), tags int[], payload jsonb, updated_at timestamptz NOT NULL)`);
  await db.query(`INSERT INTO orders SELECT i, 'c' || (i % 9973), (i % 100000) / 100.0, CASE WHEN i % 3 = 0 THEN ARRAY[i % 7, i % 11] END,
      CASE WHEN i % 5 = 0 THEN jsonb_build_object('n', i) END, timestamptz '2024-03-01 00:00:00+00' + i * interval '97 millisecond'
    FROM generate_series(1, ${ROWS}) i`);
  // The cursor index every real table of this kind has: each page is an index range, not a sort of the table.
  await db.query('CREATE INDEX ON orders (updated_at, id)');
  await db.query('ANALYZE orders');
  await db.query(`CREATE TABLE "Line Items" (region text NOT NULL, item uuid NOT NULL, qty int, updated_at timestamptz NOT NULL, PRIMARY KEY (region, item))`);
  await db.query(`INSERT INTO "Line Items" SELECT (ARRAY['eu','us','ap','Zürich','a''b'])[1 + i % 5], md5(i::text)::uuid, i, timestamptz '2024-03-01 00:00:00+00' + i * interval '1 second'
    FROM generate_series(1, 20000) i`);
}, 600_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

interface DetectionLog { deletes: number; line: string; levels: number; aggregateQueries: { lake: number; source: number }; keyQueries: { lake: number; source: number }; millis: number; sideMillis: { lake: number; source: number } }

/** One run with the local lake's DuckDB as the engine; the detection's log event and the run. */
async function run(config: LakeConfig, store: ObjectStore = lake.store) {
  const query = await LakeQuery.open(config, lake.store);
  const engine = query.engine();
  const detections: DetectionLog[] = [];
  const deps = { ...exportDeps(db, store, config), engine, log: (message: string, fields?: Record<string, unknown>) => { if (message === 'deletes detected') detections.push(fields as unknown as DetectionLog); } };
  try {
    const started = Date.now();
    const outcome = await runExport(deps);
    return { outcome, detections, millis: Date.now() - started };
  } finally {
    await deps.close();
    await engine.close();
  }
}

const ordersConfig = testConfig([{ name: 'public.orders', deletes: { detect: true } }], { export: { pageRows: 100_000, safetyLagSeconds: 0 } });
const keyColumn = { name: 'id', typeName: 'int8', typeKind: 'b', elementTypeName: null, elementTypeKind: null, typmod: -1, formatted: 'bigint', notNull: true } as const;
const ordersShape = shapeTable(resolveTable(ordersConfig.tables[0]), { columns: [keyColumn, { ...keyColumn, name: 'updated_at', typeName: 'timestamptz', formatted: 'timestamp with time zone' }], primaryKey: ['id'] }, ordersConfig);

const PG_ROW_TEXT = `id::text || '|' || coalesce(customer, '~') || '|' || coalesce(amount::text, '~') || '|' || coalesce(array_to_string(tags, ','), '~') || '|'
        || coalesce(payload::text, '~') || '|' || (extract(epoch FROM updated_at) * 1000000)::int8::text`;
const DUCK_ROW_TEXT = `CAST(id AS VARCHAR) || '|' || coalesce(customer, '~') || '|' || coalesce(CAST(amount AS VARCHAR), '~') || '|' || coalesce(array_to_string(tags, ','), '~') || '|'
          || coalesce(payload, '~') || '|' || CAST(epoch_us(updated_at) AS VARCHAR)`;

/** The first rows whose text differs between the table and orders_current (for the failure message). */
async function contentDifference(config: LakeConfig): Promise<string[]> {
  const table = new Map((await db.query(`SELECT id::text AS id, ${PG_ROW_TEXT} AS t FROM orders`)).map((r) => [r.id!, r.t!]));
  const query = await LakeQuery.open(config, lake.store);
  try {
    const view = new Map((await query.query(`SELECT CAST(id AS VARCHAR) AS id, ${DUCK_ROW_TEXT} AS t FROM orders_current`)).map((r) => [r.id as string, r.t as string]));
    const out: string[] = [];
    for (const id of new Set([...table.keys(), ...view.keys()])) {
      if (table.get(id) !== view.get(id)) out.push(`${id}: postgres ${table.get(id)} / lake ${view.get(id)}`);
      if (out.length >= 5) break;
    }
    return out;
  } finally {
    query.close();
  }
}

/** orders_current equals the table, or the test fails naming the first rows that differ. */
async function expectLakeEqualsPostgres(config: LakeConfig): Promise<void> {
  const [lakeSide, postgresSide] = [await lakeContent(config), await postgresContent()];
  if (lakeSide.n !== postgresSide.n || lakeSide.h !== postgresSide.h) expect(await contentDifference(config)).toEqual([]);
  expect(lakeSide).toEqual(postgresSide);
}

/** count and md5 sum of every row's canonical text: Postgres's own SQL over the table … */
async function postgresContent(): Promise<{ n: string; h: string }> {
  const [row] = await db.query(`SELECT count(*)::text AS n, coalesce(sum(('x' || substr(md5(t), 1, 15))::bit(60)::int8), 0)::text AS h FROM (
      SELECT ${PG_ROW_TEXT} AS t FROM orders) x`);
  return { n: row.n!, h: row.h! };
}

/** … and DuckDB's over `orders_current`, the view of the lake. */
async function lakeContent(config: LakeConfig): Promise<{ n: string; h: string }> {
  const query = await LakeQuery.open(config, lake.store);
  try {
    const [row] = await query.query(`SELECT CAST(count(*) AS VARCHAR) AS n, CAST(coalesce(sum(CAST('0x' || substr(md5(t), 1, 15) AS BIGINT)), 0) AS VARCHAR) AS h FROM (
        SELECT ${DUCK_ROW_TEXT} AS t FROM orders_current) x`);
    return { n: row.n as string, h: row.h as string };
  } finally {
    query.close();
  }
}

/** Tombstones per key, read from the Parquet files themselves. */
async function tombstones(table: string, key: string): Promise<Map<string, number>> {
  const rows = await duckdb<{ k: string; n: number }>(`SELECT CAST(${key} AS VARCHAR) AS k, CAST(count(*) AS INTEGER) AS n FROM read_parquet(${parquetGlob(lake, table)}, union_by_name = true) WHERE _lake_deleted GROUP BY 1`);
  return new Map(rows.map((r) => [r.k, r.n]));
}

describe('deletes without CDC', () => {
  it('reconciles an unchanged 1M-row table in one hash aggregate per side, the source over an index-only scan, for a fraction of the export\'s CPU time (counts and times printed)', async () => {
    const { result: first, cost: exported } = await measure(db, () => run(ordersConfig));
    expect(first.outcome.tables).toMatchObject([{ table: 'orders', status: 'succeeded', rows: ROWS }]);
    // The first run has nothing committed to compare with.
    expect(first.detections).toEqual([]);
    // As autovacuum leaves a table after a bulk load: its visibility map current, so the primary
    // key's index answers without visiting the heap.
    await db.query('VACUUM ANALYZE orders');
    const second = await run(ordersConfig);
    expect(second.outcome.tables).toMatchObject([{ table: 'orders', status: 'succeeded', rows: 0 }]);
    expect(second.detections).toMatchObject([{ deletes: 0, levels: 0, line: 'integer', aggregateQueries: { lake: 2, source: 1 }, keyQueries: { lake: 0, source: 0 } }]);

    // The detection alone, five times, as the run's hook calls it.
    const schema = (await new TableState(lake.store, 'raw', 'orders').read<LakeSchema>(new TableState(lake.store, 'raw', 'orders').schemaKey()))!.value;
    const query = await LakeQuery.open(ordersConfig, lake.store);
    const engine = query.engine();
    const deps = { ...exportDeps(db, lake.store, ordersConfig), engine };
    const reconciles: { detection: Detection; cost: Cost }[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const { result: detection, cost } = await measure(db, () => findDeletedKeys(deps, ordersShape, schema, 'orders'));
        expect(detection).toMatchObject({ missing: [], levels: 0, line: 'integer', aggregateQueries: { lake: 2, source: 1 }, keyQueries: { lake: 0, source: 0 } });
        reconciles.push({ detection, cost });
      }
    } finally {
      await deps.close();
      await engine.close();
    }
    const cpu = median(reconciles.map((r) => r.cost.cpuMillis));
    const wall = median(reconciles.map((r) => r.cost.wallMillis));
    const { aggregateQueries, keyQueries } = reconciles[0].detection;
    console.log(`unchanged ${ROWS}-row table: ${aggregateQueries.lake + aggregateQueries.source} aggregate queries (lake ${aggregateQueries.lake}: key span and hashes; source ${aggregateQueries.source}), ${keyQueries.lake + keyQueries.source} key listings; `
      + `reconcile ${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU (medians of ${reconciles.length}: ${reconciles.map((r) => `${r.cost.wallMillis.toFixed(0)}/${r.cost.cpuMillis.toFixed(0)} [Postgres CPU ${r.cost.postgresCpuMillis.toFixed(0)}; lake ${r.detection.sideMillis.lake}, source ${r.detection.sideMillis.source} ms]`).join(', ')}); `
      + `export ${exported.wallMillis.toFixed(0)} ms wall, ${exported.cpuMillis.toFixed(0)} ms CPU (Postgres ${exported.postgresCpuMillis.toFixed(0)}); reconcile / export = ${(wall / exported.wallMillis).toFixed(3)} wall, ${(cpu / exported.cpuMillis).toFixed(3)} CPU (load ${loadAverage()})`);
    // The must-show's bound (a tenth of the export's wall time) is held by deletes-bench.ts on a
    // quiet machine: here, on a shared 2-core runner, wall times vary tenfold and even CPU times
    // drift (0.08–0.12 of the export's measured on one loaded machine). This bound catches a
    // reconciliation gone back to hashing key texts (md5: as much CPU as the export itself).
    expect(cpu / exported.cpuMillis).toBeLessThan(0.25);
    // The source's hash aggregate reads the primary key's index alone.
    const plan = (await db.query(`EXPLAIN ${keyAggregateQuery(ordersShape, { kind: 'integer', hash: 'int8' }, 1n, 1n << 20n, [[0n, BigInt(ROWS)]])}`)).map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toContain('Index Only Scan using orders_pkey');
    expect(plan).not.toMatch(/Seq Scan|Heap/);
  }, 600_000);

  it('after one run, orders_current equals Postgres and the files hold one tombstone per deleted key', async () => {
    // 1 % scattered, one range wholesale, then some of both inserted again (a later cursor).
    await db.query('DELETE FROM orders WHERE id % 100 = 7 OR id BETWEEN 400001 AND 420000');
    await db.query(`INSERT INTO orders SELECT i, 'back', 1.5, NULL, '{"again": true}', now() FROM generate_series(1, ${ROWS}) i WHERE (i % 100 = 7 AND i % 1000 = 107) OR i BETWEEN 410001 AND 410010`);
    const [{ n: gone }] = await db.query(`SELECT count(*)::text AS n FROM generate_series(1, ${ROWS}) i WHERE NOT EXISTS (SELECT FROM orders WHERE id = i)`);
    const third = await run(ordersConfig);
    expect(third.outcome.tables).toMatchObject([{ table: 'orders', status: 'succeeded' }]);
    const [detection] = third.detections;
    console.log(`deleted ${gone} keys: found ${detection.deletes} in ${detection.aggregateQueries.lake + detection.aggregateQueries.source} aggregate queries over ${detection.levels} levels, ${detection.keyQueries.lake + detection.keyQueries.source} key listings, ${detection.millis} ms (lake ${detection.sideMillis.lake} ms, source ${detection.sideMillis.source} ms)`);
    expect(detection.deletes).toBe(Number(gone));
    await expectLakeEqualsPostgres(ordersConfig);
    const found = await tombstones('orders', 'id');
    const expected = (await db.query(`SELECT i::text AS k FROM generate_series(1, ${ROWS}) i WHERE NOT EXISTS (SELECT FROM orders WHERE id = i)`)).map((r) => r.k!);
    expect(found.size).toBe(expected.length);
    expect([...found.values()].every((n) => n === 1)).toBe(true);
    expect(expected.every((k) => found.has(k))).toBe(true);
    const state = new TableState(lake.store, 'raw', 'orders');
    expect(await tombstonesOfRun(state, third.outcome.runId)).toBe(Number(gone));

    // Deleted keys inserted again after their tombstone are live again; nothing is tombstoned twice.
    await db.query(`INSERT INTO orders SELECT i, 'reborn', 2.5, ARRAY[1], NULL, now() FROM generate_series(400001, 400100) i`);
    await db.query('DELETE FROM orders WHERE id IN (5, 999999)');
    const fourth = await run(ordersConfig);
    expect(fourth.detections[0].deletes).toBe(2);
    await expectLakeEqualsPostgres(ordersConfig);
    const again = await tombstones('orders', 'id');
    expect(again.size).toBe(expected.length + 2);
    expect([...again.values()].every((n) => n === 1)).toBe(true);
    const history = await duckdb<{ k: string; live: boolean }>(`SELECT CAST(id AS VARCHAR) AS k, NOT coalesce(_lake_deleted, false) AS live FROM read_parquet(${parquetGlob(lake, 'orders')}, union_by_name = true)
      WHERE id = 400050 ORDER BY updated_at`);
    expect(history.map((h) => h.live)).toEqual([true, false, true]);
  }, 600_000);

  it('places a composite text/uuid key by hash alike in Postgres and DuckDB, and finds its deletes', async () => {
    const config = testConfig([{ name: 'public."Line Items"', lakeName: 'line_items', deletes: { detect: true } }], { export: { pageRows: 5000, safetyLagSeconds: 0 } });
    expect((await run(config)).outcome.tables).toMatchObject([{ status: 'succeeded', rows: 20000 }]);
    const unchanged = await run(config);
    // One aggregate per side: the two engines' md5 sums agree on every key.
    expect(unchanged.detections[0]).toMatchObject({ deletes: 0, line: 'hash', levels: 0, aggregateQueries: { lake: 1, source: 1 }, keyQueries: { lake: 0, source: 0 } });
    await db.query(`DELETE FROM "Line Items" WHERE qty % 97 = 0 OR region = 'a''b' AND qty < 2000`);
    const [{ n: left }] = await db.query(`SELECT count(*)::text AS n FROM "Line Items"`);
    const changed = await run(config);
    expect(changed.detections[0].deletes).toBe(20000 - Number(left));
    const query = await LakeQuery.open(config, lake.store);
    try {
      const viewKeys = (await query.query(`SELECT region || '/' || item AS k FROM line_items_current ORDER BY 1`)).map((r) => r.k);
      const tableKeys = (await db.query(`SELECT k FROM (SELECT region || '/' || item AS k FROM "Line Items") x ORDER BY k COLLATE "C"`)).map((r) => r.k);
      expect(viewKeys).toEqual(tableKeys);
    } finally {
      query.close();
    }
  }, 600_000);

  it('gives a tombstone of a wall-clock cursor the window end as that zone\'s wall clock', async () => {
    await db.query(`CREATE TABLE "Wall Clock" (id int4 PRIMARY KEY, note text, changed timestamp NOT NULL);
      INSERT INTO "Wall Clock" SELECT i, 'n' || i, timestamp '2024-05-01 08:00:00' + i * interval '1 minute' FROM generate_series(1, 500) i`);
    const config = testConfig([
      { name: 'public."Wall Clock"', lakeName: 'wall_clock', cursor: 'changed', cursorTimeZone: 'America/New_York', deletes: { detect: true } },
    ]);
    expect((await run(config)).outcome.tables.map((t) => t.status)).toEqual(['succeeded']);
    await db.query(`DELETE FROM "Wall Clock" WHERE id % 50 = 0`);
    const { outcome, detections } = await run(config);
    expect(detections.map((d) => d.deletes)).toEqual([10]);
    const [wall] = outcome.tables;
    const query = await LakeQuery.open(config, lake.store);
    try {
      // The current views hold exactly the table's keys.
      expect((await query.query('SELECT id FROM wall_clock_current ORDER BY id')).map((r) => String(r.id))).toEqual((await db.query('SELECT id::text AS id FROM "Wall Clock" ORDER BY "Wall Clock".id')).map((r) => r.id));
      // The tombstones hold the window end as New York's wall clock (the files hold wall-clock µs).
      const [{ at }] = await query.query(`SELECT DISTINCT CAST(epoch_us(changed) AS VARCHAR) AS at FROM wall_clock WHERE _lake_deleted`);
      const [{ want }] = await db.query(`SELECT (extract(epoch FROM ($1::timestamptz AT TIME ZONE 'America/New_York')) * 1000000)::int8::text AS want`, [wall.windowTo]);
      expect(at).toBe(want);
    } finally {
      query.close();
    }
  }, 600_000);

  it('publishes no tombstone of a run that failed, and the next run writes each once', async () => {
    await db.query('DELETE FROM orders WHERE id BETWEEN 10 AND 20');
    const before = await tombstones('orders', 'id');
    // The first staged tombstone file fails to upload: the table fails, nothing is published.
    let failed = false;
    const store = faultyStore(lake.store, {
      put: async (key, body, options) => {
        if (!failed && key.includes('/pending/') && key.endsWith('.parquet')) { failed = true; throw new Error('injected upload failure'); }
        return lake.store.put(key, body, options);
      },
    });
    const broken = await run(ordersConfig, store);
    expect(broken.outcome.tables).toMatchObject([{ status: 'failed' }]);
    expect(failed).toBe(true);
    expect(await tombstones('orders', 'id')).toEqual(before);
    const next = await run(ordersConfig);
    expect(next.outcome.tables).toMatchObject([{ status: 'succeeded' }]);
    const after = await tombstones('orders', 'id');
    const [{ n: deleted }] = await db.query(`SELECT count(*)::text AS n FROM generate_series(10, 20) i WHERE NOT EXISTS (SELECT FROM orders WHERE id = i)`);
    expect(after.size).toBe(before.size + Number(deleted));
    expect([...after.values()].every((n) => n === 1)).toBe(true);
    await expectLakeEqualsPostgres(ordersConfig);
  }, 600_000);
});
