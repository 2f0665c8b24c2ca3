// Backfill under crashes (issue 14): a segment's child killed (SIGKILL) mid-invocation, then its
// item delivered again (a retried child, a redriven Map Run): the segment goes on from its
// journalled progress and the lake holds every row once. And a failed backfill continued by a new
// execution that is itself killed — in a segment, or in its commit — then continued (or rolled
// forward) by the next one. Checked by the fault suite's checks.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, exportDeps } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const run = promisify(execFile);
const CHILD = path.join(import.meta.dirname, 'segment-crash-child.ts');
const db = fileDatabase();

/** The child's exit: its output line when it finished, 'killed' when it died. */
async function child(job: object, file: string): Promise<string> {
  writeFileSync(file, JSON.stringify(job));
  try {
    return (await run(process.execPath, [CHILD, file])).stdout.trim();
  } catch (error) {
    if ((error as { signal?: string }).signal === 'SIGKILL') return 'killed';
    throw error;
  }
}

describe('a backfill segment killed mid-invocation', () => {
  for (const [point, nth] of [['before-page-journal', 3], ['before-progress', 2]] as const) {
    it(`${point} (#${nth}): the item delivered again finishes the segment, every row once`, async () => {
      const table = `bf_crash_${point.replaceAll('-', '_')}`;
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-11-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 6000) g`);
      const lake = createLake();
      const raw = { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 }, tables: [{ name: table, backfill: { segments: 2 } }] };
      const config = validateConfig(raw, 'fault config');
      const deps = exportDeps(db, lake.store, config);
      try {
        let [task] = (await planRun(deps)).tables;
        const state = new TableState(lake.store, 'raw', table);
        const segments = await readSegments(state, task);
        const job = (segment: unknown, crash: boolean) => ({ databaseUrl: db.url, lakeUrl: lake.url, config: raw, item: { task, segment }, point: crash ? point : 'none', nth });
        // Segment 0 dies; segment 1 finishes.
        expect(await child(job(segments[0], true), path.join(lake.dir, 'job-0.json'))).toBe('killed');
        expect(await child(job(segments[1], false), path.join(lake.dir, 'job-1.json'))).toMatch(/"segment":1/);
        // The same item again (a redriven Map Run): segment 0 goes on and finishes.
        const again = JSON.parse(await child(job(segments[0], false), path.join(lake.dir, 'job-0b.json'))) as { segment: number; first: number; rows: number };
        // It resumed from the progress the killed child recorded (after chunk nth - 1), not from page 1,
        // and kept a chunk journalled after that progress (written once): killed before progress #2,
        // chunk 2 is journalled and its first invocation writes chunk 3.
        expect(again).toMatchObject({ segment: 0, first: point === 'before-progress' ? nth + 1 : nth });
        while (!task.done) task = await exportTable(deps, task);
        expect((await commitTable(deps, task)).rows).toBe(6000);
      } finally {
        await deps.close();
      }
      await checkLake(db, lake, table, `segment killed ${point}`);
      lake.remove();
    });
  }
});

describe('a failed backfill continued by a new execution that is killed', () => {
  const R1 = '20260101T000000Z-bbbbbbb1';
  const R2 = '20260101T010000Z-bbbbbbb2';
  const R3 = '20260101T020000Z-bbbbbbb3';
  for (const [point, nth] of [['before-page-journal', 2], ['before-progress', 2], ['mid-publish', 3], ['before-watermark', 1], ['after-watermark', 1]] as const) {
    it(`${point} (#${nth}): the next execution finishes it, every row once`, async () => {
      const table = `bf_adopt_crash_${point.replaceAll('-', '_')}`;
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-11-10 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 6000) g`);
      const lake = createLake();
      const raw = { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 }, tables: [{ name: table, backfill: { segments: 3 } }] };
      const config = validateConfig(raw, 'fault config');
      const state = new TableState(lake.store, 'raw', table);
      const deps = exportDeps(db, lake.store, config);
      try {
        // The first execution: segment 0 finishes, segment 1 exports one chunk, then it fails.
        const [first] = (await planRun(deps, { runId: R1 })).tables;
        const segments = await readSegments(state, first);
        expect((await exportTable(deps, segmentTask(first, segments[0]))).done).toBe(true);
        expect((await exportTable(deps, segmentTask(first, segments[1]), Date.now())).done).toBe(false);
        await abandonRun(deps, table, R1);
        // The second execution continues it and dies.
        const job = { databaseUrl: db.url, lakeUrl: lake.url, config: raw, runId: R2, point, nth };
        expect(await child(job, path.join(lake.dir, 'job-r2.json'))).toBe('killed');
        // Its lease (the adopted run's) lapses; the third execution goes on.
        const lease = (await state.read<Lease>(state.leaseKey()))!;
        expect(lease.value.runId).toBe(R1);
        await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
        let [task] = (await planRun(deps, { runId: R3 })).tables;
        if (point === 'after-watermark') {
          // Committed before it died: rolled forward, and the next run is incremental.
          expect((await state.watermark())?.runId).toBe(R1);
          expect(task.runId).toBe(R3);
          expect(task.backfill).toBeUndefined();
        } else {
          expect(task).toMatchObject(first);
          for (const segment of segments) {
            let child = segmentTask(task, segment);
            while (!child.done) child = await exportTable(deps, child);
          }
        }
        while (!task.done) task = await exportTable(deps, task);
        await commitTable(deps, task);
        expect((await state.read(state.manifestKey(R1)))?.value).toMatchObject({ runId: R1 });
      } finally {
        await deps.close();
      }
      const report = await checkLake(db, lake, table, `adopted backfill killed ${point}`);
      expect(report.lakeRows).toBe(6000);
      lake.remove();
    }, 60_000);
  }
});
