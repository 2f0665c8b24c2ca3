// End to end, backfill (issue 14): the state machines `cdk synth` emits — the export workflow,
// whose Export Segments task (startExecution.sync:2) runs the Segments machine locally, and that
// machine's Distributed Map (Export Segments) rewritten into an inline Map over the same items
// (aws-local-stepfunctions has neither), run with the real handlers against embedded PostgreSQL and an S3 API server. The
// segment list is read from the S3 lake by the local ItemReader, each child runs the real Export
// Segment Page loop, and the lake is checked with DuckDB. Its own file: the handlers read one
// configuration per process.
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorkflowLocally, synthesizeDefinition, type LocalRunEnvironment } from '../../bin/local/workflow-runner.ts';
import { allStates, inlineDistributedMaps, inlineMapName, type WorkflowDefinition } from '../../bin/local/state-machine-definition.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { SEGMENT_PAGE_STRIDE } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type RunManifest, type Watermark } from '../../lambdas/core/protocol/table-state.ts';
import { WORKFLOW_STATES as S } from '../../lib/export-workflow.ts';
import { checkLake } from '../faults/lake-checks.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const BUCKET = 'e2e-backfill';
let db: TestDatabase;
let s3: LocalS3Server;
let store: S3Store;
let env: LocalRunEnvironment;
let definition: WorkflowDefinition;

const config = validateConfig({
  export: { pageRows: 400, safetyLagSeconds: 0, maxConcurrency: 2, backfillConcurrency: 2 },
  validation: { enabled: false },
  tables: [{ name: 'public.events', backfill: { segments: 4 } }, { name: 'public.small' }, { name: 'public.laned', backfill: { segments: 4, concurrency: 2 } }],
});

async function mirror(): Promise<TestLake> {
  const lake = createLake();
  for (const key of await store.list('')) {
    const file = path.join(lake.dir, key);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, (await store.get(key))!.body);
  }
  return lake;
}

async function execute(input: unknown) {
  const tasks: string[] = [];
  const result = await runWorkflowLocally(definition, env, input, { exportBudgetMillis: 1, onTaskOutput: (state) => tasks.push(state) });
  return { ...result, tasks };
}

beforeAll(async () => {
  db = await createDatabase();
  await db.query(`
    CREATE TABLE events (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO events SELECT g, 'e' || g, timestamptz '2024-05-01' + (g % 9) * interval '1 day' FROM generate_series(1, 5000) g;
    CREATE TABLE small (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO small SELECT g, 's' || g, timestamptz '2024-05-02' FROM generate_series(1, 30) g;
    CREATE TABLE laned (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO laned SELECT g, 'l' || g, timestamptz '2024-05-03' + g * interval '1 minute' FROM generate_series(1, 2000) g;
  `);
  s3 = await startS3Server();
  s3.createBucket(BUCKET);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  store = new S3Store(createS3Client(), BUCKET);
  env = { config, databaseUrl: db.url, lake: BUCKET };
  definition = synthesizeDefinition(config);
});

afterAll(async () => {
  await s3?.stop();
  await db?.close();
  await stopPostgres();
});

describe('a backfill through the synthesized workflow, run locally', () => {
  it('runs the Segments machine the workflow starts, its Distributed Map\'s own item processor inline over the items its ItemReader names', () => {
    const start = allStates(definition)[S.exportSegments];
    expect(start).toMatchObject({ Type: 'Task', Resource: 'arn:aws:states:::states:startExecution.sync:2', ResultPath: null, Next: S.exportPage });
    const segments = definition.nestedStateMachines[(start.Parameters as { StateMachineArn: string }).StateMachineArn];
    expect(Object.keys(definition.nestedStateMachines)).toHaveLength(1);
    const states = allStates(segments);
    expect(states[S.exportSegments]).toMatchObject({ Type: 'Map', ItemReader: { ReaderConfig: { InputType: 'JSONL' } } });
    const local = allStates(inlineDistributedMaps(segments));
    expect(local[S.exportSegments]).toMatchObject({ Type: 'Task', Next: inlineMapName(S.exportSegments) });
    const inline = local[inlineMapName(S.exportSegments)];
    expect(inline).toMatchObject({ Type: 'Map', ItemsPath: '$.items', MaxConcurrency: 2, OutputPath: '$.input', ResultPath: null, End: true });
    expect(inline.ItemSelector).toEqual({ 'task.$': '$.input', 'segment.$': '$$.Map.Item.Value' });
    // The same child states as deployed, only the processing mode differs.
    const { ProcessorConfig: deployedConfig, ...deployed } = states[S.exportSegments].ItemProcessor!;
    const { ProcessorConfig: localConfig, ...run } = inline.ItemProcessor!;
    expect(run).toEqual(deployed);
    expect([deployedConfig?.Mode, localConfig?.Mode]).toEqual(['DISTRIBUTED', 'INLINE']);
  });

  it('a first load exports the big tables as 4 segments through Export Segments (one in 2 lanes), the small one page by page, each row once', async () => {
    const run = await execute({});
    expect(run.status, run.cause).toBe('SUCCEEDED');
    const summary = (run.output as { summary: { failed: number; tables: { table: string; rows: number }[] } }).summary;
    expect(summary.failed).toBe(0);
    expect(Object.fromEntries(summary.tables.map((t) => [t.table, t.rows]))).toEqual({ events: 5000, small: 30, laned: 2000 });
    // The map read 4 items and ran a child loop per segment, one page per invocation here: at
    // least 5,000 / 400 pages between them.
    expect(run.tasks.filter((t) => t === S.exportSegmentPage).length).toBeGreaterThanOrEqual(Math.ceil(5000 / 400));
    expect(run.tasks.filter((t) => t === S.exportPage).length).toBeGreaterThanOrEqual(2);
    const state = new TableState(store, 'raw', 'events');
    const { runId } = (await state.watermark()) as Watermark;
    const manifest = (await state.read<RunManifest>(state.manifestKey(runId)))!.value;
    expect(new Set(manifest.pages.map((p) => Math.floor(p.page / SEGMENT_PAGE_STRIDE)))).toEqual(new Set([0, 1, 2, 3]));
    // The 2-lane table's 4 segments were all exported, by 2 children.
    const laned = new TableState(store, 'raw', 'laned');
    const lanedRun = ((await laned.watermark()) as Watermark).runId;
    const lanedPages = (await laned.read<RunManifest>(laned.manifestKey(lanedRun)))!.value.pages;
    expect(new Set(lanedPages.map((p) => Math.floor(p.page / SEGMENT_PAGE_STRIDE)))).toEqual(new Set([0, 1, 2, 3]));
    const lake = await mirror();
    try {
      for (const table of ['events', 'small', 'laned']) await checkLake(db, lake, table, `first load: ${table}`);
    } finally {
      lake.remove();
    }
  });

  it('the next run is incremental: no segments, only the rows written since', async () => {
    await db.query(`UPDATE events SET payload = 'later', updated_at = clock_timestamp() WHERE id % 100 = 0; INSERT INTO events (id, payload) VALUES (9001, 'new')`);
    const run = await execute({});
    expect(run.status, run.cause).toBe('SUCCEEDED');
    expect(run.tasks).not.toContain(S.exportSegmentPage);
    const summary = (run.output as { summary: { tables: { table: string; rows: number }[] } }).summary;
    expect(summary.tables.find((t) => t.table === 'events')?.rows).toBe(51);
    const lake = await mirror();
    try {
      await checkLake(db, lake, 'events', 'incremental after backfill');
    } finally {
      lake.remove();
    }
  });
});
