// A timestamp's partition day at the day's edges: the last microsecond of a day and the first of
// the next, before 1970 and before 2000 (negative microseconds on the wire), on a page whose rows
// are all of one day but the last (the one-day test groupByDay runs first must send that row to
// its own day), and on a page whose first and last rows share a day but a middle row does not
// (partitionBy a column other than the cursor). Each row's partition is compared with the date
// Postgres gives its value, through the files Athena's projection reaches.
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

it('puts the first microsecond of a day in that day, whatever shares its page', async () => {
  await db.query(`
    CREATE TABLE edge_cursor (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
    INSERT INTO edge_cursor VALUES
      (1, '1969-12-31 00:00:00+00'), (2, '1969-12-31 23:59:59.999999+00'), (3, '1970-01-01 00:00:00+00'),
      (4, '1999-12-31 00:00:00+00'), (5, '1999-12-31 23:59:59.999999+00'), (6, '2000-01-01 00:00:00+00'),
      (7, '2024-06-01 00:00:00+00'), (8, '2024-06-01 23:59:59.999999+00'), (9, '2024-06-02 00:00:00+00');
    CREATE TABLE edge_column (id int PRIMARY KEY, updated_at timestamptz NOT NULL, t timestamp NOT NULL);
    INSERT INTO edge_column VALUES
      (1, '2024-01-01 00:00:01+00', '2024-06-01 00:00:00'), (2, '2024-01-01 00:00:02+00', '2024-06-02 00:00:00'),
      (3, '2024-01-01 00:00:03+00', '2024-06-01 23:59:59.999999'),
      (4, '2024-01-01 00:00:04+00', '1999-12-31 00:00:00'), (5, '2024-01-01 00:00:05+00', '2000-01-01 00:00:00'),
      (6, '2024-01-01 00:00:06+00', '1999-12-31 23:59:59.999999');`);
  const lake = createLake();
  // Pages of 3 rows: each page of edge_cursor ends on the next day's first microsecond.
  const deps = exportDeps(db, lake.store, testConfig(
    [{ name: 'edge_cursor' }, { name: 'edge_column', partitionBy: 't' }],
    { lake: { partitionYears: { from: 1960, to: 2099 } }, export: { pageRows: 3, safetyLagSeconds: 0 } },
  ));
  try {
    const outcome = await runExport(deps);
    expect(outcome.tables.map((t) => [t.table, t.status, t.rows])).toEqual([['edge_cursor', 'succeeded', 9], ['edge_column', 'succeeded', 6]]);
  } finally { await deps.close(); }
  for (const [table, column] of [['edge_cursor', "updated_at AT TIME ZONE 'UTC'"], ['edge_column', 't']]) {
    const want = (await db.query(`SELECT id, to_char(${column}, 'YYYY-MM-DD') AS day FROM ${table} ORDER BY id`)).map((r) => ({ id: Number(r.id), day: r.day }));
    const view = await athenaView(lake, table);
    const rows = await athenaRows<{ id: number }>(lake, view, 'id');
    const got = rows.sort((a, b) => a.id - b.id).map((r) => ({ id: r.id, day: `${r.year}-${String(r.month).padStart(2, '0')}-${String(r.day).padStart(2, '0')}` }));
    expect({ got, unreachable: view.unreachable }, table).toEqual({ got: want, unreachable: [] });
  }
  lake.remove();
});
