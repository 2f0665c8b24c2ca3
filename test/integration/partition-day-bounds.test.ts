// Rows land in the partition of their own UTC day to the microsecond: the encoder assigns a day
// to a timestamp by comparing it with the last computed day's range (no division per row), so
// the rows on either side of a midnight, around both epochs (1970, Postgres's 2000), and past
// 2^53 µs from 2000 (where the range is not used) are checked, by day and by month partitions,
// for timestamptz and timestamp cursors. DuckDB reads each row's file path.
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { createDatabase, createLake, duckdb, exportDeps, stopPostgres, testConfig, type TestDatabase } from '../support/local-stack.ts';

let db: TestDatabase;
beforeAll(async () => { db = await createDatabase(); });
afterAll(async () => {
  await db?.close();
  await stopPostgres();
});

const MIDNIGHTS = ['1970-01-01', '2000-01-01', '2000-01-02', '2024-03-01', '2100-01-01', '2290-01-02', '2290-01-03'];
// Around each midnight: 2 µs and 1 µs before, the instant, 1 µs after; in key order (and, in
// bounds_desc, backwards: a page's rows then cross each midnight from above).
const OFFSETS = [-2, -1, 0, 1];

it('puts every row in its own UTC day (and month), to the microsecond, on both sides of each midnight', async () => {
  const values = MIDNIGHTS.flatMap((day) => OFFSETS.map((us) => `timestamp '${day} 00:00:00' + interval '${us} microseconds'`));
  await db.query(`
    CREATE TABLE bounds (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at timestamptz NOT NULL);
    INSERT INTO bounds (id, at) SELECT n, (ARRAY[${values.join(', ')}])[n] AT TIME ZONE 'UTC' FROM generate_series(1, ${values.length}) n;
    CREATE TABLE bounds_month AS SELECT * FROM bounds; ALTER TABLE bounds_month ADD PRIMARY KEY (id);
    CREATE TABLE bounds_local (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at timestamp NOT NULL);
    INSERT INTO bounds_local (id, at) SELECT id, at AT TIME ZONE 'UTC' FROM bounds;
    CREATE TABLE bounds_desc (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at timestamptz NOT NULL);
    INSERT INTO bounds_desc (id, at) SELECT ${values.length} + 1 - id, at FROM bounds;`);
  const lake = createLake();
  const deps = exportDeps(db, lake.store, testConfig(
    // Partitioned by `at`, not the cursor: rows dated after now are past every run's window.
    [{ name: 'bounds', partitionBy: 'at' }, { name: 'bounds_month', partitionBy: 'at', partition: { granularity: 'month' } }, { name: 'bounds_local', partitionBy: 'at' }, { name: 'bounds_desc', partitionBy: 'at' }],
    { lake: { partitionYears: { from: 1960, to: 2300 } }, export: { pageRows: 5 } },
  ));
  try {
    const outcome = await runExport(deps);
    expect(outcome.tables.map((t) => [t.table, t.status, t.rows])).toEqual([
      ['bounds', 'succeeded', values.length], ['bounds_month', 'succeeded', values.length], ['bounds_local', 'succeeded', values.length],
      ['bounds_desc', 'succeeded', values.length],
    ]);
  } finally {
    await deps.close();
  }
  const glob = (table: string) => `'${path.join(lake.dir, 'raw', table, '**', '*.parquet').replaceAll("'", "''")}'`;
  for (const [table, folder] of [['bounds', "'year=%Y/month=%m/day=%d/'"], ['bounds_month', "'year=%Y/month=%m/'"], ['bounds_local', "'year=%Y/month=%m/day=%d/'"], ['bounds_desc', "'year=%Y/month=%m/day=%d/'"]] as const) {
    const rows = await duckdb<{ id: number; at: string; folder: string; file: string }>(`
      SELECT id, strftime("at"::TIMESTAMP, '%Y-%m-%d %H:%M:%S.%f') AS at, strftime("at"::TIMESTAMP, ${folder}) AS folder, filename AS file
      FROM read_parquet(${glob(table)}, filename = true, hive_partitioning = false) ORDER BY id`);
    expect(rows.map((r) => r.id), table).toEqual(values.map((_, i) => i + 1));
    for (const r of rows) {
      const inFolder = path.relative(path.join(lake.dir, 'raw', table), path.dirname(r.file)).split(path.sep).join('/') + '/';
      expect(inFolder, `${table} id ${r.id} at ${r.at}`).toBe(r.folder);
    }
  }
  lake.remove();
}, 120_000);
