// The local Athena stand-in over a lake whose schema declares columns no file has yet: a lake
// upgraded from a version without `_lake_deleted` (its files were written before tombstones
// existed) before its first new file lands, or a column added to the schema after the files.
// Athena answers NULL for such a column; the DuckDB views must too, not fail to bind.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { createDatabase, createLake, duckdb, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const TABLES = [{ name: 'public.orders' }];

let db: TestDatabase;
let lake: TestLake;

/** Every Parquet file under `dir`, recursively. */
function parquetFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.parquet'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Rewrite each file without `columns`, as a version of the exporter without them wrote it. */
async function dropFromFiles(columns: readonly string[]): Promise<void> {
  const files = parquetFiles(path.join(lake.dir, 'raw', 'orders'));
  expect(files.length).toBeGreaterThan(0);
  for (const file of files) {
    const literal = `'${file.replaceAll("'", "''")}'`;
    const tmp = `'${`${file}.old`.replaceAll("'", "''")}'`;
    await duckdb(`COPY (SELECT * FROM read_parquet(${literal})) TO ${tmp} (FORMAT parquet)`);
    await duckdb(`COPY (SELECT * EXCLUDE (${columns.map((c) => `"${c}"`).join(', ')}) FROM read_parquet(${tmp})) TO ${literal} (FORMAT parquet, COMPRESSION snappy)`);
    rmSync(`${file}.old`);
  }
}

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE orders (id int PRIMARY KEY, note text, updated_at timestamptz NOT NULL);
    INSERT INTO orders SELECT g, 'n' || g, timestamptz '2024-05-01 00:00:00+00' + g * interval '7 minutes' FROM generate_series(1, 500) g`);
  const deps = exportDeps(db, lake.store, testConfig(TABLES));
  try {
    const outcome = await runExport(deps);
    expect(outcome.tables).toMatchObject([{ table: 'orders', status: 'succeeded', rows: 500 }]);
  } finally {
    await deps.close();
  }
});

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

describe('LakeQuery: columns the schema declares that no file has', () => {
  it('a lake whose files predate _lake_deleted opens; the history and the current view answer, the column NULL', async () => {
    await dropFromFiles(['_lake_deleted']);
    const [described] = await duckdb<{ n: number }>(`SELECT count(*)::INTEGER AS n FROM (DESCRIBE SELECT * FROM read_parquet('${path.join(lake.dir, 'raw', 'orders', '**', '*.parquet')}')) WHERE column_name = '_lake_deleted'`);
    expect(described.n).toBe(0);
    const state = new TableState(lake.store, 'raw', 'orders');
    const schema = (await state.read<LakeSchema>(state.schemaKey()))!.value;
    expect(schema.columns.map((c) => c.name)).toContain('_lake_deleted');

    const query = await LakeQuery.open(testConfig(TABLES), lake.store);
    try {
      expect(await query.query(`SELECT count(*)::INTEGER AS n, count("_lake_deleted")::INTEGER AS deleted, typeof(any_value("_lake_deleted")) AS t FROM orders`))
        .toEqual([{ n: 500, deleted: 0, t: 'BOOLEAN' }]);
      expect(await query.query(`SELECT count(*)::INTEGER AS n, min(id) AS lo, max(id) AS hi FROM orders_current`)).toEqual([{ n: 500, lo: 1, hi: 500 }]);
      expect(await query.query(`SELECT note FROM orders WHERE id = 42`)).toEqual([{ note: 'n42' }]);
    } finally {
      query.close();
    }
  });

  it('a declared table column missing from every file reads as a typed NULL', async () => {
    await dropFromFiles(['note']);
    const query = await LakeQuery.open(testConfig(TABLES), lake.store);
    try {
      expect(await query.query(`SELECT count(*)::INTEGER AS n, count(note)::INTEGER AS notes, typeof(any_value(note)) AS t FROM orders`))
        .toEqual([{ n: 500, notes: 0, t: 'VARCHAR' }]);
      expect(await query.query(`SELECT count(*)::INTEGER AS n FROM orders_current WHERE note IS NULL`)).toEqual([{ n: 500 }]);
    } finally {
      query.close();
    }
  });

  it('reads only the folders Athena\'s partition projection enumerates: a file elsewhere is invisible there, and here', async () => {
    const [file] = parquetFiles(path.join(lake.dir, 'raw', 'orders'));
    // Outside the projected years (2024 through next year), a month 13, a year not written with
    // four digits, and the folder a NaN partition day once produced (breaker HH).
    const strays = ['year=1950/month=05/day=01', 'year=2024/month=13/day=01', 'year=24/month=05/day=01', 'year=0NaN/month=NaN/day=NaN']
      .map((folder) => path.join(lake.dir, 'raw', 'orders', folder, 'stray.parquet'));
    for (const stray of strays) {
      mkdirSync(path.dirname(stray), { recursive: true });
      copyFileSync(file, stray);
    }
    const query = await LakeQuery.open(testConfig(TABLES), lake.store);
    try {
      expect(await query.query(`SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS ids, min(year)::INTEGER AS first, max(year)::INTEGER AS last FROM orders`)).toEqual([{ n: 500, ids: 500, first: 2024, last: 2024 }]);
    } finally {
      query.close();
      for (const stray of strays) rmSync(path.dirname(stray), { recursive: true });
    }
  });

  it('a table folder without a file (every file gone) opens as an empty view of the declared columns', async () => {
    for (const file of parquetFiles(path.join(lake.dir, 'raw', 'orders'))) rmSync(file);
    const query = await LakeQuery.open(testConfig(TABLES), lake.store);
    try {
      expect(await query.query(`SELECT count(*)::INTEGER AS n, count(id)::INTEGER AS ids FROM orders`)).toEqual([{ n: 0, ids: 0 }]);
      expect(await query.query(`SELECT count(*)::INTEGER AS n FROM orders_current`)).toEqual([{ n: 0 }]);
    } finally {
      query.close();
    }
  });
});
