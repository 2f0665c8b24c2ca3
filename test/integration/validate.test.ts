// Post-commit validation over a real lake written by the real exporter: `pg-lake-export validate`
// as a user runs it (DuckDB), the same check through the Athena adapter and the Athena stand-in,
// and a tampered lake (a published file copied under a second name) that both must catch, naming
// the partition and the duplicated keys.
import { AthenaClient } from '@aws-sdk/client-athena';
import { copyFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AthenaEngine } from '../../lambdas/adapters/athena-engine.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { parseConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import type { QueryEngine } from '../../lambdas/core/ports.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { validateRun, type ValidationResult } from '../../lambdas/core/lake/validate.ts';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { AthenaStandin } from '../support/athena-standin.ts';
import { cli } from '../support/cli.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const CONFIG = `export: { safetyLagSeconds: 0, pageRows: 400 }
tables:
  - name: public.orders
  - name: public.events
    cursorTimeZone: America/New_York
  - name: public.later
  - name: public.daily
    cursor: d
  - name: public.snap
    mode: snapshot
`;

describe('validate: a committed run against what the engine sees', () => {
  let db: TestDatabase;
  let lake: TestLake;
  let configFile: string;
  let config: LakeConfig;
  let lakeUrl: string;
  let lakeDir: string;
  let store: DirectoryStore;

  const state = (table: string) => new TableState(store, 'raw', table);
  const lastManifest = async (table: string): Promise<RunManifest> => {
    const s = state(table);
    const watermark = await s.watermark();
    return (await s.read<RunManifest>(s.manifestKey(watermark!.runId)))!.value;
  };
  /** Validate `table`'s last run with DuckDB and, through the stand-in, with Athena: both must agree. */
  const validateBoth = async (table: string): Promise<{ duckdb: ValidationResult; athena: ValidationResult; athenaQueries: number }> => {
    const lakeQuery = await LakeQuery.open(config, store);
    const local: QueryEngine = lakeQuery.engine();
    const standin = await AthenaStandin.start({ engine: local, pageSize: 3, polls: { queued: 1, running: 1 }, bytesScanned: 4096 });
    try {
      const duckdb = await validateRun(local, state(table));
      const athena = await validateRun(new AthenaEngine({
        client: new AthenaClient({ endpoint: standin.endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'AKIDSTANDIN', secretAccessKey: 'standin' }, maxAttempts: 1 }),
        workGroup: 'lake-wg', database: 'lake_db', firstPollMillis: 1,
      }), state(table));
      return { duckdb, athena, athenaQueries: standin.calls('StartQueryExecution').length };
    } finally {
      await standin.stop();
      await local.close();
    }
  };

  beforeAll(async () => {
    db = await createDatabase();
    await db.query(`
      CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2), updated_at timestamptz NOT NULL);
      INSERT INTO orders SELECT g, g / 4.0, '2024-03-01 00:00:00+00'::timestamptz + g * interval '173 seconds' + (g % 7) * interval '1 microsecond' FROM generate_series(1, 1500) g;
      CREATE TABLE events (region text, seq int, payload text, updated_at timestamp NOT NULL, PRIMARY KEY (region, seq));
      INSERT INTO events SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g, 'e' || g, '2024-03-01 20:00:00'::timestamp + g * interval '61 seconds' FROM generate_series(1, 900) g;
      CREATE TABLE later (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE daily (id int PRIMARY KEY, amount int, d date NOT NULL);
      INSERT INTO daily SELECT g, g * 10, DATE '2024-05-01' + g / 100 FROM generate_series(1, 450) g;
      CREATE TABLE snap (code text PRIMARY KEY, label text);
      INSERT INTO snap SELECT 'c' || g, 'label ' || g FROM generate_series(1, 120) g;`);
    lake = createLake();
    configFile = path.join(lake.dir, 'lake.config.yaml');
    writeFileSync(configFile, CONFIG);
    config = parseConfig(CONFIG, configFile);
    lakeUrl = `${lake.url}/lake`;
    // The lake proper is a folder beside the config file.
    store = new DirectoryStore(lakeUrl);
    lakeDir = path.join(lake.dir, 'lake');
    const run = await cli(['run', '--config', configFile, '--lake', lakeUrl, '--tables', 'orders,events,daily,snap', '--json'], { DATABASE_URL: db.url });
    expect(run.code, run.stderr).toBe(0);
  });

  afterAll(async () => {
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('a fresh export validates: exit 0, every table named with what was checked', async () => {
    const result = await cli(['validate', '--config', configFile, '--lake', lakeUrl]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const orders = await lastManifest('orders');
    const events = await lastManifest('events');
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(new RegExp(`^orders: ok: run ${orders.runId} \\(committed ${orders.committedAt.replace(/[.]/g, '\\.')}\\): 4 partitions, 1500 rows expected, 1500 seen; 0 duplicated versions; 2 queries, 0 bytes scanned$`));
    expect(lines[1]).toMatch(new RegExp(`^events: ok: run ${events.runId} .*: 2 partitions, 900 rows expected, 900 seen; 0 duplicated versions; 2 queries, 0 bytes scanned$`));
    expect(lines[2]).toBe('later: never committed, nothing to validate');
    expect(lines[3]).toMatch(/^daily: ok: run .*: 5 partitions, 450 rows expected, 450 seen; 0 duplicated versions; 2 queries, 0 bytes scanned$/);
    expect(lines[4]).toMatch(/^snap: ok: run .*: 1 partition, 120 rows expected, 120 seen; 0 duplicated versions; 2 queries, 0 bytes scanned$/);
  });

  it('a date cursor and a snapshot table: a copied file is caught in both', async () => {
    for (const table of ['daily', 'snap']) {
      const [file] = (await lastManifest(table)).pages[0].files;
      copyFileSync(path.join(lakeDir, file.key), path.join(lakeDir, path.dirname(file.key), `copy-${path.basename(file.key)}`));
    }
    const result = await cli(['validate', '--config', configFile, '--lake', lakeUrl, '--tables', 'daily,snap', '--json']);
    expect(result.code).toBe(1);
    const [daily, snap] = JSON.parse(result.stdout).tables;
    const dailyFile = (await lastManifest('daily')).pages[0].files[0];
    expect(daily.mismatches).toEqual([{ partition: 'year=2024/month=05/day=01', expected: dailyFile.rows, seen: 2 * dailyFile.rows }]);
    expect(daily.duplicates).toMatchObject({ versions: dailyFile.rows, extraRows: dailyFile.rows });
    expect(daily.duplicates.sample[0]).toEqual({ key: { id: '1' }, cursor: '2024-05-01', copies: 2 });
    expect(snap.mismatches).toEqual([{ partition: expect.stringMatching(/^year=\d{4}\/month=\d\d\/day=\d\d$/), expected: 120, seen: 240 }]);
    expect(snap.duplicates).toMatchObject({ versions: 120, extraRows: 120 });
    expect(snap.duplicates.sample[0]).toMatchObject({ key: { code: 'c1' }, copies: 2 });

    // A run that finds nothing new commits no files: validate still checks the run that did.
    const again = await cli(['run', '--config', configFile, '--lake', lakeUrl, '--tables', 'daily', '--json'], { DATABASE_URL: db.url });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).tables[0]).toMatchObject({ rows: 0, files: 0 });
    const empty = (await state('daily').watermark())!.runId;
    expect(empty).not.toBe(daily.runId);
    const after = await cli(['validate', '--config', configFile, '--lake', lakeUrl, '--tables', 'daily']);
    expect(after.code).toBe(1);
    expect(after.stdout).toContain(`daily: MISMATCH: run ${daily.runId} `);
    expect(after.stdout).toContain(`  daily: the last commit, run ${empty}, published no files (nothing new): validated the last run that did\n`);
  });

  it('the Athena adapter through the stand-in gives the same answer as DuckDB', async () => {
    for (const table of ['orders', 'events']) {
      const { duckdb, athena, athenaQueries } = await validateBoth(table);
      expect(athena).toEqual({ ...duckdb, bytesScanned: 2 * 4096 });
      expect(duckdb.ok).toBe(true);
      expect(athenaQueries).toBe(2);
    }
  });

  it('validates a window re-run whose pages carry earlier runs’ rows', async () => {
    await db.query(`UPDATE orders SET total = total + 1 WHERE id BETWEEN 300 AND 320`);
    const rerun = await cli(['run', '--config', configFile, '--lake', lakeUrl, '--tables', 'orders', '--window', '2024-03-01T14:00:00Z,2024-03-02T02:00:00Z', '--json'], { DATABASE_URL: db.url });
    expect(rerun.code, rerun.stderr).toBe(0);
    const manifest = await lastManifest('orders');
    expect(manifest.kind).toBe('window');
    expect(manifest.pages.some((p) => p.carriedFrom)).toBe(true);
    const { duckdb, athena } = await validateBoth('orders');
    expect(duckdb.mismatches).toEqual([]);
    expect(duckdb.duplicates.versions).toBe(0);
    expect(duckdb.ok).toBe(true);
    // Rows the re-run exported itself: those with a cursor in its window.
    const [{ n }] = await db.query(`SELECT count(*)::text AS n FROM orders WHERE updated_at BETWEEN '2024-03-01 14:00:00+00' AND '2024-03-02 02:00:00+00'`);
    expect(duckdb.expectedRows).toBe(Number(n));
    expect(athena.ok).toBe(true);
  });

  it('a published file copied under a second name: exit 1 naming the partition, the counts and the duplicated keys', async () => {
    for (const table of ['orders', 'events']) {
      const manifest = await lastManifest(table);
      const file = manifest.pages.find((p) => !p.carriedFrom && p.files.length)!.files[0];
      copyFileSync(path.join(lakeDir, file.key), path.join(lakeDir, path.dirname(file.key), `copy-${path.basename(file.key)}`));
    }
    const result = await cli(['validate', '--config', configFile, '--lake', lakeUrl, '--tables', 'orders,events']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('validate: orders mismatch, events mismatch\n');
    for (const table of ['orders', 'events']) {
      const manifest = await lastManifest(table);
      const page = manifest.pages.find((p) => !p.carriedFrom && p.files.length)!;
      const file = page.files[0];
      const partition = /year=\d{4}\/month=\d\d\/day=\d\d/.exec(file.key)![0];
      const listed = manifest.pages.filter((p) => !p.carriedFrom).flatMap((p) => p.files).filter((f) => f.key.includes(partition)).reduce((n, f) => n + f.rows, 0);
      expect(result.stdout).toContain(`${table}: MISMATCH: run ${manifest.runId}`);
      expect(result.stdout).toContain(`  ${table} ${partition}: manifest lists ${listed} rows of run ${manifest.runId}, the engine sees ${listed + file.rows}\n`);
      expect(result.stdout).toContain(`  ${table}: ${file.rows} versions (key, updated_at) held more than once (${file.rows} extra rows):\n`);
    }
    // The duplicated keys are named, with their cursor: the first rows of the copied file.
    const ordersFile = (await lastManifest('orders')).pages.find((p) => !p.carriedFrom && p.files.length)!;
    expect(result.stdout).toContain(`    id=${ordersFile.first[1]}, updated_at ${ordersFile.first[0]} ×2\n`);
    // Samples are ordered by key: the copied file (page 1, day 01) holds seq 1–236 of both
    // regions, so eu's seq 2 comes first. A wall-clock cursor prints as stored (no zone).
    expect(result.stdout).toContain('    region=eu, seq=2, updated_at 2024-03-01 20:02:02 ×2\n');

    const json = await cli(['validate', '--config', configFile, '--lake', lakeUrl, '--tables', 'orders', '--json']);
    expect(json.code).toBe(1);
    const [orders] = JSON.parse(json.stdout).tables;
    expect(orders).toMatchObject({ table: 'orders', status: 'mismatch', ok: false, key: ['id'], cursor: 'updated_at' });
    expect(orders.mismatches).toHaveLength(1);
    expect(orders.duplicates.sample[0]).toEqual({ key: { id: ordersFile.first[1] }, cursor: expect.stringContaining(ordersFile.first[0].slice(0, 19)), copies: 2 });
    expect(orders.queries).toHaveLength(2);

    const { athena } = await validateBoth('orders');
    expect(athena.ok).toBe(false);
    expect(athena.mismatches).toEqual(orders.mismatches);
    expect(athena.duplicates).toEqual(orders.duplicates);
  });

  it('checks duplicates in the run’s own window, with a wall-clock cursor’s bounds in its zone', async () => {
    // Rows stamped with New York's wall clock now: in UTC terms they lie hours before the
    // previous run's upper bound, so a window compared without the zone would leave them out.
    await db.query(`INSERT INTO events SELECT 'ny', g, 'late ' || g, (now() AT TIME ZONE 'America/New_York') - g * interval '1 millisecond' FROM generate_series(1, 50) g`);
    const run = await cli(['run', '--config', configFile, '--lake', lakeUrl, '--tables', 'events', '--json'], { DATABASE_URL: db.url });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).tables[0].rows).toBe(50);
    // The copy of the first run's file (previous test) lies outside this run's window.
    const clean = await cli(['validate', '--config', configFile, '--lake', lakeUrl, '--tables', 'events', '--json']);
    const [before] = JSON.parse(clean.stdout).tables;
    expect(before).toMatchObject({ status: 'ok', expectedRows: 50, seenRows: 50, mismatches: [], duplicates: { versions: 0, extraRows: 0, sample: [] } });
    expect(clean.code).toBe(0);
    const manifest = await lastManifest('events');
    const [file] = manifest.pages[0].files;
    copyFileSync(path.join(lakeDir, file.key), path.join(lakeDir, path.dirname(file.key), `copy-${path.basename(file.key)}`));
    const tampered = await cli(['validate', '--config', configFile, '--lake', lakeUrl, '--tables', 'events', '--json']);
    expect(tampered.code).toBe(1);
    const [after] = JSON.parse(tampered.stdout).tables;
    expect(after.duplicates.versions).toBe(file.rows);
    expect(after.duplicates.sample.every((d: { key: { region: string } }) => d.key.region === 'ny')).toBe(true);

    // A listed file gone missing (its copy too): the partition is short by its rows.
    rmSync(path.join(lakeDir, file.key));
    rmSync(path.join(lakeDir, path.dirname(file.key), `copy-${path.basename(file.key)}`));
    const missing = await cli(['validate', '--config', configFile, '--lake', lakeUrl, '--tables', 'events']);
    expect(missing.code).toBe(1);
    const partition = /year=\d{4}\/month=\d\d\/day=\d\d/.exec(file.key)![0];
    expect(missing.stdout).toContain(`  events ${partition}: manifest lists 50 rows of run ${manifest.runId}, the engine sees 0\n`);
  });

  it('usage: an S3 lake is refused (DuckDB here reads local files only); unknown tables are named', async () => {
    const s3 = await cli(['validate', '--config', configFile, '--lake', 's3://bucket/prefix']);
    expect(s3.code).toBe(1);
    expect(s3.stderr).toContain('--lake: validate reads a local lake (file:///…)');
    const unknown = await cli(['validate', '--config', configFile, '--lake', lakeUrl, '--tables', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/nope/);
    expect(readdirSync(lakeDir)).toContain('raw');
    const help = await cli(['validate', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('rows per partition');
  });
});
