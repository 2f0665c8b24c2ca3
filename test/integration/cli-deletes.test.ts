// `pg-lake-export run` with deletes.detect: the command compares keys through DuckDB over the
// local lake and says how many deletes it found, in its line per table and under --json.
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client, S3Store } from '../../lambdas/adapters/s3-store.ts';
import { cli } from '../support/cli.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

describe('pg-lake-export run with deletes.detect', () => {
  let db: TestDatabase;
  let lake: TestLake;
  let config: string;

  beforeAll(async () => {
    db = await createDatabase();
    await db.query(`CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2), updated_at timestamptz NOT NULL DEFAULT '2024-02-29 23:59:59.999999+00');
      INSERT INTO orders (id, total) SELECT g, g / 4.0 FROM generate_series(1, 1234) g`);
    lake = createLake();
    config = path.join(lake.dir, 'lake.config.yaml');
    writeFileSync(config, 'export: { safetyLagSeconds: 0 }\ntables:\n  - name: public.orders\n    deletes: { detect: true }\n');
  }, 120_000);

  afterAll(async () => {
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('prints the deletes each run found', async () => {
    const args = ['run', '--config', config, '--lake', `${lake.url}/lake`];
    const first = await cli(args, { DATABASE_URL: db.url });
    expect(first.code).toBe(0);
    // The first run has nothing committed to compare: no count is claimed.
    expect(first.stdout.split('\n')[0]).not.toContain('deletes');
    await db.query('DELETE FROM orders WHERE id BETWEEN 100 AND 106');
    const second = await cli(args, { DATABASE_URL: db.url });
    expect(second.code).toBe(0);
    // The run's rows count its tombstones (7 rows in 1 file), and the line says what they are.
    expect(second.stdout.split('\n')[0]).toMatch(/^public\.orders: 7 rows, 1 file, .*; 7 deletes found \(tombstones written\)$/);
    const json = await cli([...args, '--json'], { DATABASE_URL: db.url });
    expect(JSON.parse(json.stdout).tables[0]).toMatchObject({ table: 'orders', status: 'succeeded', deletes: 0 });
    const query = await cli(['query', '--config', config, '--lake', `${lake.url}/lake`, '--json', 'SELECT CAST(count(*) AS INTEGER) AS n FROM orders_current']);
    expect(JSON.parse(query.stdout)).toEqual([{ n: 1227 }]);
  }, 300_000);
});

// Against an S3 lake the command has no engine for the comparison: DuckDB reads S3 only through
// its httpfs extension, which is downloaded on first use (not offline). A detecting table would
// export every page and fail at its detection (or, on its first run, pass and fail on the next):
// it fails before its first page, by name and config path, and says what to do; the others run.
describe('pg-lake-export run with deletes.detect against an S3 lake', () => {
  const BUCKET = 'cli-deletes';
  let db: TestDatabase;
  let s3: LocalS3Server;
  let lake: TestLake;
  let config: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createDatabase();
    await db.query(`CREATE TABLE orders (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-02-29 12:00:00+00');
      INSERT INTO orders (id) SELECT generate_series(1, 300);
      CREATE TABLE customers (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-02-29 12:00:00+00');
      INSERT INTO customers (id) SELECT generate_series(1, 40)`);
    s3 = await startS3Server();
    s3.createBucket(BUCKET);
    env = { DATABASE_URL: db.url, AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' };
    lake = createLake();
    config = path.join(lake.dir, 'lake.config.yaml');
    writeFileSync(config, 'export: { safetyLagSeconds: 0 }\ntables:\n  - name: public.customers\n  - name: public.orders\n    deletes: { detect: true }\n');
  }, 120_000);

  afterAll(async () => {
    await s3?.stop();
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('fails the detecting table before any page, naming it and tables[].deletes, and runs the others', async () => {
    const args = ['run', '--config', config, '--lake', `s3://${BUCKET}/lake`];
    // Its first run (nothing committed to compare), a later one, and a run of it alone.
    for (const [attempt, customers] of [['first run', /^public\.customers: 40 rows, 1 file, /], ['second run', /^public\.customers: 0 rows, .*nothing new since the last run$/], ['--tables public.orders', undefined]] as const) {
      const run = await cli(attempt.startsWith('--') ? [...args, ...attempt.split(' ')] : args, env);
      expect(run.code, `${attempt}: ${run.stderr}`).toBe(1);
      const lines = run.stdout.split('\n');
      const customersLine = lines.find((l) => l.startsWith('public.customers:'));
      if (customers) expect(customersLine, attempt).toMatch(customers);
      else expect(customersLine, attempt).toBeUndefined();
      const orders = lines.find((l) => l.startsWith('public.orders:'));
      expect(orders, attempt).toContain('tables[1].deletes.detect');
      expect(orders, attempt).toMatch(/DuckDB.*S3.*--lake file:\/\/.*deployed workflow.*nothing of it was exported/);
    }
    const json = await cli([...args, '--json'], env);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout).tables).toEqual(expect.arrayContaining([
      expect.objectContaining({ table: 'orders', status: 'failed', rows: 0, files: 0, error: expect.stringContaining('tables[1].deletes.detect') }),
    ]));
    // Nothing of orders in the lake: no data file, no state (no run, watermark or lease).
    Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
    const store = new S3Store(createS3Client(), BUCKET, 'lake');
    const keys = await store.list('');
    expect(keys.filter((k) => /(^|\/)orders\//.test(k))).toEqual([]);
    expect(keys.filter((k) => k.startsWith('raw/customers/') && k.endsWith('.parquet'))).toHaveLength(1);
  }, 300_000);
});
