// Breaker (HG; failed before a late Commit looked in the retired lists): the Commit delivered again after a compaction switched generations (at-least-once
// delivery; the first copy committed): it must not fail a committed table, nor touch the lake.
import { describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';

const db = fileDatabase();

const configOf = (name: string): LakeConfig => testConfig([{ name, partitionBy: 'created_at' }], {
  // Small row groups and files: the run publishes many files, so a short budget stops its Commit half-way.
  export: { pageRows: 20, safetyLagSeconds: 0 }, lake: { rowGroupRows: 20 }, compaction: { minFiles: 2, graceMinutes: 60 },
});

async function exportRun(name: string, lake: TestLake): Promise<void> {
  const deps = exportDeps(db, lake.store, configOf(name));
  try {
    const outcome = await runExport(deps, {});
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

/** 600 rows created over 30 days (the partition column), exported; two runs of updates; then updates over every day, exported, not committed. */
async function prepared(name: string, lake: TestLake): Promise<{ task: TableTask; deps: ReturnType<typeof exportDeps>; seen: Set<string> }> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 20) * interval '1 day', timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 20) * interval '1 day'
    FROM generate_series(1, 600) g`);
  await exportRun(name, lake);
  for (const slice of [0, 1]) {
    await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 6 = ${slice}`);
    await exportRun(name, lake);
  }
  const seen = new Set<string>();
  await checkReaders(db, lake, configOf(name), name, `${name}: before`, { seenVersions: seen });
  // Updates of rows created on every one of the 30 days: a file per day partition, so the commit has many files to publish.
  await db.query(`UPDATE ${name} SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 2 = 1`);
  const deps = exportDeps(db, lake.store, configOf(name));
  const [task] = (await planRun(deps, {})).tables;
  let current = task;
  while (!current.done) current = await exportTable(deps, current);
  return { task: current, deps, seen };
}

describe('the Commit delivered again after a compaction switched generations', () => {
  it('does not fail the committed table, and leaves the lake as it is', async () => {
    const name = 'stale_commit';
    const lake = createLake();
    const { task, deps, seen } = await prepared(name, lake);
    try {
      expect((await commitTable(deps, task)).status).toBe('succeeded');
      await checkReaders(db, lake, configOf(name), name, 'after the commit', { seenVersions: seen });
      expect((await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true })).status).toBe('compacted');
      const again = await commitTable(deps, task).then((r) => r.status, (e: Error) => e.message);
      await checkReaders(db, lake, configOf(name), name, 'after the late copy', { seenVersions: seen });
      expect(again, 'the late copy of a committed run\'s Commit').toBe('succeeded');
    } finally {
      await deps.close();
      lake.remove();
    }
  }, 120_000);
});
