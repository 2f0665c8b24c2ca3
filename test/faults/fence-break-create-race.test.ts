// Breaker (HI): a table's first Commit, stalled past its lease at its create-once watermark
// write, and the next execution's recovery creating the fence in the same place (also
// create-once): both writes are sent at once. Exactly one may win, and either way the loser's
// path must leave every row in the lake once: the Commit first, then the recovery rolls the run
// forward (its files stay); the fence first, then the Commit fails and the run is removed.
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';

const db = fileDatabase();

const exportRun = (lake: TestLake, config: LakeConfig): Promise<string[]> => exportStatuses(db, lake, config);

describe("a stalled first Commit's create-once watermark write racing a recovery's fence creation", () => {
  for (const first of ['the Commit', 'the fence'] as const) {
    it(`${first} lands first: one wins, and every row is in the lake once`, async () => {
      const name = first === 'the Commit' ? 'create_race_commit' : 'create_race_fence';
      const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
      const lake = createLake();
      try {
        await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
          INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
        const state = new TableState(lake.store, 'raw', name);
        const deps0 = exportDeps(db, lake.store, config);
        let task = (await planRun(deps0, {})).tables[0];
        while (!task.done) task = await exportTable(deps0, task);
        await deps0.close();
        // Both held just before their watermark.json PUT.
        const commitAt = pause('put', (k) => k === state.watermarkKey());
        const commitDeps = exportDeps(db, pausingStore(lake.store, [commitAt]), config);
        const commit = commitTable(commitDeps, task).then((r) => r, (e: Error) => e);
        expect(await reachedOrDone(commitAt, commit)).toBe('reached');
        const lease = (await state.read<Lease>(state.leaseKey()))!.value;
        await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
        const fenceAt = pause('put', (k) => k === state.watermarkKey());
        const nextDeps = exportDeps(db, pausingStore(lake.store, [fenceAt]), config);
        const planning = planRun(nextDeps, {}).then((r) => r, (e: Error) => e);
        expect(await reachedOrDone(fenceAt, planning)).toBe('reached');
        expect(await lake.store.get(state.watermarkKey())).toBeNull();
        if (first === 'the Commit') {
          commitAt.resume.open();
          await new Promise((resolve) => setTimeout(resolve, 100));
          fenceAt.resume.open();
        } else {
          fenceAt.resume.open();
          await new Promise((resolve) => setTimeout(resolve, 100));
          commitAt.resume.open();
        }
        const [outcome, plan] = await Promise.all([commit, planning]);
        await commitDeps.close();
        const committed = !(outcome instanceof Error);
        console.log(`${first} first: stalled commit ${committed ? (outcome as { status: string }).status : `${outcome.name}: ${outcome.message}`}; plan ${plan instanceof Error ? plan.message : JSON.stringify(plan.failed)}`);
        expect(committed).toBe(first === 'the Commit');
        expect(plan instanceof Error).toBe(false);
        if (!(plan instanceof Error)) {
          // The next execution goes on with the run it planned (a failure of it is its own Table Failed).
          const plainDeps = { ...nextDeps, store: lake.store };
          let next = plan.tables[0];
          const result = await (async () => {
            while (!next.done) next = await exportTable(plainDeps, next);
            return commitTable(plainDeps, next);
          })().catch((e: Error) => e);
          console.log(`${first} first: the next execution's run ${result instanceof Error ? `${result.name}: ${result.message}` : result.status}`);
          if (result instanceof Error) await abandonRun(plainDeps, name, next.runId);
        }
        await nextDeps.close();
        const seen = new Set<string>();
        expect(await exportRun(lake, config)).toEqual(['succeeded']);
        await checkReaders(db, lake, config, name, 'after the runs that follow', { seenVersions: seen });
        expect(seen.size).toBe(400);
      } finally {
        lake.remove();
      }
    }, 120_000);
  }
});
