// Breaker (HE): a dead backfill whose pending/<run>/ lost objects (an operator's cleanup, a
// lifecycle rule) other than the ones adoption checks (segment list, map items, run.json,
// backfill.json): a finished segment's page journal, a staged data file, a segment's progress.
// Adoption takes the run; a correct product either commits every row once or refuses the run and
// starts over — it does not fail the table at commit on every execution until
// export.backfillAdoptHours (a week) passes.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { describeError } from '../../lambdas/core/errors.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, exportDeps, testConfig } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const db = fileDatabase();

const R1 = '20260501T000000Z-ddddddd1';

const damage: { name: string; pick: (keys: string[]) => string[] }[] = [
  { name: 'a finished segment\'s page journal', pick: (keys) => keys.filter((k) => /\/p000002\.json$/.test(k)) },
  { name: 'a finished segment\'s staged data file', pick: (keys) => keys.filter((k) => /\/data\//.test(k)).slice(0, 1) },
  { name: 'every segment progress file', pick: (keys) => keys.filter((k) => /\/s\d{4}\.json$/.test(k)) },
];

describe('a dead backfill with part of its pending state gone', () => {
  for (const [i, d] of damage.entries()) {
    it(`without ${d.name}: the next two executions end with every row once`, async () => {
      const table = `adopt_break_damaged_${i}`;
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-07 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 4000) g`);
      const lake = createLake();
      const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });
      const state = new TableState(lake.store, 'raw', table);
      const deps = exportDeps(db, lake.store, config);
      const errors: string[] = [];
      try {
        // Segment 0 finishes in chunks (one per invocation), segment 1 exports one; the execution fails.
        const [task] = (await planRun(deps, { runId: R1 })).tables;
        const segments = await readSegments(state, task);
        let child = segmentTask(task, segments[0]);
        while (!child.done) child = await exportTable(deps, child, Date.now());
        expect((await exportTable(deps, segmentTask(task, segments[1]), Date.now())).done).toBe(false);
        await abandonRun(deps, table, R1);
        const gone = d.pick(await lake.store.list(state.pendingPrefix(R1)));
        expect(gone.length).toBeGreaterThan(0);
        await lake.store.delete(gone);
        // Two executions, each tidied by its Summarize when the table fails.
        for (const runId of ['20260501T010000Z-ddddddd2', '20260501T020000Z-ddddddd3']) {
          const [next] = (await planRun(deps, { runId })).tables;
          try {
            if (next.backfill) {
              for (const segment of segments) {
                let c = segmentTask(next, segment);
                while (!c.done) c = await exportTable(deps, c);
              }
            }
            let t = next;
            while (!t.done) t = await exportTable(deps, t);
            await commitTable(deps, t);
            break;
          } catch (error) {
            errors.push(`${runId} (run ${next.runId}): ${describeError(error)}`);
            await abandonRun(deps, table, runId);
          }
        }
      } finally {
        await deps.close();
      }
      console.log(`[${d.name}] ${errors.length ? errors.join('\n') : 'no failure'}`);
      expect(errors).toEqual([]);
      await checkLake(db, lake, table, `without ${d.name}`);
      lake.remove();
    }, 60_000);
  }
});
