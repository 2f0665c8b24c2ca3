// A Compact Table that fails is reported: the synthesized workflow, run locally with the real
// handlers over a directory lake, records the failure as a warning (the export stands and the
// execution succeeds), and Summarize emits CompactionFailed = 1 for that run (0 for runs whose
// compaction did not fail), the metric the CompactionFailed alarm watches. The fault is the
// lake's: a data file that a committed run's manifest lists is gone when the compaction reads it.
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runWorkflowLocally, synthesizeDefinition, type LocalRunEnvironment } from '../../bin/local/workflow-runner.ts';
import type { WorkflowDefinition } from '../../bin/local/state-machine-definition.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { COMPACTION_FAILED_METRIC } from '../../lib/export-alarms.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

// Three files in one partition (one per run) call for a compaction: more than minFiles (2).
const config = validateConfig({
  export: { pageRows: 100, safetyLagSeconds: 0 },
  validation: { enabled: false },
  compaction: { minFiles: 2 },
  // Partitioned by a fixed date: every run's rows (new, cursor now) land in one partition.
  tables: [{ name: 'public.orders', partitionBy: 'placed_on' }],
});

type RunOutput = {
  plan: { tables: Array<{ table: string; status: string; compaction?: { status: string; error?: string } }> };
  summary: { succeeded: number; failed: number; compaction: { failed: number } | null };
};

let db: TestDatabase;
let lake: TestLake;
let env: LocalRunEnvironment;
let definition: WorkflowDefinition;
/** Every EMF record the handlers printed (Powertools Metrics writes one JSON line per flush). */
const emitted: Array<Record<string, unknown>> = [];

/** The per-run metrics (dimension `service` only) of the last Summarize. */
function lastRunMetrics(): Record<string, unknown> {
  type Emf = { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } };
  return emitted.filter((record) => (record as Emf)._aws.CloudWatchMetrics[0].Dimensions[0].join() === 'service').at(-1) ?? {};
}

/** 150 new rows, all placed on 2024-03-01 (one day partition). */
async function insertBatch(batch: number): Promise<void> {
  await db.query(`INSERT INTO orders SELECT ${batch} * 1000 + g, 'b${batch}', date '2024-03-01', clock_timestamp() FROM generate_series(1, 150) g`);
}

async function execute(): Promise<{ status: string; output: RunOutput }> {
  const result = await runWorkflowLocally(definition, env, {});
  return { status: result.status, output: result.output as RunOutput };
}

const dataFiles = () => (readdirSync(path.join(lake.dir, 'raw', 'orders'), { recursive: true }) as string[]).filter((f) => f.endsWith('.parquet')).sort();

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query('CREATE TABLE orders (id int PRIMARY KEY, payload text, placed_on date NOT NULL, updated_at timestamptz NOT NULL)');
  env = { config, databaseUrl: db.url, lake: lake.url };
  definition = synthesizeDefinition(config);
  // Summarize's metrics as deployed (EMF on stdout), kept out of the test output.
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  const write = process.stdout.write.bind(process.stdout) as (chunk: string | Uint8Array, ...rest: unknown[]) => boolean;
  vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (!text.startsWith('{"_aws"')) return write(chunk, ...rest);
    for (const line of text.split('\n').filter(Boolean)) emitted.push(JSON.parse(line) as Record<string, unknown>);
    return true;
  }) as typeof process.stdout.write);
}, 120_000);

afterAll(async () => {
  vi.restoreAllMocks();
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

describe('a failed compaction in the workflow', () => {
  it('leaves the export standing and emits CompactionFailed for its run', async () => {
    for (const batch of [1, 2]) {
      await insertBatch(batch);
      const run = await execute();
      expect(run.status).toBe('SUCCEEDED');
      expect(run.output.plan.tables.map((t) => [t.table, t.status, t.compaction])).toEqual([['orders', 'succeeded', { status: 'skipped' }]]);
      expect(run.output.summary.compaction).toEqual({ failed: 0 });
      expect(lastRunMetrics()[COMPACTION_FAILED_METRIC]).toBe(0);
    }
    const [first] = await new TableState(lake.store, 'raw', 'orders').manifests().then((ms) => ms.sort((a, b) => a.runId.localeCompare(b.runId)));
    const lost = first.pages[0].files[0].key;
    rmSync(path.join(lake.dir, lost));

    await insertBatch(3);
    const run = await execute();
    // The export committed; only the compaction failed, recorded by the Catch with its error's name.
    expect(run.status).toBe('SUCCEEDED');
    expect(run.output.plan.tables).toEqual([expect.objectContaining({ table: 'orders', status: 'succeeded', rows: 150, compaction: { status: 'failed', error: 'StateError' } })]);
    expect(run.output.summary).toMatchObject({ succeeded: 1, failed: 0, compaction: { failed: 1 } });
    expect(lastRunMetrics()).toMatchObject({ [COMPACTION_FAILED_METRIC]: 1 });
    const [{ n }] = await db.query('SELECT count(*)::text AS n FROM orders');
    expect(n).toBe('450');
    // Nothing of the failed generation is left: no generation folder, no pending compaction.
    expect(dataFiles().filter((f) => f.includes('generation='))).toEqual([]);
    expect(await lake.store.list('raw/_state/orders/pending/')).toEqual([]);
  });
});
