// Breaker (HG; failed before recovery fenced the watermark): a Commit that stalls between its last lease check and its commit point (the
// watermark's conditional PUT hangs: a hung S3 connection, a paused process) for longer than
// export.leaseSeconds. The lease expires; a compaction takes it over (no --take-over needed: an
// expired lease is free) and, as every holder does first, recovers the table: the stalled run is
// not committed (the watermark does not name it), so its journals and its already-published
// files are removed. Then the stalled PUT lands: its If-Match is on the watermark as the run read
// it, which nothing has changed yet, so the run commits — a manifest listing files that are gone,
// and a watermark past rows that are nowhere in the lake. The next run starts after them.
//
// Expected of a correct product: either the stalled commit fails (and the next run exports the
// rows again), or its files survive; readers see every version once.
import { describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, faultyStore, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';

const db = fileDatabase();

const NAME = 'stalled_commit';
const config: LakeConfig = testConfig([{ name: NAME }], { export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 } });

async function exportRun(lake: TestLake): Promise<void> {
  const deps = exportDeps(db, lake.store, config);
  try {
    const outcome = await runExport(deps, {});
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

function gate(): { wait: Promise<void>; open(): void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => { open = resolve; });
  return { wait, open };
}

describe('a commit stalled past its lease while a compaction takes the table', () => {
  it('loses no row and doubles none', async () => {
    const lake = createLake();
    try {
      await db.query(`CREATE TABLE ${NAME} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${NAME} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
      await exportRun(lake);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, NAME, 'before', { seenVersions: seen });
      await db.query(`UPDATE ${NAME} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 3 = 0`);

      // The run: planned, exported, and its Commit's watermark PUT hangs.
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

      // leaseSeconds pass; a compaction takes the free lease and stalls on its first data read.
      const state = new TableState(lake.store, 'raw', NAME);
      const lease = (await state.read<Lease>(state.leaseKey()))!.value;
      await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
      const merging = gate();
      const goOn = gate();
      const compactStore = faultyStore(lake.store, {
        get: async (key) => {
          if (key.endsWith('.parquet')) {
            merging.open();
            await goOn.wait;
          }
          return lake.store.get(key);
        },
      });
      const compaction = compactTable({ store: compactStore, config }, NAME, { force: true }).then((r) => r, (e: Error) => e);
      await merging.wait;
      // The hung PUT lands; then the compaction goes on.
      resume.open();
      const committed = await commit;
      goOn.open();
      const compacted = await compaction;
      await deps.close();
      console.log('stalled commit:', committed instanceof Error ? committed.message : committed.status, '| compaction:', compacted instanceof Error ? compacted.message : compacted.status);

      // Whatever each said, the lake converges after the next run.
      await db.query(`UPDATE ${NAME} SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 7 = 0`);
      await exportRun(lake);
      await checkReaders(db, lake, config, NAME, 'after the next run', { seenVersions: seen });
    } finally {
      lake.remove();
    }
  }, 120_000);
});
