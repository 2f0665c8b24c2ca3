// Breaker (HG; failed before schema.json was switched conditionally): a writer that passed its commit point and then stalled (a laptop running
// `pg-lake-export compact` put to sleep; a paused process) for longer than export.leaseSeconds,
// just before it writes schema.json — the readers' pointer to the live generation (and, deployed,
// the Glue table's storage.location.template). Meanwhile the next comer takes the expired lease,
// rolls the committed work forward, compacts the table into a newer generation, and a run
// exports into it. Then the stalled writer wakes and writes the schema it read before it slept.
//  1. the stalled writer is a compaction (in its finishing, after the watermark names it);
//  2. the stalled writer is a run's Commit (in its finishing, after the watermark names it).
// Expected: readers see every version once, `<table>_current` equals Postgres, and runs after
// keep writing where readers look.
import { describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, faultyStore, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';

const db = fileDatabase();

const configOf = (name: string): LakeConfig => testConfig([{ name }], {
  export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 },
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

async function createLakeTable(name: string, lake: TestLake): Promise<Set<string>> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 300) g`);
  await exportRun(name, lake);
  for (const slice of [0, 1]) {
    await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 5 = ${slice}`);
    await exportRun(name, lake);
  }
  const seen = new Set<string>();
  await checkReaders(db, lake, configOf(name), name, 'before', { seenVersions: seen });
  return seen;
}

function gate(): { wait: Promise<void>; open(): void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => { open = resolve; });
  return { wait, open };
}

/** `inner`, whose first write of the table's live schema.json waits for `resume` (after telling `stalled`). */
function sleepingBeforeSchema(inner: ObjectStore, stalled: () => void, resume: Promise<void>): ObjectStore {
  let slept = false;
  return faultyStore(inner, {
    put: async (key, body, options) => {
      if (!slept && /\/_state\/[^/]+\/schema\.json$/.test(key)) {
        slept = true;
        stalled();
        await resume;
      }
      return inner.put(key, body, options);
    },
  });
}

async function expireLease(lake: TestLake, name: string): Promise<void> {
  const state = new TableState(lake.store, 'raw', name);
  const lease = (await state.read<Lease>(state.leaseKey()))!.value;
  await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
}

/** After the sleeper woke: the next comer compacted and a run exported; readers must see it all. */
async function afterWaking(name: string, lake: TestLake, seen: Set<string>): Promise<void> {
  const problems: string[] = [];
  const check = (label: string) => checkReaders(db, lake, configOf(name), name, label, { seenVersions: seen }).then(() => undefined, (e: Error) => { problems.push(e.message.split('\n')[0]); });
  await check('after the stalled writer woke');
  await db.query(`UPDATE ${name} SET payload = 'v4-' || id, updated_at = clock_timestamp() WHERE id % 7 = 0`);
  await exportRun(name, lake);
  await check('after the next run');
  await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true });
  await check('after the next compaction');
  expect(problems).toEqual([]);
}

describe('a writer that stalls past its commit point, then writes the readers\' pointer', () => {
  it('a compaction: rolled forward and superseded while it slept', async () => {
    const name = 'sleepy_compaction';
    const lake = createLake();
    try {
      const seen = await createLakeTable(name, lake);
      const stalled = gate();
      const resume = gate();
      const sleeper = compactTable({ store: sleepingBeforeSchema(lake.store, stalled.open, resume.wait), config: configOf(name) }, name, { force: true }).then((r) => r.status, (e: Error) => e.message);
      await stalled.wait;
      await expireLease(lake, name);
      // The next compaction finishes the sleeper's (the watermark names it), then compacts anew.
      expect((await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true })).status).toBe('compacted');
      await db.query(`UPDATE ${name} SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 5 = 2`);
      await exportRun(name, lake);
      await checkReaders(db, lake, configOf(name), name, 'while it slept', { seenVersions: seen });
      resume.open();
      console.log('the sleeping compaction woke and ended:', await sleeper);
      await afterWaking(name, lake, seen);
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('a run\'s Commit: rolled forward by a compaction while it slept', async () => {
    const name = 'sleepy_commit';
    const lake = createLake();
    try {
      const seen = await createLakeTable(name, lake);
      await db.query(`UPDATE ${name} SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 5 = 2`);
      const stalled = gate();
      const resume = gate();
      const deps = exportDeps(db, lake.store, configOf(name));
      const [task] = (await planRun(deps, {})).tables;
      let current = task;
      while (!current.done) current = await exportTable(deps, current);
      const sleeper = commitTable({ ...deps, store: sleepingBeforeSchema(lake.store, stalled.open, resume.wait) }, current).then((r) => r.status, (e: Error) => e.message);
      await stalled.wait;
      await expireLease(lake, name);
      expect((await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true })).status).toBe('compacted');
      await db.query(`UPDATE ${name} SET payload = 'v5-' || id, updated_at = clock_timestamp() WHERE id % 5 = 3`);
      await exportRun(name, lake);
      await checkReaders(db, lake, configOf(name), name, 'while it slept', { seenVersions: seen });
      resume.open();
      console.log('the sleeping commit woke and ended:', await sleeper);
      await deps.close();
      await afterWaking(name, lake, seen);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
