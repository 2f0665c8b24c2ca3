// Breaker (HG; failed before files at targetFileMB stopped counting): compaction settings that cannot be met. A partition is compacted when it holds
// more than compaction.minFiles files with a median under compaction.maxMedianMB; a compaction
// merges a partition's files into files of up to compaction.targetFileMB. With targetFileMB below
// maxMedianMB (accepted by the config schema), a partition of many files of about targetFileMB
// is over the thresholds before and after its compaction: does every Compact Table step (one
// after each run's commit) rewrite the whole table again, with nothing to gain?
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

const config: LakeConfig = testConfig([{ name: 'public.wide' }], {
  export: { pageRows: 20_000, safetyLagSeconds: 0 },
  // The exporter rolls files at 1 MiB: one run leaves several 1 MiB files in the day's partition.
  lake: { targetFileMB: 1, rowGroupMB: 1 },
  compaction: { minFiles: 2, maxMedianMB: 32, targetFileMB: 1, graceMinutes: 60 },
});

describe('compaction.targetFileMB below compaction.maxMedianMB', () => {
  it('does not rewrite a table whose compaction cannot reduce its files, again and again', async () => {
    await db.query(`CREATE TABLE wide (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO wide SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text), timestamptz '2024-03-01 00:00:00+00' + g * interval '100 ms' FROM generate_series(1, 80000) g`);
    const deps = exportDeps(db, lake.store, config);
    try {
      expect((await runExport(deps, {})).tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
    } finally {
      await deps.close();
    }
    // Before the fix each compaction rewrote the 4 files as 4 (`compacted 4 → 4`), and the step
    // after every commit would do it again. Files already at compaction.targetFileMB do not count.
    for (const attempt of ['first', 'second']) {
      const result = await compactTable({ store: lake.store, config }, 'wide');
      console.log(`${attempt}:`, result.status, result.filesBefore, '→', result.filesAfter, result.reason);
      expect([result.status, result.filesAfter, result.reason], attempt).toEqual(['skipped', 0, 'no partition holds more than 2 files with a median under 32000000 bytes']);
    }
  }, 180_000);
});
