// Breaker HH: a backfill (key-range segments exported at once) and a full re-run as a backfill
// whose rows land in years the projection does not cover yet, committed one file per invocation
// (Commit Table ⟲ Committed?): after every invocation, each published file is reachable by the
// projection registered at that moment (Athena emulated from the Glue definition), and at the
// end every row is, in the partition of its own date. A failed first-load backfill is not continued
// once the table's configured granularity changed (its finished segment's files are in day folders).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { commitTable, commitTableStep } from '../../lambdas/core/protocol/commit.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import type { RunRequest, TableTask } from '../../lambdas/core/protocol/run-model.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { athenaRows, athenaView } from './partition-break-athena.ts';

let db: TestDatabase;
beforeAll(async () => { db = await createDatabase(); });
afterAll(async () => {
  await db?.close();
  await stopPostgres();
});

const config = testConfig([{ name: 'bf_years', partitionBy: 'd', backfill: { segments: 3 } }], {
  lake: { partitionYears: { from: 1800, to: 2300 } }, export: { pageRows: 20, safetyLagSeconds: 0, backfillRows: 1 },
});

/** Plan, export the segments at once, then commit one published file per invocation, checking Athena's view after each. */
async function runInSteps(lake: TestLake, request: RunRequest, label: string): Promise<{ task: TableTask; steps: number }> {
  const deps = exportDeps(db, lake.store, config);
  const registered: string[] = [];
  const withRegistry = { ...deps, registry: { register: async (_table: string, schema: LakeSchema) => { registered.push(`${schema.years?.from}-${schema.years?.to}`); } } };
  try {
    const plan = await planRun(withRegistry, request);
    expect(plan.failed).toEqual([]);
    let [task] = plan.tables;
    expect(task.backfill, `${label}: a backfill`).toBeDefined();
    const state = new TableState(lake.store, 'raw', task.table);
    await Promise.all((await readSegments(state, task)).map(async (segment) => {
      const child = exportDeps(db, lake.store, config);
      try { return await exportTable(child, segmentTask(task, segment)); } finally { await child.close(); }
    }));
    while (!task.done) task = await exportTable(withRegistry, task);
    let step: Awaited<ReturnType<typeof commitTableStep>> = task;
    let steps = 0;
    while (!('status' in step)) {
      step = await commitTableStep(withRegistry, step, Date.now() - 1);
      steps++;
      // A table registered before: every file published so far is inside the projection it has now.
      if (await lake.store.get(state.schemaKey())) {
        const view = await athenaView(lake, task.table);
        expect(view.unreachable, `${label}: after commit invocation ${steps}, published files outside the projection`).toEqual([]);
      }
    }
    expect(step.status).toBe('succeeded');
    return { task, steps };
  } finally {
    await deps.close();
  }
}

it('widens the projection before the first file of a backfill commit is published, whatever invocation publishes it', async () => {
  await db.query(`CREATE TABLE bf_years (id int PRIMARY KEY, d date NOT NULL, v int NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
    INSERT INTO bf_years (id, d, updated_at) SELECT g, date '2010-01-01' + (g * 37) % 30 * 61, timestamptz '2024-06-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 300) g`);
  const lake = createLake();
  const first = await runInSteps(lake, {}, 'first load');
  expect(first.steps).toBeGreaterThan(3);
  // New rows in years before and after any written, then a full re-run as a backfill.
  await db.query(`UPDATE bf_years SET d = CASE WHEN id % 2 = 0 THEN date '1811-02-28' + id ELSE date '2250-12-31' - id END, v = 1, updated_at = clock_timestamp() WHERE id % 50 = 0`);
  const full = await runInSteps(lake, { full: true }, 'full re-run');
  expect(full.steps).toBeGreaterThan(3);
  const view = await athenaView(lake, 'bf_years');
  expect(view.unreachable).toEqual([]);
  const rows = await athenaRows<{ id: number; v: number; d: string }>(lake, view, 'id, v, CAST(d AS VARCHAR) AS d');
  const latest = new Map<number, { v: number; d: string; year: number }>();
  for (const r of rows) if (!latest.has(r.id) || r.v > latest.get(r.id)!.v) latest.set(r.id, r);
  const pg = await db.query('SELECT id::text AS id, v::text AS v, d::text AS d FROM bf_years ORDER BY bf_years.id');
  expect([...latest].sort((a, b) => a[0] - b[0]).map(([id, r]) => `${id} ${r.v} ${r.d} ${r.year}`)).toEqual(pg.map((r) => `${r.id} ${r.v} ${r.d} ${Number(r.d!.slice(0, 4))}`));
  // 300 rows and the 6 versions the update replaced (history), each once.
  expect(rows.length).toBe(306);
  lake.remove();
}, 180_000);

it('a failed first-load backfill is not continued after the configured granularity changed: the next run starts over, every row reachable', async () => {
  // A backfill fails on Friday; on Monday the user sets partition.granularity: month (as discover
  // proposed) and deploys. Its finished segment's files are in day folders: adopting it would mix
  // granularities in one run; the tables[] entry changed, so the next run starts over.
  const table = 'bf_gran';
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
    INSERT INTO ${table} SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '97 minutes' FROM generate_series(1, 2000) g; ANALYZE ${table}`);
  const lake = createLake();
  const cfg = (granularity: string) => testConfig([{ name: table, partition: { granularity }, backfill: { segments: 2 } }], { export: { pageRows: 200, safetyLagSeconds: 0, backfillRows: 1 } });
  const state = new TableState(lake.store, 'raw', table);
  const friday = exportDeps(db, lake.store, cfg('day'));
  const monday = exportDeps(db, lake.store, cfg('month'));
  try {
    const runId = '20260801T000000Z-bbbbccc1';
    const [task] = (await planRun(friday, { runId })).tables;
    const segments = await readSegments(state, task);
    expect((await exportTable(friday, segmentTask(task, segments[0]))).done).toBe(true);
    await abandonRun(friday, table, runId);
    let [next] = (await planRun(monday, { runId: '20260804T000000Z-bbbbccc2' })).tables;
    expect(next.runId, 'the failed backfill is not continued').not.toBe(runId);
    for (const segment of await readSegments(state, next)) {
      let child = segmentTask(next, segment);
      while (!child.done) child = await exportTable(monday, child);
    }
    while (!next.done) next = await exportTable(monday, next);
    expect((await commitTable(monday, next)).rows).toBe(2000);
  } finally { await friday.close(); await monday.close(); }
  const view = await athenaView(lake, table);
  const rows = await athenaRows<{ id: number }>(lake, view, 'id');
  expect({ template: view.definition.Parameters['storage.location.template'], athena: rows.length, unreachable: view.unreachable.length })
    .toEqual({ template: expect.any(String), athena: 2000, unreachable: 0 });
  lake.remove();
});
