// Breaker (HE): who holds an adopted backfill's lease. Adoption moves the table's lease to the
// dead run's id; the execution that planned that run — and a plan that lost a race to adopt it —
// still hold tasks (or an adoption record) naming that id, and their failure path (Summarize's
// abandonRun) releases the lease the adopter is exporting under.
//  1. Summarize of the original execution runs late: Summarize runs after every table of the
//     execution, so a table that failed early has its lease lapse while the other tables export;
//     a new execution adopts the run meanwhile.
//  2. Two plans at once, the second a {"takeOver": true}: the first writes its adoption record
//     after the second adopted, then loses the lease; its Summarize releases the adopter's lease.
// A correct product leaves the adopter's lease alone, and the adopter commits every row once.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import type { RunPlan, SegmentRange, TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { describeError } from '../../lambdas/core/errors.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, exportDeps, faultyStore, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const db = fileDatabase();

const R1 = '20260401T000000Z-fffffff1';
const R2 = '20260401T010000Z-fffffff2';
const R3 = '20260401T020000Z-fffffff3';

/** A 2-segment first load whose execution fails after segment 0 and one chunk of segment 1; its lease then lapses. */
async function deadBackfill(lake: TestLake, config: LakeConfig, table: string): Promise<{ task: TableTask; segments: SegmentRange[] }> {
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-05 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 4000) g`);
  const state = new TableState(lake.store, 'raw', table);
  const deps = exportDeps(db, lake.store, config);
  try {
    const [task] = (await planRun(deps, { runId: R1 })).tables;
    const segments = await readSegments(state, task);
    expect((await exportTable(deps, segmentTask(task, segments[0]))).done).toBe(true);
    expect((await exportTable(deps, segmentTask(task, segments[1]), Date.now())).done).toBe(false);
    const lease = (await state.read<Lease>(state.leaseKey()))!;
    await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
    return { task, segments };
  } finally {
    await deps.close();
  }
}

/** The adopter's map and commit. */
async function finish(lake: TestLake, config: LakeConfig, task: TableTask, segments: readonly SegmentRange[]): Promise<number> {
  const deps = exportDeps(db, lake.store, config);
  try {
    for (const segment of segments) {
      let child = segmentTask(task, segment);
      while (!child.done) child = await exportTable(deps, child);
    }
    let table = task;
    while (!table.done) table = await exportTable(deps, table);
    return (await commitTable(deps, table)).rows;
  } finally {
    await deps.close();
  }
}

describe('an adopted backfill\'s lease', () => {
  it('is not released by the original execution\'s late Summarize', async () => {
    const table = 'adopt_break_late_summarize';
    const lake = createLake();
    const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });
    const state = new TableState(lake.store, 'raw', table);
    const { task, segments } = await deadBackfill(lake, config, table);
    const deps = exportDeps(db, lake.store, config);
    let adopted: TableTask;
    try {
      // E2 (another execution: the next schedule, or a console run of this table) adopts the run.
      [adopted] = (await planRun(deps, { runId: R2 })).tables;
      expect(adopted).toMatchObject(task);
      // E1's other tables are done: its Summarize tidies the table that failed, by E1's run id.
      await abandonRun(deps, table, R1);
      expect((await state.read<Lease>(state.leaseKey()))?.value.runId, 'the adopter\'s lease after E1\'s Summarize').toBe(R1);
    } finally {
      await deps.close();
    }
    expect(await finish(lake, config, adopted, segments)).toBe(4000);
    await checkLake(db, lake, table, 'late Summarize');
    lake.remove();
  }, 60_000);

  it('is not released by the Summarize of a plan that lost the race to adopt it to a {"takeOver": true}', async () => {
    const table = 'adopt_break_takeover_race';
    const lake = createLake();
    const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });
    await deadBackfill(lake, config, table);
    // Plan A (the schedule) is held just before it writes the lease that names it the adopter.
    let reached = () => {};
    const atRecord = new Promise<void>((resolve) => { reached = resolve; });
    let release = () => {};
    const held = new Promise<void>((resolve) => { release = resolve; });
    const slow = faultyStore(lake.store, {
      put: async (key, body, options) => {
        if (key.endsWith('/lease.json') && JSON.parse(Buffer.from(body).toString('utf8')).holder === R2) {
          reached();
          await held;
        }
        return lake.store.put(key, body, options);
      },
    });
    const depsA = exportDeps(db, slow, config);
    const deps = exportDeps(db, lake.store, config);
    const plans: RunPlan[] = [];
    try {
      const planA = planRun(depsA, { runId: R2 });
      await Promise.race([atRecord, planA]);
      // Plan B, an operator's {"takeOver": true}, takes the lease from A (and adopts the run, or starts over).
      plans.push(await planRun(deps, { runId: R3, takeOver: true }));
      release();
      plans.push(await planA);
    } finally {
      await depsA.close();
      await deps.close();
    }
    // Each execution's Summarize tidies the table it could not plan.
    const tidy = exportDeps(db, lake.store, config);
    try {
      for (const p of plans) if (p.tables.length === 0) await abandonRun(tidy, table, p.runId);
    } finally {
      await tidy.close();
    }
    // Each planned task is exported and committed; one that fails is tidied by its Summarize.
    const outcomes: string[] = [];
    for (const p of plans) {
      for (const task of p.tables) {
        try {
          outcomes.push(`${p.runId}: committed ${await finish(lake, config, task, await readSegments(new TableState(lake.store, 'raw', table), task))}`);
        } catch (error) {
          outcomes.push(`${p.runId}: ${describeError(error)}`);
          const tidyFailed = exportDeps(db, lake.store, config);
          await abandonRun(tidyFailed, table, p.runId).finally(() => tidyFailed.close());
        }
      }
    }
    console.log(`[takeover race] ${outcomes.join('\n')}`);
    expect(outcomes.filter((o) => o.endsWith('committed 4000')), outcomes.join('\n')).toHaveLength(1);
    // The next scheduled run tidies what a plan that lost the lease may have left under pending/.
    const next = exportDeps(db, lake.store, config);
    try {
      const [task] = (await planRun(next)).tables;
      await commitTable(next, await exportTable(next, task));
    } finally {
      await next.close();
    }
    await checkLake(db, lake, table, 'takeover race');
    lake.remove();
  }, 60_000);
});
