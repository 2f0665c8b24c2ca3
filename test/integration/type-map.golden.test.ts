// Golden round trip: every row of the type map with edge values goes Postgres → Parquet, is
// read back by DuckDB (an independent reader) and compared value by value with what Postgres
// holds. Values that cannot be stored exactly fail the table with a named error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { GOLDEN_ROWS, GOLDEN_SCHEMA } from '../support/golden-schema.ts';
import { createDatabase, createLake, duckdb, exportDeps, parquetGlob, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

type Kind = 'text' | 'number' | 'float4' | 'float8' | 'json';
interface Probe { column: string; pg: string; duck: string; kind: Kind }

const text = (c: string): Probe => ({ column: c, pg: `${c}::text`, duck: `CAST(${c} AS VARCHAR)`, kind: 'text' });
const temporal = (c: string): Probe => ({
  column: c,
  pg: `CASE WHEN isfinite(${c}) THEN (extract(epoch FROM ${c}) * 1000000)::numeric(30,0)::text ELSE ${c}::text END`,
  duck: `CASE WHEN isinf(${c}) THEN CAST(${c} AS VARCHAR) ELSE CAST(epoch_us(${c}) AS VARCHAR) END`,
  kind: 'text',
});

const PROBES: Probe[] = [
  text('c_int2'), text('c_int4'), text('c_int8'),
  { ...text('c_num'), kind: 'number' }, { ...text('c_num38'), kind: 'number' }, { ...text('c_num_frac'), kind: 'number' }, { ...text('c_num_free'), kind: 'number' },
  { ...text('c_float4'), kind: 'float4' }, { ...text('c_float8'), kind: 'float8' }, text('c_bool'),
  text('c_text'), text('c_varchar'),
  // char(n) keeps its padding: compare with the type's own output, not the trimming ::text cast
  { column: 'c_char', pg: `CASE WHEN c_char IS NULL THEN NULL ELSE concat(c_char) END`, duck: 'c_char', kind: 'text' },
  {
    column: 'c_date',
    pg: `CASE WHEN isfinite(c_date) THEN (c_date - date '1970-01-01')::text ELSE c_date::text END`,
    duck: `CASE WHEN isinf(c_date) THEN CAST(c_date AS VARCHAR) ELSE CAST(datediff('day', DATE '1970-01-01', c_date) AS VARCHAR) END`,
    kind: 'text',
  },
  temporal('c_ts'), temporal('c_tstz'),
  text('c_time'), text('c_timetz'), text('c_interval'), text('c_uuid'), text('c_inet'), text('c_enum'),
  text('c_json'), text('c_jsonb'),
  { column: 'c_bytea', pg: `encode(c_bytea, 'hex')`, duck: 'lower(hex(c_bytea))', kind: 'text' },
  { ...text('c_grams'), kind: 'number' }, text('c_point'),
  { column: 'c_int_arr', pg: 'to_jsonb(c_int_arr)::text', duck: 'CAST(to_json(c_int_arr) AS VARCHAR)', kind: 'json' },
  { column: 'c_text_arr', pg: 'to_jsonb(c_text_arr)::text', duck: 'CAST(to_json(c_text_arr) AS VARCHAR)', kind: 'json' },
  { column: 'c_num_arr', pg: 'to_jsonb(c_num_arr)::text', duck: 'CAST(to_json(c_num_arr) AS VARCHAR)', kind: 'json' },
  { column: 'c_uuid_arr', pg: 'to_jsonb(c_uuid_arr)::text', duck: 'CAST(to_json(c_uuid_arr) AS VARCHAR)', kind: 'json' },
  { ...text('c_num_sp'), kind: 'number' }, { ...text('c_num_neg'), kind: 'number' },
  { column: 'c_long_arr', pg: 'to_jsonb(c_long_arr)::text', duck: 'CAST(to_json(c_long_arr) AS VARCHAR)', kind: 'json' },
  { column: 'c_sp_arr', pg: 'to_jsonb(c_sp_arr)::text', duck: 'CAST(to_json(c_sp_arr) AS VARCHAR)', kind: 'json' },
  {
    column: 'c_ts_arr',
    pg: `CASE WHEN c_ts_arr IS NOT NULL THEN coalesce((SELECT jsonb_agg(CASE WHEN e IS NULL THEN NULL ELSE (extract(epoch FROM e) * 1000000)::numeric(30,0) END ORDER BY o) FROM unnest(c_ts_arr) WITH ORDINALITY AS u(e, o)), '[]')::text END`,
    duck: `CAST(to_json(list_transform(c_ts_arr, e -> epoch_us(e))) AS VARCHAR)`,
    kind: 'json',
  },
];

function normalize(kind: Kind, value: string | null): unknown {
  if (value === null) return null;
  switch (kind) {
    case 'text': return value;
    // Decimal text: same digits whatever the scale padding (1.5 = 1.500000000).
    // DuckDB prints decimal(p,p) without its leading zero (.00099).
    case 'number': return value.includes('.') ? value.replace(/^(-?)\./, '$10.').replace(/0+$/, '').replace(/\.$/, '') : value;
    case 'float4':
    case 'float8': {
      const word = value.toLowerCase();
      const n = word === 'nan' ? Number.NaN : word === 'inf' || word === 'infinity' ? Infinity : word === '-inf' || word === '-infinity' ? -Infinity : Number(value);
      return Object.is(n, -0) ? '-0' : String(kind === 'float4' ? Math.fround(n) : n);
    }
    case 'json': return JSON.parse(value);
  }
}

describe('golden type round trip', () => {
  let db: TestDatabase;
  let lake: TestLake;

  beforeAll(async () => {
    db = await createDatabase();
    await db.query(GOLDEN_SCHEMA);
    await db.query(GOLDEN_ROWS);
    lake = createLake();
    const deps = exportDeps(db, lake.store, testConfig([{ name: 'golden' }]));
    const outcome = await runExport(deps);
    await deps.close();
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
    expect(outcome.tables[0].rows).toBe(6);
  });

  afterAll(async () => {
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('reads back every value equal to what Postgres holds', async () => {
    const expected = await db.query(`SELECT id::text AS id, ${PROBES.map((p) => `${p.pg} AS ${p.column}`).join(', ')} FROM golden ORDER BY id`);
    const actual = await duckdb<Record<string, string | null>>(
      `SELECT CAST(id AS VARCHAR) AS id, ${PROBES.map((p) => `${p.duck} AS ${p.column}`).join(', ')} FROM read_parquet(${parquetGlob(lake, 'golden')}) ORDER BY id`,
    );
    expect(actual.length).toBe(6);
    const mismatches: string[] = [];
    for (let r = 0; r < expected.length; r++) {
      for (const probe of PROBES) {
        const want = normalize(probe.kind, expected[r][probe.column]);
        const got = normalize(probe.kind, actual[r][probe.column]);
        if (JSON.stringify(want) !== JSON.stringify(got)) mismatches.push(`row ${expected[r].id} ${probe.column}: postgres ${JSON.stringify(want)} lake ${JSON.stringify(got)}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('writes the Parquet types of the type map', async () => {
    const [{ file }] = await duckdb<{ file: string }>(`SELECT file FROM glob(${parquetGlob(lake, 'golden')}) LIMIT 1`);
    const schema = await duckdb<{ name: string; type: string; logical_type: string | null; converted_type: string | null }>(
      `SELECT name, type, CAST(logical_type AS VARCHAR) AS logical_type, converted_type FROM parquet_schema('${file}') WHERE name IN ('c_int2', 'c_num', 'c_num38', 'c_tstz', 'c_ts', 'c_date', 'c_bytea', 'c_jsonb', 'c_num_sp', 'c_num_neg')`,
    );
    const byName = Object.fromEntries(schema.map((s) => [s.name, s]));
    expect(byName.c_num.logical_type).toMatch(/DecimalType\(scale=2, precision=12\)/);
    expect(byName.c_num38.logical_type).toMatch(/DecimalType\(scale=0, precision=38\)/);
    // README: numeric(p,s) with s > p → decimal(s,s); negative s → decimal(p − s,0)
    expect(byName.c_num_sp.logical_type).toMatch(/DecimalType\(scale=5, precision=5\)/);
    expect(byName.c_num_neg.logical_type).toMatch(/DecimalType\(scale=0, precision=5\)/);
    expect(byName.c_tstz.logical_type).toMatch(/TimestampType\(isAdjustedToUTC=1, unit=TimeUnit\(MILLIS=<null>, MICROS=MicroSeconds\(\), NANOS=<null>\)\)/);
    expect(byName.c_ts.logical_type).toMatch(/isAdjustedToUTC=0/);
    expect(byName.c_date.converted_type).toBe('DATE');
    expect(byName.c_bytea.type).toBe('BYTE_ARRAY');
    expect(byName.c_jsonb.converted_type).toBe('UTF8');
    const codecs = await duckdb<{ compression: string }>(`SELECT DISTINCT compression FROM parquet_metadata(${parquetGlob(lake, 'golden')})`);
    expect(codecs).toEqual([{ compression: 'SNAPPY' }]);
  });
});
