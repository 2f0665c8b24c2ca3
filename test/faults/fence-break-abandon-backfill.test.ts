// Breaker (HI): abandonRun (Table Failed) racing its own FIRST-load backfill's Commit, which
// Step Functions stopped waiting for but which still runs. A failed backfill is kept staged for
// the next run to adopt: abandonRun moves the files a commit published back to staging. With no
// watermark and no pending schema when abandonRun looked, nothing is fenced; the Commit (its
// lease still the run's own) publishes and writes the watermark, then abandonRun moves the
// committed run's published files back under pending/, which the Commit's tidying then clears.
import { describe, expect, it } from 'vitest';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';

const db = fileDatabase();

const NAME = 'abandon_backfill';
const config: LakeConfig = testConfig([{ name: NAME, backfill: { segments: 2 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });

const exportRun = (lake: TestLake): Promise<string[]> => exportStatuses(db, lake, config);

describe('abandonRun racing its own first-load backfill Commit', () => {
  it('the Commit commits while abandonRun keeps the backfill staged: nothing may be lost', async () => {
    const lake = createLake();
    try {
      await db.query(`CREATE TABLE ${NAME} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${NAME} SELECT g, 'p' || g, timestamptz '2024-12-12 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 3000) g`);
      const state = new TableState(lake.store, 'raw', NAME);
      const deps = exportDeps(db, lake.store, config);
      const [planned] = (await planRun(deps, {})).tables;
      expect(planned.backfill, 'a backfill run').toBeTruthy();
      for (const segment of await readSegments(state, planned)) {
        let child = segmentTask(planned, segment);
        while (!child.done) child = await exportTable(deps, child);
      }
      let task = planned;
      while (!task.done) task = await exportTable(deps, task);
      await deps.close();
      const beforeSchema = pause('put', (k) => k === state.pendingSchemaKey(task.runId));
      const afterWatermark = pause('put', (k) => k === state.watermarkKey(), 'after');
      const commitDeps = exportDeps(db, pausingStore(lake.store, [beforeSchema, afterWatermark]), config);
      const commit = commitTable(commitDeps, task).then((r) => r, (e: Error) => e);
      expect(await reachedOrDone(beforeSchema, commit)).toBe('reached');
      // Table Failed: no watermark, no pending schema, no fence; held as it lists what to keep staged.
      const atList = pause('list', (k) => k === state.pendingPrefix(task.runId));
      const abandon = abandonRun({ store: pausingStore(lake.store, [atList]), config }, NAME, task.runId).then(() => null, (e: Error) => e);
      expect(await reachedOrDone(atList, abandon)).toBe('reached');
      beforeSchema.resume.open();
      // Before the fix the Commit went on to write the watermark here; now abandonRun has taken the
      // lease from it, and it stops at its next lease check.
      await reachedOrDone(afterWatermark, commit);
      atList.resume.open();
      expect(await abandon).toBeNull();
      afterWatermark.resume.open();
      const outcome = await commit;
      await commitDeps.close();
      const manifest = await state.read<RunManifest>(state.manifestKey(task.runId));
      const files = manifest?.value.pages.flatMap((p) => p.files.map((f) => f.key)) ?? [];
      const present = (await Promise.all(files.map((f) => lake.store.get(f)))).filter((o) => o !== null).length;
      console.log(`backfill commit: ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : outcome.status}; watermark run ${(await state.watermark())?.runId ?? '(none)'}; manifest files ${files.length}, present ${present}`);
      expect(await exportRun(lake)).toEqual(['succeeded']);
      const seen = new Set<string>();
      await checkReaders(db, lake, config, NAME, 'after the next run', { seenVersions: seen });
      expect(seen.size).toBe(3000);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
