// Breaker HH: Athena (and DuckDB) skip row groups by their min/max statistics, which the spliced
// writer merges itself (page/parquet-chunks.ts mergeStatistics): a wrong bound makes a filtered
// query miss rows, silently. Seeded random values with edges (negatives, BC, NaN, ±Infinity, −0,
// unicode, empty, NULL) in pages of 3 rows spliced into row groups of 10: for thresholds taken
// from the data, every filtered count over the Parquet files (pruned by their statistics) must
// equal the count over the same rows copied into DuckDB's own table (its own zone maps); the
// same after a compaction merges the files again.
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { createDatabase, createLake, duckdb, exportDeps, stopPostgres, testConfig, type TestDatabase } from '../support/local-stack.ts';
import { DuckDBInstance } from '@duckdb/node-api';

let db: TestDatabase;
beforeAll(async () => { db = await createDatabase(); });
afterAll(async () => {
  await db?.close();
  await stopPostgres();
});

const COLUMNS: [string, string][] = [
  ['i8', 'int8'], ['i2', 'int2'], ['i4', 'int4'], ['n', 'numeric(20,4)'], ['nu', 'numeric'], ['f8', 'float8'], ['f4', 'float4'],
  ['s', 'text'], ['d', 'date'], ['ts', 'timestamp'], ['tz', 'timestamptz'], ['b', 'bool'], ['u', 'uuid'], ['by', 'bytea'],
];

for (const seed of [0.2718, 0.3141]) {
  it(`seed ${seed}: row-group statistics never hide a row from a filter`, async () => {
    const table = `st_${String(seed).slice(2)}`;
    await db.query(`SELECT setseed(${seed});
      CREATE TABLE ${table} (id int PRIMARY KEY, updated_at timestamptz NOT NULL, ${COLUMNS.map(([c, t]) => `${c} ${t}`).join(', ')});
      INSERT INTO ${table}
      SELECT g, timestamptz '2024-06-01 00:00:00+00' + g * interval '1 second',
        CASE WHEN r1 < 0.05 THEN NULL WHEN r1 < 0.1 THEN -9223372036854775808 WHEN r1 < 0.15 THEN 9223372036854775807 ELSE ((r2 - 0.5) * 2e18)::int8 END,
        CASE WHEN r1 < 0.1 THEN -32768 WHEN r1 < 0.2 THEN 32767 ELSE ((r2 - 0.5) * 60000)::int2 END,
        CASE WHEN r1 < 0.1 THEN -2147483648 ELSE ((r3 - 0.5) * 4e9)::int4 END,
        CASE WHEN r2 < 0.1 THEN NULL WHEN r2 < 0.2 THEN -9999999999999999.9999 WHEN r2 < 0.3 THEN 0 ELSE round(((r3 - 0.5) * 2e15)::numeric, 4) END,
        CASE WHEN r3 < 0.1 THEN -99999999999999999999999999999.999999999 WHEN r3 < 0.2 THEN 0.000000001 ELSE round(((r1 - 0.5) * 1e12)::numeric, 9) END,
        CASE WHEN r1 < 0.05 THEN 'NaN' WHEN r1 < 0.1 THEN '-Infinity' WHEN r1 < 0.15 THEN 'Infinity' WHEN r1 < 0.2 THEN '-0' WHEN r1 < 0.25 THEN NULL ELSE (r2 - 0.5) * 1e300 END,
        CASE WHEN r2 < 0.05 THEN 'NaN' WHEN r2 < 0.1 THEN '-Infinity' WHEN r2 < 0.15 THEN '-0' ELSE ((r3 - 0.5) * 1e30)::float4 END,
        CASE WHEN r3 < 0.1 THEN '' WHEN r3 < 0.15 THEN NULL WHEN r3 < 0.3 THEN chr(0x1F600 + (r1 * 50)::int) || 'x' WHEN r3 < 0.4 THEN 'é' || repeat('z', (r1 * 100)::int)
             WHEN r3 < 0.5 THEN chr(0x7F + (r2 * 3)::int) ELSE md5(r1::text) END,
        CASE WHEN r1 < 0.1 THEN date '4713-01-01 BC' + (r2 * 1000)::int WHEN r1 < 0.2 THEN date '1969-12-31' ELSE date '1600-01-01' + (r3 * 300000)::int END,
        CASE WHEN r2 < 0.1 THEN timestamp '0044-03-15 12:00:00 BC' + r3 * interval '100000 days' ELSE timestamp '1900-01-01' + r1 * interval '100000 days' END,
        CASE WHEN r3 < 0.1 THEN timestamptz '1969-12-31 23:59:59.999999+00' ELSE timestamptz '1800-01-01+00' + r2 * interval '150000 days' END,
        CASE WHEN r1 < 0.3 THEN NULL ELSE r2 < 0.5 END,
        md5(r3::text)::uuid,
        CASE WHEN r2 < 0.1 THEN '\\x'::bytea WHEN r2 < 0.2 THEN '\\xff00ff'::bytea ELSE decode(md5(r1::text), 'hex') END
      FROM (SELECT g, random() AS r1, random() AS r2, random() AS r3 FROM generate_series(1, 240) g) x`);
    const lake = createLake();
    const deps = exportDeps(db, lake.store, testConfig([{ name: table }], { lake: { rowGroupRows: 10 }, export: { pageRows: 3, safetyLagSeconds: 0 } }));
    try {
      const outcome = await runExport(deps);
      expect(outcome.tables.map((t) => [t.status, t.rows, t.error])).toEqual([['succeeded', 240, undefined]]);
    } finally { await deps.close(); }
      const check = async (label: string, files: string[]): Promise<string[]> => {
      const [{ groups }] = await duckdb<{ groups: number }>(`SELECT CAST(count(DISTINCT (file_name, row_group_id)) AS INTEGER) AS groups FROM parquet_metadata([${files.join(', ')}])`);
      expect(groups).toBeGreaterThanOrEqual(24);
      // Every column's row groups carry bounds (but a group all NULL): a filter can prune on each.
      const unbounded = await duckdb<{ c: string; n: number }>(`SELECT path_in_schema AS c, CAST(count(*) AS INTEGER) AS n FROM parquet_metadata([${files.join(', ')}])
        WHERE (stats_min_value IS NULL OR stats_max_value IS NULL) AND num_values > stats_null_count GROUP BY 1 ORDER BY 1`);
      // (Float chunks holding NaN or −0 may have none: the writer leaves them out, and a reader then cannot prune, which is safe.)
      expect(unbounded.filter((u) => u.c !== 'f4' && u.c !== 'f8')).toEqual([]);
      const instance = await DuckDBInstance.create(':memory:');
      const connection = await instance.connect();
      const all = async <T>(sql: string) => (await connection.runAndReadAll(sql)).getRowObjectsJson() as T[];
      const missed: string[] = [];
      try {
        await connection.run("SET TimeZone = 'UTC'");
        await connection.run(`CREATE TABLE mem AS SELECT * FROM read_parquet([${files.join(', ')}])`);
        const types = new Map((await all<{ column_name: string; column_type: string }>('DESCRIBE mem')).map((r) => [r.column_name, r.column_type]));
        for (const [c] of COLUMNS) {
          const type = types.get(c)!;
          const values = (await all<{ v: string }>(`SELECT DISTINCT CAST("${c}" AS VARCHAR) AS v FROM mem WHERE "${c}" IS NOT NULL ORDER BY 1 LIMIT 40`)).map((r) => r.v);
          for (const v of values) {
            const literal = `CAST('${v.replaceAll("'", "''")}' AS ${type})`;
            for (const op of ['<', '=', '>', '<=', '>=']) {
              const where = `"${c}" ${op} ${literal}`;
              const [pruned] = await all<{ n: number }>(`SELECT CAST(count(*) AS INTEGER) AS n FROM read_parquet([${files.join(', ')}]) WHERE ${where}`);
              const [whole] = await all<{ n: number }>(`SELECT CAST(count(*) AS INTEGER) AS n FROM mem WHERE ${where}`);
              if (pruned.n !== whole.n) missed.push(`${label}: ${where}: ${pruned.n} from the files, ${whole.n} in the rows`);
            }
          }
        }
      } finally {
        connection.closeSync();
      }
      return missed;
    };
    const filesOf = async (prefix: string) => (await lake.store.list(prefix)).filter((k) => k.endsWith('.parquet')).map((k) => `'${path.join(lake.dir, k)}'`);
    expect(await check('exported', await filesOf(`raw/${table}/`))).toEqual([]);
    // Compaction merges the files into row groups of 10 again: its statistics too.
    const config = testConfig([{ name: table }], { lake: { rowGroupRows: 10 }, compaction: { graceMinutes: 60 } });
    const compacted = await compactTable({ store: lake.store, config }, table, { force: true });
    expect(compacted.status).toBe('compacted');
    expect(await check('compacted', await filesOf(`raw/${table}/generation=${compacted.generation}/`))).toEqual([]);
    lake.remove();
  }, 240_000);
}
