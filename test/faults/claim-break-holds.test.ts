// Breaker (HK): the run.json claims between a removal and a backfill adoption where they hold. A
// failed backfill R (2 segments, 3000 rows, exported whole, its execution dead and its lease
// lapsed), then:
//   - a removal of R (a plan whose tables[] entry changed refuses R) killed right after its claim
//     (removing: true), before deleting anything: the next plan, with the original config, does
//     not adopt R, removes it without claiming again, starts over and commits;
//   - an adoption of R killed right after its claim (adoptedBy), before moving the lease: the next
//     plan adopts R over the dead plan's claim and commits it;
//   - an adopter stalled before its claim past its lease, while the plan that took the lease
//     over removes R: the stalled adopter's claim lands first, so the removal loses its claim
//     and fails the table by name (WindowConflictError, nothing deleted), the adopter fails its
//     lease check; the next execution converges.
// Each ends with every version once for readers and nothing left pending.
import { describe, expect, it } from 'vitest';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { TableState, type PendingRun } from '../../lambdas/core/protocol/table-state.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { createLake, exportDeps, faultyStore, testConfig, type TestLake } from '../support/local-stack.ts';
import { exportStatuses, fileDatabase } from '../support/file-database.ts';
import { pause, pausingStore, reachedOrDone } from './fence-break-gates.ts';
import { expire, exportAll, exportedBackfill, visibleVersions } from './claim-break-backfill.ts';

const db = fileDatabase();

/** `inner` until `killAt` says so: that operation and every later one fail (the process is dead). */
function killedStore(inner: ObjectStore, killAt: (op: string, key: string) => boolean): ObjectStore {
  let dead = false;
  const guard = async <T>(op: string, key: string, work: () => Promise<T>): Promise<T> => {
    if (!dead && killAt(op, key)) dead = true;
    if (dead) throw new Error(`killed (${op} ${key})`);
    return work();
  };
  return faultyStore(inner, {
    put: (key, body, options) => guard('put', key, () => inner.put(key, body, options)),
    get: (key) => guard('get', key, () => inner.get(key)),
    list: (prefix) => guard('list', prefix, () => inner.list(prefix)),
    delete: (keys) => guard('delete', keys.join(','), () => inner.delete(keys)),
    deleteIf: (key, etag) => guard('deleteIf', key, () => inner.deleteIf(key, etag)),
    move: (from, to) => guard('move', `${from}->${to}`, () => inner.move(from, to)),
  });
}

interface Scenario {
  readonly table: string;
  readonly config: LakeConfig;
  /** The same table with a changed tables[] entry: a plan with it refuses to adopt R. */
  readonly changed: LakeConfig;
  readonly state: TableState;
  readonly lake: TestLake;
  readonly R: string;
}

/** The table created, its first export (a backfill R) exported whole; R's execution dead, its lease lapsed. */
async function failedBackfill(table: string, lake: TestLake): Promise<Scenario> {
  const { config, state, R } = await exportedBackfill(db, lake, table, { compaction: { enabled: false } });
  const changed = testConfig([{ name: table, backfill: { segments: 2 }, where: 'id > 0' }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 }, compaction: { enabled: false } });
  await expire(state);
  return { table, config, changed, state, lake, R };
}

async function expectConverged(s: Scenario): Promise<void> {
  expect(await visibleVersions(s.lake, s.table), 'versions readers see').toEqual({ n: '3000', versions: '3000' });
  expect(await s.state.pendingRuns(), 'runs left pending').toEqual([]);
  expect(await s.state.watermark()).not.toBeNull();
}

describe('the run.json claim between a removal and an adoption', () => {
  it('a removal killed right after its claim: the next plan removes R without adopting it, and commits', async () => {
    const lake = createLake();
    try {
      const s = await failedBackfill('claim_holds_removing', lake);
      const killed = exportDeps(db, killedStore(lake.store, (op, key) => op === 'delete' && key.includes(s.state.stagedPrefix(s.R))), s.changed);
      const p1 = await planRun(killed, {});
      await killed.close();
      console.log(`removal killed after its claim: ${p1.failed.map((f) => f.error).join('; ')}`);
      expect((await s.state.read<PendingRun>(s.state.pendingRunKey(s.R)))?.value.removing, 'R claimed for removal').toBe(true);
      await expire(s.state);
      // The original config: R would be adoptable but for the claim.
      const log: string[] = [];
      const next = exportDeps(db, pausingStore(lake.store, [], log), s.config);
      const planned = await planRun({ ...next, log: (message) => log.push(`log ${message}`) }, {});
      await next.close();
      expect(planned.tables[0].runId, 'R is not adopted').not.toBe(s.R);
      expect(log.filter((l) => l === `put ${s.state.pendingRunKey(s.R)}`), 'R claimed again').toEqual([]);
      await expire(s.state);
      expect(await exportStatuses(db, lake, s.config)).toEqual(['succeeded']);
      await expectConverged(s);
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('an adoption killed right after its claim, before moving the lease: the next plan adopts R and commits it', async () => {
    const lake = createLake();
    try {
      const s = await failedBackfill('claim_holds_adopting', lake);
      let claimed = false;
      const killed = exportDeps(db, killedStore(lake.store, (op, key) => {
        if (op === 'put' && key === s.state.pendingRunKey(s.R)) claimed = true;
        return claimed && op === 'put' && key === s.state.leaseKey();
      }), s.config);
      const p1 = await planRun(killed, {});
      await killed.close();
      console.log(`adoption killed before moving the lease: ${p1.failed.map((f) => f.error).join('; ')}`);
      const dead = (await s.state.read<PendingRun>(s.state.pendingRunKey(s.R)))?.value.adoptedBy;
      expect(dead, 'R claimed by the dead plan').toBe(p1.runId);
      await expire(s.state);
      const next = exportDeps(db, lake.store, s.config);
      const planned = (await planRun(next, {})).tables[0];
      await next.close();
      expect(planned.runId, 'R adopted by the next plan').toBe(s.R);
      expect((await s.state.read<PendingRun>(s.state.pendingRunKey(s.R)))?.value.adoptedBy).toBe(planned.holder);
      const task = await exportAll(db, lake.store, s.config, planned);
      const commitDeps = exportDeps(db, lake.store, s.config);
      expect((await commitTable(commitDeps, task)).status).toBe('succeeded');
      await commitDeps.close();
      expect((await s.state.watermark())?.runId).toBe(s.R);
      await expectConverged(s);
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('a stalled adopter claims R under the lease holder\'s removal: the removal fails the table by name, the next execution converges', async () => {
    const lake = createLake();
    try {
      const s = await failedBackfill('claim_holds_stalled_adopter', lake);
      // P0 takes the lapsed lease, reads run.json and stalls before its claim; its lease lapses.
      const p0Claim = pause('put', (key) => key === s.state.pendingRunKey(s.R));
      const p0Deps = exportDeps(db, pausingStore(lake.store, [p0Claim]), s.config);
      const p0 = planRun(p0Deps, {});
      expect(await reachedOrDone(p0Claim, p0), 'P0 reached its claim').toBe('reached');
      await expire(s.state);
      // P1 (its tables[] entry changed) takes the lease, refuses R and goes to remove it: held at its claim.
      const p1Claim = pause('put', (key) => key === s.state.pendingRunKey(s.R));
      const p1Deps = exportDeps(db, pausingStore(lake.store, [p1Claim]), s.changed);
      const p1 = planRun(p1Deps, {});
      expect(await reachedOrDone(p1Claim, p1), 'P1 reached its claim').toBe('reached');
      p0Claim.resume.open();
      const plan0 = await p0;
      await p0Deps.close();
      p1Claim.resume.open();
      const plan1 = await p1;
      await p1Deps.close();
      console.log(`stalled adopter P0: ${plan0.failed.map((f) => f.error).join('; ') || `${plan0.tables.length} planned`}`);
      console.log(`lease holder P1's removal: ${plan1.failed.map((f) => f.error).join('; ') || `${plan1.tables.length} planned`}`);
      expect(plan0.failed[0]?.error, "P0's adoption fails its lease check").toMatch(/lost the table's lease while adopting/);
      expect(plan1.failed[0]?.error, "P1's removal names the table and the run").toMatch(new RegExp(`WindowConflictError: ${s.table}: run ${s.R}'s run.json changed since this removal read it`));
      expect(await visibleVersions(lake, s.table), 'nothing visible, R untouched').toEqual({ n: '0', versions: '0' });
      expect((await lake.store.list(s.state.stagedPrefix(s.R))).length, "R's staged files").toBeGreaterThan(0);
      // P1's lease was released when its table failed: the next execution runs at once.
      expect(await exportStatuses(db, lake, s.changed)).toEqual(['succeeded']);
      await expectConverged(s);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
