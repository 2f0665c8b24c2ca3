// deletes.detect on a table whose key it cannot compare (numeric, a timestamp, char(n) …) fails
// at plan time, by table and column, on every run: before any page is exported — not after a
// whole export, at the detection that follows it — and without stopping the other tables.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

let db: TestDatabase;
let lake: TestLake;
const config = testConfig([
  { name: 'public.prices', deletes: { detect: true } },
  { name: 'public.orders', deletes: { detect: true } },
]);
const PROBLEM = 'public.prices: deletes.detect compares primary keys of type smallint, integer, bigint, text, varchar or uuid; key column "sku" is numeric(12,0)';

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE prices (sku numeric(12,0) PRIMARY KEY, price int, updated_at timestamptz NOT NULL);
    INSERT INTO prices SELECT g, g * 3, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 200) g;
    CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
    INSERT INTO orders SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 200) g;`);
}, 120_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

describe('deletes.detect: key types checked at plan time', () => {
  it('fails the table by name before exporting a page, every run; the other table runs', async () => {
    // Plan alone, into a lake of its own (the plan takes the other table's lease and keeps it).
    const planLake = createLake();
    const planDeps = exportDeps(db, planLake.store, config);
    try {
      const plan = await planRun(planDeps);
      expect(plan.failed).toEqual([{ table: 'prices', error: `ConfigError: ${PROBLEM}` }]);
      expect(plan.tables.map((t) => t.table)).toEqual(['orders']);
    } finally {
      await planDeps.close();
      planLake.remove();
    }

    for (let run = 1; run <= 2; run++) {
      await db.query(`UPDATE prices SET price = price + 1, updated_at = now() WHERE sku <= 5`);
      const query = await LakeQuery.open(config, lake.store);
      const engine = query.engine();
      const deps = { ...exportDeps(db, lake.store, config), engine };
      try {
        const outcome = await runExport(deps);
        const prices = outcome.tables.find((t) => t.table === 'prices');
        expect(prices).toMatchObject({ status: 'failed' });
        expect(JSON.stringify(prices)).toContain(PROBLEM.replaceAll('"', '\\"'));
        expect(outcome.tables.find((t) => t.table === 'orders')).toMatchObject({ status: 'succeeded' });
      } finally {
        await deps.close();
        await engine.close();
      }
      // Not a page of it was exported, staged or published.
      const parquet = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.parquet')) : []);
      expect(parquet(path.join(lake.dir, 'raw', 'prices'))).toEqual([]);
      expect(parquet(path.join(lake.dir, 'raw', '_state', 'prices'))).toEqual([]);
      expect(parquet(path.join(lake.dir, 'raw', 'orders')).length).toBeGreaterThan(0);
    }
  }, 120_000);
});
