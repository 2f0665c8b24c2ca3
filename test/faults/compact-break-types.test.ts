// Breaker (HG): compaction re-encodes a partition's files (compact-merge.ts: read back into Arrow,
// written again by the exporter's writer with encodings chosen from the Arrow types). Every value
// of the golden type map (test/support/golden-schema.ts, the golden round trip's schema and
// edge rows) must read back from the compacted generation exactly as from the exported files:
// decimals of every precision and scale, ±infinity and BC dates and timestamps, NaN and -0,
// intervals, json, bytea, arrays of ints, numerics, uuids and timestamps (a list's element type
// is not a string), char padding. Three runs update every row into today's partition, so its
// files are merged (a single file would be copied as it is), then day → month → year.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { GOLDEN_ROWS, GOLDEN_SCHEMA } from '../support/golden-schema.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

let db: TestDatabase;
let lake: TestLake;
beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(GOLDEN_SCHEMA);
  await db.query(GOLDEN_ROWS);
}, 120_000);
afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

const configOf = (granularity: 'day' | 'month' | 'year'): LakeConfig => testConfig([{ name: 'public.golden', partition: { granularity } }], {
  export: { pageRows: 2, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 },
});

async function run(): Promise<void> {
  const deps = exportDeps(db, lake.store, configOf('day'));
  try {
    expect((await runExport(deps, {})).tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

/** Every version of every row, every column, as DuckDB reads the live generation (partition columns left out). */
async function history(config: LakeConfig): Promise<string[]> {
  const query = await LakeQuery.open(config, lake.store);
  try {
    const rows = await query.query('SELECT * EXCLUDE (year) FROM golden ORDER BY id, updated_at, _lake_exported_at');
    return rows.map((r) => JSON.stringify(Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'month' && k !== 'day'))));
  } finally {
    query.close();
  }
}

describe('compaction keeps every value of the golden type map', () => {
  it('reads back the same history after merging, and after day → month → year', async () => {
    await run();
    for (const n of [1, 2, 3]) {
      await db.query(`UPDATE golden SET updated_at = clock_timestamp(), c_varchar = left(coalesce(c_varchar, $$$$) || ${n}, 20)`);
      await run();
    }
    const before = await history(configOf('day'));
    expect(before.length).toBe(6 * 4);
    const merged = await compactTable({ store: lake.store, config: configOf('day') }, 'golden', { force: true });
    expect([merged.status, merged.filesAfter < merged.filesBefore], merged.reason).toEqual(['compacted', true]);
    expect(await history(configOf('day'))).toEqual(before);
    for (const granularity of ['month', 'year'] as const) {
      const switched = await compactTable({ store: lake.store, config: configOf(granularity) }, 'golden');
      expect([switched.status, switched.granularity]).toEqual(['compacted', granularity]);
      expect(await history(configOf(granularity)), granularity).toEqual(before);
    }
  }, 180_000);
});
