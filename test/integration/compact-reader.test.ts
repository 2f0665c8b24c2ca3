// A reader queries the lake in a loop, through the views users get (LakeQuery: the table and its
// `<table>_current`, opened per query as Athena resolves a table per query), while compactions
// build new generations and switch to them — one at the same granularity, one from day to month
// partitions. Every answer is the whole table: no version twice, none missing, the current state
// equal to Postgres. The store is slowed down so the loop spans each build and each switch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { validateConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { createDatabase, createLake, exportDeps, faultyStore, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const config = (granularity: 'day' | 'month'): LakeConfig => validateConfig({
  export: { pageRows: 100, safetyLagSeconds: 0 },
  compaction: { minFiles: 2, graceMinutes: 60 },
  tables: [{ name: 'public.orders', partition: { granularity } }],
}, 'test config');

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a reader during compaction', () => {
  let db: TestDatabase;
  let lake: TestLake;

  beforeAll(async () => {
    db = await createDatabase();
    lake = createLake();
    await db.query(`CREATE TABLE orders (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO orders SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + g * interval '397 seconds' FROM generate_series(1, 2000) g`);
    for (let round = 0; round < 3; round++) {
      const deps = exportDeps(db, lake.store, config('day'));
      try {
        expect((await runExport(deps)).tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
      } finally {
        await deps.close();
      }
      await db.query(`UPDATE orders SET payload = 'v${round + 2}-' || id, updated_at = clock_timestamp() WHERE id % 9 = ${round}`);
    }
  }, 120_000);

  afterAll(async () => {
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('never sees a version twice or miss one, across two builds and switches', async () => {
    const state = new TableState(lake.store, 'raw', 'orders');
    const read = async (cfg: LakeConfig) => {
      const query = await LakeQuery.open(cfg, lake.store);
      try {
        const [history] = await query.query('SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions FROM orders');
        // Rows changed after the last run (id % 9 = 2) are not in the lake yet: left out on both sides.
        const [current] = await query.query(`SELECT md5(string_agg(id || '|' || payload || '|' || epoch_us(updated_at), ',' ORDER BY id)) AS digest
          FROM orders_current WHERE id % 9 <> 2`);
        return { n: history.n, versions: history.versions, current: current.digest };
      } finally {
        query.close();
      }
    };
    const [pgCurrent] = await db.query(`SELECT md5(string_agg(id || '|' || payload || '|' || (extract(epoch FROM updated_at) * 1000000)::bigint, ',' ORDER BY id)) AS digest
      FROM orders WHERE id % 9 <> 2`);
    const baseline = await read(config('day'));
    expect(baseline.n).toBe(baseline.versions);
    expect(baseline.current).toBe(pgCurrent.digest);
    expect(baseline.current).not.toBeNull();

    // Each store call waits a little: the build takes long enough for many reads.
    const slow = faultyStore(lake.store, {
      put: async (key, body, options) => { await pause(15); return lake.store.put(key, body, options); },
      get: async (key) => { await pause(5); return lake.store.get(key); },
    });
    let reading = true;
    let cfg = config('day');
    const answers: { n: unknown; versions: unknown; current: unknown; generation: string | undefined }[] = [];
    const loop = (async () => {
      while (reading) {
        const generation = (await state.read<{ generation?: string }>(state.schemaKey()))!.value.generation;
        answers.push({ ...(await read(cfg)), generation });
      }
    })();
    const first = await compactTable({ store: slow, config: config('day') }, 'orders', { force: true });
    cfg = config('month');
    const second = await compactTable({ store: slow, config: config('month') }, 'orders');
    await pause(200);
    reading = false;
    await loop;

    expect(first).toMatchObject({ status: 'compacted', granularity: 'day' });
    expect(second).toMatchObject({ status: 'compacted', granularity: 'month', reason: 'partition granularity changes from day to month' });
    const generations = new Set(answers.map((a) => a.generation ?? '(none)'));
    console.log(`reader: ${answers.length} reads during two compactions, over generations ${[...generations].join(', ')}`);
    expect(generations).toEqual(new Set(['(none)', first.generation, second.generation]));
    expect(answers.length).toBeGreaterThan(10);
    const wrong = answers.filter((a) => a.n !== baseline.n || a.versions !== baseline.versions || a.current !== baseline.current);
    expect(wrong).toEqual([]);
  }, 180_000);
});
