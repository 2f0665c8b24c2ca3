// The local workflow runner gives Compact Table a whole invocation, as Lambda does, whatever
// budget it gives Export invocations: a compaction stops before a page that would not fit in its
// invocation (compact.ts), so with Export's short test budget (1 ms here, 2 s in the demo) a
// compaction of two partitions would stop after the first and fail on every local run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorkflowLocally, synthesizeDefinition, type LocalRunEnvironment } from '../../bin/local/workflow-runner.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const config = validateConfig({
  export: { pageRows: 100, safetyLagSeconds: 0 },
  validation: { enabled: false },
  compaction: { minFiles: 2 },
  tables: [{ name: 'public.orders', partitionBy: 'placed_on' }],
});

let db: TestDatabase;
let lake: TestLake;
let env: LocalRunEnvironment;

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query('CREATE TABLE orders (id int PRIMARY KEY, payload text, placed_on date NOT NULL, updated_at timestamptz NOT NULL)');
  env = { config, databaseUrl: db.url, lake: lake.url };
}, 120_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

describe('compaction in a local workflow run with a short Export budget', () => {
  it('compacts every partition in one Compact Table invocation', async () => {
    const definition = synthesizeDefinition(config);
    const compactions: unknown[] = [];
    for (const batch of [1, 2]) {
      // Two partitions a run: a compaction has two pages to write.
      await db.query(`INSERT INTO orders SELECT ${batch} * 1000 + g, 'b${batch}', date '2024-03-01' + (g % 2), clock_timestamp() FROM generate_series(1, 150) g`);
      const result = await runWorkflowLocally(definition, env, {}, { exportBudgetMillis: 1 });
      expect(result.status).toBe('SUCCEEDED');
      const tables = (result.output as { plan: { tables: Array<{ compaction?: unknown }> } }).plan.tables;
      compactions.push(tables[0].compaction);
    }
    // The second run leaves two files in each partition (compaction.minFiles): two pages to write.
    expect(compactions).toEqual([{ status: 'skipped' }, { status: 'compacted' }]);
    // The table now reads one file per partition (the new generation), every row once.
    const manifests = await new TableState(lake.store, 'raw', 'orders').manifests();
    expect(manifests.flatMap((m) => m.pages.flatMap((p) => p.files)).length).toBe(2);
    const query = await LakeQuery.open(config, lake.store);
    try {
      const [seen] = await query.query('SELECT CAST(count(*) AS VARCHAR) AS n, CAST(count(DISTINCT id) AS VARCHAR) AS ids, CAST(sum(id) AS VARCHAR) AS total FROM orders');
      const [expected] = await db.query('SELECT count(*)::text AS n, count(DISTINCT id)::text AS ids, sum(id)::text AS total FROM orders');
      expect(seen).toEqual(expected);
      expect(expected).toMatchObject({ n: '300', ids: '300' });
    } finally {
      query.close();
    }
  });
});
