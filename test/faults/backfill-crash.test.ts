// Backfill under crashes (issue 14): a segment's child killed (SIGKILL) mid-invocation, then its
// item delivered again (a retried child, a redriven Map Run): the segment goes on from its
// journalled progress and the lake holds every row once. Checked by the fault suite's checks.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { readSegments } from '../../lambdas/core/protocol/segments.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { checkLake } from './lake-checks.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, type TestDatabase } from '../support/local-stack.ts';

const run = promisify(execFile);
const CHILD = path.join(import.meta.dirname, 'segment-crash-child.ts');
let db: TestDatabase;

beforeAll(async () => {
  db = await createDatabase();
});

afterAll(async () => {
  await db?.close();
  await stopPostgres();
});

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
        // It resumed from the progress the killed child journalled (after chunk nth - 1), not from page 1.
        expect(again).toMatchObject({ segment: 0, first: nth });
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
