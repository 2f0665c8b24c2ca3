// The `<table>_current` view on real parts: export, update and soft-delete rows, export again,
// and the view must equal the live table's non-deleted rows, value by value, after every run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

let db: TestDatabase;
let lake: TestLake;

// Composite key with a hostile column name, a soft-delete flag with one too.
const TABLES = [{ name: '"Order Lines"', softDeleteColumn: 'Is Deleted?' }];

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE "Order Lines" (
      "Order Id" int, line int, "select" text, "we""ird" numeric(7,2), "Is Deleted?" boolean NOT NULL DEFAULT false,
      updated_at timestamptz NOT NULL, PRIMARY KEY ("Order Id", line));
    INSERT INTO "Order Lines" ("Order Id", line, "select", "we""ird", updated_at)
    SELECT o, l, CASE WHEN o % 7 = 0 THEN NULL ELSE '''; drop table x; -- ' || o END, o * 1.25 - l,
      timestamptz '2024-05-01 00:00:00.000001+00' + (o * 3 + l) * interval '1 second 1 microsecond'
    FROM generate_series(1, 400) o, generate_series(1, 3) l`);
});

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

async function exportAll() {
  const deps = exportDeps(db, lake.store, testConfig(TABLES));
  try {
    const outcome = await runExport(deps);
    expect(outcome.tables).toMatchObject([{ table: 'order_lines', status: 'succeeded' }]);
    return outcome.tables[0];
  } finally {
    await deps.close();
  }
}

/** Every value as text: the view through DuckDB, the table straight from Postgres. */
async function compareWithPostgres() {
  const query = await LakeQuery.open(testConfig(TABLES), lake.store);
  try {
    const viewRows = await query.query(`SELECT CAST("order id" AS VARCHAR) AS k1, CAST(line AS VARCHAR) AS k2, "select" AS s,
        CAST("we""ird" AS VARCHAR) AS w, CAST("is deleted?" AS VARCHAR) AS d, CAST(epoch_us(updated_at) AS VARCHAR) AS u
      FROM order_lines_current ORDER BY "order id", line`);
    const tableRows = await db.query(`SELECT "Order Id"::text AS k1, line::text AS k2, "select" AS s, "we""ird"::text AS w,
        "Is Deleted?"::text AS d, (extract(epoch FROM updated_at) * 1000000)::bigint::text AS u
      FROM "Order Lines" WHERE NOT "Is Deleted?" ORDER BY "Order Id", line`);
    expect(viewRows.length).toBe(tableRows.length);
    expect(viewRows).toEqual(tableRows);
    const [versions] = await query.query('SELECT count(*)::INTEGER AS n FROM order_lines');
    return { current: viewRows.length, versions: versions.n as number };
  } finally {
    query.close();
  }
}

describe('current-state view', () => {
  it('equals the live table, without its soft-deleted rows, after every incremental run', async () => {
    expect(await exportAll()).toMatchObject({ rows: 1200 });
    expect(await compareWithPostgres()).toEqual({ current: 1200, versions: 1200 });

    // Updates (some twice), soft deletes, a soft delete of a row also updated before, inserts.
    await db.query(`UPDATE "Order Lines" SET "select" = 'v2 "quoted"', "we""ird" = "we""ird" + 0.01, updated_at = now() WHERE "Order Id" % 5 = 0`);
    await db.query(`UPDATE "Order Lines" SET "select" = 'v3', updated_at = now() WHERE "Order Id" % 10 = 0 AND line = 1`);
    await db.query(`UPDATE "Order Lines" SET "Is Deleted?" = true, updated_at = now() WHERE "Order Id" % 9 = 0 OR ("Order Id" = 10 AND line = 1)`);
    await db.query(`INSERT INTO "Order Lines" ("Order Id", line, "select", "we""ird", updated_at) SELECT o, 1, 'new', -o, now() FROM generate_series(401, 420) o`);
    const second = await exportAll();
    const changed = await db.query(`SELECT count(*)::int AS n FROM "Order Lines" WHERE "Order Id" % 5 = 0 OR "Order Id" % 9 = 0 OR "Order Id" > 400`);
    expect(second.rows).toBe(Number(changed[0].n));
    const deleted = await db.query(`SELECT count(*)::int AS n FROM "Order Lines" WHERE "Is Deleted?"`);
    expect(await compareWithPostgres()).toEqual({ current: 1220 - Number(deleted[0].n), versions: 1200 + second.rows });

    // Undelete a few: their newest version counts, so they are back.
    await db.query(`UPDATE "Order Lines" SET "Is Deleted?" = false, "select" = 'restored', updated_at = now() WHERE "Order Id" IN (9, 18) AND line = 2`);
    const third = await exportAll();
    expect(third.rows).toBe(2);
    const afterThird = await compareWithPostgres();
    expect(afterThird.current).toBe(1220 - Number(deleted[0].n) + 2);
  });

  it('exposes the table\'s columns and export metadata, not the rank or the partition columns', async () => {
    const query = await LakeQuery.open(testConfig(TABLES), lake.store);
    try {
      const columns = await query.query(`SELECT column_name FROM (DESCRIBE order_lines_current)`);
      expect(columns.map((c) => c.column_name)).toEqual(['order id', 'line', 'select', 'we"ird', 'is deleted?', 'updated_at', '_lake_exported_at', '_lake_run_id', '_lake_deleted']);
    } finally {
      query.close();
    }
  });

  it('creates no current view for a table whose schema.json predates key and cursor', async () => {
    const key = 'raw/_state/order_lines/schema.json';
    const stored = await lake.store.get(key);
    const { columns } = JSON.parse(stored!.body.toString('utf8')) as { columns: unknown[] };
    await lake.store.put(key, JSON.stringify({ columns }));
    const query = await LakeQuery.open(testConfig(TABLES), lake.store);
    try {
      await expect(query.query('SELECT count(*) AS n FROM order_lines')).resolves.toHaveLength(1);
      await expect(query.query('SELECT count(*) AS n FROM order_lines_current')).rejects.toThrow(/order_lines_current/);
    } finally {
      query.close();
      await lake.store.put(key, stored!.body);
    }
  });
});
