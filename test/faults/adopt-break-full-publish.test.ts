// Breaker (HE): a {"full": true} re-run of an exported table, as a backfill, whose Commit fails
// part-way through publishing (an S3 fault that outlasts the retries). Summarize tidies the failed
// table: a backfill is kept for the next execution to continue — with the files it already
// published still visible beside the ones they replace. A correct product shows no version twice
// to a reader while the backfill waits, and the next execution commits every version once.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, duckdb, exportDeps, faultyStore, parquetGlob, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const CHILD = path.join(import.meta.dirname, 'adopt-break-kill-child.ts');
const db = fileDatabase();

const FULL = '20260601T000000Z-ccccccc1';

/** Plan (as `runId`), every segment, the table's task, commit — through `store`. */
async function runThrough(store: ObjectStore, config: LakeConfig, request: object, runId?: string): Promise<TableTask> {
  const deps = exportDeps(db, store, config);
  try {
    let [task] = (await planRun(deps, { ...request, ...(runId ? { runId } : {}) })).tables;
    if (task.backfill) {
      for (const segment of await readSegments(new TableState(store, 'raw', task.table), task)) {
        // One chunk (one file) per invocation, as a Lambda whose budget runs out.
        let child = segmentTask(task, segment);
        while (!child.done) child = await exportTable(deps, child, Date.now());
      }
    }
    while (!task.done) task = await exportTable(deps, task);
    await commitTable(deps, task);
    return task;
  } finally {
    await deps.close();
  }
}

async function visibleVersions(lake: TestLake, table: string): Promise<{ n: string; versions: string }> {
  const [row] = await duckdb<{ n: string; versions: string }>(`SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions FROM read_parquet(${parquetGlob(lake, table)})`);
  return row;
}

describe('a full re-run backfill whose commit fails mid-publish', () => {
  it('shows no version twice while it waits, and the next execution commits every version once', async () => {
    const table = 'adopt_break_full_publish';
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-09 00:00:00+00' + g * interval '10 seconds' FROM generate_series(1, 3000) g`);
    const lake = createLake();
    const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 } });
    await runThrough(lake.store, config, {});
    expect(await visibleVersions(lake, table)).toEqual({ n: '3000', versions: '3000' });
    // The full re-run: its commit's third move fails, and keeps failing (the step's retries too).
    let moves = 0;
    const failing = faultyStore(lake.store, {
      move: async (from, to) => {
        if (++moves >= 3) throw new Error(`S3 503 SlowDown on COPY ${from}`);
        return lake.store.move(from, to);
      },
    });
    await expect(runThrough(failing, config, { full: true }, FULL)).rejects.toThrow(/SlowDown/);
    // The table failed: the execution's Summarize tidies it.
    const deps = exportDeps(db, lake.store, config);
    try {
      await abandonRun(deps, table, FULL);
    } finally {
      await deps.close();
    }
    const waiting = await visibleVersions(lake, table);
    console.log(`[full re-run waiting] visible rows ${waiting.n}, distinct versions ${waiting.versions}`);
    expect.soft(waiting, 'what a reader sees while the backfill waits').toEqual({ n: '3000', versions: '3000' });
    // The next scheduled execution continues the full re-run and commits it.
    expect((await runThrough(lake.store, config, {})).runId).toBe(FULL);
    expect(await visibleVersions(lake, table)).toEqual({ n: '3000', versions: '3000' });
    await checkLake(db, lake, table, 'full re-run continued after a failed publish');
    lake.remove();
  }, 60_000);

  it('killed (SIGKILL) after its second publish move, is continued by the next execution: every version once', async () => {
    const table = 'adopt_break_full_killed';
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-10 00:00:00+00' + g * interval '10 seconds' FROM generate_series(1, 3000) g`);
    const lake = createLake();
    const raw = { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 }, tables: [{ name: table, backfill: { segments: 2 } }] };
    const config = testConfig(raw.tables, { export: raw.export, lake: raw.lake });
    const state = new TableState(lake.store, 'raw', table);
    await runThrough(lake.store, config, {});
    const job = path.join(lake.dir, 'job.json');
    writeFileSync(job, JSON.stringify({ databaseUrl: db.url, lakeUrl: lake.url, config: raw, runId: FULL, request: { full: true }, killAt: 2, after: true, moves: true }));
    await expect(promisify(execFile)(process.execPath, [CHILD, job])).rejects.toMatchObject({ signal: 'SIGKILL' });
    // The execution died: its lease lapses.
    const lease = (await state.read<Lease>(state.leaseKey()))!;
    await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
    expect((await runThrough(lake.store, config, {})).runId).toBe(FULL);
    expect(await visibleVersions(lake, table)).toEqual({ n: '3000', versions: '3000' });
    await checkLake(db, lake, table, 'full re-run killed mid-publish, continued');
    lake.remove();
  }, 60_000);
});
