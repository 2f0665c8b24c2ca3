// Breaker HH: seeded random rows whose partition column (timestamptz, timestamp, date; day, month
// and year partitions) spans 1800–2299 with many values a microsecond either side of a midnight,
// a month's or a year's end, pages of 13 or 60 rows and row groups of 5, so a page's rows scatter
// over more partitions than a chunk keeps files open. Every row must be in the one partition Athena
// would read for its date (the projection computed from the Glue definition alone) and read back
// by DuckDB exactly as Postgres holds it. Then a finer granularity than the lake holds is refused
// by an export, naming the config key.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase } from '../support/local-stack.ts';
import { athenaRows, athenaView } from './partition-break-athena.ts';

let db: TestDatabase;
beforeAll(async () => { db = await createDatabase(); });
afterAll(async () => {
  await db?.close();
  await stopPostgres();
});

const TABLES = [
  { name: 'rnd_at_day', partitionBy: 'at', partition: { granularity: 'day' } },
  { name: 'rnd_t_month', partitionBy: 't', partition: { granularity: 'month' } },
  { name: 'rnd_d_year', partitionBy: 'd', partition: { granularity: 'year' } },
  { name: 'rnd_at_month', partitionBy: 'at', partition: { granularity: 'month' } },
] as const;

// The second seed's pages of 60 rows span more partitions than a chunk keeps files open (32).
for (const [seed, pageRows] of [[0.1103, 13], [0.7731, 60]]) {
  it(`seed ${seed}, pages of ${pageRows}: every row in its own date's partition, inside the projection, values exact`, async () => {
    const suffix = String(seed).slice(2);
    const names = TABLES.map((t) => `${t.name}_${suffix}`);
    await db.query(`SELECT setseed(${seed});
      CREATE TABLE base_${suffix} AS
      WITH r AS (
        SELECT g, timestamptz '1800-01-01 00:00:00+00' + random() * interval '182000 days' AS x, floor(random() * 7)::int AS edge, random() AS q
          FROM generate_series(1, 500) g),
      e AS (
        SELECT g, q, CASE edge
          WHEN 0 THEN date_trunc('day', x, 'UTC') - interval '1 microsecond'
          WHEN 1 THEN date_trunc('day', x, 'UTC')
          WHEN 2 THEN date_trunc('month', x, 'UTC') - interval '1 microsecond'
          WHEN 3 THEN date_trunc('year', x, 'UTC') - interval '1 microsecond'
          WHEN 4 THEN date_trunc('year', x, 'UTC')
          ELSE x END AS at FROM r)
      SELECT g AS id, timestamptz '2024-06-01 00:00:00+00' + g * interval '1 second' AS updated_at, at,
             (at AT TIME ZONE 'UTC') + CASE WHEN q < 0.5 THEN interval '0' ELSE interval '1 microsecond' * floor(q * 1e6) END AS t,
             (at AT TIME ZONE 'UTC')::date + (q * 3)::int AS d,
             round((q * 1e8)::numeric, 3)::numeric(12,3) AS n
        FROM e`);
    for (const name of names) await db.query(`CREATE TABLE ${name} AS SELECT * FROM base_${suffix} ORDER BY id; ALTER TABLE ${name} ADD PRIMARY KEY (id)`);
    const lake = createLake();
    const tables = TABLES.map((t, i) => ({ ...t, name: names[i] }));
    const config = testConfig(tables, { lake: { partitionYears: { from: 1790, to: 2300 }, rowGroupRows: 5 }, export: { pageRows, safetyLagSeconds: 0 } });
    const deps = exportDeps(db, lake.store, config);
    try {
      const outcome = await runExport(deps);
      expect(outcome.tables.map((t) => [t.table, t.status, t.rows, t.error])).toEqual(names.map((n) => [n, 'succeeded', 500, undefined]));
    } finally {
      await deps.close();
    }
    const pg = await db.query(`SELECT id::text AS id, (extract(epoch FROM at) * 1000000)::bigint::text AS at, (extract(epoch FROM t) * 1000000)::bigint::text AS t,
      d::text AS d, n::text AS n FROM base_${suffix} ORDER BY base_${suffix}.id`);
    const want = pg.map((r) => `${r.id} ${r.at} ${r.t} ${r.d} ${r.n}`);
    for (const [i, table] of TABLES.entries()) {
      const name = names[i];
      const view = await athenaView(lake, name);
      expect(view.unreachable, `${name}: files outside the projection`).toEqual([]);
      // The partition column's UTC date, by DuckDB (TimeZone UTC), beside the folder's values.
      const rows = await athenaRows<{ id: number; at: string; t: string; d: string; n: string; py: number; pm: number; pd: number }>(lake, view, `id,
        CAST(epoch_us("at") AS VARCHAR) AS "at", CAST(epoch_us("t") AS VARCHAR) AS "t", CAST("d" AS VARCHAR) AS "d", CAST("n" AS VARCHAR) AS "n",
        CAST(year("${table.partitionBy}") AS INTEGER) AS py, CAST(month("${table.partitionBy}") AS INTEGER) AS pm, CAST(day("${table.partitionBy}") AS INTEGER) AS pd`);
      expect(rows.sort((a, b) => a.id - b.id).map((r) => `${r.id} ${r.at} ${r.t} ${r.d} ${r.n}`), `${name}: values`).toEqual(want);
      const misplaced = rows.filter((r) => r.year !== r.py || (table.partition.granularity !== 'year' && r.month !== r.pm) || (table.partition.granularity === 'day' && r.day !== r.pd))
        .map((r) => `id ${r.id} ${table.partitionBy} ${r.py}-${r.pm}-${r.pd} in ${r.file}`);
      expect(misplaced, `${name}: rows outside their date's partition`).toEqual([]);
    }
    // The month table compacted into years; an export configured with a finer granularity again is refused by key.
    const yearly = testConfig(tables.map((t) => (t.name === names[3] ? { ...t, partition: { granularity: 'year' } } : t)), { lake: { partitionYears: { from: 1790, to: 2300 } } });
    expect(await compactTable({ store: lake.store, config: yearly }, names[3])).toMatchObject({ status: 'compacted', granularity: 'year' });
    const finer = exportDeps(db, lake.store, config);
    try {
      const outcome = await runExport(finer, { full: true, tables: [names[3]] });
      expect(outcome.tables.map((t) => [t.table, t.status, t.error])).toEqual([[names[3], 'failed',
        `ConfigError: tables[3].partition.granularity: public.${names[3]} is partitioned by year in the lake; month is finer, and a compaction only merges partitions: set it back to year, or export the table anew under another lakeName`]]);
    } finally {
      await finer.close();
    }
    const compacted = await athenaView(lake, names[3]);
    expect(compacted.unreachable.filter((k) => k.includes('/generation=')), 'compacted files outside the projection').toEqual([]);
    expect((await athenaRows<{ id: number }>(lake, compacted, 'id')).length).toBe(500);
    lake.remove();
  }, 240_000);
}
