// Breaker (HG): compaction racing exports of the same table, and compactions racing each other.
// Compaction takes the table's lease like a run; these tests attack the places where the lease
// alone does not decide: a lease that expired under a live holder (taken over by the next
// comer without --take-over), an operator's --take-over, the Compact step delivered twice at
// once, a stale Commit delivered after a compaction. After each, readers (the local views over
// the live generation) see every version once, `<table>_current` equals Postgres, and the live
// folder holds exactly the committed manifests' files (compact-break-checks.ts).
import { describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, faultyStore, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';

const db = fileDatabase();

const configOf = (name: string): LakeConfig => testConfig([{ name }], {
  export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 },
});

async function exportRun(name: string, lake: TestLake, request: object = {}): Promise<void> {
  const deps = exportDeps(db, lake.store, configOf(name));
  try {
    const outcome = await runExport(deps, request);
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

/** 400 rows over 4 days, exported, then two runs of updates (small files in today's partition). */
async function createLakeTable(name: string, lake: TestLake): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
  await exportRun(name, lake);
  for (const slice of [0, 1]) await touch(name, `id % 6 = ${slice}`), await exportRun(name, lake);
}

async function touch(name: string, where: string): Promise<void> {
  await db.query(`UPDATE ${name} SET payload = 'v' || (clock_timestamp()::text), updated_at = clock_timestamp() WHERE ${where}`);
}

/** A run planned (lease taken) and exported to its last page, not committed. */
async function plannedAndExported(name: string, store: ObjectStore): Promise<{ task: TableTask; close(): Promise<void>; store: ObjectStore }> {
  const deps = exportDeps(db, store, configOf(name));
  const plan = await planRun(deps, {});
  expect(plan.tables.length, JSON.stringify(plan)).toBe(1);
  let task = plan.tables[0];
  while (!task.done) task = await exportTable(deps, task);
  return { task, close: () => deps.close(), store };
}

/** What the lease says after `seconds` more pass with no renewal: expired (time passing, done to the state). */
async function expireLease(lake: TestLake, name: string): Promise<void> {
  const state = new TableState(lake.store, 'raw', name);
  const lease = await state.read<Lease>(state.leaseKey());
  expect(lease).not.toBeNull();
  await state.write(state.leaseKey(), { ...lease!.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
}

function gate(): { wait: Promise<void>; open(): void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => { open = resolve; });
  return { wait, open };
}

describe('compaction racing exports and compactions of the same table', () => {
  it('two compactions at once while a run holds the lease: both skipped; after its commit, two at once: one compacts', async () => {
    const name = 'race_twice';
    const lake = createLake();
    try {
      await createLakeTable(name, lake);
      await touch(name, 'id % 6 = 2');
      const run = await plannedAndExported(name, lake.store);
      const config = configOf(name);
      const during = await Promise.all([compactTable({ store: lake.store, config }, name, { force: true }), compactTable({ store: lake.store, config }, name, { force: true })]);
      expect(during.map((r) => r.status)).toEqual(['skipped', 'skipped']);
      await commitTable({ ...exportDeps(db, lake.store, config), store: run.store }, run.task);
      await run.close();
      const seen = new Set<string>();
      await checkReaders(db, lake, config, name, 'after the commit', { seenVersions: seen });
      // The Compact step delivered twice at once (Step Functions invokes at least once).
      const twice = await Promise.all([compactTable({ store: lake.store, config }, name, { force: true }), compactTable({ store: lake.store, config }, name, { force: true })]);
      expect(twice.map((r) => r.status).sort()).toEqual(['compacted', 'skipped']);
      await checkReaders(db, lake, config, name, 'after two compactions at once', { seenVersions: seen });
      await touch(name, 'id % 6 = 3');
      await exportRun(name, lake);
      await checkReaders(db, lake, config, name, 'after the next run', { seenVersions: seen });
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('a run exported but not committed when the operator compacts with --take-over: the run cannot commit, the next run converges', async () => {
    const name = 'race_takeover';
    const lake = createLake();
    try {
      await createLakeTable(name, lake);
      const seen = new Set<string>();
      await checkReaders(db, lake, configOf(name), name, 'before', { seenVersions: seen });
      await touch(name, 'id % 6 = 2');
      const run = await plannedAndExported(name, lake.store);
      const compacted = await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true, takeOver: true });
      expect(compacted.status, compacted.reason).toBe('compacted');
      await expect(commitTable(exportDeps(db, lake.store, configOf(name)), run.task)).rejects.toThrow(/lease|watermark|pending run/);
      await run.close();
      await exportRun(name, lake);
      await checkReaders(db, lake, configOf(name), name, 'after the next run', { seenVersions: seen });
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('a run whose lease expired mid-export: a compaction takes the lease (no --take-over), commits; the run stops; the next run converges', async () => {
    const name = 'race_expired_export';
    const lake = createLake();
    try {
      await createLakeTable(name, lake);
      const seen = new Set<string>();
      await checkReaders(db, lake, configOf(name), name, 'before', { seenVersions: seen });
      await touch(name, 'id % 2 = 0');
      const deps = exportDeps(db, lake.store, configOf(name));
      try {
        const plan = await planRun(deps, {});
        // One invocation that ran out of time after its first chunk.
        const partial = await exportTable(deps, plan.tables[0], Date.now() - 1);
        expect(partial.done).toBe(false);
        await expireLease(lake, name);
        const compacted = await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true });
        expect(compacted.status, compacted.reason).toBe('compacted');
        // The run's next invocation, then its commit: neither may publish.
        await expect((async () => {
          let task = partial;
          while (!task.done) task = await exportTable(deps, task);
          await commitTable(deps, task);
        })()).rejects.toThrow(/lease|watermark|pending run/);
      } finally {
        await deps.close();
      }
      await checkReaders(db, lake, configOf(name), name, 'after the compaction', { seenVersions: seen, postgresAhead: true });
      await exportRun(name, lake);
      await checkReaders(db, lake, configOf(name), name, 'after the next run', { seenVersions: seen });
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('a compaction whose lease expired while it merged a page: the next run takes the lease and commits; the compaction stops; nothing lost or doubled', async () => {
    const name = 'race_expired_compaction';
    const lake = createLake();
    try {
      await createLakeTable(name, lake);
      const seen = new Set<string>();
      await checkReaders(db, lake, configOf(name), name, 'before', { seenVersions: seen });
      const reading = gate();
      const release = gate();
      let gets = 0;
      // The compaction stalls on its second data file read (a slow GET, a long merge).
      const slow = faultyStore(lake.store, {
        get: async (key) => {
          if (key.endsWith('.parquet') && ++gets === 2) {
            reading.open();
            await release.wait;
          }
          return lake.store.get(key);
        },
      });
      const compaction = compactTable({ store: slow, config: configOf(name) }, name, { force: true }).then(
        (r) => r,
        (e: Error) => e,
      );
      await reading.wait;
      await expireLease(lake, name);
      await touch(name, 'id % 6 = 4');
      await exportRun(name, lake);
      release.open();
      const outcome = await compaction;
      expect(outcome instanceof Error ? outcome.message : outcome).toMatch(/lost the table's lease|watermark changed/);
      await checkReaders(db, lake, configOf(name), name, 'after the stopped compaction', { seenVersions: seen });
      expect((await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true })).status).toBe('compacted');
      await checkReaders(db, lake, configOf(name), name, 'after the next compaction', { seenVersions: seen });
    } finally {
      lake.remove();
    }
  }, 120_000);
});
