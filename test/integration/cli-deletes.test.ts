// `pg-lake-export run` with deletes.detect: the command compares keys through DuckDB over the
// local lake and says how many deletes it found, in its line per table and under --json.
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
