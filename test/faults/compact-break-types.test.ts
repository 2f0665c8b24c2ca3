// Breaker (HG): compaction re-encodes a partition's files (compact-merge.ts: read back into Arrow,
// written again by the exporter's writer with encodings chosen from the Arrow types). Every value
// of the golden type map (test/integration/type-map.golden.test.ts: its schema and edge rows,
// copied) must read back from the compacted generation exactly as from the exported files:
// decimals of every precision and scale, ±infinity and BC dates and timestamps, NaN and -0,
// intervals, json, bytea, arrays of ints, numerics, uuids and timestamps (a list's element type
// is not a string), char padding. Three runs update every row into today's partition, so its
// files are merged (a single file would be copied as it is), then day → month → year.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const SCHEMA = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ☺');
CREATE DOMAIN grams AS numeric(8,3);
CREATE TABLE golden (
  id int PRIMARY KEY,
  updated_at timestamptz NOT NULL,
  c_int2 int2, c_int4 int4, c_int8 int8,
  c_num numeric(12,2), c_num38 numeric(38,0), c_num_frac numeric(38,30), c_num_free numeric,
  c_float4 float4, c_float8 float8, c_bool bool,
  c_text text, c_varchar varchar(20), c_char char(5),
  c_date date, c_ts timestamp, c_tstz timestamptz,
  c_time time, c_timetz timetz, c_interval interval, c_uuid uuid, c_inet inet, c_enum mood,
  c_json json, c_jsonb jsonb, c_bytea bytea, c_grams grams, c_point point,
  c_int_arr int4[], c_text_arr text[], c_num_arr numeric(6,2)[], c_uuid_arr uuid[], c_ts_arr timestamptz[],
  c_num_sp numeric(2,5), c_num_neg numeric(3,-2), c_long_arr int4[], c_sp_arr numeric(2,5)[]
);`;

const ROWS = `
INSERT INTO golden (id, updated_at) VALUES (1, '2024-06-01 00:00:00+00');
INSERT INTO golden VALUES (2, '2024-06-01 00:00:00.000001+00',
  32767, 2147483647, 9223372036854775807,
  9999999999.99, 99999999999999999999999999999999999999, 0.123456789012345678901234567890, 12345678901234567890123456789.123456789,
  3.4028235e38, 1.7976931348623157e308, true,
  'unicode ünïcödé 😀 中文', 'tab	and
newline', 'ab',
  'infinity', '294246-12-31 23:59:59.999999', 'infinity',
  '24:00:00', '23:59:59.999999+14', '178000000 years 11 mons 30 days 23:59:59.999999', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001:db8::1/64', 'happy ☺',
  '{"b": 1, "a": [1, 2, {"deep": {"deeper": null}}]}', '{"b": 1, "a": [1, 2, {"deep": {"deeper": null}}], "a": "dup"}', '\\x00ff00', 99999.999, '(1.5,-2)',
  '{1,NULL,3}', '{"a,b","c\\"d",NULL,""}', '{1.50,-2.25}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{"2024-01-01 00:00:00.000001+00",NULL}');
INSERT INTO golden VALUES (3, '2024-06-01 00:00:00.000001+00',
  -32768, -2147483648, -9223372036854775808,
  -9999999999.99, -99999999999999999999999999999999999999, -0.000000000000000000000000000001, -0.000000001,
  -3.4028235e38, -1.7976931348623157e308, false,
  '', '', '',
  '-infinity', '4713-01-01 00:00:00 BC', '-infinity',
  '00:00:00', '00:00:00-12', '-178000000 years', '00000000-0000-0000-0000-000000000000', '0.0.0.0', 'sad',
  'null', '[]', '\\x', -99999.999, '(0,0)',
  '{}', '{}', '{}', '{}', '{}');
INSERT INTO golden VALUES (4, '2024-06-02 23:59:59.999999+00',
  0, 0, 0, 0.01, 0, 0, 0, 'NaN', 'NaN', NULL,
  'quote '' and "double" and \\ backslash', 'x', 'abcde',
  '0044-03-15 BC', '1970-01-01 00:00:00', '2024-03-31 01:59:59.999999+00',
  '12:34:56.789012', NULL, '1 day -00:00:01', NULL, '192.168.0.1', 'ok',
  '{"unicode": "\\u00e9"}', '{"n": 1.000000000000000000001, "s": "x"}', '\\x000102', 0, NULL,
  '{NULL}', '{NULL}', '{NULL}', NULL, NULL);
INSERT INTO golden VALUES (5, '2024-10-27 00:59:59.999999+00',
  1, -1, 1, -0.01, 1, 0.000000000000000000000000000001, 0.000000001,
  'Infinity', '-Infinity', true,
  'x', NULL, NULL,
  '1970-01-01', '2024-10-27 02:30:00', '2024-10-27 02:30:00.5 Europe/Berlin',
  NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL);
INSERT INTO golden VALUES (6, '2024-12-31 23:59:59.999999+00',
  NULL, NULL, NULL, NULL, NULL, NULL, -12345678901234567890123456789.123456789,
  '-0', '-0', NULL, NULL, NULL, NULL,
  '1999-12-31', '2000-01-01 00:00:00', '1969-12-31 23:59:59.999999+00',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
-- scale above precision, negative scale; arrays holding far more elements than the page has rows
UPDATE golden SET c_num_sp = 0.00099, c_num_neg = 99900, c_long_arr = ARRAY(SELECT g FROM generate_series(10000, 13000) g), c_sp_arr = '{0.00012,NULL,-0.00099}' WHERE id = 2;
UPDATE golden SET c_num_sp = -0.00001, c_num_neg = -100, c_long_arr = '{7}', c_sp_arr = '{}' WHERE id = 3;
UPDATE golden SET c_num_sp = 0, c_num_neg = 0, c_long_arr = ARRAY(SELECT g FROM generate_series(-500, 500) g) WHERE id = 4;
`;

let db: TestDatabase;
let lake: TestLake;
beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(SCHEMA);
  await db.query(ROWS);
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
