// Breaker (HI): the one write to schema.json a Commit makes BEFORE its commit point, unfenced:
// when its rows fall in a year the registered projection does not cover, it widens the
// projection over the last committed schema it read (`{...previous, years}`, written without
// If-Match) right after its pending schema. A Commit stalled there past its lease while a
// compaction takes the table (recovery removes the run, the table moves to a new generation,
// the old one goes after graceMinutes) then writes the OLD schema back: readers are sent to the
// replaced generation, and the next runs' files follow the recorded location there.
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';

const db = fileDatabase();

const NAME = 'widen_stall';
const config: LakeConfig = testConfig([{ name: NAME, partitionBy: 'created_at' }], {
  export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 0 },
});

const exportRun = (lake: TestLake): Promise<string[]> => exportStatuses(db, lake, config);

describe('a Commit stalled at its projection widening while a compaction takes the table', () => {
  it('does not send readers back to the replaced generation', async () => {
    const lake = createLake();
    try {
      await db.query(`CREATE TABLE ${NAME} (id int PRIMARY KEY, payload text, created_at date NOT NULL, updated_at timestamptz NOT NULL);
        INSERT INTO ${NAME} SELECT g, 'v1-' || g, date '2024-03-01' + (g % 20), timestamptz '2024-03-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 400) g`);
      expect(await exportRun(lake)).toEqual(['succeeded']);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, NAME, 'after the first run', { seenVersions: seen });
      const state = new TableState(lake.store, 'raw', NAME);
      const before = (await state.read<LakeSchema>(state.schemaKey()))!.value;
      // The next run holds a row created in a year the projection does not cover yet.
      await db.query(`UPDATE ${NAME} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 5 = 0;
        INSERT INTO ${NAME} VALUES (401, 'old', date '2019-05-05', clock_timestamp())`);
      const deps0 = exportDeps(db, lake.store, config);
      let task = (await planRun(deps0, {})).tables[0];
      while (!task.done) task = await exportTable(deps0, task);
      await deps0.close();
      const atWiden = pause('put', (k) => k === state.schemaKey());
      const commitDeps = exportDeps(db, pausingStore(lake.store, [atWiden]), config);
      const commit = commitTable(commitDeps, task).then((r) => r, (e: Error) => e);
      expect(await reachedOrDone(atWiden, commit), 'the Commit widens the projection').toBe('reached');
      // The lease lapses; a compaction takes the table (recovering it first: the run is removed).
      const lease = (await state.read<Lease>(state.leaseKey()))!.value;
      await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
      const compacted = await compactTable({ store: lake.store, config }, NAME, { force: true });
      console.log(`compaction: ${compacted.status} ${'reason' in compacted ? compacted.reason : ''}`);
      const after = (await state.read<LakeSchema>(state.schemaKey()))!.value;
      console.log(`schema.json generation before ${JSON.stringify((before as { generation?: unknown }).generation)}, after compaction ${JSON.stringify((after as { generation?: unknown }).generation)}`);
      atWiden.resume.open();
      const outcome = await commit;
      await commitDeps.close();
      console.log(`stalled commit: ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : outcome.status}`);
      const now = (await state.read<LakeSchema>(state.schemaKey()))!.value;
      console.log(`schema.json generation now ${JSON.stringify((now as { generation?: unknown }).generation)}`);
      if (outcome instanceof Error) {
        // Its Table Failed step.
        await abandonRun({ store: lake.store, config }, NAME, task.runId);
      }
      const firstCheck = await checkReaders(db, lake, config, NAME, 'right after the stalled Commit failed', { seenVersions: new Set(seen), postgresAhead: true }).then(() => 'ok', (e: Error) => e.message.split('\n')[0]);
      console.log(`readers right after: ${firstCheck}`);
      expect(await exportRun(lake)).toEqual(['succeeded']);
      const nextCheck = await checkReaders(db, lake, config, NAME, 'after the next run', { seenVersions: new Set(seen) }).then(() => 'ok', (e: Error) => e.message.split('\n')[0]);
      console.log(`readers after the next run: ${nextCheck}; schema.json generation ${JSON.stringify(((await state.read<LakeSchema>(state.schemaKey()))!.value as { generation?: unknown }).generation)}`);
      // The scheduled compaction comes by: nothing to merge under a larger minFiles, but the
      // generation the first compaction replaced is past its grace period (0 min) and goes.
      const lenient: LakeConfig = testConfig([{ name: NAME, partitionBy: 'created_at' }], {
        export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 1000, graceMinutes: 0 },
      });
      const again = await compactTable({ store: lake.store, config: lenient }, NAME);
      console.log(`scheduled compaction: ${again.status} ${'reason' in again ? again.reason : ''} ${'retiredFilesDeleted' in again ? `retired files deleted ${again.retiredFilesDeleted}` : ''}`);
      const view = await checkReaders(db, lake, lenient, NAME, 'after the scheduled compaction', { seenVersions: new Set(seen) }).then(() => 'ok', (e: Error) => e.message.split('\n')[0]);
      console.log(`readers after the scheduled compaction: ${view}`);
      expect(await exportRun(lake)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, NAME, 'after a compaction and a run', { seenVersions: seen });
      expect(seen.size).toBe(401 + 80);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
