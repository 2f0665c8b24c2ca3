// Breaker (HG): compaction of a table whose history holds tombstones (deletes.detect) and
// soft-deleted versions (softDeleteColumn), then a partition granularity change (day → month) by
// compaction, then runs that delete, re-insert and update keys, a window re-run and a full
// re-run across the compacted generation. After each step, read through the views users get:
// the history holds the same versions (and tombstones) as before the compaction, none twice,
// `<table>_current` equals Postgres (deleted keys gone, soft-deleted ones left out, a re-inserted
// key back).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { checkReaders, readerView } from './compact-break-checks.ts';

let db: TestDatabase;
let lake: TestLake;
beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
}, 120_000);
afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

const configOf = (granularity: 'day' | 'month'): LakeConfig => testConfig([{
  name: 'public.ledger', softDeleteColumn: 'gone', deletes: { detect: true }, partition: { granularity },
}], { export: { pageRows: 40, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 } });

async function run(config: LakeConfig, request: RunRequest = {}): Promise<void> {
  const query = await LakeQuery.open(config, lake.store);
  const deps = { ...exportDeps(db, lake.store, config), engine: query.engine() };
  try {
    const outcome = await runExport(deps, request);
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
    query.close();
  }
}

/** Tombstones readers see, by key. */
async function tombstones(config: LakeConfig): Promise<string[]> {
  const query = await LakeQuery.open(config, lake.store);
  try {
    return (await query.query('SELECT CAST(id AS VARCHAR) || \'@\' || CAST(epoch_us(updated_at) AS VARCHAR) AS t FROM ledger WHERE _lake_deleted ORDER BY 1')).map((r) => String(r.t));
  } finally {
    query.close();
  }
}

describe('compaction of a table with tombstones and soft deletes, across a granularity change', () => {
  it('keeps every version and tombstone once and _current equal to Postgres', async () => {
    const day = configOf('day');
    const month = configOf('month');
    const seen = new Set<string>();
    const check = (config: LakeConfig, label: string) => checkReaders(db, lake, config, 'ledger', label, { softDelete: 'gone', seenVersions: seen });
    await db.query(`CREATE TABLE ledger (id int PRIMARY KEY, payload text, gone boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL);
      INSERT INTO ledger SELECT g, 'v1-' || g, g % 17 = 0, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 60) * interval '1 day' + g * interval '1 second'
      FROM generate_series(1, 300) g`);
    await run(day);
    await check(day, 'first run');
    // Deletes, updates and soft deletes over three runs: tombstones and small files.
    await db.query('DELETE FROM ledger WHERE id % 13 = 0');
    await db.query("UPDATE ledger SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 5 = 0");
    await run(day);
    await db.query("UPDATE ledger SET gone = true, updated_at = clock_timestamp() WHERE id % 11 = 0");
    await db.query('DELETE FROM ledger WHERE id % 19 = 0');
    await run(day);
    await db.query('DELETE FROM ledger WHERE id BETWEEN 100 AND 104');
    await run(day);
    const before = await check(day, 'before compaction');
    const graves = await tombstones(day);
    expect(graves.length).toBeGreaterThan(20);

    const compacted = await compactTable({ store: lake.store, config: day }, 'ledger', { force: true });
    expect(compacted.status, compacted.reason).toBe('compacted');
    expect(await check(day, 'after compaction')).toEqual(before);
    expect(await tombstones(day)).toEqual(graves);

    // day → month, by compaction.
    const switched = await compactTable({ store: lake.store, config: month }, 'ledger');
    expect([switched.status, switched.granularity]).toEqual(['compacted', 'month']);
    expect(await check(month, 'after day → month')).toEqual(before);
    expect(await tombstones(month)).toEqual(graves);

    // Re-insert a deleted key, delete others, update a few, un-soft-delete one.
    await db.query("INSERT INTO ledger VALUES (13, 'back', false, clock_timestamp())");
    await db.query('DELETE FROM ledger WHERE id % 23 = 0');
    await db.query("UPDATE ledger SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 7 = 0");
    await db.query("UPDATE ledger SET gone = false, updated_at = clock_timestamp() WHERE id = 22");
    await run(month);
    await check(month, 'run after the switch');
    await compactTable({ store: lake.store, config: month }, 'ledger', { force: true });
    await check(month, 'second compaction');
    // A window re-run over compacted month pages, then a full re-run, then a compaction.
    await run(month, { window: { from: '2024-03-02 00:00:00+00', to: '2024-03-04 00:00:00+00' } });
    await check(month, 'window re-run');
    await db.query('DELETE FROM ledger WHERE id BETWEEN 200 AND 203');
    await run(month, { full: true });
    // Window and full re-runs do not detect deletes (README "Deletes"): the next scheduled run with a change does.
    await db.query("UPDATE ledger SET payload = 'v4', updated_at = clock_timestamp() WHERE id = 1");
    await run(month);
    await check(month, 'full re-run, then a scheduled run');
    await compactTable({ store: lake.store, config: month }, 'ledger', { force: true });
    const last = await check(month, 'last compaction');
    expect(last.current.some((r) => r.startsWith('13|back|'))).toBe(true);
    // A key's tombstone appears once per deletion whatever the compactions did.
    const view = await readerView(month, lake, 'ledger');
    expect(view.duplicates).toEqual([]);
  }, 180_000);
});
