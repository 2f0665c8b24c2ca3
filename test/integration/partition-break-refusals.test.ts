// Breaker HH: partition values no projection can hold — NULL, ±infinity, BC, past year 9999,
// before lake.partitionYears — fail their table by name (table, column, value, key) and publish
// nothing, in date, timestamp and timestamptz partition columns, whatever the granularity; the
// table's other rows and the other tables are not held back once the row is fixed.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase } from '../support/local-stack.ts';
import { athenaRows, athenaView } from './partition-break-athena.ts';

let db: TestDatabase;
beforeAll(async () => { db = await createDatabase(); });
afterAll(async () => {
  await db?.close();
  await stopPostgres();
});

// [table suffix, column type, bad value, its text in the error, granularity]
const CASES: [string, string, string | null, RegExp, 'day' | 'month' | 'year'][] = [
  ['null_d', 'date', null, /partition column is NULL/, 'day'],
  ['pinf_d', 'date', 'infinity', /value infinity falls outside the partition years 1900–2100/, 'month'],
  ['ninf_ts', 'timestamp', '-infinity', /value -infinity falls outside/, 'day'],
  ['pinf_tz', 'timestamptz', 'infinity', /value infinity falls outside/, 'year'],
  ['bc_d', 'date', '0044-03-15 BC', /value 0044-03-15 BC falls outside/, 'day'],
  ['bc_tz', 'timestamptz', '4713-01-01 00:00:00+00 BC', /value 4713-01-01 00:00:00\.000000\+00 BC falls outside/, 'month'],
  ['y10000_d', 'date', '10000-01-01', /value 10000-01-01 falls outside/, 'year'],
  ['y10000_ts', 'timestamp', '12345-06-07 08:09:10', /value 12345-06-07 08:09:10\.000000 falls outside/, 'day'],
  ['early_tz', 'timestamptz', '1899-12-31 23:59:59.999999+00', /value 1899-12-31 23:59:59\.999999\+00 falls outside/, 'day'],
  ['late_d', 'date', '2101-01-01', /value 2101-01-01 falls outside/, 'month'],
];

it('fails each table whose partition column holds a value no partition can hold, naming it; publishes nothing of it', async () => {
  for (const [name, type, value] of CASES) {
    await db.query(`CREATE TABLE p_${name} (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at ${type});
      INSERT INTO p_${name} (id, at, updated_at) SELECT g, '2024-01-01', timestamptz '2024-06-01' + g * interval '1 second' FROM generate_series(1, 9) g;
      INSERT INTO p_${name} (id, at) VALUES (7777, ${value === null ? 'NULL' : `'${value}'`});`);
  }
  const lake = createLake();
  const tables = CASES.map(([name, , , , granularity]) => ({ name: `p_${name}`, partitionBy: 'at', partition: { granularity } }));
  const config = testConfig(tables, { lake: { partitionYears: { from: 1900, to: 2100 } }, export: { pageRows: 4, safetyLagSeconds: 0 } });
  const run = async () => {
    const deps = exportDeps(db, lake.store, config);
    try { return await runExport(deps); } finally { await deps.close(); }
  };
  const first = await run();
  for (const [i, [name, , , message]] of CASES.entries()) {
    const t = first.tables[i];
    expect([t.table, t.status], name).toEqual([`p_${name}`, 'failed']);
    expect(t.error, name).toMatch(/^ValueError: public\.p_\w+\.at: /);
    expect(t.error, name).toMatch(message);
    expect(t.error, name).toContain('7777');
    // Nothing of the table published, no watermark.
    expect((await lake.store.list(`raw/p_${name}/`)).filter((k) => k.endsWith('.parquet')), name).toEqual([]);
    expect(await lake.store.get(`raw/_state/p_${name}/watermark.json`), name).toBeNull();
  }
  // Fixed in Postgres, each table exports whole, every row inside the projection.
  for (const [name] of CASES) await db.query(`UPDATE p_${name} SET at = '2099-12-31' WHERE id = 7777`);
  const second = await run();
  expect(second.tables.map((t) => [t.table, t.status, t.rows])).toEqual(CASES.map(([name]) => [`p_${name}`, 'succeeded', 10]));
  for (const [name] of CASES) {
    const view = await athenaView(lake, `p_${name}`);
    expect(view.unreachable, name).toEqual([]);
    expect((await athenaRows<{ id: number }>(lake, view, 'id')).map((r) => r.id).sort((a, b) => a - b), name).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 7777]);
  }
  lake.remove();
}, 180_000);
