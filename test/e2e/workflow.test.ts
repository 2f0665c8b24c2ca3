// End to end: the state machine that `cdk synth` emits, run by aws-local-stepfunctions with the
// real handlers, against embedded PostgreSQL and an S3 API server on loopback. After each
// execution the lake is mirrored from S3 to a directory and checked with DuckDB. Validate Table
// runs its real handler with DuckDB in Athena's place; Summarize's EMF output is read back.
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openLocalEngine, synthesizeDefinition, runWorkflowLocally, type LocalRunEnvironment } from '../../bin/local/workflow-runner.ts';
import type { WorkflowDefinition } from '../../bin/local/state-machine-definition.ts';
import { localStepRuntime } from '../../bin/local/local-runtime.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { TableState, type RunManifest, type Watermark } from '../../lambdas/core/protocol/table-state.ts';
import type { QueryEngine } from '../../lambdas/core/ports.ts';
import { checkLake } from '../faults/lake-checks.ts';
import { AthenaStandin } from '../support/athena-standin.ts';
import { createDatabase, createLake, duckdb, parquetGlob, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const BUCKET = 'e2e-lake';
let db: TestDatabase;
let s3: LocalS3Server;
let store: S3Store;
let env: LocalRunEnvironment;
let definition: WorkflowDefinition;
/** The Athena API on loopback, answering with whatever engine `athenaBackend` is (DuckDB over a copy of a table). */
let athena: AthenaStandin;
let athenaBackend: QueryEngine | null = null;

const config = validateConfig({
  export: { pageRows: 500, safetyLagSeconds: 0, maxConcurrency: 2 },
  tables: [{ name: 'public.orders' }, { name: 'public.customers' }, { name: '"Sales Data"."Order Items"', primaryKey: ['order_id', 'line_no'] }, { name: 'public.fragile' }],
});

/** Copy the S3 lake into a fresh directory so DuckDB (no S3 offline) and the checks can read it. */
async function mirror(): Promise<TestLake> {
  const lake = createLake();
  for (const key of await store.list('')) {
    const file = path.join(lake.dir, key);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, (await store.get(key))!.body);
  }
  return lake;
}

/** Every EMF record the handlers printed (Powertools Metrics writes one JSON line per flush). */
const emitted: Array<Record<string, unknown>> = [];

/** The per-run metrics (dimension `service` only) of the last Summarize, by name. */
function lastRunMetrics(): Record<string, unknown> {
  type Emf = { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } };
  const runLevel = emitted.filter((record) => (record as Emf)._aws.CloudWatchMetrics[0].Dimensions[0].join() === 'service');
  return runLevel.at(-1) ?? {};
}

type ValidationCounts = { status: string; runId?: string; expectedRows?: number; seenRows?: number; mismatchedPartitions?: number; duplicateVersions?: number; error?: string };
type RunOutput = {
  plan: { tables: Array<{ table: string; status: string; validation?: ValidationCounts; compaction?: { status: string; error?: string } }> };
  summary: { failed: number; tables: Array<{ table: string; rows: number; validation?: string }>; validation: { mismatched: number; skipped: number } | null };
};

/** Each committed table's validation, by table. */
function validations(output: unknown): Record<string, ValidationCounts | undefined> {
  return Object.fromEntries((output as RunOutput).plan.tables.filter((t) => t.status === 'succeeded').map((t) => [t.table, t.validation]));
}

/** Every committed table validated ok, in the results, the summary and the metrics. */
function expectValidatedClean(label: string, output: unknown, tables: string[]) {
  const found = validations(output);
  expect(Object.keys(found).sort(), label).toEqual([...tables].sort());
  for (const table of tables) expect(found[table], `${label}: ${table}`).toMatchObject({ status: 'ok', mismatchedPartitions: 0, duplicateVersions: 0 });
  expect((output as RunOutput).summary.validation, label).toEqual({ mismatched: 0, skipped: 0 });
  expect(lastRunMetrics(), label).toMatchObject({ ValidationMismatch: 0, ValidationSkipped: 0 });
}

async function execute(input: unknown) {
  const tasks: string[] = [];
  const result = await runWorkflowLocally(definition, env, input, {
    exportBudgetMillis: 1, // one page per Export invocation: the More Pages? loop runs for real
    onTaskOutput: (state) => tasks.push(state),
  });
  return { ...result, tasks };
}

/** The lake checks for the (id, payload, updated_at) tables; the composite-key table by count. */
async function checkAll(label: string, tables: string[]) {
  const lake = await mirror();
  try {
    for (const table of tables.filter((t) => t !== 'order_items')) await checkLake(db, lake, table, `${label}: ${table}`);
    if (tables.includes('order_items')) {
      const [got] = await duckdb<{ n: string; keys: string }>(`SELECT count(*) AS n, count(DISTINCT (order_id, line_no, updated_at)) AS keys FROM read_parquet(${parquetGlob(lake, 'order_items')})`);
      const [want] = await db.query(`SELECT count(*)::text AS n FROM "Sales Data"."Order Items"`);
      expect(got, `${label}: order_items`).toEqual({ n: want.n, keys: want.n });
    }
  } finally {
    lake.remove();
  }
}

beforeAll(async () => {
  db = await createDatabase();
  await db.query(`
    CREATE TABLE orders (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO orders SELECT g, 'o' || g, timestamptz '2024-06-01' + (g % 4) * interval '1 day' FROM generate_series(1, 1800) g;
    CREATE TABLE customers (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO customers SELECT g, 'c' || g, timestamptz '2024-06-01' + (g % 2) * interval '1 day' FROM generate_series(1, 700) g;
    CREATE SCHEMA "Sales Data";
    CREATE TABLE "Sales Data"."Order Items" (order_id int, line_no int, qty numeric(6,2), updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (order_id, line_no));
    INSERT INTO "Sales Data"."Order Items" SELECT o, l, l * 1.5, timestamptz '2024-06-03' FROM generate_series(1, 300) o, generate_series(1, 3) l;
    CREATE TABLE fragile (id int PRIMARY KEY, payload text, amount numeric(8,2), updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO fragile SELECT g, 'f' || g, g, timestamptz '2024-06-02' FROM generate_series(1, 50) g;
  `);
  s3 = await startS3Server();
  s3.createBucket(BUCKET);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  store = new S3Store(createS3Client(), BUCKET);
  env = { config, databaseUrl: db.url, lake: BUCKET };
  definition = synthesizeDefinition(config);
  athena = await AthenaStandin.start({
    engine: {
      description: 'the engine of the moment',
      query: async (sql) => {
        if (!athenaBackend) throw new Error('no Athena backend set');
        return athenaBackend.query(sql);
      },
      close: async () => {},
    },
    polls: { queued: 1, running: 1 },
  });
  // Read when the deployed Validate handler's Athena client first sends (the SDK's per-service endpoint variable).
  process.env.AWS_ENDPOINT_URL_ATHENA = athena.endpoint;
  // Summarize's metrics as deployed (EMF on stdout), kept out of the test output.
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  const write = process.stdout.write.bind(process.stdout) as (chunk: string | Uint8Array, ...rest: unknown[]) => boolean;
  vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (!text.startsWith('{"_aws"')) return write(chunk, ...rest);
    for (const line of text.split('\n').filter(Boolean)) emitted.push(JSON.parse(line) as Record<string, unknown>);
    return true;
  }) as typeof process.stdout.write);
});

afterAll(async () => {
  await athena?.stop();
  await s3?.stop();
  await db?.close();
  await stopPostgres();
});

const ALL = ['orders', 'customers', 'order_items', 'fragile'];

describe('the synthesized workflow, run locally', () => {
  it('a scheduled run ({}) exports every table page by page', async () => {
    const run = await execute({});
    expect(run.status).toBe('SUCCEEDED');
    // 1800 rows in 500-row pages: four Export invocations for orders alone
    expect(run.tasks.filter((t) => t === 'Export Table Page').length).toBeGreaterThanOrEqual(4 + 2 + 2 + 1);
    const summary = (run.output as { summary: { succeeded: number; failed: number; tables: { table: string; rows: number }[] } }).summary;
    expect(summary.failed).toBe(0);
    expect(Object.fromEntries(summary.tables.map((t) => [t.table, t.rows]))).toEqual({ orders: 1800, customers: 700, order_items: 900, fragile: 50 });
    // Validate Table after each commit, against DuckDB over the table's files: every row counted once.
    expect(run.tasks.filter((t) => t === 'Validate Table')).toHaveLength(4);
    expectValidatedClean('scheduled', run.output, ALL);
    // Compact Table after each validation, the real handler over the lake: one run's files are too few to compact.
    expect(run.tasks.filter((t) => t === 'Compact Table')).toHaveLength(4);
    expect((run.output as RunOutput).plan.tables.map((t) => [t.table, t.compaction])).toEqual(ALL.map((table) => [table, { status: 'skipped' }]));
    expect(validations(run.output)).toMatchObject({
      orders: { expectedRows: 1800, seenRows: 1800 },
      customers: { expectedRows: 700, seenRows: 700 },
      order_items: { expectedRows: 900, seenRows: 900 },
      fragile: { expectedRows: 50, seenRows: 50 },
    });
    await checkAll('scheduled', ALL);
  });

  it('{"tables": ["public.orders"]} exports only that table', async () => {
    await db.query(`UPDATE orders SET payload = 'changed', updated_at = clock_timestamp() WHERE id <= 10; UPDATE customers SET payload = 'later', updated_at = clock_timestamp() WHERE id <= 5`);
    const customersBefore = await new TableState(store, 'raw', 'customers').watermark();
    const started = Date.now();
    const run = await execute({ tables: ['public.orders'] });
    expect(run.status).toBe('SUCCEEDED');
    const summary = (run.output as { summary: { tables: { table: string; rows: number }[]; stalenessSeconds: Record<string, number | null> } }).summary;
    expect(summary.tables).toEqual([expect.objectContaining({ table: 'orders', rows: 10, validation: 'ok' })]);
    expectValidatedClean('tables re-run', run.output, ['orders']);
    expect(await new TableState(store, 'raw', 'customers').watermark()).toEqual(customersBefore);
    // Staleness (seconds since each table's last commit) is measured for every configured table,
    // also those this run left alone, so a Stale alarm's dashboard never goes blank.
    expect(Object.keys(summary.stalenessSeconds).sort()).toEqual([...ALL].sort());
    expect(summary.stalenessSeconds.orders).toBeLessThan(60);
    const sinceCustomersCommit = (at: number) => Math.round((at - Date.parse(customersBefore!.committedAt)) / 1000);
    expect(summary.stalenessSeconds.customers).toBeGreaterThanOrEqual(sinceCustomersCommit(started));
    expect(summary.stalenessSeconds.customers).toBeLessThanOrEqual(sinceCustomersCommit(Date.now()));
    await checkAll('tables re-run', ['orders']);
  });

  it('{"window": …} re-exports that window, replacing its files', async () => {
    const state = new TableState(store, 'raw', 'orders');
    const before = (await state.watermark()) as Watermark;
    const manifestsBefore = await state.manifests();
    const filesBefore = manifestsBefore.flatMap((m) => m.pages.flatMap((p) => p.files.map((f) => f.key)));
    const run = await execute({ tables: ['orders'], window: { from: '2024-06-01T12:00:00Z', to: '2024-06-02T12:00:00Z' } });
    expect(run.status).toBe('SUCCEEDED');
    const after = (await state.watermark()) as Watermark;
    expect(after.cursor).toBe(before.cursor); // a window re-run never moves the watermark
    const filesAfter = (await state.manifests()).flatMap((m: RunManifest) => m.pages.flatMap((p) => p.files.map((f) => f.key)));
    expect(filesAfter.some((k) => k.includes(after.runId))).toBe(true);
    expect(filesAfter).not.toEqual(filesBefore);
    expectValidatedClean('window re-run', run.output, ['orders']);
    expect(validations(run.output).orders?.runId).toBe(after.runId);
    await checkAll('window re-run', ['orders']);
  });

  it('{"full": true} re-exports everything, replacing all files', async () => {
    const run = await execute({ full: true });
    expect(run.status).toBe('SUCCEEDED');
    expectValidatedClean('full re-run', run.output, ALL);
    const lake = await mirror();
    for (const table of ALL) {
      // Every file is the full run's; rows Postgres holds were exported by it, and versions it
      // no longer holds (history) keep the run that first exported them.
      const { runId } = (await new TableState(store, 'raw', table).watermark()) as Watermark;
      const files = (await store.list(`raw/${table}/`)).filter((k) => k.endsWith('.parquet'));
      expect(files.length, table).toBeGreaterThan(0);
      expect(files.filter((k) => !k.includes(`/${runId}-p`)), table).toEqual([]);
      const [{ current }] = await duckdb<{ current: string }>(`SELECT count(*) FILTER (WHERE _lake_run_id = '${runId}') AS current FROM read_parquet(${parquetGlob(lake, table)})`);
      const [{ rows }] = await db.query(`SELECT count(*)::text AS rows FROM ${table === 'order_items' ? '"Sales Data"."Order Items"' : table}`);
      expect(current, table).toBe(rows);
    }
    lake.remove();
    await checkAll('full re-run', ALL);
  });

  it('a table that fails does not stop its siblings, and the execution fails', async () => {
    await db.query(`UPDATE fragile SET amount = 'NaN', updated_at = clock_timestamp() WHERE id = 7;
      UPDATE orders SET payload = 'again', updated_at = clock_timestamp() WHERE id <= 3`);
    const fragileBefore = await new TableState(store, 'raw', 'fragile').watermark();
    const run = await execute({});
    expect(run.status).toBe('FAILED');
    expect(run.error).toBe('TablesFailed');
    expect(await new TableState(store, 'raw', 'fragile').watermark()).toEqual(fragileBefore);
    expect(await store.list('raw/_state/fragile/pending/')).toEqual([]);
    await checkAll('one table failed', ['orders', 'customers', 'order_items']);
  });

  it('a published file copied under a second name: the next run\'s Validate Table reports it, in the summary and the ValidationMismatch metric', async () => {
    await db.query(`UPDATE fragile SET amount = 7, updated_at = clock_timestamp() WHERE id = 7`);
    // The run customers' next validation checks: nothing new there, so the last one that published files.
    const state = new TableState(store, 'raw', 'customers');
    const published = (await state.manifests()).filter((m) => m.pages.some((p) => p.files.length > 0)).sort((a, b) => a.committedAt.localeCompare(b.committedAt)).at(-1)!;
    const file = published.pages.flatMap((p) => p.files)[0];
    const copy = file.key.replace(/[^/]+\.parquet$/, 'copied-by-hand.parquet');
    expect(copy).not.toBe(file.key);
    expect(await store.put(copy, (await store.get(file.key))!.body)).toBe(true);

    const run = await execute({});
    expect(run.status).toBe('SUCCEEDED'); // a mismatch is reported, not an export failure
    const found = validations(run.output);
    expect(found.customers).toEqual({
      status: 'mismatch', runId: published.runId, expectedRows: 700, seenRows: 700 + file.rows,
      mismatchedPartitions: 1, duplicateVersions: file.rows,
    });
    for (const table of ['orders', 'order_items', 'fragile']) expect(found[table], table).toMatchObject({ status: 'ok' });
    const summary = (run.output as RunOutput).summary;
    expect(summary.tables.find((t) => t.table === 'customers')?.validation).toBe('mismatch');
    expect(summary.validation).toEqual({ mismatched: 1, skipped: 0 });
    expect(lastRunMetrics()).toMatchObject({ service: 'pg-lake-export', ValidationMismatch: 1, ValidationSkipped: 0 });

    // The deployed engine (the Athena adapter, in the workgroup its environment names, over the
    // config's Glue database) over this machine's lake, through the Athena API stand-in: the same answer.
    const { validateHandler, VALIDATE_ENGINE_NEEDS } = await import('../../lambdas/validate/handler.ts');
    const { stackAthenaEngine } = await import('../../lambdas/adapters/stack-athena.ts');
    const runtime = localStepRuntime({ config: { ...env.config, lake: { ...env.config.lake, glueDatabase: 'e2e_lake' } }, lake: env.lake });
    const handler = validateHandler(runtime, stackAthenaEngine(runtime, VALIDATE_ENGINE_NEEDS));
    athenaBackend = await openLocalEngine(env, 'customers');
    Object.assign(process.env, { ATHENA_WORK_GROUP: 'PgLakeExport-QueryWorkgroup-0A1B2C3D' });
    try {
      const customers = (run.output as RunOutput).plan.tables.find((t) => t.table === 'customers')!;
      const { validation: _, ...commitResult } = customers;
      expect(await handler(commitResult)).toEqual(found.customers);
      const starts = athena.calls('StartQueryExecution').map((c) => c.body);
      expect(starts).toHaveLength(2);
      for (const start of starts) expect(start).toMatchObject({ WorkGroup: 'PgLakeExport-QueryWorkgroup-0A1B2C3D', QueryExecutionContext: { Database: 'e2e_lake', Catalog: 'AwsDataCatalog' } });
    } finally {
      delete process.env.ATHENA_WORK_GROUP;
      await athenaBackend.close();
      athenaBackend = null;
    }
    await store.delete([copy]);
  });

  it('rejects a malformed console input with a message naming the key', async () => {
    const run = await execute({ window: { from: '2024-01-01' } });
    expect(run.status).toBe('FAILED');
    expect(run.cause).toBe('execution input: window.to: Invalid input: expected string, received undefined');
  });
});
