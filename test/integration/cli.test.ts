// The command line as a user runs it: exit codes, --json shapes, one-line errors.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';


describe('pg-lake-export CLI', () => {
  let db: TestDatabase;
  let lake: TestLake;
  let config: string;

  beforeAll(async () => {
    db = await createDatabase();
    await db.query(`CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2), updated_at timestamptz NOT NULL DEFAULT '2024-02-29 23:59:59.999999+00');
      INSERT INTO orders (id, total) SELECT g, g / 4.0 FROM generate_series(1, 1234) g`);
    lake = createLake();
    config = path.join(lake.dir, 'lake.config.yaml');
    writeFileSync(config, 'export: { safetyLagSeconds: 0 }\ntables:\n  - name: public.orders\n');
  });

  afterAll(async () => {
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('run --json prints one object with per-table counts and the window', async () => {
    const result = await cli(['run', '--config', config, '--lake', `${lake.url}/lake`, '--json'], { DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout);
    expect(Object.keys(output).sort()).toEqual(['durationMs', 'runId', 'tables', 'warnings']);
    expect(output.tables).toHaveLength(1);
    expect(output.tables[0]).toMatchObject({ table: 'orders', status: 'succeeded', rows: 1234, files: 1, windowFrom: null });
    expect(output.tables[0].bytes).toBeGreaterThan(0);
    expect(output.tables[0].windowTo).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00$/);
  });

  it('query --json answers SQL over the lake with the partition columns', async () => {
    const result = await cli(['query', 'SELECT count(*) AS n, sum(total) AS total, min(year) AS y, min(month) AS m, min(day) AS d FROM orders', '--config', config, '--lake', `${lake.url}/lake`, '--json']);
    expect(result.code).toBe(0);
    const [expected] = await db.query('SELECT sum(total)::text AS total FROM orders');
    expect(JSON.parse(result.stdout)).toEqual([{ n: '1234', total: expected.total, y: 2024, m: 2, d: 29 }]);
  });

  it('fails with one line naming what to fix', async () => {
    const noDb = await cli(['run', '--config', config, '--lake', lake.url], { DATABASE_URL: '' });
    expect([noDb.code, noDb.stderr.trim()]).toEqual([1, 'error: ConfigError: DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db']);
    const badConfig = path.join(lake.dir, 'bad.yaml');
    writeFileSync(badConfig, 'tables:\n  - name: orders\n    mode: sometimes\n');
    const bad = await cli(['run', '--config', badConfig, '--lake', lake.url], { DATABASE_URL: db.url });
    expect([bad.code, bad.stderr.trim()]).toEqual([1, `error: ConfigError: ${badConfig}: tables[0].mode: Invalid option: expected one of "incremental"|"snapshot"`]);
    const missing = await cli(['run', '--config', config, '--lake', lake.url, '--tables', 'public.nope'], { DATABASE_URL: db.url });
    expect([missing.code, missing.stderr.trim()]).toEqual([1, 'error: ConfigError: tables: "public.nope" is not configured (configured: public.orders)']);
  });

  it('explains usage', async () => {
    expect((await cli(['--help'])).stdout).toContain('pg-lake-export <command> [options]');
    expect((await cli(['run', '--help'])).stdout).toContain('--window FROM,TO');
    const unknown = await cli(['explode']);
    expect([unknown.code, unknown.stderr.split('\n')[0]]).toEqual([2, 'error: unknown command "explode"']);
    const flag = await cli(['run', '--colour']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("Unknown option '--colour'");
  });
});
