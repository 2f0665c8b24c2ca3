// Breaker (HG): compaction across schema changes. Columns are added and dropped between runs, so
// one partition holds files of three column sets; a compaction merges each set into its own file
// (compact-merge.ts), and a window re-run then carries those multi-file compacted pages. Readers
// see every version once with every column's value (NULL where a version predates its column),
// and `<table>_current` equals Postgres, columns included.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { checkReaders } from './compact-break-checks.ts';

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

const config: LakeConfig = testConfig([{ name: 'public.evolving' }], {
  export: { pageRows: 30, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 },
});

async function run(request: RunRequest = {}): Promise<void> {
  const deps = exportDeps(db, lake.store, config);
  try {
    expect((await runExport(deps, request)).tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

/** `<table>_current`'s note and qty per key, against Postgres's. */
async function extraColumns(): Promise<{ lake: string[]; postgres: string[] }> {
  const query = await LakeQuery.open(config, lake.store);
  try {
    const rows = await query.query("SELECT CAST(id AS VARCHAR) || '|' || coalesce(note, '∅') || '|' || coalesce(CAST(qty AS VARCHAR), '∅') AS r FROM evolving_current ORDER BY id");
    const pg = await db.query("SELECT id::text || '|' || coalesce(note, '∅') || '|' || coalesce(qty::text, '∅') AS r FROM evolving ORDER BY id");
    return { lake: rows.map((r) => String(r.r)), postgres: pg.map((r) => r.r!) };
  } finally {
    query.close();
  }
}

describe('compaction across added and dropped columns', () => {
  it('keeps every version and column value', async () => {
    const seen = new Set<string>();
    const check = (label: string) => checkReaders(db, lake, config, 'evolving', label, { seenVersions: seen });
    await db.query(`CREATE TABLE evolving (id int PRIMARY KEY, payload text, legacy int, updated_at timestamptz NOT NULL);
      INSERT INTO evolving SELECT g, 'v1-' || g, g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 60) * interval '1 day' FROM generate_series(1, 180) g`);
    await run();
    await db.query("UPDATE evolving SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 4 = 0");
    await run();
    await db.query("ALTER TABLE evolving ADD COLUMN note text; UPDATE evolving SET note = 'n' || id, payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 4 = 1");
    await run();
    await db.query("ALTER TABLE evolving DROP COLUMN legacy; ALTER TABLE evolving ADD COLUMN qty numeric(10,2); UPDATE evolving SET qty = id / 7.0, payload = 'v4-' || id, updated_at = clock_timestamp() WHERE id % 4 = 2");
    await run();
    await check('before compaction');
    expect(await extraColumns().then((x) => x.lake)).toEqual((await extraColumns()).postgres);
    const compacted = await compactTable({ store: lake.store, config }, 'evolving', { force: true });
    expect(compacted.status, compacted.reason).toBe('compacted');
    await check('after compaction');
    const after = await extraColumns();
    expect(after.lake).toEqual(after.postgres);
    // A window re-run over the first days (compacted pages), then new versions, then compaction again.
    await db.query("UPDATE evolving SET note = 'late', qty = 1.25, payload = 'v5-' || id, updated_at = clock_timestamp() WHERE id % 4 = 3");
    await run();
    await run({ window: { from: '2024-03-01 00:00:00+00', to: '2024-03-03 00:00:00+00' } });
    await check('after a window re-run');
    expect((await compactTable({ store: lake.store, config }, 'evolving', { force: true })).status).toBe('compacted');
    await check('after the second compaction');
    const last = await extraColumns();
    expect(last.lake).toEqual(last.postgres);
  }, 180_000);
});
