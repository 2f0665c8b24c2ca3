// Breaker (HI): the watermark fence on a directory lake when the stalled Commit is paused INSIDE
// its conditional write's critical section (lock taken, current watermark read and compared,
// rename not yet done): a suspended CLI (Ctrl-Z, a laptop asleep, a VM paused) with a live pid.
// The lock was "stale" after 10 s whatever its holder, so the next lease holder's fence removed
// it, rewrote the watermark and removed the run; the Commit then resumed and renamed its
// watermark over the fence, committing files that were gone. A live holder's lock is now waited
// for: the recovery's fence waits until the Commit has written, then finds the run committed.
import { describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { gate } from './fence-break-gates.ts';

const db = fileDatabase();

const NAME = 'dirlock_stall';
const config: LakeConfig = testConfig([{ name: NAME }], { export: { pageRows: 50, safetyLagSeconds: 0 } });

const exportRun = (lake: TestLake): Promise<string[]> => exportStatuses(db, lake, config);

describe('a Commit paused inside the directory lake\'s lock of its watermark write', () => {
  it('cannot commit over the fence of the recovery that removed its run', async () => {
    const lake = createLake();
    try {
      await db.query(`CREATE TABLE ${NAME} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${NAME} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 400) g`);
      expect(await exportRun(lake)).toEqual(['succeeded']);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, NAME, 'after the first run', { seenVersions: seen });
      await db.query(`UPDATE ${NAME} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 3 = 0`);
      const state = new TableState(lake.store, 'raw', NAME);
      const deps0 = exportDeps(db, lake.store, config);
      let task = (await planRun(deps0, {})).tables[0];
      while (!task.done) task = await exportTable(deps0, task);
      await deps0.close();
      // The Commit's store: inside its conditional watermark write, after the compare's read, it is suspended.
      const suspended = gate();
      const wake = gate();
      let writing = false;
      class Suspending extends DirectoryStore {
        override async put(key: string, body: Uint8Array | string, options?: { ifNoneMatch?: boolean; ifMatch?: string }) {
          if (key === state.watermarkKey() && options?.ifMatch) writing = true;
          return super.put(key, body, options);
        }
        override async get(key: string) {
          const object = await super.get(key);
          if (writing && key === state.watermarkKey()) {
            writing = false;
            suspended.open();
            await wake.wait;
          }
          return object;
        }
      }
      const commitDeps = exportDeps(db, new Suspending(lake.url), config);
      const commit = commitTable(commitDeps, task).then((r) => r, (e: Error) => e);
      await suspended.wait;
      // The lease lapses; the next execution plans (recovery: fence, then the run removed).
      const lease = (await state.read<Lease>(state.leaseKey()))!.value;
      await state.write(state.leaseKey(), { ...lease, expiresAt: new Date(Date.now() - 1000).toISOString() });
      const deps = exportDeps(db, lake.store, config);
      const planning = planRun(deps, {});
      // Past the old 10 s staleness, the recovery still waits for the suspended Commit's lock.
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      // The suspended Commit resumes.
      wake.open();
      const plan = await planning;
      expect(plan.failed).toEqual([]);
      const outcome = await commit;
      await commitDeps.close();
      console.log(`suspended commit: ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : outcome.status}`);
      let next = plan.tables[0];
      while (!next.done) next = await exportTable(deps, next);
      const committed = await commitTable(deps, next).catch((e: Error) => e);
      console.log(`next execution's commit: ${committed instanceof Error ? `${committed.name}: ${committed.message}` : committed.status}`);
      // Its Table Failed step, as the workflow runs it.
      if (committed instanceof Error) await abandonRun(deps, NAME, next.runId);
      await deps.close();
      expect(await exportRun(lake)).toEqual(['succeeded']);
      await checkReaders(db, lake, config, NAME, 'after the runs that follow', { seenVersions: seen });
      expect(seen.size).toBe(400 + 133);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
