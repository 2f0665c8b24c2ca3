// The correctness contract on real parts: ties at page boundaries, incremental runs, late
// commits, the S3 adapter against an S3 API server, hostile identifiers, and bad input.
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { partitionYearOf } from '../../lambdas/core/lake/keys.ts';
import { ThrottlingError } from '../../lambdas/core/errors.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { hashText } from '../../lambdas/core/page/pii-hash.ts';
import { createDatabase, createLake, duckdb, exportDeps, faultyStore, parquetGlob, startPostgres, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import pg from 'pg';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';

const db = fileDatabase();

async function exportOnce(lake: TestLake, tables: unknown[], extra: Record<string, unknown> = {}) {
  const deps = exportDeps(db, lake.store, testConfig(tables, extra));
  try {
    return await runExport(deps);
  } finally {
    await deps.close();
  }
}

async function lakeRows(lake: TestLake, table: string, columns: string) {
  return duckdb<Record<string, string>>(`SELECT ${columns} FROM read_parquet(${parquetGlob(lake, table)}) ORDER BY ALL`);
}

describe('keyset paging', () => {
  it('exports every one of 10,500 rows sharing 3 updated_at values exactly once with 1,000-row pages', async () => {
    await db.query(`CREATE TABLE ties (id int PRIMARY KEY, updated_at timestamptz NOT NULL, v text);
      INSERT INTO ties SELECT g, timestamptz '2024-05-01 12:00:00.123456+00' + (g % 3) * interval '1 microsecond', 'v' || g
      FROM generate_series(1, 10500) g ORDER BY random()`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'ties' }]);
    expect(outcome.tables).toMatchObject([{ table: 'ties', status: 'succeeded', rows: 10500 }]);
    const [stats] = await duckdb<{ n: string; ids: string; lo: string; hi: string }>(
      `SELECT count(*) AS n, count(DISTINCT id) AS ids, CAST(min(id) AS VARCHAR) AS lo, CAST(max(id) AS VARCHAR) AS hi FROM read_parquet(${parquetGlob(lake, 'ties')})`,
    );
    expect(stats).toEqual({ n: '10500', ids: '10500', lo: '1', hi: '10500' });
    lake.remove();
  });

  it('pages a composite primary key', async () => {
    await db.query(`CREATE TABLE lines (order_id int, line_no int, updated_at timestamptz NOT NULL, PRIMARY KEY (order_id, line_no));
      INSERT INTO lines SELECT o, l, timestamptz '2024-05-01 00:00:00+00' FROM generate_series(1, 50) o, generate_series(1, 45) l`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'lines' }]);
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 2250 });
    const [stats] = await duckdb<{ n: string; keys: string }>(`SELECT count(*) AS n, count(DISTINCT (order_id, line_no)) AS keys FROM read_parquet(${parquetGlob(lake, 'lines')})`);
    expect(stats).toEqual({ n: '2250', keys: '2250' });
    lake.remove();
  });
});

describe('incremental runs', () => {
  it('lands only the new versions, each once', async () => {
    await db.query(`CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12,2), updated_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO accounts (id, balance) SELECT g, g FROM generate_series(1, 3000) g`);
    const lake = createLake();
    const first = await exportOnce(lake, [{ name: 'accounts' }]);
    expect(first.tables[0]).toMatchObject({ status: 'succeeded', rows: 3000 });

    await db.query(`INSERT INTO accounts (id, balance) SELECT g, g FROM generate_series(3001, 3100) g`);
    await db.query(`UPDATE accounts SET balance = balance + 1, updated_at = now() WHERE id <= 200`);
    await db.query(`UPDATE accounts SET balance = balance + 1, updated_at = now() WHERE id <= 50`);
    const second = await exportOnce(lake, [{ name: 'accounts' }]);
    // 100 inserted + 200 updated (the 50 updated twice land once, in their latest version)
    expect(second.tables[0]).toMatchObject({ status: 'succeeded', rows: 300 });
    expect(second.tables[0].windowFrom).toBe(first.tables[0].windowTo);

    const third = await exportOnce(lake, [{ name: 'accounts' }]);
    expect(third.tables[0]).toMatchObject({ status: 'succeeded', rows: 0, files: 0 });

    const [dupes] = await duckdb<{ n: string; versions: string }>(
      `SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions FROM read_parquet(${parquetGlob(lake, 'accounts')})`,
    );
    expect(dupes).toEqual({ n: '3300', versions: '3300' });
    const latest = await duckdb<{ id: string; balance: string }>(
      `SELECT CAST(id AS VARCHAR) AS id, CAST(balance AS VARCHAR) AS balance FROM read_parquet(${parquetGlob(lake, 'accounts')}) QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1 ORDER BY id`,
    );
    const expected = await db.query(`SELECT id::text AS id, balance::text AS balance FROM accounts ORDER BY id`);
    expect(latest).toEqual(expected);
    lake.remove();
  });

  it('does not lose a row whose transaction commits after the export ran', async () => {
    await db.query(`CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`);
    await db.query(`INSERT INTO events (id) VALUES (1)`);
    const late = await db.connect();
    await late.query('BEGIN');
    await late.query(`INSERT INTO events (id) VALUES (2)`); // updated_at = this transaction's start
    await new Promise((r) => setTimeout(r, 20));
    await db.query(`INSERT INTO events (id) VALUES (3)`); // committed, newer than row 2
    const lake = createLake();
    const first = await exportOnce(lake, [{ name: 'events' }]);
    // the open transaction holds the window back: row 3 waits too, so the watermark stays below row 2
    expect(first.tables[0]).toMatchObject({ status: 'succeeded', rows: 1 });
    expect(first.warnings.some((w) => w.includes('held back') && w.includes('open transaction'))).toBe(true);
    await late.query('COMMIT');
    await late.end();
    const second = await exportOnce(lake, [{ name: 'events' }]);
    expect(second.tables[0]).toMatchObject({ status: 'succeeded', rows: 2 });
    expect((await lakeRows(lake, 'events', 'CAST(id AS VARCHAR) AS id')).map((r) => r.id)).toEqual(['1', '2', '3']);
    lake.remove();
  });
});

describe('S3 adapter', () => {
  let s3: LocalS3Server;
  beforeAll(async () => {
    s3 = await startS3Server();
    s3.createBucket('lake-test');
    process.env.AWS_ENDPOINT_URL_S3 = s3.address;
    process.env.AWS_REGION = 'us-east-1';
    process.env.AWS_ACCESS_KEY_ID = 'test';
    process.env.AWS_SECRET_ACCESS_KEY = 'test';
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('writes byte-identical files to the directory adapter', async () => {
    await db.query(`CREATE TABLE products (sku text PRIMARY KEY, price numeric(10,2), tags text[], updated_at timestamptz NOT NULL);
      INSERT INTO products SELECT 'sku-' || g, g / 7.0, ARRAY['t' || (g % 5)], timestamptz '2024-05-01 00:00:00+00' + (g % 4) * interval '1 day'
      FROM generate_series(1, 2500) g`);
    const now = new Date('2026-01-02T03:04:05.678Z');
    const config = testConfig([{ name: 'products' }]);
    const lake = createLake();
    const store = new S3Store(createS3Client(), 'lake-test', 'exports');
    const local = exportDeps(db, lake.store, config);
    const remote = exportDeps(db, store, config);
    const a = await runExport(local, { runId: 'fixed-run' }, now);
    const b = await runExport(remote, { runId: 'fixed-run' }, now);
    await local.close();
    await remote.close();
    expect(a.tables[0]).toMatchObject({ status: 'succeeded', rows: 2500 });
    expect(b.tables[0]).toMatchObject({ status: 'succeeded', rows: 2500, files: a.tables[0].files, bytes: a.tables[0].bytes });
    const dataKeys = (await lake.store.list('raw/products/')).filter((k) => k.endsWith('.parquet'));
    expect(await store.list('raw/products/')).toEqual(dataKeys);
    expect(dataKeys.length).toBe(a.tables[0].files);
    for (const key of dataKeys) {
      const remoteBytes = (await store.get(key))!.body;
      expect(remoteBytes.equals(readFileSync(path.join(lake.dir, key))), key).toBe(true);
    }
    // state landed beside the data, under the prefix no table reads
    expect((await store.list('raw/_state/products/')).sort()).toEqual(expect.arrayContaining(['raw/_state/products/watermark.json', 'raw/_state/products/schema.json']));
    lake.remove();
  });
});

describe('hostile identifiers', () => {
  it('exports and queries "Sales Data"."Order Items" with columns "select" and we"ird', async () => {
    await db.query(`CREATE SCHEMA "Sales Data";
      CREATE TABLE "Sales Data"."Order Items" ("Order Id" int, "line" int, "select" text, "we""ird" numeric(5,1), "Amount" int, updated_at timestamptz NOT NULL DEFAULT '2024-07-01', PRIMARY KEY ("Order Id", line));
      INSERT INTO "Sales Data"."Order Items" VALUES (1, 1, 'drop table x; --', 1.5, 10), (1, 2, '''; select 1', -2.5, 20), (2, 1, NULL, NULL, 30)`);
    const lake = createLake();
    const tables = [{ name: '"Sales Data"."Order Items"' }];
    const outcome = await exportOnce(lake, tables);
    expect(outcome.tables).toMatchObject([{ table: 'order_items', status: 'succeeded', rows: 3 }]);
    const query = await LakeQuery.open(testConfig(tables), lake.store);
    const rows = await query.query(`SELECT "order id", line, "select", CAST("we""ird" AS VARCHAR) AS weird, amount, year, month, day FROM order_items ORDER BY "order id", line`);
    query.close();
    expect(rows).toEqual([
      { 'order id': 1, line: 1, select: 'drop table x; --', weird: '1.5', amount: 10, year: 2024, month: 7, day: 1 },
      { 'order id': 1, line: 2, select: "'; select 1", weird: '-2.5', amount: 20, year: 2024, month: 7, day: 1 },
      { 'order id': 2, line: 1, select: null, weird: null, amount: 30, year: 2024, month: 7, day: 1 },
    ]);
    lake.remove();
  });
});

describe('bad input: a named error and nothing written', () => {
  beforeAll(async () => {
    await db.query(`CREATE TABLE nokey (id int, updated_at timestamptz NOT NULL);
      CREATE TABLE textcursor (id int PRIMARY KEY, updated_at text);
      CREATE TABLE good (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-01-01');
      INSERT INTO good (id) VALUES (1)`);
  });

  const cases: [string, unknown[], string][] = [
    ['a missing table', [{ name: 'public.nothere' }], 'SchemaMismatchError: public.nothere: table does not exist (or the database user cannot see it)'],
    ['a missing cursor column', [{ name: 'good', cursor: 'modified_at' }], 'SchemaMismatchError: public.good: cursor column "modified_at" does not exist (columns: id, updated_at)'],
    ['a missing key column', [{ name: 'good', primaryKey: ['id', 'nope'] }], 'SchemaMismatchError: public.good: primaryKey column "nope" does not exist (columns: id, updated_at)'],
    ['a table without primary key', [{ name: 'nokey' }], 'SchemaMismatchError: public.nokey: table has no primary key; set tables[].primaryKey to the columns that identify a row'],
    ['a non-temporal cursor', [{ name: 'textcursor' }], 'SchemaMismatchError: public.textcursor: cursor column "updated_at" is text; it must be timestamptz, timestamp or date'],
    ['excluding the key', [{ name: 'good', columns: { exclude: ['id'] } }], 'SchemaMismatchError: public.good: columns.exclude names "id", which the export needs (cursor, key or partition)'],
  ];

  it.each(cases)('%s', async (_name, tables, message) => {
    const lake = createLake();
    const outcome = await exportOnce(lake, tables);
    expect(outcome.tables).toMatchObject([{ status: 'failed', rows: 0, files: 0 }]);
    expect(outcome.tables[0].error).toBe(message);
    expect(await lake.store.list('')).toEqual([]);
    lake.remove();
  });

  it('fails each bad table by name and exports the good one', async () => {
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'nokey' }, { name: 'good' }, { name: 'textcursor' }, { name: 'public.nothere' }]);
    const byTable = Object.fromEntries(outcome.tables.map((t) => [t.table, t]));
    expect(byTable.good).toMatchObject({ status: 'succeeded', rows: 1 });
    expect(byTable.nokey).toMatchObject({ status: 'failed', error: 'SchemaMismatchError: public.nokey: table has no primary key; set tables[].primaryKey to the columns that identify a row' });
    expect(byTable.textcursor).toMatchObject({ status: 'failed', error: 'SchemaMismatchError: public.textcursor: cursor column "updated_at" is text; it must be timestamptz, timestamp or date' });
    expect(byTable.nothere).toMatchObject({ status: 'failed', error: 'SchemaMismatchError: public.nothere: table does not exist (or the database user cannot see it)' });
    expect((await duckdb<{ n: number }>(`SELECT count(*)::int AS n FROM read_parquet(${parquetGlob(lake, 'good')})`))[0].n).toBe(1);
    // only the good table has state
    expect((await lake.store.list('raw/_state/')).every((k) => k.startsWith('raw/_state/good/'))).toBe(true);
    lake.remove();
  });

  const values: [string, string, string][] = [
    ['NaN in numeric(10,2)', `numeric(10,2)`, `'NaN'`],
    ['too many digits for numeric', `numeric`, `'1${'0'.repeat(40)}'`],
    ['too many fractional digits for unconstrained numeric', `numeric`, `'0.0000000001'`],
    ['Infinity in numeric', `numeric`, `'Infinity'`],
    ['a two-dimensional array', `int[]`, `'{{1,2},{3,4}}'`],
  ];
  const expectedValueErrors: Record<string, string> = {
    'NaN in numeric(10,2)': 'ValueError: public.bad_1.v: value NaN has no decimal representation (column is decimal(10,2); row updated_at=2024-01-01 00:00:00.000000+00, id=2)',
    'too many digits for numeric': `ValueError: public.bad_2.v: value 1${'0'.repeat(40)} has more than 29 integer digits (column is decimal(38,9); row updated_at=2024-01-01 00:00:00.000000+00, id=2)`,
    'too many fractional digits for unconstrained numeric': 'ValueError: public.bad_3.v: value 0.0000000001 has more than 9 fractional digits (column is decimal(38,9); row updated_at=2024-01-01 00:00:00.000000+00, id=2)',
    'Infinity in numeric': 'ValueError: public.bad_4.v: value Infinity has no decimal representation (column is decimal(38,9); row updated_at=2024-01-01 00:00:00.000000+00, id=2)',
    'a two-dimensional array': 'ValueError: public.bad_5.v: value a 2×2 array cannot be stored as array<…>; only one-dimensional arrays are supported (row updated_at=2024-01-01 00:00:00.000000+00, id=2)',
  };

  it.each(values.map((v, i) => [...v, i + 1] as const))('%s', async (name, type, literal, n) => {
    await db.query(`CREATE TABLE bad_${n} (id int PRIMARY KEY, v ${type}, updated_at timestamptz NOT NULL DEFAULT '2024-01-01');
      INSERT INTO bad_${n} (id, v) SELECT g, NULL FROM generate_series(1, 1500) g WHERE g <> 2;
      INSERT INTO bad_${n} (id, v) VALUES (2, ${literal})`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: `bad_${n}` }], { export: { pageRows: 1000 } });
    expect(outcome.tables[0].status).toBe('failed');
    expect(outcome.tables[0].error).toBe(expectedValueErrors[name]);
    // nothing published, nothing left behind: no data, no watermark, no lease
    expect(await lake.store.list('')).toEqual([]);
    lake.remove();
  });

  it('refuses a partition date outside the projected years, naming the value', async () => {
    await db.query(`CREATE TABLE future (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO future VALUES (1, '2024-01-01'), (2, '1969-12-31 23:59:59.999999')`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'future' }]);
    expect(outcome.tables[0].error).toBe('ValueError: public.future.updated_at: value 1969-12-31 23:59:59.999999+00 falls outside the partition years 1970–2099 (row updated_at=1969-12-31 23:59:59.999999+00, id=2); widen lake.partitionYears');
    expect(await lake.store.list('')).toEqual([]);
    lake.remove();
  });
});

describe('a user-asserted key that allows NULL', () => {
  it('fails the table while its window holds a NULL key, naming the column and where, and exports once it does not', async () => {
    // 1,500 rows on one updated_at: the two NULL keys sort last and would fall behind a page
    // boundary's keyset, lost without a word.
    await db.query(`CREATE TABLE nullkey (k int, v text, updated_at timestamptz NOT NULL);
      INSERT INTO nullkey SELECT g, 'v' || g, '2024-02-01' FROM generate_series(1, 1500) g;
      INSERT INTO nullkey VALUES (NULL, 'a', '2024-02-01'), (NULL, 'b', '2024-02-01')`);
    const lake = createLake();
    const tables = [{ name: 'nullkey', primaryKey: ['k'] }];
    const failed = await exportOnce(lake, tables, { export: { pageRows: 1000 } });
    expect(failed.tables[0].status).toBe('failed');
    expect(failed.tables[0].error).toBe('ConfigError: public.nullkey: 2 rows of this run\'s window have a NULL in primaryKey column "k" (updated_at = 2024-02-01 00:00:00+00, 2024-02-01 00:00:00+00); a keyset cannot page past a NULL key without losing rows: set tables[].primaryKey to columns that are never NULL, or make them NOT NULL');
    expect(failed.warnings).toContain('public.nullkey: primaryKey column "k" allows NULL; a run fails the table if its window holds a row with a NULL key (declare it NOT NULL)');
    expect(await lake.store.list('')).toEqual([]);
    await db.query(`UPDATE nullkey SET k = 1500 + ascii(v) WHERE k IS NULL`);
    const done = await exportOnce(lake, tables, { export: { pageRows: 1000 } });
    expect(done.tables[0].status).toBe('succeeded');
    expect(done.tables[0].rows).toBe(1502);
    lake.remove();
  });
});

describe('re-runs repair, never destroy', () => {
  /** Every version in the lake as `id@µs=payload`, sorted (DuckDB over the visible files). */
  async function lakeVersions(lake: TestLake, table: string): Promise<string[]> {
    const rows = await duckdb<{ v: string }>(`SELECT id || '@' || epoch_us(updated_at) || '=' || coalesce(payload, 'NULL') AS v FROM read_parquet(${parquetGlob(lake, table)}) ORDER BY 1`);
    return rows.map((r) => r.v);
  }

  it('a window re-run replaces the versions Postgres holds, keeps those it no longer has, and rewrites only the chunks it touches', async () => {
    // 5,000 rows, one a minute from 2024-05-01: 1,000-row pages, five files of one day each.
    await db.query(`CREATE TABLE repaired (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO repaired SELECT g, 'v1-' || g, timestamptz '2024-05-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 5000) g`);
    const lake = createLake();
    const tables = [{ name: 'repaired' }];
    expect((await exportOnce(lake, tables)).tables[0]).toMatchObject({ status: 'succeeded', rows: 5000 });
    const before = await lakeVersions(lake, 'repaired');
    const filesBefore = await lake.store.list('raw/repaired/');
    // Row 2,500 changes (its old version is history now, its new one lies past the watermark);
    // row 2,600 is corrected in place without touching updated_at; row 4,000 is deleted.
    await db.query(`UPDATE repaired SET payload = 'v2-2500', updated_at = '2030-01-01' WHERE id = 2500;
      UPDATE repaired SET payload = 'fixed-2600' WHERE id = 2600;
      DELETE FROM repaired WHERE id = 4000`);
    const window = { from: '2024-05-02 17:00:00+00', to: '2024-05-02 20:00:00+00' }; // ids 2,460–2,640
    const deps = exportDeps(db, lake.store, testConfig(tables));
    const rerun = await runExport(deps, { window }).finally(() => deps.close());
    expect(rerun.tables[0]).toMatchObject({ status: 'succeeded', rows: 180 });
    const after = await lakeVersions(lake, 'repaired');
    const expected = before.map((v) => (v.startsWith('2600@') ? v.replace('=v1-2600', '=fixed-2600') : v));
    // every version still there, once, with Postgres's values where it holds the version
    expect(after).toEqual(expected);
    const filesAfter = await lake.store.list('raw/repaired/');
    const page3 = before.filter((v) => Number(v.split('@')[0]) > 2000 && Number(v.split('@')[0]) <= 3000);
    expect(page3).toHaveLength(1000);
    // Files stream per chunk of pages: the first run's one chunk holds all four days, so the
    // re-run replaces that chunk: one re-exported file (day 2) and the chunk's four files carried.
    expect(filesBefore).toHaveLength(4);
    expect(filesBefore.filter((f) => !filesAfter.includes(f))).toEqual(filesBefore);
    expect(filesAfter.filter((f) => !filesBefore.includes(f))).toHaveLength(5);
    // _current never went backwards: row 2,500 shows its last exported version until the next run
    const query = await LakeQuery.open(testConfig(tables), lake.store);
    const current = await query.query(`SELECT count(*)::int AS n, max(CASE WHEN id = 2500 THEN payload END) AS p2500 FROM repaired_current`);
    query.close();
    expect(current).toEqual([{ n: 5000, p2500: 'v1-2500' }]);
    lake.remove();
  });

  it('a full re-run re-exports what Postgres holds and keeps every version it no longer has', async () => {
    await db.query(`CREATE TABLE repaired_full (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO repaired_full SELECT g, 'v1-' || g, timestamptz '2024-05-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 2500) g`);
    const lake = createLake();
    const tables = [{ name: 'repaired_full' }];
    await exportOnce(lake, tables);
    await db.query(`UPDATE repaired_full SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 100 = 0`);
    expect((await exportOnce(lake, tables)).tables[0]).toMatchObject({ status: 'succeeded', rows: 25 });
    const before = await lakeVersions(lake, 'repaired_full');
    expect(before).toHaveLength(2525);
    await db.query(`UPDATE repaired_full SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id = 1000`);
    const [v3] = await db.query(`SELECT id || '@' || (extract(epoch FROM updated_at) * 1000000)::bigint || '=' || payload AS v FROM repaired_full WHERE id = 1000`);
    const deps = exportDeps(db, lake.store, testConfig(tables));
    const full = await runExport(deps, { full: true }).finally(() => deps.close());
    expect(full.tables[0]).toMatchObject({ status: 'succeeded', rows: 2500 });
    // the v1 versions of the 25 updated rows and v2-1000 are history: kept, once; v3-1000 landed
    expect(await lakeVersions(lake, 'repaired_full')).toEqual([...before, v3.v].sort());
    lake.remove();
  });
});

describe('a store fault after the commit point', () => {
  it('is retried at once: the run succeeds and leaves no replaced file visible', async () => {
    await db.query(`CREATE TABLE aftercommit (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT '2024-06-01');
      INSERT INTO aftercommit (id, payload) SELECT g, 'v' || g FROM generate_series(1, 1500) g`);
    const lake = createLake();
    const tables = [{ name: 'aftercommit' }];
    await exportOnce(lake, tables);
    // S3 answers 503 once when the re-run's manifest is written, just after its watermark.
    let failures = 0;
    const store = faultyStore(lake.store, {
      put: async (key, body, options) => {
        if (key.includes('/_state/aftercommit/runs/') && failures++ === 0) throw Object.assign(new Error('We encountered an internal error.'), { name: 'InternalError', $metadata: { httpStatusCode: 503 } });
        return lake.store.put(key, body, options);
      },
    });
    const deps = exportDeps(db, store, testConfig(tables));
    const rerun = await runExport(deps, { full: true }).finally(() => deps.close());
    expect(failures).toBe(2);
    expect(rerun.tables[0]).toMatchObject({ status: 'succeeded', rows: 1500 });
    const [{ n, versions }] = await duckdb<{ n: number; versions: number }>(`SELECT count(*)::int AS n, count(DISTINCT (id, updated_at))::int AS versions FROM read_parquet(${parquetGlob(lake, 'aftercommit')})`);
    expect({ n, versions }).toEqual({ n: 1500, versions: 1500 });
    expect(await lake.store.list('raw/_state/aftercommit/pending/')).toEqual([]);
    lake.remove();
  });
});

describe('a transient store fault while planning one table', () => {
  it('fails only that table, marked transient (the Plan step retries it); the other is planned', async () => {
    await db.query(`CREATE TABLE plan_ok (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01');
      CREATE TABLE plan_shaky (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01')`);
    const lake = createLake();
    const store = faultyStore(lake.store, {
      // what the S3 adapter raises once its client's retries are spent
      get: async (key) => { if (key === 'raw/_state/plan_shaky/watermark.json') throw new ThrottlingError('S3 GET raw/_state/plan_shaky/watermark.json failed after the client\'s retries: SlowDown'); return lake.store.get(key); },
    });
    const deps = exportDeps(db, store, testConfig([{ name: 'plan_ok' }, { name: 'plan_shaky' }]));
    const plan = await planRun(deps).finally(() => deps.close());
    expect(plan.tables.map((t) => t.table)).toEqual(['plan_ok']);
    expect(plan.failed).toEqual([{ table: 'plan_shaky', error: "ThrottlingError: S3 GET raw/_state/plan_shaky/watermark.json failed after the client's retries: SlowDown", transient: true }]);
    // its lease was given back: the retried plan (or the next run) takes it at once
    expect(await lake.store.get('raw/_state/plan_shaky/lease.json')).toBeNull();
    lake.remove();
  });
});

describe('the partition projection follows the data', () => {
  it('covers the years written through next year, and widens before a file in a new year is visible', async () => {
    // partitioned by a business date: rows can land in any year, past or future
    await db.query(`CREATE TABLE by_booking (id int PRIMARY KEY, booked date NOT NULL, updated_at timestamptz NOT NULL DEFAULT '2024-06-01');
      INSERT INTO by_booking VALUES (1, '2023-03-01'), (2, '2024-07-01')`);
    const lake = createLake();
    const events: string[] = [];
    const registry = { register: async (table: string, schema: LakeSchema) => { events.push(`register ${table} ${schema.years?.from}-${schema.years?.to}`); } };
    const store = faultyStore(lake.store, {
      move: async (from, to) => { events.push(`publish year=${partitionYearOf(to)}`); return lake.store.move(from, to); },
    });
    const tables = [{ name: 'by_booking', partitionBy: 'booked' }];
    const run = async () => {
      const deps = { ...exportDeps(db, store, testConfig(tables)), registry };
      try { return await runExport(deps); } finally { await deps.close(); }
    };
    const next = new Date().getUTCFullYear() + 1;
    expect((await run()).tables[0].status).toBe('succeeded');
    const schema = async () => JSON.parse((await lake.store.get('raw/_state/by_booking/schema.json'))!.body.toString()) as LakeSchema;
    expect((await schema()).years).toEqual({ from: 2023, to: next });
    // a first commit registers after publishing: there is no table before it
    expect(events).toEqual(['publish year=2023', 'publish year=2024', `register by_booking 2023-${next}`]);
    events.length = 0;
    await db.query(`INSERT INTO by_booking (id, booked, updated_at) VALUES (3, '1999-12-31', clock_timestamp()), (4, '${next + 3}-01-01', clock_timestamp())`);
    expect((await run()).tables[0].status).toBe('succeeded');
    // widened before the 1999 and future files were published, then registered with the new schema
    expect(events).toEqual([`register by_booking 1999-${next + 3}`, 'publish year=1999', `publish year=${next + 3}`, `register by_booking 1999-${next + 3}`]);
    expect((await schema()).years).toEqual({ from: 1999, to: next + 3 });
    lake.remove();
  });
});

describe('keys exported as text (found by the fuzzer)', () => {
  it('page in the key\'s own order, not its text\'s: no row lost at a page boundary', async () => {
    // ORDER BY "k" would sort by the output column "k"::text ('it''s' < 'with space', '10' < '9')
    // while the keyset compares enums by declaration and numerics by value.
    await db.query(`CREATE TYPE mood AS ENUM ('with space', 'it''s');
      CREATE TABLE enum_key (k mood PRIMARY KEY, v text);
      INSERT INTO enum_key VALUES ('it''s', 'a'), ('with space', 'b');
      CREATE TABLE wide_key (k numeric(50,0) PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT '2024-01-01');
      INSERT INTO wide_key VALUES (9, 'a'), (10, 'b'), (100, 'c')`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'enum_key', mode: 'snapshot' }, { name: 'wide_key' }], { export: { pageRows: 1 } });
    expect(outcome.tables.map((t) => [t.table, t.status, t.rows])).toEqual([['enum_key', 'succeeded', 2], ['wide_key', 'succeeded', 3]]);
    const wide = await duckdb<{ k: string }>(`SELECT k FROM read_parquet(${parquetGlob(lake, 'wide_key')}) ORDER BY v`);
    expect(wide.map((r) => r.k)).toEqual(['9', '10', '100']);
    lake.remove();
  });
});

describe('arrays of domains (found by the fuzzer)', () => {
  it('map like arrays of their base type', async () => {
    await db.query(`CREATE DOMAIN grams AS numeric(8,3); CREATE DOMAIN day_d AS date;
      CREATE TABLE domain_arrays (id int8 PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-01-01', g grams[], dd day_d[]);
      INSERT INTO domain_arrays (id, g, dd) VALUES (1, '{1.5,2,NULL}', '{2024-01-01,1999-12-31}'), (2, '{}', NULL)`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'domain_arrays' }]);
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 2 });
    expect(outcome.warnings).toEqual([]);
    const rows = await duckdb<{ g: string; dd: string; gt: string; dt: string }>(`SELECT CAST(g AS VARCHAR) AS g, CAST(dd AS VARCHAR) AS dd, typeof(g) AS gt, typeof(dd) AS dt FROM read_parquet(${parquetGlob(lake, 'domain_arrays')}) ORDER BY id`);
    expect(rows).toEqual([
      { g: '[1.500, 2.000, NULL]', dd: '[2024-01-01, 1999-12-31]', gt: 'DECIMAL(8,3)[]', dt: 'DATE[]' },
      { g: '[]', dd: null, gt: 'DECIMAL(8,3)[]', dt: 'DATE[]' },
    ]);
    lake.remove();
  });
});

describe('a column named like a partition column', () => {
  it('fails the table by name instead of being hidden by the year=… folders', async () => {
    await db.query(`CREATE TABLE has_year (id int PRIMARY KEY, "Year" int, updated_at timestamptz NOT NULL DEFAULT '2024-01-01');
      INSERT INTO has_year VALUES (1, 1999)`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'has_year' }]);
    expect(outcome.tables[0]).toMatchObject({ status: 'failed', error: 'SchemaMismatchError: public.has_year: column "Year" collides with the partition column year; exclude it (columns.exclude) or export it through a view that renames it' });
    expect((await exportOnce(lake, [{ name: 'has_year', columns: { exclude: ['Year'] } }])).tables[0]).toMatchObject({ status: 'succeeded', rows: 1 });
    lake.remove();
  });
});

describe('found by an independent check', () => {
  it('a key with a backslash pages once in a database whose standard_conforming_strings is off', async () => {
    const url = await (await startPostgres()).createDatabase(`scs_off_${process.pid}`);
    const other = new pg.Client(url);
    await other.connect();
    try {
      await other.query(`ALTER DATABASE "scs_off_${process.pid}" SET standard_conforming_strings = off`);
      await other.query(`CREATE TABLE bk (k text PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-01-01', v int);
        INSERT INTO bk (k, v) VALUES (E'a\\\\1', 1), (E'b\\\\', 2), ('c', 3)`);
    } finally {
      await other.end();
    }
    const lake = createLake();
    const deps = { source: new PostgresSource(url), store: lake.store, config: testConfig([{ name: 'bk' }], { export: { pageRows: 1 } }) };
    const outcome = await runExport(deps).finally(() => deps.source.close());
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 3 });
    const keys = await duckdb<{ k: string }>(`SELECT k FROM read_parquet(${parquetGlob(lake, 'bk')}) ORDER BY k`);
    expect(keys.map((r) => r.k)).toEqual(['a\\1', 'b\\', 'c']);
    lake.remove();
  });

  it('"char" values read back as Postgres prints them: a high byte, a zero byte, arrays of them', async () => {
    await db.query(`CREATE TABLE raw_char (id int PRIMARY KEY, c "char", cs "char"[], updated_at timestamptz NOT NULL DEFAULT '2024-01-01');
      INSERT INTO raw_char (id, c, cs) VALUES (1, '\\377', ARRAY['\\200'::"char", 'a']), (2, '', ARRAY[''::"char"]), (3, 'a', NULL)`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'raw_char' }]);
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 3 });
    const want = await db.query(`SELECT c::text AS c, cs::text[]::text AS cs FROM raw_char ORDER BY id`);
    const got = await duckdb<{ c: string; cs: string | null }>(`SELECT c, CAST(cs AS VARCHAR) AS cs FROM read_parquet(${parquetGlob(lake, 'raw_char')}) ORDER BY id`);
    expect(got.map((r) => r.c)).toEqual(want.map((r) => r.c));
    expect(got.map((r) => r.c)).toEqual(['\\377', '', 'a']);
    // one element, the empty string; DuckDB prints an array of strings without quotes unless empty
    expect(got.map((r) => r.cs)).toEqual(['[\\200, a]', "['']", null]);
    lake.remove();
  });

  it('rows whose cursor is infinity are counted and reported like NULL cursors, never silently skipped', async () => {
    await db.query(`CREATE TABLE inf_cursor (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO inf_cursor VALUES (1, '2024-01-01'), (2, 'infinity'), (3, '2024-01-02')`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'inf_cursor' }]);
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 2, nullCursorRows: 1 });
    lake.remove();
  });

  it('a one-instant window re-exports the rows that share it; an infinite bound is a usage error naming it', async () => {
    await db.query(`CREATE TABLE one_instant (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
      INSERT INTO one_instant SELECT g, 'v', '2024-03-01 12:00:00+00' FROM generate_series(1, 5) g;
      INSERT INTO one_instant VALUES (6, 'v', '2024-03-02')`);
    const lake = createLake();
    const tables = [{ name: 'one_instant' }];
    await exportOnce(lake, tables);
    await db.query(`UPDATE one_instant SET v = 'fixed' WHERE id <= 5`);
    const deps = exportDeps(db, lake.store, testConfig(tables));
    try {
      expect((await runExport(deps, { window: { from: '2024-03-01 12:00:00+00', to: '2024-03-01 12:00:00+00' } })).tables[0]).toMatchObject({ status: 'succeeded', rows: 5 });
      await expect(runExport(deps, { window: { from: '2023-01-01', to: 'infinity' } })).rejects.toThrow('window.to: "infinity" is not a timestamp Postgres understands (±infinity is not an instant a window can start or end at (a window ends at the watermark anyway))');
    } finally {
      await deps.close();
    }
    const rows = await duckdb<{ v: string; n: number }>(`SELECT v, count(*)::int AS n FROM read_parquet(${parquetGlob(lake, 'one_instant')}) GROUP BY v ORDER BY v`);
    expect(rows).toEqual([{ v: 'fixed', n: 5 }, { v: 'v', n: 1 }]);
    lake.remove();
  });
});

describe('a writer killed mid-write (found by the chaos suite)', () => {
  it('its temporary file is removed by the next plan of the table, whatever runs it', async () => {
    await db.query(`CREATE TABLE killed_writer (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-01-01');
      INSERT INTO killed_writer VALUES (1)`);
    const lake = createLake();
    const tables = [{ name: 'killed_writer' }];
    await exportOnce(lake, tables);
    // as the directory lake names a temporary file: its writer's pid (dead here), then a uuid
    const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString());
    const temp = path.join(lake.dir, 'raw', '_state', 'killed_writer', 'runs', `r.json.${dead}-0b0e6d1c-7e55-4b1f-9f0b-1b2c3d4e5f60.tmp`);
    writeFileSync(temp, 'half a manifest');
    const deps = exportDeps(db, lake.store, testConfig(tables));
    const [planned] = (await planRun(deps)).tables;
    expect(existsSync(temp)).toBe(false);
    let task = planned;
    while (!task.done) task = await exportTable(deps, task);
    await commitTable(deps, task);
    await deps.close();
    lake.remove();
  });
});

describe('two takeovers racing (found by the chaos suite)', () => {
  it('a run that loses the lease while recovering leaves the new holder\'s run alone, and that run commits', async () => {
    await db.query(`CREATE TABLE raced (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-01-01');
      INSERT INTO raced SELECT g FROM generate_series(1, 10) g`);
    const lake = createLake();
    const tables = [{ name: 'raced' }];
    const config = testConfig(tables);
    // Run B plans (its pending run is written, it holds the lease)...
    const b = exportDeps(db, lake.store, config);
    const [taskB] = (await planRun(b, { runId: 'run-b' })).tables;
    // ...then run A takes the lease over, and B takes it back right after: A's recovery has
    // already listed B's pending run, and must not remove it.
    let retaken = false;
    const store = faultyStore(lake.store, {
      put: async (key, body, options) => {
        const done = await lake.store.put(key, body, options);
        if (done && !retaken && key.endsWith('/raced/lease.json') && String(body).includes('run-a')) {
          retaken = true;
          await lake.store.put(key, JSON.stringify({ runId: 'run-b', expiresAt: new Date(Date.now() + 300_000).toISOString() }));
        }
        return done;
      },
    });
    const a = exportDeps(db, store, config);
    const planA = await planRun(a, { runId: 'run-a', takeOver: true });
    await a.close();
    expect(planA.failed).toEqual([{ table: 'raced', error: 'WindowConflictError: raced: run run-a lost the table\'s lease (now held by run-b) while recovering earlier runs; it stops without touching them' }]);
    expect(await lake.store.get('raw/_state/raced/pending/run-b/run.json')).not.toBeNull();
    let task = taskB;
    while (!task.done) task = await exportTable(b, task);
    expect(await commitTable(b, task)).toMatchObject({ status: 'succeeded', rows: 10 });
    await b.close();
    lake.remove();
  });
});

describe('a user-asserted key that is not unique', () => {
  it('fails the table naming the key values, at any page size, and exports once it is unique', async () => {
    // (1,x),(1,x),(2,y) with primaryKey [a]: a keyset on (updated_at, a) keeps one of the two
    // rows with key 1 or both depending on where a page ends, and _current hides one.
    await db.query(`CREATE TABLE dupkey (a int, b text, updated_at timestamptz NOT NULL DEFAULT '2024-03-01');
      INSERT INTO dupkey (a, b) VALUES (1, 'x'), (1, 'x'), (2, 'y')`);
    const tables = [{ name: 'dupkey', primaryKey: ['a'] }];
    for (const pageRows of [1, 1000]) {
      const lake = createLake();
      const outcome = await exportOnce(lake, tables, { export: { pageRows } });
      expect(outcome.tables[0]).toMatchObject({ status: 'failed', rows: 0 });
      expect(outcome.tables[0].error).toBe('ConfigError: public.dupkey: primaryKey "a" is not unique in this run\'s window: (a=1) ×2; rows sharing a key would be lost at page boundaries and hide each other in dupkey_current: set tables[].primaryKey to columns that identify a row');
      expect(await lake.store.list('')).toEqual([]);
      lake.remove();
    }
    const lake = createLake();
    const composite = await exportOnce(lake, [{ name: 'dupkey', primaryKey: ['a', 'b'] }], { export: { pageRows: 1 } });
    expect(composite.tables[0].error).toBe('ConfigError: public.dupkey: primaryKey "a", "b" is not unique in this run\'s window: (a=1, b=x) ×2; rows sharing a key would be lost at page boundaries and hide each other in dupkey_current: set tables[].primaryKey to columns that identify a row');
    await db.query(`DELETE FROM dupkey WHERE ctid = (SELECT max(ctid) FROM dupkey WHERE a = 1)`);
    const done = await exportOnce(lake, tables, { export: { pageRows: 1 } });
    expect(done.tables[0]).toMatchObject({ status: 'succeeded', rows: 2 });
    lake.remove();
  });
});

describe('a prepared (two-phase) transaction', () => {
  it('holds the window at the watermark until COMMIT PREPARED, so its late rows are exported, not lost', async () => {
    await db.query(`CREATE TABLE twophase (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
      INSERT INTO twophase (id, v) VALUES (1, 'a')`);
    const lake = createLake();
    const tables = [{ name: 'twophase' }];
    expect((await exportOnce(lake, tables)).tables[0]).toMatchObject({ status: 'succeeded', rows: 1 });
    // A transaction writes with its start time as updated_at, is prepared (it leaves its
    // session, so pg_stat_activity no longer shows it), and commits only after later rows.
    const writer = await db.connect();
    await writer.query(`BEGIN; INSERT INTO twophase (id, v, updated_at) VALUES (2, 'late', now()); PREPARE TRANSACTION 'lake-test-2pc'`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await db.query(`INSERT INTO twophase (id, v) VALUES (3, 'after')`);
    const held = await exportOnce(lake, tables);
    expect(held.tables[0]).toMatchObject({ status: 'succeeded', rows: 0 });
    expect(held.warnings.some((w) => w.startsWith('prepared transaction "lake-test-2pc" (since '))).toBe(true);
    await writer.query(`COMMIT PREPARED 'lake-test-2pc'`);
    await writer.end();
    expect((await exportOnce(lake, tables)).tables[0]).toMatchObject({ status: 'succeeded', rows: 2 });
    const ids = await duckdb<{ id: number }>(`SELECT id FROM read_parquet(${parquetGlob(lake, 'twophase')}) ORDER BY id`);
    expect(ids.map((r) => r.id)).toEqual([1, 2, 3]);
    lake.remove();
  });

  it('holds only the tables it wrote (or a parent of them); the others move on', async () => {
    await db.query(`CREATE TABLE twophase_written (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
      CREATE TABLE twophase_child () INHERITS (twophase_written);
      CREATE TABLE twophase_other (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
      INSERT INTO twophase_written (id) VALUES (1); INSERT INTO twophase_other (id) VALUES (1)`);
    const lake = createLake();
    const tables = [{ name: 'twophase_written' }, { name: 'twophase_other' }];
    expect((await exportOnce(lake, tables)).tables.map((t) => t.status)).toEqual(['succeeded', 'succeeded']);
    const writer = await db.connect();
    // written through a child table: the parent is what the lake exports
    await writer.query(`BEGIN; INSERT INTO twophase_child (id, updated_at) VALUES (2, now()); PREPARE TRANSACTION 'lake-test-child'`);
    await db.query(`INSERT INTO twophase_written (id) VALUES (3); INSERT INTO twophase_other (id) VALUES (2)`);
    try {
      const held = await exportOnce(lake, tables);
      expect(Object.fromEntries(held.tables.map((t) => [t.table, t.rows]))).toEqual({ twophase_written: 0, twophase_other: 1 });
      expect(held.warnings.filter((w) => w.startsWith('prepared transaction'))).toEqual([expect.stringMatching(/^prepared transaction "lake-test-child" \(since [^)]+\) holds public\.twophase_written at the watermark until it ends/)]);
    } finally {
      await writer.query(`COMMIT PREPARED 'lake-test-child'`);
      await writer.end();
    }
    expect((await exportOnce(lake, tables)).tables.map((t) => [t.table, t.rows])).toEqual([['twophase_written', 2], ['twophase_other', 0]]);
    lake.remove();
  });

  it('a session with track_activities off is held back like one: its late row is exported, not lost', async () => {
    await db.query(`CREATE TABLE hidden_writer (id int PRIMARY KEY, v int, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
      INSERT INTO hidden_writer (id, v) VALUES (1, 0)`);
    const lake = createLake();
    const tables = [{ name: 'hidden_writer' }];
    await exportOnce(lake, tables);
    // It shows no xact_start in pg_stat_activity, but holds a transaction id and its locks.
    const writer = await db.connect();
    await writer.query(`SET track_activities = off; BEGIN; UPDATE hidden_writer SET v = 1, updated_at = now() WHERE id = 1`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await db.query(`INSERT INTO hidden_writer (id, v) VALUES (2, 0)`);
    try {
      const held = await exportOnce(lake, tables);
      expect(held.tables[0]).toMatchObject({ status: 'succeeded', rows: 0 });
      expect(held.warnings.filter((w) => w.startsWith('session pid'))).toEqual([expect.stringMatching(/^session pid \d+ \(track_activities off\) \(since [^)]+\) holds public\.hidden_writer at the watermark until it ends/)]);
    } finally {
      await writer.query('COMMIT');
      await writer.end();
    }
    expect((await exportOnce(lake, tables)).tables[0]).toMatchObject({ status: 'succeeded', rows: 2 });
    const rows = await duckdb<{ id: number; v: number }>(`SELECT id, v FROM read_parquet(${parquetGlob(lake, 'hidden_writer')}) ORDER BY id, updated_at`);
    expect(rows).toEqual([{ id: 1, v: 0 }, { id: 1, v: 1 }, { id: 2, v: 0 }]);
    lake.remove();
  });

  it('a table never exported waits for it, by name, instead of guessing a bound', async () => {
    await db.query(`CREATE TABLE twophase_new (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`);
    const writer = await db.connect();
    await writer.query(`BEGIN; INSERT INTO twophase_new (id) VALUES (1); PREPARE TRANSACTION 'lake-test-first'`);
    const lake = createLake();
    try {
      const outcome = await exportOnce(lake, [{ name: 'twophase_new' }]);
      expect(outcome.tables[0].status).toBe('skipped');
      expect(outcome.tables[0].error).toMatch(/^public\.twophase_new: skipped, prepared transaction "lake-test-first" \(since [^)]+\) may hold rows of any age; the first export waits until it ends/);
    } finally {
      await writer.query(`ROLLBACK PREPARED 'lake-test-first'`);
      await writer.end();
    }
    expect((await exportOnce(lake, [{ name: 'twophase_new' }])).tables[0]).toMatchObject({ status: 'succeeded', rows: 0 });
    lake.remove();
  });
});

describe('columns.hash', () => {
  it('exports PII as salted SHA-256 of its text; the salt is never in the lake or the query', async () => {
    await db.query(`CREATE TABLE members (id int PRIMARY KEY, email text, born date, updated_at timestamptz NOT NULL DEFAULT '2024-02-01');
      INSERT INTO members (id, email, born) VALUES (1, 'ada@example.com', '1815-12-10'), (2, NULL, NULL), (3, 'ada@example.com', '1906-12-09')`);
    const lake = createLake();
    const tables = [{ name: 'members', columns: { hash: ['email', 'born'] } }];
    const noSalt = exportDeps(db, lake.store, testConfig(tables));
    expect((await runExport(noSalt)).tables).toMatchObject([{ table: 'members', status: 'failed', error: 'ConfigError: public.members: columns.hash needs a salt: set LAKE_HASH_SALT (locally) or source.hashSaltSecretArn (deployed)' }]);
    await noSalt.close();
    expect(await lake.store.list('')).toEqual([]);

    const salt = 'pepper-and-salt';
    const queries: string[] = [];
    const deps = { ...exportDeps(db, lake.store, testConfig(tables)), hashSalt: salt };
    const copyBinary = deps.source.copyBinary.bind(deps.source);
    deps.source.copyBinary = async (sql: string) => { queries.push(sql); return copyBinary(sql); };
    expect((await runExport(deps)).tables[0]).toMatchObject({ status: 'succeeded', rows: 3 });
    await deps.close();
    const rows = await duckdb<{ id: number; email: string | null; born: string | null }>(`SELECT id, email, born FROM read_parquet(${parquetGlob(lake, 'members')}) ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, email: hashText('ada@example.com', salt), born: hashText('1815-12-10', salt) },
      { id: 2, email: null, born: null },
      { id: 3, email: hashText('ada@example.com', salt), born: hashText('1906-12-09', salt) },
    ]);
    expect(rows[0].email).toMatch(/^[0-9a-f]{64}$/);
    expect(queries.length).toBeGreaterThan(0);
    expect(queries.some((q) => q.includes(salt))).toBe(false);
    for (const key of await lake.store.list('')) expect((await lake.store.get(key))!.body.includes(salt), key).toBe(false);
    lake.remove();
  });
});

describe('mode: snapshot', () => {
  it('copies the whole table every run and replaces the previous snapshot, with or without a cursor column', async () => {
    await db.query(`CREATE TABLE currencies (code char(3) PRIMARY KEY, name text, rate numeric(12,6));
      INSERT INTO currencies VALUES ('EUR', 'Euro', 1), ('USD', 'US dollar', 1.08), ('JPY', 'Yen', 161.5)`);
    const lake = createLake();
    const tables = [{ name: 'currencies', mode: 'snapshot' }];
    const first = await exportOnce(lake, tables);
    expect(first.tables[0]).toMatchObject({ status: 'succeeded', rows: 3 });
    await db.query(`UPDATE currencies SET rate = 1.09 WHERE code = 'USD'; DELETE FROM currencies WHERE code = 'JPY'; INSERT INTO currencies VALUES ('CHF', 'Franc', 0.94)`);
    const second = await exportOnce(lake, tables);
    expect(second.tables[0]).toMatchObject({ status: 'succeeded', rows: 3 });
    const query = await LakeQuery.open(testConfig(tables), lake.store);
    const rows = await query.query('SELECT code, name, CAST(rate AS VARCHAR) AS rate, _lake_run_id AS run FROM currencies ORDER BY code');
    const current = await query.query('SELECT count(*) AS n FROM currencies_current');
    query.close();
    expect(rows.map(({ run: _run, ...r }) => r)).toEqual([
      { code: 'CHF', name: 'Franc', rate: '0.940000' },
      { code: 'EUR', name: 'Euro', rate: '1.000000' },
      { code: 'USD', name: 'US dollar', rate: '1.090000' },
    ]);
    expect(new Set(rows.map((r) => r.run))).toEqual(new Set([second.runId]));
    expect(current).toEqual([{ n: '3' }]);
    // only the latest snapshot's files remain, under its own folder
    const files = (await lake.store.list('raw/currencies/')).filter((k) => k.endsWith('.parquet'));
    expect(files.length).toBeGreaterThan(0);
    expect(files.every((k) => k.startsWith(`raw/currencies/snapshot=${second.runId}/year=`))).toBe(true);
    lake.remove();
  });
});

describe('a NULL key that arrives after Plan checked the window', () => {
  it('stops the export at the page that ends on it, by name, instead of resuming after a NULL', async () => {
    await db.query(`CREATE TABLE latenull (k text, updated_at timestamptz NOT NULL);
      INSERT INTO latenull SELECT lpad(g::text, 4, '0'), '2024-02-01' FROM generate_series(1, 999) g`);
    const lake = createLake();
    const deps = exportDeps(db, lake.store, testConfig([{ name: 'latenull', primaryKey: ['k'] }]));
    try {
      const [task] = (await planRun(deps, {}, new Date())).tables;
      // Row 1,000 of the first page: a later cursor, so the page's last row has a NULL key.
      await db.query(`INSERT INTO latenull VALUES (NULL, '2024-02-02'), ('x', '2024-02-03')`);
      await expect(exportTable(deps, task)).rejects.toThrow('public.latenull: page 1 ends on a row whose "k" is NULL; a keyset cannot page past a NULL key without losing rows: set tables[].primaryKey to columns that are never NULL, or make them NOT NULL');
    } finally {
      await deps.close();
    }
    lake.remove();
  });
});

describe('wall-clock cursors of writers in another zone (cursorTimeZone)', () => {
  async function newYorkSession() {
    const session = await db.connect();
    await session.query("SET TimeZone = 'America/New_York'");
    return session;
  }

  it('a timestamp cursor: a New York transaction that commits late is exported by the next run, not lost', async () => {
    // `timestamp DEFAULT now()` stores the writer's wall clock: New York time, 4–5 hours behind UTC.
    await db.query(`CREATE TABLE ny_events (id int PRIMARY KEY, updated_at timestamp NOT NULL DEFAULT now())`);
    const writer = await newYorkSession();
    await writer.query(`INSERT INTO ny_events (id) VALUES (1)`);
    const late = await newYorkSession();
    await late.query('BEGIN');
    await late.query(`INSERT INTO ny_events (id) VALUES (2)`); // updated_at = this transaction's start
    await new Promise((r) => setTimeout(r, 20));
    await writer.query(`INSERT INTO ny_events (id) VALUES (3)`); // committed, newer than row 2
    const tables = [{ name: 'ny_events', cursorTimeZone: 'America/New_York' }];
    const lake = createLake();
    const first = await exportOnce(lake, tables);
    // The open transaction holds the window back in New York time too: rows 2 and 3 wait.
    expect(first.tables[0]).toMatchObject({ status: 'succeeded', rows: 1 });
    await late.query('COMMIT');
    const second = await exportOnce(lake, tables);
    expect(second.tables[0]).toMatchObject({ status: 'succeeded', rows: 2 });
    expect((await lakeRows(lake, 'ny_events', 'CAST(id AS VARCHAR) AS id')).map((r) => r.id)).toEqual(['1', '2', '3']);
    // A re-run of a window given in instants finds the pages by their New York keys: the same
    // rows again, each once (the pages it replaces are gone).
    const deps = exportDeps(db, lake.store, testConfig(tables));
    const rerun = await runExport(deps, { window: { from: '2000-01-01', to: '2100-01-01' } }).finally(() => deps.close());
    expect(rerun.tables[0]).toMatchObject({ status: 'succeeded', rows: 3 });
    expect((await lakeRows(lake, 'ny_events', 'CAST(id AS VARCHAR) AS id')).map((r) => r.id)).toEqual(['1', '2', '3']);
    await Promise.all([late.end(), writer.end()]);
    lake.remove();
  });

  it('setting cursorTimeZone on a table already exported: the next run starts at the wall time the last one reached', async () => {
    await db.query(`CREATE TABLE berlin_events (id int PRIMARY KEY, updated_at timestamp NOT NULL DEFAULT now())`);
    const writer = await db.connect();
    await writer.query("SET TimeZone = 'Europe/Berlin'");
    await writer.query(`INSERT INTO berlin_events (id) SELECT g FROM generate_series(1, 3) g`);
    const lake = createLake();
    // Read as UTC, Berlin's wall clock is ahead of the window's end: the rows wait.
    const asUtc = await exportOnce(lake, [{ name: 'berlin_events' }]);
    expect(asUtc.tables[0]).toMatchObject({ status: 'succeeded', rows: 0 });
    // Read in Berlin time from now on: the window starts where the UTC reading stopped (an hour
    // before the watermark instant), so the waiting rows are exported, once.
    const asBerlin = await exportOnce(lake, [{ name: 'berlin_events', cursorTimeZone: 'Europe/Berlin' }]);
    expect(asBerlin.tables[0]).toMatchObject({ status: 'succeeded', rows: 3 });
    expect(asBerlin.tables[0].windowFrom! < asUtc.tables[0].windowTo!).toBe(true);
    expect((await new TableState(lake.store, 'raw', 'berlin_events').watermark())?.cursorTimeZone).toBe('Europe/Berlin');
    expect((await lakeRows(lake, 'berlin_events', 'CAST(id AS VARCHAR) AS id')).map((r) => r.id)).toEqual(['1', '2', '3']);
    await writer.end();
    lake.remove();
  });

  it('a date cursor: a day is exported once it has ended where its writers are', async () => {
    // A zone whose date differs from UTC's right now, whatever the hour: Pago Pago (UTC−11) is
    // still on yesterday until 11:00 UTC; Kiritimati (UTC+14) is on tomorrow from 10:00 UTC.
    const zone = new Date().getUTCHours() < 10 ? 'Pacific/Pago_Pago' : 'Pacific/Kiritimati';
    const local = `(now() AT TIME ZONE '${zone}')::date`;
    await db.query(`CREATE TABLE zoned_daily (id int PRIMARY KEY, d date NOT NULL);
      INSERT INTO zoned_daily VALUES (1, ${local} - 1), (2, ${local})`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'zoned_daily', cursor: 'd', cursorTimeZone: zone }]);
    const [yesterday] = await db.query(`SELECT to_char(${local} - 1, 'YYYY-MM-DD') || ' 00:00:00.000000+00' AS t`);
    // Their yesterday is over, their today is not: in UTC days both would be wrong by one.
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 1, windowTo: yesterday.t });
    lake.remove();
  });

  it('refuses a zone that does not exist, or one given for a timestamptz cursor', async () => {
    const lake = createLake();
    await expect(exportOnce(lake, [{ name: 'ny_events', cursorTimeZone: 'America/Gotham' }])).rejects.toThrow('test config: tables[0].cursorTimeZone: must be an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)');
    await db.query(`CREATE TABLE tz_events (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`);
    expect((await exportOnce(lake, [{ name: 'tz_events', cursorTimeZone: 'Europe/Berlin' }])).tables).toMatchObject([{ status: 'failed', error: 'SchemaMismatchError: public.tz_events: cursorTimeZone "Europe/Berlin" applies to a timestamp or date cursor; "updated_at" is timestamp with time zone (instants)' }]);
    expect(await lake.store.list('')).toEqual([]);
    lake.remove();
  });
});

describe('date cursors', () => {
  it('export whole days only: today is not over, so its rows wait for tomorrow', async () => {
    await db.query(`CREATE TABLE daily (id int PRIMARY KEY, d date NOT NULL);
      INSERT INTO daily VALUES (1, current_date - 2), (2, current_date - 1), (3, current_date)`);
    const lake = createLake();
    const outcome = await exportOnce(lake, [{ name: 'daily', cursor: 'd' }]);
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 2 });
    const [yesterday] = await db.query(`SELECT to_char(current_date - 1, 'YYYY-MM-DD') || ' 00:00:00.000000+00' AS t`);
    expect(outcome.tables[0].windowTo).toBe(yesterday.t);
    // a row written later today, with today's date, is inside the next window, not behind the watermark
    await db.query(`INSERT INTO daily VALUES (4, current_date)`);
    const again = await exportOnce(lake, [{ name: 'daily', cursor: 'd' }]);
    expect(again.tables[0]).toMatchObject({ status: 'succeeded', rows: 0, windowFrom: yesterday.t });
    lake.remove();
  });
});
