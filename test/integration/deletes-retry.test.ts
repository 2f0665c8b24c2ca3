// Tombstones through a retried Export step: the step dies after journalling a tombstone page and
// before its file is staged; the workflow runs the step again with the task it had before, and
// the commit publishes each tombstone exactly once (the retry rewrites the same page number).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { createDatabase, createLake, duckdb, exportDeps, faultyStore, parquetGlob, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

let db: TestDatabase;
let lake: TestLake;
const config = testConfig([{ name: 'public.orders', deletes: { detect: true } }], { export: { pageRows: 100, safetyLagSeconds: 0 } });

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE orders (id int PRIMARY KEY, note text, updated_at timestamptz NOT NULL);
    INSERT INTO orders SELECT i, 'n' || i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' FROM generate_series(1, 1000) i`);
}, 120_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

describe('tombstones and a retried Export step', () => {
  it('publishes each tombstone once when the step died between journal and upload', async () => {
    const first = exportDeps(db, lake.store, config);
    await runExport(first).finally(() => first.close());
    // 250 deleted: three tombstone pages of 100, 100 and 50.
    await db.query('DELETE FROM orders WHERE id % 4 = 0');
    const query = await LakeQuery.open(config, lake.store);
    const engine = query.engine();
    let uploads = 0;
    // The second tombstone file's upload fails once, after its journal entry was written.
    const store = faultyStore(lake.store, {
      put: async (key, body, options) => {
        if (key.includes('/pending/') && key.endsWith('.parquet') && ++uploads === 2) throw new Error('injected: the invocation died here');
        return lake.store.put(key, body, options);
      },
    });
    const deps = { ...exportDeps(db, store, config), engine };
    try {
      const plan = await planRun(deps);
      const [task] = plan.tables;
      await expect(exportTable(deps, task)).rejects.toThrow('injected: the invocation died here');
      const retried = await exportTable(deps, task);
      expect(retried).toMatchObject({ done: true, rows: 250, files: 3 });
      await commitTable(deps, retried);
    } finally {
      await deps.close();
      await engine.close();
    }
    const counts = await duckdb<{ id: number; n: number }>(`SELECT id, CAST(count(*) AS INTEGER) AS n FROM read_parquet(${parquetGlob(lake, 'orders')}, union_by_name = true) WHERE _lake_deleted GROUP BY id`);
    expect(counts).toHaveLength(250);
    expect(counts.every((c) => c.n === 1 && c.id % 4 === 0)).toBe(true);
    const check = await LakeQuery.open(config, lake.store);
    try {
      expect(await check.query('SELECT CAST(count(*) AS INTEGER) AS n FROM orders_current')).toEqual([{ n: 750 }]);
    } finally {
      check.close();
    }
  }, 300_000);

  it('leaves detection to the next invocation when the current one is nearly out of time', async () => {
    await db.query('DELETE FROM orders WHERE id IN (1, 2, 3)');
    const query = await LakeQuery.open(config, lake.store);
    const engine = query.engine();
    const detections: unknown[] = [];
    const deps = { ...exportDeps(db, lake.store, config), engine, log: (message: string, fields?: unknown) => { if (message === 'deletes detected') detections.push(fields); } };
    try {
      const [task] = (await planRun(deps)).tables;
      // A Lambda invocation with a minute left: the pages are done, detection is not started.
      const first = await exportTable(deps, task, Date.now() + 60_000);
      expect([first.done, first.rows, detections.length]).toEqual([false, 0, 0]);
      const second = await exportTable(deps, first);
      expect([second.done, second.rows, detections.length]).toEqual([true, 3, 1]);
      await commitTable(deps, second);
    } finally {
      await deps.close();
      await engine.close();
    }
    const counts = await duckdb<{ n: number }>(`SELECT CAST(count(*) AS INTEGER) AS n FROM read_parquet(${parquetGlob(lake, 'orders')}, union_by_name = true) WHERE _lake_deleted AND id IN (1, 2, 3)`);
    expect(counts).toEqual([{ n: 3 }]);
  }, 300_000);
});
