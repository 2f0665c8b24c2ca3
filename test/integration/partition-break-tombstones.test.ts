// Breaker HH: tombstones of a table partitioned by a business date (not the cursor) in month
// partitions, then compacted into years, then more deletes: every tombstone file is inside the
// projection registered for Athena, and the latest version per key that Athena's rows give
// (tombstones ending a key) equals the table in Postgres at each step.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
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

const config = (granularity: 'month' | 'year'): LakeConfig => testConfig([{ name: 'del', partitionBy: 'd', partition: { granularity }, deletes: { detect: true } }], {
  lake: { partitionYears: { from: 1900, to: 2100 } }, export: { pageRows: 9, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 },
});

async function run(cfg: LakeConfig): Promise<void> {
  const query = await LakeQuery.open(cfg, lake.store);
  const deps = { ...exportDeps(db, lake.store, cfg), engine: query.engine() };
  try {
    const outcome = await runExport(deps);
    expect(outcome.tables.map((t) => [t.table, t.status, t.error])).toEqual([['del', 'succeeded', undefined]]);
  } finally {
    await deps.close();
    query.close();
  }
}

async function expectAthenaCurrent(label: string): Promise<number> {
  const state = new TableState(lake.store, 'raw', 'del');
  const manifests = await Promise.all((await lake.store.list(state.manifestPrefix())).map(async (k) => (await state.read<RunManifest>(k))!.value));
  const live = manifests.flatMap((m) => m.pages.flatMap((p) => p.files.map((f) => f.key))).sort();
  const view = await athenaView(lake, 'del');
  expect(view.visible.map((v) => v.key).sort(), `${label}: files Athena reads = committed files`).toEqual(live);
  const rows = await athenaRows<{ id: number; v: number | null; us: string; at: string; deleted: boolean | null }>(lake, view,
    'id, v, CAST(epoch_us(updated_at) AS VARCHAR) AS us, CAST(epoch_us(_lake_exported_at) AS VARCHAR) AS "at", _lake_deleted AS deleted');
  const latest = new Map<number, (typeof rows)[number]>();
  const later = (a: (typeof rows)[number], b: (typeof rows)[number]) => BigInt(a.us) > BigInt(b.us) || (a.us === b.us && BigInt(a.at) > BigInt(b.at));
  for (const r of rows) if (!latest.has(r.id) || later(r, latest.get(r.id)!)) latest.set(r.id, r);
  const current = [...latest.values()].filter((r) => !r.deleted).map((r) => `${r.id}:${r.v}`).sort();
  const pg = (await db.query('SELECT id::text AS id, v::text AS v FROM del')).map((r) => `${r.id}:${r.v}`).sort();
  expect(current, `${label}: latest version per key (tombstones ending keys) = Postgres`).toEqual(pg);
  return rows.filter((r) => r.deleted).length;
}

it('keeps tombstones of a date-partitioned table inside the projection through deletes, a compaction into years and more deletes', async () => {
  await db.query(`CREATE TABLE del (id int PRIMARY KEY, d date NOT NULL, v int NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO del (id, d, updated_at) SELECT g, date '1931-03-01' + g * 997, timestamptz '2024-06-01' + g * interval '1 minute' FROM generate_series(1, 60) g`);
  const month = config('month');
  await run(month);
  expect(await expectAthenaCurrent('first run')).toBe(0);
  await db.query('DELETE FROM del WHERE id % 7 = 0');
  await db.query('UPDATE del SET v = 1, updated_at = clock_timestamp() WHERE id % 11 = 0');
  await run(month);
  expect(await expectAthenaCurrent('deletes detected')).toBe(8);
  const year = config('year');
  expect(await compactTable({ store: lake.store, config: year }, 'del')).toMatchObject({ status: 'compacted', granularity: 'year' });
  expect(await expectAthenaCurrent('compacted into years')).toBe(8);
  await db.query('DELETE FROM del WHERE id % 5 = 0');
  await run(year);
  // 8 earlier, and 12 keys divisible by 5, of which 35 was gone already.
  expect(await expectAthenaCurrent('more deletes after the switch')).toBe(19);
}, 180_000);
