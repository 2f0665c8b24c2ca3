// Breaker HH: the partition projection Athena is given must reach every row the lake holds, at
// every step of a table's life — later runs that write earlier and later years than any before,
// a leap day, rows moved between partitions by an update, a {window} and a {full: true} re-run,
// a compaction, granularity changes day → month → year by compaction and runs after each, and a
// snapshot table whose years change between snapshots. Athena is emulated from the Glue
// definition alone (partition-break-athena.ts: template, ranges, digits); the rows it would
// return are read by DuckDB and compared with Postgres: no version missing or twice, every row
// in the partition of its own date, the latest version per key equal to the database row.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { athenaRows, athenaView } from './partition-break-athena.ts';

let db: TestDatabase;
let lake: TestLake;
beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
});
afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

const next = new Date().getUTCFullYear() + 1;

function config(granularity: 'day' | 'month' | 'year'): LakeConfig {
  return testConfig([
    { name: 'booking', partitionBy: 'd', partition: { granularity } },
    { name: 'snap', mode: 'snapshot', partitionBy: 'd', partition: { granularity } },
  ], { lake: { partitionYears: { from: 1900, to: 2200 } }, export: { pageRows: 7, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 } });
}

async function run(cfg: LakeConfig, request: RunRequest = {}): Promise<void> {
  const deps = exportDeps(db, lake.store, cfg);
  try {
    const outcome = await runExport(deps, request);
    expect(outcome.tables.map((t) => [t.table, t.status, t.error])).toEqual([['booking', 'succeeded', undefined], ['snap', 'succeeded', undefined]]);
  } finally {
    await deps.close();
  }
}

let versions = 0;
async function change(sql: string): Promise<void> {
  const rows = await db.query(`WITH c AS (${sql} RETURNING 1) SELECT count(*)::text AS n FROM c`);
  versions += Number(rows[0].n);
  await db.query('TRUNCATE snap; INSERT INTO snap SELECT * FROM booking');
}

/** What Athena returns for the table, by the registered projection alone, against Postgres and the manifests. */
async function expectAthenaSeesAll(table: 'booking' | 'snap', label: string): Promise<void> {
  const view = await athenaView(lake, table);
  const state = new TableState(lake.store, 'raw', table);
  const manifests = await Promise.all((await lake.store.list(state.manifestPrefix())).map(async (k) => (await state.read<RunManifest>(k))!.value));
  const live = manifests.flatMap((m) => m.pages.flatMap((p) => p.files.map((f) => f.key))).sort();
  // Athena reads exactly the committed files: none outside the projection, none it should not read.
  expect(view.visible.map((v) => v.key).sort(), `${label}: ${table} files the projection reaches = committed files (unreachable: ${view.unreachable.join(', ')})`).toEqual(live);
  const rows = await athenaRows<{ id: number; v: number; d: string; us: string }>(lake, view, 'id, v, CAST(d AS VARCHAR) AS d, CAST(epoch_us(updated_at) AS VARCHAR) AS us');
  // Each row in the partition of its own date (day, month or year).
  const misplaced = rows.filter((r) => {
    const [y, m, d] = r.d.split('-').map(Number);
    return r.year !== y || (r.month !== undefined && r.month !== m) || (r.day !== undefined && r.day !== d);
  }).map((r) => `${r.id} ${r.d} in ${r.file}`);
  expect(misplaced, `${label}: ${table} rows outside their date's partition`).toEqual([]);
  const seen = new Set(rows.map((r) => `${r.id}@${r.us}`));
  expect(seen.size, `${label}: ${table} no version twice`).toBe(rows.length);
  const pg = await db.query(`SELECT id::text AS id, v::text AS v, d::text AS d, (extract(epoch FROM updated_at) * 1000000)::bigint::text AS us FROM ${table} ORDER BY ${table}.id`);
  if (table === 'booking') expect(rows.length, `${label}: every version exported`).toBe(versions);
  else expect(rows.length, `${label}: one snapshot`).toBe(pg.length);
  const latest = new Map<number, (typeof rows)[number]>();
  for (const r of rows) if (!latest.has(r.id) || BigInt(r.us) > BigInt(latest.get(r.id)!.us)) latest.set(r.id, r);
  expect([...latest.values()].sort((a, b) => a.id - b.id).map((r) => `${r.id} ${r.v} ${r.d} ${r.us}`), `${label}: ${table} latest = Postgres`)
    .toEqual(pg.map((r) => `${r.id} ${r.v} ${r.d} ${r.us}`));
  // The projection stays tight: from the earliest year written (or this year) through next year or a later one written.
  const years = rows.map((r) => Number(r.d.slice(0, 4)));
  const schema = JSON.parse((await lake.store.get(state.schemaKey()))!.body.toString()) as LakeSchema;
  if (table === 'snap') expect(schema.years, `${label}: snapshot's projection`).toEqual({ from: Math.min(...years, next - 1), to: Math.max(...years, next) });
  else expect(schema.years!.from, `${label}: projection starts at the earliest year written`).toBeLessThanOrEqual(Math.min(...years));
}

async function expectBoth(label: string): Promise<void> {
  await expectAthenaSeesAll('booking', label);
  await expectAthenaSeesAll('snap', label);
}

it('every row stays inside the projection through new years, re-runs, compactions and granularity changes', async () => {
  await db.query(`CREATE TABLE booking (id int PRIMARY KEY, v int NOT NULL DEFAULT 0, d date NOT NULL, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE TABLE snap (LIKE booking INCLUDING ALL)`);
  await change(`INSERT INTO booking (id, d, updated_at) SELECT g, date '2023-11-20' + g * 9, timestamptz '2024-06-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 40) g`);
  const day = config('day');
  await run(day);
  await expectBoth('first run');

  // Earlier and later years than any before, a leap day and the last µs-day of a year.
  await change(`INSERT INTO booking (id, d) VALUES (41, '1999-12-31'), (42, '1985-07-01'), (43, '${next + 3}-01-01'), (44, '2024-02-29'), (45, '2000-02-29')`);
  await run(day);
  await expectBoth('earlier and later years');

  // Rows moved to other partitions by an update, one to a year before any.
  await change(`UPDATE booking SET d = CASE WHEN id % 2 = 0 THEN date '1960-02-29' ELSE date '${next + 7}-12-31' END, v = v + 1, updated_at = clock_timestamp() WHERE id BETWEEN 10 AND 13`);
  await run(day);
  await expectBoth('moved by update');

  // A window re-run over the first run's rows, and a full re-run.
  await change(`UPDATE booking SET v = v + 1, d = '1950-06-15', updated_at = updated_at + interval '1 microsecond' WHERE id = 5`);
  await run(day, { window: { from: '2024-06-01 00:00:00+00', to: '2024-06-01 00:30:00+00' } });
  await expectBoth('window re-run');
  await run(day, { full: true });
  await expectBoth('full re-run');

  // A compaction at the same granularity, then day → month with a run after it writing a new earliest and latest year.
  expect((await compactTable({ store: lake.store, config: day }, 'booking', { force: true })).status).toBe('compacted');
  await expectBoth('compacted by day');
  const month = config('month');
  expect(await compactTable({ store: lake.store, config: month }, 'booking')).toMatchObject({ status: 'compacted', granularity: 'month' });
  await expectBoth('compacted into months');
  await change(`INSERT INTO booking (id, d) VALUES (46, '1931-01-31'), (47, '${next + 20}-02-28')`);
  await change(`UPDATE booking SET v = v + 1, updated_at = clock_timestamp() WHERE id IN (41, 43)`);
  await run(month);
  await expectBoth('a month run after the switch');

  // month → year, then a run writing yet another earliest year, and a full re-run in years.
  const year = config('year');
  expect(await compactTable({ store: lake.store, config: year }, 'booking')).toMatchObject({ status: 'compacted', granularity: 'year' });
  await expectBoth('compacted into years');
  await change(`INSERT INTO booking (id, d) VALUES (48, '1901-12-31')`);
  await run(year);
  await expectBoth('a year run after the switch');
  await run(year, { full: true });
  await expectBoth('full re-run in years');
}, 300_000);
