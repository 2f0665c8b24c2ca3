// End to end, a failed backfill continued by the next execution (issue 14): the synthesized export
// workflow and its Segments machine, run locally with the real handlers against embedded
// PostgreSQL and an S3 API server. The first execution's backfill fails in its last segment (a
// value no Parquet decimal holds), after Export Segments' one retry (States.TaskFailed: a new
// Segments execution); the value is fixed, the dead execution's lease lapses, and a new execution
// continues the same run: the finished segments are not exported again. DuckDB checks the lake.
// Its own file: the handlers read one configuration per process.
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorkflowLocally, synthesizeDefinition, type LocalRunEnvironment } from '../../bin/local/workflow-runner.ts';
import type { WorkflowDefinition } from '../../bin/local/state-machine-definition.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { SEGMENT_PAGE_STRIDE } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type Lease, type PageEntry, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { WORKFLOW_STATES as S } from '../../lib/export-workflow.ts';
import { checkLake } from '../faults/lake-checks.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const BUCKET = 'e2e-backfill-adopt';
let db: TestDatabase;
let s3: LocalS3Server;
let store: S3Store;
let env: LocalRunEnvironment;
let definition: WorkflowDefinition;

// One lane (concurrency 1): the map's one child exports the 4 segments in turn, so the failure
// in the last one comes after the other three finished.
const config = validateConfig({
  export: { pageRows: 200, safetyLagSeconds: 0, backfillConcurrency: 2 },
  lake: { rowGroupRows: 200 },
  validation: { enabled: false },
  // No compaction: the committed run's manifest and watermark stay as the commit wrote them.
  tables: [{ name: 'public.adopt', backfill: { segments: 4, concurrency: 1 }, compaction: false }],
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
    CREATE TABLE adopt (id int PRIMARY KEY, payload text, amount numeric, updated_at timestamptz NOT NULL);
    INSERT INTO adopt SELECT g, 'a' || g, g, timestamptz '2024-05-01' + g * interval '1 minute' FROM generate_series(1, 2000) g;
    UPDATE adopt SET amount = 1e35 WHERE id = 1990;
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

describe('a failed backfill, continued by the next execution of the synthesized workflow', () => {
  it('the new execution exports only the unfinished segment and commits the same run: every row once', async () => {
    const state = new TableState(store, 'raw', 'adopt');
    const failed = await execute({});
    expect(failed.status).toBe('FAILED');
    // Export Segments failed twice (its one retry on States.TaskFailed started a second Segments execution), uncaught.
    expect(failed.error).toBe('States.TaskFailed');
    expect(failed.cause).toMatch(/ValueError/);
    expect(failed.tasks).not.toContain(S.commit);
    const [runId] = await state.pendingRuns();
    const progress = await Promise.all([0, 1, 2, 3].map(async (i) => (await state.read<{ done: boolean }>(`${state.pendingPrefix(runId)}s000${i}.json`))?.value.done ?? false));
    expect(progress).toEqual([true, true, true, false]);
    // Nothing visible: the run's files are staged only.
    expect((await store.list('raw/adopt/')).filter((k) => k.endsWith('.parquet'))).toEqual([]);
    const journalled: PageEntry[] = await state.pendingPages(runId);
    // The operator fixes the value (its row keeps its cursor); the dead execution's lease lapses.
    await db.query('UPDATE adopt SET amount = 1990 WHERE id = 1990');
    const lease = (await state.read<Lease>(state.leaseKey()))!;
    expect(lease.value.runId).toBe(runId);
    await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });

    const resumed = await execute({});
    expect(resumed.status, resumed.cause).toBe('SUCCEEDED');
    const summary = (resumed.output as { summary: { failed: number; tables: { table: string; rows: number }[] } }).summary;
    expect(summary.tables).toEqual([expect.objectContaining({ table: 'adopt', rows: 2000 })]);
    // The same run committed, with every page journalled before the failure as it was.
    expect((await state.watermark())?.runId).toBe(runId);
    const manifest = (await state.read<RunManifest>(state.manifestKey(runId)))!.value;
    const earlier = journalled.filter((p) => Math.floor(p.page / SEGMENT_PAGE_STRIDE) < 3);
    expect(manifest.pages.filter((p) => earlier.some((e) => e.page === p.page))).toEqual(earlier);
    // Export Segment Page ran once for each finished segment (it returns at once: the lane moves
    // on) and once per chunk of segment 3; the failed execution ran it for all four, twice for the last.
    const lastSegmentChunks = manifest.pages.filter((p) => Math.floor(p.page / SEGMENT_PAGE_STRIDE) === 3).length;
    const segmentPages = (run: { tasks: string[] }) => run.tasks.filter((t) => t === S.exportSegmentPage).length;
    console.log(`[backfill adoption e2e] Export Segment Page invocations: failed execution ${segmentPages(failed)}, new execution ${segmentPages(resumed)} (segment 3: ${lastSegmentChunks} chunks; segments 0–2: ${earlier.length} chunks, not exported again)`);
    expect(segmentPages(resumed)).toBeLessThanOrEqual(3 + lastSegmentChunks + 1);
    expect(segmentPages(failed)).toBeGreaterThan(earlier.length);
    const lake = await mirror();
    try {
      await checkLake(db, lake, 'adopt', 'backfill continued by a new execution');
    } finally {
      lake.remove();
    }
    expect(await store.list(state.pendingPrefix())).toEqual([]);
  }, 180_000);
});
