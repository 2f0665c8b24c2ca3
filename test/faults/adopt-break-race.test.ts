// Breaker (HE): executions racing to adopt the same dead backfill. Plans start at once (a
// schedule and a console re-run, each its own connection) once the dead run's lease lapsed:
// exactly one continues the run, the others skip the table (the lease), and the run commits once.
// A {"takeOver": true} planned after the adopter refuses to continue a run whose lease is live
// (its invocations may still be writing) and starts over; the adopter is then fenced.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import type { RunPlan, TableTask } from '../../lambdas/core/protocol/run-model.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const db = fileDatabase();

const R1 = '20260701T000000Z-aaaabbb1';

/** A 2-segment first load that died after segment 0 and one chunk of segment 1; its lease lapsed. */
async function deadBackfill(lake: TestLake, config: LakeConfig, table: string): Promise<TableTask> {
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-12 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 3000) g`);
  const state = new TableState(lake.store, 'raw', table);
  const deps = exportDeps(db, lake.store, config);
  try {
    const [task] = (await planRun(deps, { runId: R1 })).tables;
    const segments = await readSegments(state, task);
    expect((await exportTable(deps, segmentTask(task, segments[0]))).done).toBe(true);
    expect((await exportTable(deps, segmentTask(task, segments[1]), Date.now())).done).toBe(false);
    const lease = (await state.read<Lease>(state.leaseKey()))!;
    await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
    return task;
  } finally {
    await deps.close();
  }
}

/** Every segment, the table's task, commit; returns the committed rows. */
async function finish(lake: TestLake, config: LakeConfig, task: TableTask): Promise<number> {
  const deps = exportDeps(db, lake.store, config);
  try {
    for (const segment of await readSegments(new TableState(lake.store, 'raw', task.table), task)) {
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

describe('executions racing to adopt one dead backfill', () => {
  it('four plans at once: one continues the run, three skip the table; the run commits every row once', async () => {
    const table = 'adopt_break_race_four';
    const lake = createLake();
    const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });
    const dead = await deadBackfill(lake, config, table);
    const planners = Array.from({ length: 4 }, () => exportDeps(db, lake.store, config));
    let plans: RunPlan[];
    try {
      plans = await Promise.all(planners.map((deps, i) => planRun(deps, { runId: `20260701T01000${i}Z-aaaabbb2`, ...(i === 3 ? { full: true } : {}) })));
    } finally {
      await Promise.all(planners.map((d) => d.close()));
    }
    const adopters = plans.filter((p) => p.tables.length > 0);
    expect(adopters).toHaveLength(1);
    // The dead run's task (a fix may add who holds it).
    const [adopted] = adopters[0].tables;
    expect(adopted).toMatchObject(dead);
    expect(plans.filter((p) => p.skipped.length === 1)).toHaveLength(3);
    expect(plans.flatMap((p) => p.failed)).toEqual([]);
    // The skipped executions' Summarize has nothing of theirs to tidy.
    const deps = exportDeps(db, lake.store, config);
    try {
      for (const p of plans.filter((x) => x.tables.length === 0)) await abandonRun(deps, table, p.runId);
    } finally {
      await deps.close();
    }
    const state = new TableState(lake.store, 'raw', table);
    expect((await state.read<Lease>(state.leaseKey()))?.value.runId).toBe(R1);
    expect(await finish(lake, config, adopted)).toBe(3000);
    await checkLake(db, lake, table, 'four plans at once');
    lake.remove();
  }, 60_000);

  it('a {"takeOver": true} after the adopter starts over; the adopter is fenced; every row once', async () => {
    const table = 'adopt_break_race_takeover';
    const lake = createLake();
    const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });
    const dead = await deadBackfill(lake, config, table);
    const state = new TableState(lake.store, 'raw', table);
    const deps = exportDeps(db, lake.store, config);
    try {
      const [adopted] = (await planRun(deps, { runId: '20260701T010000Z-aaaabbb2' })).tables;
      expect(adopted).toMatchObject(dead);
      const logs: string[] = [];
      const [fresh] = (await planRun({ ...deps, log: (m, f) => logs.push(`${m} ${JSON.stringify(f)}`) }, { runId: '20260701T020000Z-aaaabbb3', takeOver: true })).tables;
      expect(fresh.runId).toBe('20260701T020000Z-aaaabbb3');
      expect(logs.join('\n')).toMatch(/taken over, not released or lapsed/);
      expect(await lake.store.list(state.pendingPrefix(R1))).toEqual([]);
      // The adopter's next invocation stops without writing.
      const [segment] = await readSegments(state, fresh);
      await expect(exportTable(deps, segmentTask(adopted, segment))).rejects.toThrow(/no longer holds the table's lease/);
      await abandonRun(deps, table, '20260701T010000Z-aaaabbb2');
      expect((await state.read<Lease>(state.leaseKey()))?.value.runId).toBe(fresh.runId);
      expect(await finish(lake, config, fresh)).toBe(3000);
    } finally {
      await deps.close();
    }
    await checkLake(db, lake, table, 'takeover after the adopter');
    lake.remove();
  }, 60_000);
});
