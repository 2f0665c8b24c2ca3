// Breaker (HG): a Commit too big for one invocation resumes in the next (Commit Table ⟲
// Committed?), holding the table's lease in between. Two attacks across a compaction:
//  1. the lease lapses between the two invocations (Step Functions waited, throttled): a
//     compaction takes the free lease, removes the half-published run and switches generations;
//     the resumed Commit must not publish or commit, and the next run converges;
//  2. the lease holds: the compaction is skipped, the resumed Commit finishes, and a compaction
//     after it sees the whole run.
import { describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable, commitTableStep } from '../../lambdas/core/protocol/commit.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
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

describe('a Commit resumed across a compaction', () => {
  it('whose lease lapsed in between: the compaction takes the table, the resumed Commit stops, the next run converges', async () => {
    const name = 'resume_lapsed';
    const lake = createLake();
    const { task, deps, seen } = await prepared(name, lake);
    try {
      const first = await commitTableStep(deps, task, Date.now());
      expect('status' in first, 'the first invocation stopped half-way').toBe(false);
      const progress = (first as TableTask).commit;
      expect(progress?.published).toBeGreaterThan(0);
      expect(progress!.published).toBeLessThan(task.files);
      const state = new TableState(lake.store, 'raw', name);
      const lease = (await state.read<Lease>(state.leaseKey()))!.value;
      await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
      // Meanwhile readers see the half-published run's files (uncommitted): they are journalled, removed by whoever recovers.
      const compacted = await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true });
      expect(compacted.status, compacted.reason).toBe('compacted');
      await checkReaders(db, lake, configOf(name), name, 'after the compaction', { seenVersions: seen, postgresAhead: true });
      await expect(commitTable(deps, first as TableTask)).rejects.toThrow(/lease|watermark|pending run/);
      await exportRun(name, lake);
      await checkReaders(db, lake, configOf(name), name, 'after the next run', { seenVersions: seen });
    } finally {
      await deps.close();
      lake.remove();
    }
  }, 120_000);

  it('whose lease holds: the compaction is skipped, the Commit finishes, the next compaction sees the whole run', async () => {
    const name = 'resume_held';
    const lake = createLake();
    const { task, deps, seen } = await prepared(name, lake);
    try {
      const first = await commitTableStep(deps, task, Date.now());
      expect('status' in first).toBe(false);
      const skipped = await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true });
      expect(skipped.status).toBe('skipped');
      expect((await commitTable(deps, first as TableTask)).status).toBe('succeeded');
      await checkReaders(db, lake, configOf(name), name, 'after the commit', { seenVersions: seen });
      expect((await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true })).status).toBe('compacted');
      await checkReaders(db, lake, configOf(name), name, 'after the compaction', { seenVersions: seen });
    } finally {
      await deps.close();
      lake.remove();
    }
  }, 120_000);
});
