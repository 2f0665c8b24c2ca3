// Breaker HH: partition columns of other types and at the edges of the Parquet range.
//  - a domain over date, a timestamptz(0) and a generated date column partition like their base
//    types; text, int and date[] partition columns are refused by name;
//  - a timestamp (no zone) cursor in a cursorTimeZone is filed by its wall-clock date, the date
//    Athena shows for it (isAdjustedToUTC false), so a day filter and the value agree;
//  - timestamps and dates far past year 9999 in a non-partition column read back exactly, and one
//    past Parquet's µs range fails by name;
//  - partitionBy changed on an exported table: every version stays reachable through a window
//    re-run, a full re-run and a compaction into months.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { athenaRows, athenaView } from './partition-break-athena.ts';

let db: TestDatabase;
beforeAll(async () => { db = await createDatabase(); });
afterAll(async () => {
  await db?.close();
  await stopPostgres();
});

async function exportAll(lake: TestLake, tables: unknown[], extra: Record<string, unknown> = {}, request: RunRequest = {}) {
  const deps = exportDeps(db, lake.store, testConfig(tables, { ...extra, export: { safetyLagSeconds: 0, ...(extra.export as object) } }));
  try { return await runExport(deps, request); } finally { await deps.close(); }
}

it('partitions by a domain over date, a timestamptz(0) and a generated date; refuses text, int and date[] by name', async () => {
  await db.query(`CREATE DOMAIN bizday AS date CHECK (VALUE > '1900-01-01');
    CREATE TABLE pt_domain (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at bizday NOT NULL);
    INSERT INTO pt_domain (id, at) VALUES (1, '1999-12-31'), (2, '2024-02-29');
    CREATE TABLE pt_ts0 (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at timestamptz(0) NOT NULL);
    INSERT INTO pt_ts0 (id, at) VALUES (1, '1999-12-31 23:59:59.6+00'), (2, '2024-02-29 12:00:00+00');
    CREATE TABLE pt_gen (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at date GENERATED ALWAYS AS ((updated_at AT TIME ZONE 'Asia/Tokyo')::date) STORED);
    INSERT INTO pt_gen (id, updated_at) VALUES (1, '2024-06-01 20:00:00+00');
    CREATE TABLE pt_text (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at text NOT NULL);
    CREATE TABLE pt_int (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at int NOT NULL);
    CREATE TABLE pt_arr (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', at date[] NOT NULL);`);
  const lake = createLake();
  const names = ['pt_domain', 'pt_ts0', 'pt_gen', 'pt_text', 'pt_int', 'pt_arr'];
  const outcome = await exportAll(lake, names.map((name) => ({ name, partitionBy: 'at' })));
  expect(outcome.tables.map((t) => [t.table, t.status, t.error ?? '']).sort((a, b) => names.indexOf(a[0]) - names.indexOf(b[0]))).toEqual([
    ['pt_domain', 'succeeded', ''], ['pt_ts0', 'succeeded', ''], ['pt_gen', 'succeeded', ''],
    ['pt_text', 'failed', 'SchemaMismatchError: public.pt_text: partitionBy column "at" is text; it must be timestamptz, timestamp or date'],
    ['pt_int', 'failed', 'SchemaMismatchError: public.pt_int: partitionBy column "at" is integer; it must be timestamptz, timestamp or date'],
    ['pt_arr', 'failed', 'SchemaMismatchError: public.pt_arr: partitionBy column "at" is date[]; it must be timestamptz, timestamp or date'],
  ]);
  const want: Record<string, string[]> = {
    pt_domain: ['1 1999-12-31 -> 1999-12-31', '2 2024-02-29 -> 2024-2-29'],
    // timestamptz(0) rounds .6 s up in Postgres itself: the next day, and the next year.
    pt_ts0: ['1 2000-01-01 00:00:00+00 -> 2000-1-1', '2 2024-02-29 12:00:00+00 -> 2024-2-29'],
    pt_gen: ['1 2024-06-02 -> 2024-6-2'],
  };
  for (const table of Object.keys(want)) {
    const view = await athenaView(lake, table);
    expect(view.unreachable, table).toEqual([]);
    const rows = await athenaRows<{ id: number; a: string }>(lake, view, 'id, CAST("at" AS VARCHAR) AS a');
    expect(rows.sort((a, b) => a.id - b.id).map((r) => `${r.id} ${r.a} -> ${r.year}-${r.month}-${r.day}`), table).toEqual(want[table]);
  }
  lake.remove();
});

it('files a timestamp (no zone) cursor in New York by the wall-clock date Athena shows', async () => {
  await db.query(`CREATE TABLE ny (id int PRIMARY KEY, updated_at timestamp NOT NULL);
    INSERT INTO ny VALUES (1, '2024-03-10 22:30:00'), (2, '2024-03-10 01:59:59.999999'), (3, '2024-11-03 01:30:00'), (4, '2024-12-31 23:59:59.999999')`);
  const lake = createLake();
  const outcome = await exportAll(lake, [{ name: 'ny', cursorTimeZone: 'America/New_York' }], { export: { pageRows: 2 } });
  expect(outcome.tables.map((t) => [t.table, t.status, t.rows])).toEqual([['ny', 'succeeded', 4]]);
  const view = await athenaView(lake, 'ny');
  expect(view.unreachable).toEqual([]);
  const rows = await athenaRows<{ id: number; u: string }>(lake, view, 'id, CAST(updated_at AS VARCHAR) AS u');
  expect(rows.sort((a, b) => a.id - b.id).map((r) => `${r.u} -> ${r.year}-${r.month}-${r.day}`)).toEqual([
    '2024-03-10 22:30:00 -> 2024-3-10', '2024-03-10 01:59:59.999999 -> 2024-3-10', '2024-11-03 01:30:00 -> 2024-11-3', '2024-12-31 23:59:59.999999 -> 2024-12-31',
  ]);
  lake.remove();
});

it('reads back dates and timestamps far past 9999 exactly; a timestamp past Parquet\'s µs range fails by name', async () => {
  await db.query(`CREATE TABLE huge_ts (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', t timestamp, tz timestamptz, d date);
    INSERT INTO huge_ts (id, t, tz, d) VALUES (1, '280000-01-01 00:00:00.000001', '280000-01-01 00:00:00.000001+00', '5874897-12-31'),
      (2, '2024-01-01', '2024-01-01', '2024-01-01'), (3, '0001-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC', '4713-01-01 BC');
    CREATE TABLE huge_ts2 (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01', t timestamp);
    INSERT INTO huge_ts2 (id, t) VALUES (1, '294250-01-01 00:00:00');`);
  const lake = createLake();
  const outcome = await exportAll(lake, [{ name: 'huge_ts' }, { name: 'huge_ts2' }]);
  expect(outcome.tables.map((t) => [t.table, t.status, t.error ?? ''])).toEqual([
    ['huge_ts', 'succeeded', ''],
    ['huge_ts2', 'failed', "ValueError: public.huge_ts2.t: value 294250-01-01 00:00:00.000000 does not fit Parquet's µs since 1970 (timestamps end at 294247-01-10 04:00:54.775806) (row updated_at=2024-06-01 00:00:00.000000+00, id=1)"],
  ]);
  const view = await athenaView(lake, 'huge_ts');
  const rows = await athenaRows<{ id: number; t: string; tz: string; d: string }>(lake, view,
    'id, CAST(epoch_us(t) AS VARCHAR) AS t, CAST(epoch_us(tz) AS VARCHAR) AS tz, CAST(d - DATE \'1970-01-01\' AS VARCHAR) AS d');
  const pg = await db.query(`SELECT id::text AS id, (extract(epoch FROM t) * 1000000)::numeric(30,0)::text AS t, (extract(epoch FROM tz) * 1000000)::numeric(30,0)::text AS tz,
    (d - date '1970-01-01')::text AS d FROM huge_ts ORDER BY huge_ts.id`);
  expect(rows.sort((a, b) => a.id - b.id).map((r) => `${r.id} ${r.t} ${r.tz} ${r.d}`)).toEqual(pg.map((r) => `${r.id} ${r.t} ${r.tz} ${r.d}`));
  lake.remove();
});

it('keeps every version reachable when partitionBy changes on an exported table, through re-runs and a compaction', async () => {
  await db.query(`CREATE TABLE pchg (id int PRIMARY KEY, d date NOT NULL, v int NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO pchg (id, d, updated_at) SELECT g, date '1950-01-01' + g * 400, timestamptz '2024-06-01' + g * interval '1 hour' FROM generate_series(1, 30) g`);
  const lake = createLake();
  const extra = { lake: { partitionYears: { from: 1900, to: 2100 } }, export: { pageRows: 4 }, compaction: { minFiles: 2, graceMinutes: 60 } };
  const run = async (table: Record<string, unknown>, request: RunRequest = {}) => {
    const outcome = await exportAll(lake, [{ name: 'pchg', ...table }], extra, request);
    expect(outcome.tables.map((t) => [t.status, t.error])).toEqual([['succeeded', undefined]]);
  };
  let versions = 30;
  const check = async (label: string) => {
    const state = new TableState(lake.store, 'raw', 'pchg');
    const manifests = await Promise.all((await lake.store.list(state.manifestPrefix())).map(async (k) => (await state.read<RunManifest>(k))!.value));
    const live = manifests.flatMap((m) => m.pages.flatMap((p) => p.files.map((f) => f.key))).sort();
    const view = await athenaView(lake, 'pchg');
    expect(view.visible.map((v) => v.key).sort(), label).toEqual(live);
    const rows = await athenaRows<{ id: number; us: string }>(lake, view, 'id, CAST(epoch_us(updated_at) AS VARCHAR) AS us');
    expect([rows.length, new Set(rows.map((r) => `${r.id}@${r.us}`)).size], label).toEqual([versions, versions]);
  };
  await run({});
  await check('by updated_at');
  await db.query(`UPDATE pchg SET v = 1, updated_at = clock_timestamp() WHERE id % 3 = 0`);
  versions += 10;
  await run({ partitionBy: 'd' });
  await check('by d');
  await run({ partitionBy: 'd' }, { window: { from: '2024-06-01 00:00:00+00', to: '2024-06-01 12:00:00+00' } });
  await check('window re-run by d');
  await run({ partitionBy: 'd' }, { full: true });
  await check('full re-run by d');
  const config = testConfig([{ name: 'pchg', partitionBy: 'd', partition: { granularity: 'month' } }], extra);
  expect(await compactTable({ store: lake.store, config }, 'pchg')).toMatchObject({ status: 'compacted', granularity: 'month' });
  await check('compacted into months');
  lake.remove();
});
