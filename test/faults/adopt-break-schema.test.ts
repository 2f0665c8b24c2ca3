// Breaker (HE): the database's schema changes while a failed backfill waits to be continued
// (up to export.backfillAdoptHours, a week). The columns are checked (the fingerprint); the
// primary key, read from the catalog when tables[].primaryKey is not set, is the keyset the
// segment bounds and the journalled resume points were cut on. A bulk-loaded table (every row
// the same updated_at) is cut on whole keys. A correct product refuses the run (or continues it
// on the keyset it was planned with): every row once.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, exportDeps, testConfig } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const db = fileDatabase();

const R1 = '20260801T000000Z-bbbbccc1';

const changes: { name: string; sql: (table: string) => string; backfill?: object; cursors?: string }[] = [
  { name: 'the primary key moves to another column (reverse order)', sql: (t) => `ALTER TABLE ${t} DROP CONSTRAINT ${t}_pkey; ALTER TABLE ${t} ADD PRIMARY KEY (k2)` },
  { name: 'a column joins the primary key', sql: (t) => `ALTER TABLE ${t} DROP CONSTRAINT ${t}_pkey; ALTER TABLE ${t} ADD PRIMARY KEY (k2, id)` },
  // Heap block segments (by: ctid) and a maintenance rewrite (CLUSTER, VACUUM FULL, pg_repack)
  // that moves every row to another block, its updated_at unchanged.
  {
    name: 'by: ctid, and the table is rewritten in reverse order (CLUSTER)', backfill: { segments: 2, by: 'ctid' },
    cursors: "timestamptz '2024-12-15 00:00:00+00' + g * interval '1 second'",
    sql: (t) => `CLUSTER ${t} USING ${t}_k2_key`,
  },
];

describe('a waiting backfill and a schema change in Postgres', () => {
  for (const [i, c] of changes.entries()) {
    it(`${c.name}: every row once`, async () => {
      const table = `adopt_break_schema_${i}`;
      // A bulk load: one updated_at for every row, so segments are cut on (updated_at, id).
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, k2 int NOT NULL UNIQUE, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${table} SELECT g, 5000 - g, 'p' || g, ${c.cursors ?? "timestamptz '2024-12-15 00:00:00+00'"} FROM generate_series(1, 3000) g;
        ANALYZE ${table}`);
      const lake = createLake();
      const config = testConfig([{ name: table, backfill: c.backfill ?? { segments: 2 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });
      const state = new TableState(lake.store, 'raw', table);
      const deps = exportDeps(db, lake.store, config);
      try {
        const [task] = (await planRun(deps, { runId: R1 })).tables;
        const segments = await readSegments(state, task);
        if (!c.backfill) expect(segments[1].from?.length, 'cut on whole keys').toBe(2);
        expect((await exportTable(deps, segmentTask(task, segments[0]))).done).toBe(true);
        expect((await exportTable(deps, segmentTask(task, segments[1]), Date.now())).done).toBe(false);
        await abandonRun(deps, table, R1);
        await db.query(c.sql(table));
        // The next execution: continues the run, or starts over.
        let [next] = (await planRun(deps, { runId: '20260801T010000Z-bbbbccc2' })).tables;
        console.log(`[${c.name}] the next execution runs ${next.runId === R1 ? 'the adopted run' : 'a new run'}`);
        if (next.backfill) {
          for (const segment of await readSegments(state, next)) {
            let child = segmentTask(next, segment);
            while (!child.done) child = await exportTable(deps, child);
          }
        }
        while (!next.done) next = await exportTable(deps, next);
        console.log(`[${c.name}] committed rows: ${(await commitTable(deps, next)).rows}`);
      } finally {
        await deps.close();
      }
      const report = await checkLake(db, lake, table, c.name);
      expect(report.lakeRows).toBe(3000);
      lake.remove();
    }, 60_000);
  }
});
