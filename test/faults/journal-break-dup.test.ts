// Breaker (HF): one Export input delivered twice — at once, or a stale copy after the first
// finished — for incremental, {full: true} and deletes.detect tables; the lake must hold every
// version once and every deleted key's tombstone once.
import { describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { createLake, duckdb, exportDeps, parquetGlob, testConfig } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkLake } from './lake-checks.ts';

const db = fileDatabase();

async function createTable(name: string, rows: number): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g || repeat('x', 200), timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 300) * interval '1 day' + (g % 7) * interval '1 second'
    FROM generate_series(1, ${rows}) g`);
}

/** Each step run twice at once (Step Functions at-least-once); the workflow goes on with one fulfilled result. */
async function exportTwiceAtOnce(deps: Parameters<typeof exportTable>[0], task: TableTask, pick: number): Promise<{ task: TableTask; conflicts: number }> {
  let current = task;
  let conflicts = 0;
  for (let step = 0; !current.done; step++) {
    const budget = Date.now() + 40; // a few chunks per invocation
    const results = await Promise.allSettled([exportTable(deps, current, budget), exportTable(deps, current, budget)]);
    const fulfilled = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    for (const r of results) if (r.status === 'rejected') {
      expect(String(r.reason), 'only the journal race may fail a copy').toMatch(/journalled by another invocation/);
      conflicts++;
    }
    expect(fulfilled.length, `step ${step}: at least one copy finishes`).toBeGreaterThan(0);
    current = fulfilled[(pick + step) % fulfilled.length];
  }
  return { task: current, conflicts };
}

describe('an Export input delivered twice at once', () => {
  it.each([0, 1])('incremental then {full: true} with changes between, small pages (pick %i)', async (pick) => {
    const name = `jb_twice_${pick}`;
    await createTable(name, 3000);
    const lake = createLake();
    const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const deps = exportDeps(db, lake.store, config);
    try {
      let conflicts = 0;
      for (const request of [{}, 'change', { full: true }, 'change', { window: { from: '2024-01-01', to: '2100-01-01' } }, 'change', {}] as const) {
        if (request === 'change') {
          await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 9 = 0`);
          await db.query(`INSERT INTO ${name} SELECT g, 'n-' || g, clock_timestamp() FROM generate_series((SELECT max(id) + 1 FROM ${name}), (SELECT max(id) + 150 FROM ${name})) g`);
          continue;
        }
        const [task] = (await planRun(deps, request)).tables;
        const done = await exportTwiceAtOnce(deps, task, pick);
        conflicts += done.conflicts;
        await commitTable(deps, done.task);
        await checkLake(db, lake, name, `${name} after ${JSON.stringify(request)}`);
      }
      console.log(`[${name}] ${conflicts} copies stopped by the journal race`);
    } finally {
      await deps.close();
      lake.remove();
    }
  }, 300_000);
});

describe('a snapshot table\'s Export input delivered twice at once', () => {
  it('every step, three runs with rows changed, inserted and deleted between: one whole snapshot each time', async () => {
    const name = 'jb_twice_snapshot';
    await createTable(name, 3000);
    const lake = createLake();
    const config = testConfig([{ name, mode: 'snapshot' }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const deps = exportDeps(db, lake.store, config);
    try {
      for (let run = 0; run < 3; run++) {
        const [task] = (await planRun(deps)).tables;
        const done = await exportTwiceAtOnce(deps, task, run);
        await commitTable(deps, done.task);
        const report = await checkLake(db, lake, name, `${name} run ${run}`);
        const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM ${name}`);
        expect(report.lakeRows).toBe(Number(n));
        await db.query(`UPDATE ${name} SET payload = 'v${run + 2}-' || id, updated_at = clock_timestamp() WHERE id % 13 = ${run}`);
        await db.query(`DELETE FROM ${name} WHERE id % 17 = ${run}`);
        await db.query(`INSERT INTO ${name} SELECT g, 'n-' || g, clock_timestamp() FROM generate_series((SELECT max(id) + 1 FROM ${name}), (SELECT max(id) + 120 FROM ${name})) g`);
      }
    } finally {
      await deps.close();
      lake.remove();
    }
  }, 300_000);
});

describe('stale copies of earlier Export inputs, run late', () => {
  it.each([{}, { full: true }, { window: { from: '2024-01-01', to: '2100-01-01' } }])('in %j: before the commit (following and carrying again) and after it', async (request) => {
    const name = `jb_late_${Object.keys(request)[0] ?? 'scheduled'}`;
    await createTable(name, 2000);
    const lake = createLake();
    const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const deps = exportDeps(db, lake.store, config);
    try {
      const first = (await planRun(deps)).tables[0];
      let done = first;
      while (!done.done) done = await exportTable(deps, done);
      await commitTable(deps, done);
      await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 7 = 0`);
      const [task] = (await planRun(deps, request)).tables;
      const tasks = [task];
      while (!tasks.at(-1)!.done) tasks.push(await exportTable(deps, tasks.at(-1)!, Date.now() + 30));
      const last = tasks.at(-1)!;
      // Updated again between the attempts: the stale copies read Postgres as it is now.
      await db.query(`UPDATE ${name} SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 11 = 0`);
      for (const stale of [tasks[0], tasks[Math.floor(tasks.length / 2)], tasks.at(-2)!]) {
        const again = await exportTable(deps, stale);
        expect({ page: again.page, rows: again.rows, done: again.done }, `stale copy of page ${stale.page}`).toEqual({ page: last.page, rows: last.rows, done: true });
      }
      await commitTable(deps, last);
      const after = await exportTable(deps, tasks[0]).then(() => 'returned', (e: Error) => e.message);
      expect(after, 'a stale copy after the commit writes nothing').toMatch(/no longer holds the table's lease/);
      console.log(`[${name}] ${tasks.length} steps; a stale copy after the commit: ${after}`);
      await checkLake(db, lake, name, `${name} committed`);
    } finally {
      await deps.close();
      lake.remove();
    }
  }, 300_000);
});

describe('the Commit input delivered twice at once', () => {
  it.each([{}, { full: true }])('in %j: both copies publish, one moves the watermark, both report success; the lake holds every version once', async (request) => {
    const name = `jb_commit_twice_${Object.keys(request)[0] ?? 'scheduled'}`;
    await createTable(name, 3000);
    const lake = createLake();
    const config = testConfig([{ name }], { export: { pageRows: 50, safetyLagSeconds: 0 } });
    const deps = exportDeps(db, lake.store, config);
    try {
      for (const run of [{}, 'change', request] as const) {
        if (run === 'change') {
          await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 9 = 0`);
          continue;
        }
        let [task] = (await planRun(deps, run)).tables;
        while (!task.done) task = await exportTable(deps, task);
        const results = await Promise.allSettled([commitTable(deps, task), commitTable(deps, task)]);
        const outcomes = results.map((r) => (r.status === 'fulfilled' ? r.value.status : String(r.reason)));
        console.log(`[${name}] ${JSON.stringify(run)}: ${JSON.stringify(outcomes)}`);
        // Both: the copy that loses the watermark write finds its own run there, committed.
        expect(outcomes, JSON.stringify(outcomes)).toEqual(['succeeded', 'succeeded']);
        // The next plan finishes whatever the losing copy left.
        const next = await runExport(deps);
        expect(next.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
        await checkLake(db, lake, name, `${name} after ${JSON.stringify(run)}`);
      }
    } finally {
      await deps.close();
      lake.remove();
    }
  }, 300_000);
});

describe('a stale copy of an Export input with deletes.detect', () => {
  it('runs after the first copy journalled its tombstones, more keys deleted between; the first copy\'s task commits', async () => {
    const name = 'jb_stale_deletes';
    await createTable(name, 1000);
    const lake = createLake();
    const config = testConfig([{ name, deletes: { detect: true } }], { export: { pageRows: 100, safetyLagSeconds: 0 } });
    const first = exportDeps(db, lake.store, config);
    await runExport(first).finally(() => first.close());
    await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 10 = 3`);
    await db.query(`DELETE FROM ${name} WHERE id % 4 = 0`); // 250: tombstone pages of 100, 100, 50
    const query = await LakeQuery.open(config, lake.store);
    const engine = query.engine();
    const deps = { ...exportDeps(db, lake.store, config), engine };
    let outcome = '';
    try {
      const [task] = (await planRun(deps)).tables;
      const used = await exportTable(deps, task);
      expect(used).toMatchObject({ done: true });
      // Deleted after the first copy detected: the stale copy finds 100 more.
      await db.query(`DELETE FROM ${name} WHERE id % 4 = 1 AND id <= 400`);
      outcome = await exportTable(deps, task).then((t) => `stale copy returned page ${t.page}, rows ${t.rows}`, (e: Error) => `stale copy failed: ${e.message}`);
      outcome += await commitTable(deps, used).then(() => '; the first copy\'s task committed', (e: Error) => `; its commit failed: ${e.message}`);
    } finally {
      await deps.close();
      await engine.close();
    }
    console.log(`[${name}] ${outcome}`);
    for (const request of [{ takeOver: true }, {}]) {
      const lakeQuery = await LakeQuery.open(config, lake.store);
      const next = { ...exportDeps(db, lake.store, config), engine: lakeQuery.engine() };
      const after = await runExport(next, request).finally(async () => { await next.close(); await next.engine.close(); });
      console.log(`[${name}] next run ${JSON.stringify(request)}: ${JSON.stringify(after.tables.map((t) => t.error ?? `${t.status} ${t.rows ?? ''}`))}`);
    }
    const tombstones = await duckdb<{ id: number; n: number }>(`SELECT id, CAST(count(*) AS INTEGER) AS n FROM read_parquet(${parquetGlob(lake, name)}, union_by_name = true) WHERE _lake_deleted GROUP BY id ORDER BY id`);
    const deleted = (await db.query(`SELECT g AS id FROM generate_series(1, 1000) g WHERE NOT EXISTS (SELECT 1 FROM ${name} WHERE id = g)`)).map((r) => Number(r.id));
    expect(tombstones.filter((t) => t.n !== 1), 'tombstones written more than once').toEqual([]);
    expect(deleted.filter((id) => !tombstones.some((t) => t.id === id)).slice(0, 10), 'deleted keys without a tombstone').toEqual([]);
    const versions = await duckdb<{ n: number }>(`SELECT CAST(count(*) AS INTEGER) AS n FROM read_parquet(${parquetGlob(lake, name)}, union_by_name = true) WHERE NOT coalesce(_lake_deleted, false) AND payload LIKE 'v2-%'`);
    // The stale copy follows the run's kept detection (pending/<run>/deletes.json), so the first
    // copy's task commits: the 100 updated versions it read are in the lake, and the 20 of them
    // deleted since (id % 4 = 1, ≤ 400) get their tombstones from the next run (checked above).
    expect(outcome).toMatch(/the first copy's task committed$/);
    expect(versions).toEqual([{ n: 100 }]);
    lake.remove();
  }, 300_000);
});
