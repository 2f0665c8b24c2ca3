// Breaker (HG; failed before Commit kept compactedAt): tables[].compaction.everyHours — "at most one compaction per everyHours" (README
// "Partitions and compaction": tables that grow large "compact on their own schedule"). The
// Compact Table state runs after every Commit, so the schedule only means something if it
// survives the commits between two compactions: here three runs commit after a compaction, their
// files cross the thresholds again, and a compaction within the hour must be skipped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

let db: TestDatabase;
let lake: TestLake;
beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
}, 120_000);
afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

const config: LakeConfig = testConfig([{ name: 'public.paced', compaction: { everyHours: 24 } }], {
  export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 },
});

async function exportRun(): Promise<void> {
  const deps = exportDeps(db, lake.store, config);
  try {
    const outcome = await runExport(deps, {});
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

/** New versions of a slice of rows, all in today's partition: each run adds a file to it. */
async function touchAndExport(slice: number): Promise<void> {
  await db.query(`UPDATE paced SET v = v + 1, updated_at = clock_timestamp() WHERE id % 4 = ${slice}`);
  await exportRun();
}

describe('compaction everyHours', () => {
  it('skips a second compaction within everyHours even when runs committed in between', async () => {
    await db.query(`CREATE TABLE paced (id int PRIMARY KEY, v int NOT NULL, updated_at timestamptz NOT NULL);
      INSERT INTO paced SELECT g, 0, clock_timestamp() FROM generate_series(1, 200) g`);
    await exportRun();
    await touchAndExport(0);
    await touchAndExport(1);
    const first = await compactTable({ store: lake.store, config }, 'paced');
    expect(first.status, first.reason).toBe('compacted');
    // Three more runs: today's partition holds 4 small files again (over minFiles 2).
    await touchAndExport(2);
    await touchAndExport(3);
    await touchAndExport(0);
    const second = await compactTable({ store: lake.store, config }, 'paced');
    expect([second.status, second.reason], 'a compaction minutes after the last one, with everyHours: 24').toEqual(['skipped', expect.stringMatching(/everyHours 24 not yet passed/)]);
  }, 120_000);
});
