// Breaker (HI): abandonRun (Table Failed) racing its own run's FIRST Commit, which Step Functions
// stopped waiting for but which still runs. abandonRun holds the run's lease until its very end,
// so the Commit's lease checks pass all along; the fence claim is that a Commit that had not yet
// written its pending schema when abandonRun looked fails by itself. Here the Commit is just
// before that write when abandonRun decides "no fence needed"; the Commit then publishes and
// writes the watermark (create-once: nothing is there), and abandonRun, which never re-reads the
// watermark, removes the run as uncommitted.
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';

const db = fileDatabase();

async function createTable(name: string): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
}

const exportRun = (lake: TestLake, config: LakeConfig): Promise<string[]> => exportStatuses(db, lake, config);

async function plannedAndExported(lake: TestLake, config: LakeConfig) {
  const deps = exportDeps(db, lake.store, config);
  const plan = await planRun(deps, {});
  let task = plan.tables[0];
  while (!task.done) task = await exportTable(deps, task);
  await deps.close();
  return task;
}

type Point = { label: string; at: (state: TableState, runId: string) => ReturnType<typeof pause> };
const POINTS: Point[] = [
  { label: 'its first lease renewal', at: (state) => pause('get', (k) => k === state.leaseKey()) },
  { label: 'listing its journals', at: (state, runId) => pause('list', (k) => k === state.pendingPrefix(runId)) },
  { label: 'writing its journal index', at: (state, runId) => pause('put', (k) => k.startsWith(`${state.pendingPrefix(runId)}index/`)) },
  { label: 'reading its pending run', at: (state, runId) => pause('get', (k) => k === state.pendingRunKey(runId)) },
  { label: 'writing its pending schema', at: (state, runId) => pause('put', (k) => k === state.pendingSchemaKey(runId)) },
];

async function raceAbandon(name: string, config: LakeConfig, point: Point, lake: TestLake) {
  const task = await plannedAndExported(lake, config);
  const state = new TableState(lake.store, 'raw', name);
  // The Commit, held at `point`; later held after its watermark write.
  const held = point.at(state, task.runId);
  const afterWatermark = pause('put', (k) => k === state.watermarkKey(), 'after');
  const commitDeps = exportDeps(db, pausingStore(lake.store, [held, afterWatermark]), config);
  const commit = commitTable(commitDeps, task).then((r) => r, (e: Error) => e);
  expect(await reachedOrDone(held, commit)).toBe('reached');
  // Table Failed: abandonRun looks (no watermark, no pending schema: no fence), and is held
  // as it reads the run's manifest (removeRun's first step).
  const atRemoval = pause('get', (k) => k === state.manifestKey(task.runId));
  const abandon = abandonRun({ store: pausingStore(lake.store, [atRemoval]), config }, name, task.runId).then(() => null, (e: Error) => e);
  expect(await reachedOrDone(atRemoval, abandon)).toBe('reached');
  // The Commit goes on: pending schema, lease (still its own), publish, watermark.
  held.resume.open();
  const reached = await reachedOrDone(afterWatermark, commit);
  // abandonRun removes the run it believes uncommitted, and frees the lease.
  atRemoval.resume.open();
  expect(await abandon).toBeNull();
  afterWatermark.resume.open();
  const outcome = await commit;
  await commitDeps.close();
  const watermark = await state.watermark();
  const manifest = await state.read<RunManifest>(state.manifestKey(task.runId));
  const files = manifest?.value.pages.flatMap((p) => p.files.map((f) => f.key)) ?? [];
  const present = (await Promise.all(files.map((f) => lake.store.get(f)))).filter((o) => o !== null).length;
  console.log(`${name} held at ${point.label}: watermark written ${reached === 'reached'}; commit ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : outcome.status}; watermark run ${watermark?.runId ?? '(none)'} (task ${task.runId}); manifest files ${files.length}, present ${present}; schema.json ${(await state.read(state.schemaKey())) ? 'present' : 'missing'}`);
}

describe('abandonRun racing its own first Commit', () => {
  for (const [i, point] of POINTS.entries()) {
    it(`the Commit, held at ${point.label}, commits between abandonRun's fence check and its removal: nothing may be lost`, async () => {
      const name = `abandon_race_${i}`;
      const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
      const lake = createLake();
      try {
        await createTable(name);
        await raceAbandon(name, config, point, lake);
        // Whatever the stalled Commit answered, the next run must leave every row in the lake once.
        expect(await exportRun(lake, config)).toEqual(['succeeded']);
        const seen = new Set<string>();
        await checkReaders(db, lake, config, name, 'after the next run', { seenVersions: seen });
        expect(seen.size).toBe(400);
      } finally {
        lake.remove();
      }
    }, 120_000);
  }

  it('a snapshot table\'s first run: nothing may be lost', async () => {
    const name = 'abandon_race_snapshot';
    const config = testConfig([{ name, mode: 'snapshot' }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const lake = createLake();
    try {
      await createTable(name);
      await raceAbandon(name, config, POINTS[4], lake);
      const seen = new Set<string>();
      // Until the next snapshot, readers see the table as the watermark's run left it.
      const state = new TableState(lake.store, 'raw', name);
      if (await state.watermark()) {
        const schema = await state.read(state.schemaKey());
        expect(schema, 'a committed snapshot has a schema readers can use').not.toBeNull();
        await checkReaders(db, lake, config, name, 'right after the race', { seenVersions: seen });
      }
      expect(await exportRun(lake, config)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, name, 'after the next run', { seenVersions: seen });
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('an empty first run (nothing to publish): the table is readable and the next run\'s rows arrive', async () => {
    const name = 'abandon_race_empty';
    const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const lake = createLake();
    try {
      await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL)`);
      await raceAbandon(name, config, POINTS[4], lake);
      await db.query(`INSERT INTO ${name} SELECT g, 'v1-' || g, clock_timestamp() FROM generate_series(1, 120) g`);
      expect(await exportRun(lake, config)).toEqual(['succeeded']);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, name, 'after the next run', { seenVersions: seen });
      expect(seen.size).toBe(120);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
