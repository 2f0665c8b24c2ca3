// Breaker (HJ) tools for late S3 copies: a table committed once, then a run exported whose Commit
// stalls with every move modelled as S3 performs it (CopyObject reads its source as the request
// starts and writes the destination when it completes, then DeleteObject), held until the test
// lets the copies land (as fence-break-late-copy does).
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import type { CommitResult, RunRequest, TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { expect } from 'vitest';
import { exportDeps, faultyStore, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { exportStatuses } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { gate, type Gate } from './fence-break-gates.ts';

export interface StalledCommit {
  readonly task: TableTask;
  readonly state: TableState;
  /** Data keys the run's journals name. */
  readonly keys: string[];
  /** Opened by the test: the copies in flight complete. */
  readonly land: Gate;
  /** The Commit's outcome once the copies landed (an error: it lost its lease or its watermark). */
  readonly outcome: Promise<CommitResult | Error>;
}

/** 400 rows over four days (ids 1..400), payload 'v1-<id>'. */
export async function createTable(db: TestDatabase, name: string): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
}

/** The late-copy scenarios' config: pages of 50 rows, no compaction, removed lists kept `graceMinutes`. */
export function lateConfig(name: string, graceMinutes: number, table: Record<string, unknown> = {}): LakeConfig {
  return testConfig([{ name, ...table }], { export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { enabled: false, graceMinutes } });
}

/** The table created and committed once (readers see its 400 versions), then a third of its rows updated. */
export async function committedThenUpdated(db: TestDatabase, lake: TestLake, config: LakeConfig, name: string): Promise<Set<string>> {
  await createTable(db, name);
  expect(await exportStatuses(db, lake, config)).toEqual(['succeeded']);
  const seen = new Set<string>();
  await checkReaders(db, lake, config, name, 'after the first run', { seenVersions: seen });
  await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 3 = 0`);
  return seen;
}

/**
 * A run planned with `request` and exported, its Commit started with every copy held in flight
 * (sources read). Returns once all of them are in flight. `pagePerInvocation`: each Export
 * invocation's deadline has passed as it starts, so it writes one page, and each page its own file.
 */
export async function stallCommit(db: TestDatabase, lake: { readonly store: ObjectStore }, config: LakeConfig, name: string, request: RunRequest = {}, pagePerInvocation = false): Promise<StalledCommit> {
  const deps = exportDeps(db, lake.store, config);
  let task = (await planRun(deps, request)).tables[0];
  const state = new TableState(lake.store, config.lake.prefix, name);
  // A backfill's segments first (each a Map item of its own), then the table's task.
  for (const segment of task.backfill ? await readSegments(state, task) : []) {
    let child = segmentTask(task, segment);
    while (!child.done) child = await exportTable(deps, child, pagePerInvocation ? 0 : Number.POSITIVE_INFINITY);
  }
  while (!task.done) task = await exportTable(deps, task, pagePerInvocation ? 0 : Number.POSITIVE_INFINITY);
  await deps.close();
  const keys = (await state.pendingPages(task.runId)).flatMap((p) => p.files.map((f) => f.key));
  let started = 0;
  const allStarted = gate();
  const land = gate();
  const stalledDeps = exportDeps(db, faultyStore(lake.store, {
    move: async (from, to) => {
      const source = await lake.store.get(from);
      if (++started === keys.length) allStarted.open();
      await land.wait;
      if (!source) throw new Error(`NoSuchKey: ${from}`);
      await lake.store.put(to, source.body);
      await lake.store.delete([from]);
      return true;
    },
  }), config);
  const outcome = commitTable(stalledDeps, task).then((r) => r, (e: Error) => e).finally(() => stalledDeps.close());
  await allStarted.wait;
  return { task, state, keys, land, outcome };
}

/** The lease of the stalled run lapses (its Lambda timed out; Step Functions gave up on it). */
export async function expireLease(state: TableState): Promise<void> {
  const lease = (await state.read<Lease>(state.leaseKey()))!.value;
  await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
}

/** Data files under the table's folder whose name carries `runId`. */
export async function dataFilesOf(lake: { readonly store: ObjectStore }, prefix: string, name: string, runId: string): Promise<string[]> {
  return (await lake.store.list(`${prefix}/${name}/`)).filter((k) => k.endsWith('.parquet') && !k.includes('/_state/') && k.includes(runId));
}
