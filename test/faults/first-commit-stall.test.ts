// A table's FIRST Commit stalls between its last lease check and its commit point (the
// watermark's create-once PUT hangs: a hung S3 connection, a paused process, a Lambda still
// running after Step Functions gave up on it) for longer than export.leaseSeconds. The lease
// expires; the next execution takes it and, as every holder does first, recovers the table: the
// stalled run is not committed, so its journals and its published files are removed. Then the
// stalled PUT lands. A later run's watermark is fenced against this (recovery rewrites it before
// removing a run), but a first run had no watermark to fence: the PUT created one naming a run
// whose files were gone, the next execution's commit then failed on the moved watermark, and
// the rows of the first window were in no file and behind the cursor, lost for good.
//
// Expected: the stalled commit fails (nothing of it is visible), and the rows reach the lake
// once through the runs after it. Also checked with a run abandoned by its own execution
// (abandonRun, Table Failed) while its Commit still runs: a first run, and a later one (which
// abandonRun removed without fencing the watermark, so its stalled Commit committed too).
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, faultyStore, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { gate } from './fence-break-gates.ts';

const db = fileDatabase();

async function createTable(name: string): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
}

/** The table's next run, planned and exported; its Commit started and hung at the watermark PUT. */
async function stalledCommit(lake: TestLake, config: LakeConfig) {
  const stalled = gate();
  const resume = gate();
  const stallingStore = faultyStore(lake.store, {
    put: async (key, body, options) => {
      if (key.endsWith('/watermark.json')) {
        stalled.open();
        await resume.wait;
      }
      return lake.store.put(key, body, options);
    },
  });
  const deps = exportDeps(db, stallingStore, config);
  const plan = await planRun({ ...deps, store: lake.store }, {});
  let task = plan.tables[0];
  while (!task.done) task = await exportTable({ ...deps, store: lake.store }, task);
  const commit = commitTable(deps, task).then((r) => r, (e: Error) => e);
  await stalled.wait;
  return { task, commit, resume: resume.open, close: () => deps.close() };
}

async function expireLease(lake: TestLake, name: string): Promise<void> {
  const state = new TableState(lake.store, 'raw', name);
  const lease = (await state.read<Lease>(state.leaseKey()))!.value;
  await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
}

const exportRun = (lake: TestLake, config: LakeConfig): Promise<string[]> => exportStatuses(db, lake, config);

describe("a table's first commit stalled past its lease", () => {
  it('fails once the next execution has recovered the table, and no row is lost', async () => {
    const name = 'first_stall';
    const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const lake = createLake();
    try {
      await createTable(name);
      const first = await stalledCommit(lake, config);
      await expireLease(lake, name);
      // The next execution plans (recovering the stalled run: its files are removed), exports
      // and stalls nowhere; the hung PUT lands while it exports.
      const deps = exportDeps(db, lake.store, config);
      const plan = await planRun(deps, {});
      expect(plan.failed).toEqual([]);
      first.resume();
      const stalledOutcome = await first.commit;
      await first.close();
      expect(stalledOutcome instanceof Error ? stalledOutcome.name : stalledOutcome.status).toBe('WindowConflictError');
      let task = plan.tables[0];
      while (!task.done) task = await exportTable(deps, task);
      const committed = await commitTable(deps, task);
      await deps.close();
      expect(committed.status).toBe('succeeded');
      const seen = new Set<string>();
      await checkReaders(db, lake, config, name, 'after the next execution', { seenVersions: seen });
      expect(seen.size).toBe(400);
      await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 3 = 0`);
      expect(await exportRun(lake, config)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, name, 'after one more run', { seenVersions: seen });
    } finally {
      lake.remove();
    }
  }, 120_000);

  it("fails once its own execution abandoned the run (the table's task failed around it)", async () => {
    const name = 'first_abandoned';
    const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const lake = createLake();
    try {
      await createTable(name);
      const first = await stalledCommit(lake, config);
      // Step Functions stopped waiting for the Commit (its task timed out) and ran Table Failed,
      // which abandons the run: its files go, its lease is freed. The Commit still runs.
      await abandonRun({ store: lake.store, config }, name, first.task.runId);
      first.resume();
      const stalledOutcome = await first.commit;
      await first.close();
      expect(stalledOutcome instanceof Error ? stalledOutcome.name : stalledOutcome.status).toBe('WindowConflictError');
      const seen = new Set<string>();
      expect(await exportRun(lake, config)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, name, 'after the next run', { seenVersions: seen });
      expect(seen.size).toBe(400);
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('a later run fails the same way once its own execution abandoned it', async () => {
    const name = 'later_abandoned';
    const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const lake = createLake();
    try {
      await createTable(name);
      expect(await exportRun(lake, config)).toEqual(['succeeded']);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, name, 'after the first run', { seenVersions: seen });
      await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 3 = 0`);
      const second = await stalledCommit(lake, config);
      await abandonRun({ store: lake.store, config }, name, second.task.runId);
      second.resume();
      const stalledOutcome = await second.commit;
      await second.close();
      expect(stalledOutcome instanceof Error ? stalledOutcome.name : stalledOutcome.status).toBe('WindowConflictError');
      expect(await exportRun(lake, config)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, name, 'after the next run', { seenVersions: seen });
      expect(seen.size).toBe(400 + 133);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
