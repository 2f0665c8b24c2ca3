// Exports after a compaction publish into the new generation's folder (in the lake's live
// granularity), and re-runs repair across it: a window re-run and a full re-run carry the
// compacted pages' history. After each step the lake read through the views users get holds
// every version exactly once and `<table>_current` equals Postgres.
//
// Needs the export and commit to follow the live generation (protocol/compact.ts
// liveDataLocation in export-pages.ts, recordedLocation in commit.ts).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

describe('exports and re-runs after a compaction', () => {
  let db: TestDatabase;
  let lake: TestLake;
  let versions = 0;

  const config = (granularity: 'day' | 'month'): LakeConfig => testConfig([{ name: 'public.orders', partition: { granularity } }], {
    export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 },
  });
  const run = async (cfg: LakeConfig, request: RunRequest = {}) => {
    const deps = exportDeps(db, lake.store, cfg);
    try {
      const outcome = await runExport(deps, request);
      expect(outcome.tables.map((t) => [t.status, t.error])).toEqual([['succeeded', undefined]]);
      return { ...outcome.tables[0], runId: outcome.runId };
    } finally {
      await deps.close();
    }
  };
  /** A new version of every row of the slice (cursor: now, so the next scheduled run takes it). */
  const touch = async (where: string) => {
    const [{ n }] = await db.query(`WITH u AS (UPDATE orders SET v = v + 1, updated_at = clock_timestamp() WHERE ${where} RETURNING 1) SELECT count(*)::text AS n FROM u`);
    versions += Number(n);
  };
  /** The lake through the views: no version twice, none missing, current = Postgres. */
  const expectExact = async (cfg: LakeConfig) => {
    const query = await LakeQuery.open(cfg, lake.store);
    try {
      const [history] = await query.query('SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions FROM orders');
      expect(history).toEqual({ n: String(versions), versions: String(versions) });
      const current = await query.query("SELECT string_agg(id || ':' || v || ':' || strftime(updated_at, '%Y-%m-%d %H:%M:%S'), ',' ORDER BY id) AS s FROM orders_current");
      const [pgCurrent] = await db.query(`SELECT string_agg(id || ':' || v || ':' || to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ',' ORDER BY id) AS s FROM orders`);
      expect(current[0].s).toBe(pgCurrent.s);
    } finally {
      query.close();
    }
  };
  const liveGeneration = async () => (await new TableState(lake.store, 'raw', 'orders').read<{ generation?: string }>('raw/_state/orders/schema.json'))!.value.generation;
  const files = () => (readdirSync(path.join(lake.dir, 'raw', 'orders'), { recursive: true }) as string[]).filter((f) => f.endsWith('.parquet'));

  beforeAll(async () => {
    db = await createDatabase();
    lake = createLake();
    await db.query(`CREATE TABLE orders (id int PRIMARY KEY, v int NOT NULL, updated_at timestamptz NOT NULL);
      INSERT INTO orders SELECT g, 0, timestamptz '2024-03-01 00:00:00+00' + g * interval '37 minutes' FROM generate_series(1, 400) g;`);
    versions = 400;
  }, 120_000);

  afterAll(async () => {
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('publishes later runs into the new generation, and re-runs repair across it', async () => {
    const day = config('day');
    await run(day);
    for (let i = 0; i < 3; i++) {
      await touch(`id % 7 = ${i}`);
      await run(day);
    }
    await expectExact(day);
    // A table above compaction.maxTableMB is left to `compact --force` (one invocation could not rewrite it).
    const capped = { ...day, compaction: { ...day.compaction, maxTableMB: 0.001 } };
    const skipped = await compactTable({ store: lake.store, config: capped }, 'orders');
    expect([skipped.status, skipped.filesAfter]).toEqual(['skipped', 0]);
    expect(skipped.reason).toMatch(/, but the table holds \d+ MB, more than compaction\.maxTableMB \(0\.001\) that one invocation rewrites: run pg-lake-export compact --force --tables orders where no time limit applies/);
    expect(await liveGeneration()).toBeUndefined();
    expect((await compactTable({ store: lake.store, config: day }, 'orders')).status).toBe('compacted');
    const generation = await liveGeneration();
    await expectExact(day);

    // New versions and new rows after the switch land in the live generation, visible at once.
    await touch('id % 5 = 0');
    await db.query('INSERT INTO orders SELECT g, 0, clock_timestamp() FROM generate_series(401, 460) g');
    versions += 60;
    const later = await run(day);
    expect(later.rows).toBeGreaterThan(0);
    expect(await liveGeneration()).toBe(generation);
    const written = files().filter((f) => f.includes(later.runId));
    expect(written.length).toBeGreaterThan(0);
    expect(written.every((f) => f.startsWith(`generation=${generation}/year=`))).toBe(true);
    await expectExact(day);

    // A window re-run replaces compacted pages and keeps their other versions.
    await run(day, { window: { from: '2024-03-02 00:00:00+00', to: '2024-03-04 00:00:00+00' } });
    await expectExact(day);
    await run(day, { full: true });
    await expectExact(day);

    // Month partitions by compaction; the next runs write month folders of that generation.
    const month = config('month');
    const switched = await compactTable({ store: lake.store, config: month }, 'orders');
    expect(switched).toMatchObject({ status: 'compacted', granularity: 'month', reason: 'partition granularity changes from day to month' });
    await expectExact(month);
    await touch('id % 11 = 0');
    const monthRun = await run(month);
    const monthGeneration = await liveGeneration();
    // One file per month partition for the run, not one per day.
    const byFolder = new Map<string, number>();
    for (const f of files().filter((k) => k.includes(monthRun.runId))) byFolder.set(path.dirname(f), (byFolder.get(path.dirname(f)) ?? 0) + 1);
    expect(byFolder.size).toBeGreaterThan(0);
    expect([...byFolder.values()].every((n) => n === 1), JSON.stringify([...byFolder])).toBe(true);
    const live = files().filter((f) => f.startsWith(`generation=${monthGeneration}/`));
    expect(live.length).toBeGreaterThan(0);
    expect(live.every((f) => /^generation=[^/]+\/year=\d{4}\/month=\d{2}\/[^/]+\.parquet$/.test(f))).toBe(true);
    await expectExact(month);
    const window = { from: '2024-03-05 00:00:00+00', to: '2024-03-09 00:00:00+00' };
    await run(month, { window });
    await expectExact(month);
    // That re-run's pages hold several days each, so several files in one month folder; once
    // their rows have newer versions, a second re-run carries each of those files as history.
    await touch('id BETWEEN 160 AND 340');
    await run(month);
    await run(month, { window });
    await expectExact(month);
  }, 300_000);
});
