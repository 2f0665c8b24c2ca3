// Breaker (HE): two invocations of one backfill run export the same unfinished segment. An
// adopting execution and an invocation of the execution it replaces (that execution redriven from
// the console, as README "Backfill" suggests, or a Lambda invocation still running after its lease
// lapsed): both hold a task of the same run id, so both pass the lease (renewLease compares run
// ids). Without adoption: the same execution's second Map Run (Export Segments' Retry) while an
// aborted child's invocation still runs. Both write the same journal numbers, staged keys and
// progress object, last writer wins. A writer may update a row of that segment in between.
// A correct product stops the older writer before it writes, and the lake holds every row once.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { readSegments, segmentTask, type SegmentProgress } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import type { SegmentRange, TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { describeError } from '../../lambdas/core/errors.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, exportDeps, faultyStore, testConfig } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const db = fileDatabase();

const R1 = '20260201T000000Z-eeeeeee1';
const R2 = '20260201T010000Z-eeeeeee2';
const R3 = '20260201T020000Z-eeeeeee3';

/** A promise and its resolver. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => { open = resolve; });
  return { promise, open };
}

describe('two invocations of one backfill run writing the same segment (an adopter and the dead execution; or two Map Runs)', () => {
  // staged-file: the old invocation is held before its staged file lands, released after the
  // adopter gathered its segments. journal: held before its page journal, released before the gather.
  // writer: a row of the held chunk is updated meanwhile (without one, the two invocations'
  // different time budgets alone cut the segment into different chunks). adopt false: no second
  // execution — the same execution's second Map Run (Export Segments' Retry after the Segments
  // execution failed) while an aborted child's Lambda invocation still runs (Step Functions does
  // not stop a running Lambda invocation).
  for (const [hold, writer, adopt] of [['staged-file', true, true], ['journal', true, true], ['journal', false, true], ['journal', false, false]] as const) {
    it(`${adopt ? '' : 'no adoption, a second Map Run; '}held at its ${hold}${writer ? ', a row updated meanwhile' : ''}: every row once (the old invocation is fenced)`, async () => {
      const table = `adopt_break_two_${hold.replace('-', '_')}${writer ? '_w' : ''}${adopt ? '' : '_map'}`;
      // One day of one-second cursors: every chunk is one file of one partition.
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 6000) g`);
      const lake = createLake();
      // A chunk (one journal, one file) per 500-row page.
      const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });
      const state = new TableState(lake.store, 'raw', table);
      const deps = exportDeps(db, lake.store, config);
      let first: TableTask;
      let segments: SegmentRange[];
      try {
        // Execution E1: segment 0 finishes, segment 1 one chunk; E1 fails uncaught (its lease stays, then lapses).
        [first] = (await planRun(deps, { runId: R1 })).tables;
        segments = await readSegments(state, first);
        expect((await exportTable(deps, segmentTask(first, segments[0]))).done).toBe(true);
        expect((await exportTable(deps, segmentTask(first, segments[1]), Date.now())).done).toBe(false);
        let adopted = first;
        if (adopt) {
          const lease = (await state.read<Lease>(state.leaseKey()))!;
          await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
          // Execution E2 adopts the run.
          [adopted] = (await planRun(deps, { runId: R2 })).tables;
          expect(adopted).toMatchObject(first);
        }
        const progress = (await state.read<SegmentProgress>(`${state.pendingPrefix(R1)}s0001.json`))!.value;
        const lastId = Number(progress.after!.at(-1));

        // E1 redriven: its segment-1 child (task of run R1) resumes from the same progress and is held mid-chunk.
        const held = gate();
        const reached = gate();
        const heldKey = hold === 'staged-file' ? `/pending/${R1}/data/` : `/pending/${R1}/p010002.json`;
        let holding = true;
        const slow = faultyStore(lake.store, {
          put: async (key, body, options) => {
            if (holding && key.includes(heldKey)) {
              holding = false;
              reached.open();
              await held.promise;
            }
            return lake.store.put(key, body, options);
          },
        });
        const oldDeps = exportDeps(db, slow, config);
        const old = exportTable(oldDeps, segmentTask(first, segments[1]), Date.now()).finally(() => oldDeps.close());
        const oldSettled = old.then(() => undefined, () => undefined);
        await Promise.race([reached.promise, oldSettled]);

        // A writer moves a row of that chunk out of the window (its new version is the next run's).
        if (writer) await db.query(`UPDATE ${table} SET payload = 'v2', updated_at = clock_timestamp() WHERE id = $1`, [lastId + 100]);
        // E2's child for segment 1 exports it to the end.
        expect((await exportTable(deps, segmentTask(adopted, segments[1]))).done).toBe(true);
        let task = adopted;
        if (hold === 'journal') {
          held.open();
          await oldSettled;
        }
        while (!task.done) task = await exportTable(deps, task);
        held.open();
        await oldSettled;
        try {
          await commitTable(deps, task);
        } catch (error) {
          // The table fails (Summarize abandons it, keeping the backfill); the next execution continues it.
          console.log(`[${table}] commit of the adopted run failed: ${describeError(error)}`);
          await abandonRun(deps, table, adopt ? R2 : R1);
          let [again] = (await planRun(deps, { runId: R3 })).tables;
          expect(again.runId).toBe(R1);
          for (const segment of segments) {
            let child = segmentTask(again, segment);
            while (!child.done) child = await exportTable(deps, child);
          }
          while (!again.done) again = await exportTable(deps, again);
          await commitTable(deps, again);
        }
        // The next scheduled run: the updated row's new version.
        let [next] = (await planRun(deps)).tables;
        while (!next.done) next = await exportTable(deps, next);
        await commitTable(deps, next);
      } finally {
        await deps.close();
      }
      const report = await checkLake(db, lake, table, `adopted backfill and an old invocation held at its ${hold}${writer ? ', a row updated' : ''}`);
      // With a writer, the updated row's old version is in the lake only if an invocation read it
      // before the update and its pages were kept (6,001 rows), else not (6,000): both are right.
      if (writer) expect([6000, 6001]).toContain(report.lakeRows);
      else expect(report.lakeRows).toBe(6000);
      lake.remove();
    }, 60_000);
  }
});
