// End to end, delete detection as deployed: the synthesized state machine run by
// aws-local-stepfunctions with the real handlers, against embedded PostgreSQL and an S3 API
// server on loopback. Export Table Page is given its query engine by the runner as Lambda gives
// it Athena (DuckDB over a copy of the table, opened on detection's first query). Rows deleted in
// Postgres leave `<table>_current` at the next run, each key tombstoned once; a table without
// deletes.detect keeps its deleted rows. Every Export invocation has a 1 ms budget, so detection
// is put off to an invocation of its own (as near a Lambda deadline) and the runner gives that
// one a whole budget, as Lambda would.
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runWorkflowLocally, synthesizeDefinition, type LocalRunEnvironment } from '../../bin/local/workflow-runner.ts';
import type { WorkflowDefinition } from '../../bin/local/state-machine-definition.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { createDatabase, createLake, duckdb, parquetGlob, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const BUCKET = 'e2e-deletes';
let db: TestDatabase;
let s3: LocalS3Server;
let store: S3Store;
let env: LocalRunEnvironment;
let definition: WorkflowDefinition;

const config = validateConfig({
  export: { pageRows: 300, safetyLagSeconds: 0, maxConcurrency: 2 },
  tables: [{ name: 'public.orders', deletes: { detect: true } }, { name: 'public.customers' }],
});

type RunOutput = {
  plan: { tables: Array<{ table: string; status: string; validation?: { status: string } }> };
  summary: { failed: number; tables: Array<{ table: string; status: string; rows: number; deletes?: number }> };
};

async function execute(input: unknown) {
  const tasks: Array<{ state: string; output: unknown }> = [];
  const result = await runWorkflowLocally(definition, env, input, {
    exportBudgetMillis: 1, // one page per invocation, and never the 2 minutes detection wants
    onTaskOutput: (state, output) => tasks.push({ state, output }),
  });
  return { ...result, tasks };
}

/** The S3 lake copied into a directory, and DuckDB's views over it (the local stand-in for Athena's). */
async function lakeViews(): Promise<{ lake: TestLake; query: LakeQuery }> {
  const lake = createLake();
  for (const key of await store.list('')) {
    const file = path.join(lake.dir, key);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, (await store.get(key))!.body);
  }
  return { lake, query: await LakeQuery.open(config, lake.store) };
}

/** `<table>_current` (id, payload) against the table in Postgres, both ordered by id. */
async function currentAndPostgres(query: LakeQuery, table: 'orders' | 'customers') {
  const current = (await query.query(`SELECT CAST(id AS VARCHAR) AS id, payload FROM ${table}_current ORDER BY id`)).map((r) => `${String(r.id)}:${String(r.payload)}`);
  const postgres = (await db.query(`SELECT id::text AS id, payload FROM ${table} ORDER BY id`)).map((r) => `${r.id}:${r.payload}`);
  return { current, postgres };
}

/** Tombstones per key in the table's Parquet files. */
async function tombstonesPerKey(lake: TestLake, table: string): Promise<Map<string, number>> {
  const rows = await duckdb<{ k: string; n: number }>(`SELECT CAST(id AS VARCHAR) AS k, CAST(count(*) AS INTEGER) AS n FROM read_parquet(${parquetGlob(lake, table)}, union_by_name = true) WHERE _lake_deleted GROUP BY 1`);
  return new Map(rows.map((r) => [r.k, r.n]));
}

function summaryOf(output: unknown, table: string) {
  return (output as RunOutput).summary.tables.find((t) => t.table === table);
}

beforeAll(async () => {
  db = await createDatabase();
  await db.query(`
    CREATE TABLE orders (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO orders SELECT g, 'o' || g, timestamptz '2024-06-01' + (g % 3) * interval '1 day' FROM generate_series(1, 1000) g;
    CREATE TABLE customers (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO customers SELECT g, 'c' || g, timestamptz '2024-06-01' FROM generate_series(1, 100) g;
  `);
  s3 = await startS3Server();
  s3.createBucket(BUCKET);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  store = new S3Store(createS3Client(), BUCKET);
  env = { config, databaseUrl: db.url, lake: BUCKET };
  definition = synthesizeDefinition(config);
}, 300_000);

afterAll(async () => {
  await s3?.stop();
  await db?.close();
  await stopPostgres();
});

describe('delete detection in the synthesized workflow, run locally', () => {
  it('removes rows deleted in Postgres from <table>_current at the next run, each key tombstoned once', async () => {
    const first = await execute({});
    expect(first.status, first.cause).toBe('SUCCEEDED');
    // The first run has nothing committed to compare with: no tombstone.
    expect(summaryOf(first.output, 'orders')).toMatchObject({ status: 'succeeded', rows: 1000, deletes: 0 });
    expect(summaryOf(first.output, 'customers')?.deletes).toBeUndefined(); // does not detect

    await db.query(`
      DELETE FROM orders WHERE id % 10 = 3 OR id BETWEEN 500 AND 560;
      UPDATE orders SET payload = 'changed', updated_at = clock_timestamp() WHERE id % 10 = 4;
      DELETE FROM customers WHERE id <= 5;
    `);
    const deleted = (await db.query(`SELECT g::text AS id FROM generate_series(1, 1000) g WHERE NOT EXISTS (SELECT FROM orders WHERE id = g) ORDER BY g`)).map((r) => r.id!);
    expect(deleted.length).toBe(100 + 61 - 6); // id % 10 = 3 (100) and 500..560 (61) overlap in 503, 513, …, 553

    const second = await execute({});
    expect(second.status, second.cause).toBe('SUCCEEDED');
    expect(summaryOf(second.output, 'orders')).toMatchObject({ status: 'succeeded', deletes: deleted.length });
    // Detection was put off (1 ms left) and ran in an invocation of its own: an Export that handed
    // its task back not done at the page it was given, then one that finished it.
    const orderPages = second.tasks.filter((t) => t.state === 'Export Table Page' && (t.output as { table: string }).table === 'orders').map((t) => t.output as { page: number; done: boolean });
    expect(orderPages.some((t, i) => i > 0 && !t.done && !orderPages[i - 1].done && orderPages[i - 1].page === t.page)).toBe(true);
    // The last invocation detected and wrote the tombstones as the run's next page (155 keys: one page).
    expect(orderPages.slice(-2).map((t) => t.done)).toEqual([false, true]);
    expect(orderPages.at(-1)!.page).toBe(orderPages.at(-2)!.page + 1);
    // Validation still counts the run's rows: the tombstones are rows of the run.
    expect((second.output as RunOutput).plan.tables.map((t) => [t.table, t.validation?.status])).toEqual([['orders', 'ok'], ['customers', 'ok']]);

    const { lake, query } = await lakeViews();
    try {
      const orders = await currentAndPostgres(query, 'orders');
      expect(orders.current).toEqual(orders.postgres);
      const tombstones = await tombstonesPerKey(lake, 'orders');
      expect([...tombstones.keys()].sort((a, b) => Number(a) - Number(b))).toEqual(deleted);
      expect([...tombstones.values()].every((n) => n === 1)).toBe(true);
      // customers does not detect: its deleted rows stay in customers_current.
      const customers = await currentAndPostgres(query, 'customers');
      expect(customers.current).toHaveLength(100);
      expect(customers.postgres).toHaveLength(95);
      expect(await tombstonesPerKey(lake, 'customers')).toEqual(new Map());
    } finally {
      query.close();
      lake.remove();
    }

    // Nothing changed: the next run finds no delete and writes no tombstone.
    const third = await execute({});
    expect(third.status, third.cause).toBe('SUCCEEDED');
    expect(summaryOf(third.output, 'orders')).toMatchObject({ status: 'succeeded', rows: 0, deletes: 0 });
    const after = await lakeViews();
    try {
      const orders = await currentAndPostgres(after.query, 'orders');
      expect(orders.current).toEqual(orders.postgres);
      expect((await tombstonesPerKey(after.lake, 'orders')).size).toBe(deleted.length);
    } finally {
      after.query.close();
      after.lake.remove();
    }
  }, 600_000);
});
