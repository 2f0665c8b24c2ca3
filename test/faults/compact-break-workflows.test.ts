// Breaker (HG): overlapping executions of the synthesized workflow (Plan → Export → Commit →
// Validate → Compact → Summarize, run locally with the real handlers over a directory lake),
// two at a time, with thresholds that make Compact Table compact after most commits: one
// execution's Compact races the other's Plan, Export and Commit of the same table. Between
// rounds Postgres changes (updates, inserts, deletes, soft deletes). After each round: readers
// see every version once and `<table>_current` equals Postgres once a quiet run has committed.
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
  export: { pageRows: 60, safetyLagSeconds: 0 },
  compaction: { minFiles: 2, graceMinutes: 0 },
  tables: [{ name: 'public.busy', softDeleteColumn: 'gone', deletes: { detect: true } }],
});

type RunOutput = { summary: { tables: Array<{ table: string; status: string; error?: string }> } };

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE busy (id int PRIMARY KEY, payload text, gone boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL);
    INSERT INTO busy SELECT g, 'v0-' || g, false, timestamptz '2024-05-01 00:00:00+00' + g * interval '3 hours' FROM generate_series(1, 300) g`);
  env = { config, databaseUrl: db.url, lake: pathToFileURL(lake.dir).href };
  definition = synthesizeDefinition(config);
}, 300_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

async function execute(input: object, delayMs = 0): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  const compactions: string[] = [];
  const result = await runWorkflowLocally(definition, env, input, { onTaskOutput: (state, output) => { if (state === 'Compact Table') compactions.push((output as { status: string }).status); } });
  const tables = (result.output as RunOutput | undefined)?.summary?.tables ?? [];
  return `${result.status}: ${tables.map((t) => `${t.status}${t.error ? ` (${t.error.slice(0, 60)})` : ''}`).join(',')}${compactions.length ? ` [compact: ${compactions.join(',')}]` : ''}`;
}

describe('overlapping executions with Compact Table', () => {
  it('keep the lake exact', async () => {
    const seen = new Set<string>();
    const log: string[] = [];
    log.push(`first: ${await execute({})}`);
    for (let round = 1; round <= 10; round++) {
      await db.query(`UPDATE busy SET payload = 'r${round}-' || id, updated_at = clock_timestamp() WHERE id % ${round + 2} = 0`);
      if (round % 2 === 0) await db.query(`DELETE FROM busy WHERE id IN (SELECT id FROM busy ORDER BY md5(id::text || '${round}') LIMIT 5)`);
      if (round % 3 === 0) await db.query(`UPDATE busy SET gone = NOT gone, updated_at = clock_timestamp() WHERE id % 11 = ${round}`);
      const inputs = [{}, round % 2 ? { full: true } : { window: { from: '2024-05-02 00:00:00+00', to: '2024-05-20 00:00:00+00' } }];
      // The second starts a little later each round, so its Plan meets the first's Export, Commit or Compact.
      const outcomes = await Promise.all(inputs.map((input, i) => execute(input, i * round * 150)));
      log.push(`round ${round}: ${outcomes.join(' | ')}`);
      // A quiet scheduled run with a change (so deletes are detected), then the check.
      await db.query("UPDATE busy SET payload = 'q', updated_at = clock_timestamp() WHERE id = (SELECT min(id) FROM busy)");
      log.push(`round ${round} quiet: ${await execute({})}`);
      try {
        await checkReaders(db, lake, config, 'busy', `round ${round}`, { softDelete: 'gone', seenVersions: seen, noOrphans: true });
      } catch (error) {
        console.log(log.join('\n'));
        throw error;
      }
    }
    console.log(log.join('\n'));
  }, 600_000);
});
