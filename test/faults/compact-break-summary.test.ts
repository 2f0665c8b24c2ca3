// Breaker (HG; failed before Commit counted its tombstones): the synthesized workflow (Plan → Export → Commit → Validate → Compact →
// Summarize), run locally with the real handlers over a directory lake. Compact Table runs
// after the table's Commit and before Summarize; Summarize counts a run's deletes
// (DeletesDetected, the CLI's "N deletes found") from the run's manifest. When Compact Table
// compacts the table in that same execution, is the count still the run's tombstones?
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorkflowLocally, synthesizeDefinition, type LocalRunEnvironment } from '../../bin/local/workflow-runner.ts';
import type { WorkflowDefinition } from '../../bin/local/state-machine-definition.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { checkReaders } from './compact-break-checks.ts';

let db: TestDatabase;
let lake: TestLake;
let env: LocalRunEnvironment;
let definition: WorkflowDefinition;

const config = validateConfig({
  export: { pageRows: 300, safetyLagSeconds: 0 },
  compaction: { minFiles: 2, graceMinutes: 60 },
  tables: [{ name: 'public.orders', deletes: { detect: true } }],
});

type RunOutput = { summary: { failed: number; tables: Array<{ table: string; status: string; rows: number; deletes?: number }> } };

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE orders (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO orders SELECT g, 'o' || g, timestamptz '2024-06-01' + (g % 3) * interval '1 day' FROM generate_series(1, 600) g`);
  env = { config, databaseUrl: db.url, lake: pathToFileURL(lake.dir).href };
  definition = synthesizeDefinition(config);
}, 300_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

async function execute(): Promise<{ output: RunOutput; compactions: unknown[] }> {
  const compactions: unknown[] = [];
  const result = await runWorkflowLocally(definition, env, {}, { onTaskOutput: (state, output) => { if (state === 'Compact Table') compactions.push(output); } });
  expect(result.status, result.cause).toBe('SUCCEEDED');
  return { output: result.output as RunOutput, compactions };
}

describe('Summarize after Compact Table compacted the table in the same execution', () => {
  it('counts the run\'s deletes', async () => {
    await execute();
    await db.query("UPDATE orders SET payload = 'u1', updated_at = clock_timestamp() WHERE id % 7 = 0");
    const second = await execute();
    expect(second.compactions, 'no compaction yet (2 files in today\'s partition)').toEqual([{ status: 'skipped' }]);
    // 40 deletes and 50 updates: today's partition gets the updates' file and the tombstones' file (3 files).
    await db.query("DELETE FROM orders WHERE id BETWEEN 101 AND 140; UPDATE orders SET payload = 'u2', updated_at = clock_timestamp() WHERE id BETWEEN 201 AND 250");
    const third = await execute();
    expect(third.compactions).toEqual([{ status: 'compacted' }]);
    await checkReaders(db, lake, config, 'orders', 'after the third run');
    expect(third.output.summary.tables.map((t) => [t.table, t.status, t.deletes]), 'Summarize: the run\'s tombstones (DeletesDetected)').toEqual([['orders', 'succeeded', 40]]);
  }, 300_000);
});
