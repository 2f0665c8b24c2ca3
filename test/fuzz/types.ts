// The fuzzer's type catalogue: every row of README's type table, how to generate values of it
// (edge pools plus random generators, as SQL expressions Postgres evaluates), and how a value
// becomes canonical text on each side. The truth is always Postgres's own text form or a
// canonical form computed in SQL; the lake side is computed by DuckDB's SQL or from hyparquet's
// values, never by the exporter's code.
import { Rng } from './random.ts';

/** How a column's values are compared; arrays compare element by element with the same rule. */
export type Kind = 'int' | 'float4' | 'float8' | 'decimal' | 'text' | 'bpchar' | 'bytea' | 'date' | 'timestamp' | 'bool';

/** A value README says fails the table by name, and what the error must say. */
export interface Poison {
  readonly sql: string;
  /** Text of the value in the error message. */
  readonly valueText: string;
  /** The reason that follows the value. */
  readonly reason: string;
}

export interface TypeSpec {
  /** Short label for reports. */
  readonly label: string;
  /** The column type as written in DDL (element type for arrays: `${ddl}[]`). */
  readonly ddl: string;
  readonly kind: Kind;
  /** SQL expression for one non-NULL value. */
  gen(r: Rng): string;
  /** Usable as an array element. */
  readonly element: boolean;
  poison?(r: Rng): Poison;
  /** DDL that must run before the table (enums, domains, composites). */
  readonly setup?: readonly string[];
  /** Usable as (part of) a primary key. */
  readonly key?: boolean;
  /** DuckDB's name of the lake type README gives it, when not the default for `ddl` (see duckTypeOf). */
  readonly duck?: string;
}

const DUCK_TYPES: Record<string, string> = {
  int2: 'SMALLINT', int4: 'INTEGER', int8: 'BIGINT', float4: 'FLOAT', float8: 'DOUBLE', bool: 'BOOLEAN', bytea: 'BLOB', date: 'DATE',
  timestamp: 'TIMESTAMP', timestamptz: 'TIMESTAMP WITH TIME ZONE', numeric: 'DECIMAL(38,9)',
};

/** The type DuckDB reads for a column of this type, by README's type table (text forms: VARCHAR). */
export function duckTypeOf(type: TypeSpec, array: boolean): string {
  const base = type.duck ?? DUCK_TYPES[type.ddl] ?? 'VARCHAR';
  return array && !base.endsWith('[]') ? `${base}[]` : base;
}

const lit = (value: string, type: string) => `'${value.replaceAll("'", "''")}'::${type}`;

// ------------------------------------------------------------------ strings

const CHARS = [
  'a', 'b', 'Z', '0', ' ', ' ', '\t', '\n', '\r', "'", '"', '\\', ',', '{', '}', '(', ')', '[', ']', ';', '$', '%', '_', '\u0001', '\u007f',
  'é', 'ü', 'ß', 'Ω', 'ж', '中', '文', '😀', '👍🏽', '\u200b', '\ufeff', '\u{10ffff}', 'NULL', 'null',
];

function randomText(r: Rng, maxChars: number): string {
  const n = r.size(maxChars);
  let s = '';
  for (let i = 0; i < n; i++) s += r.chance(0.5) ? String.fromCharCode(r.int(0x20, 0x7e)) : r.pick(CHARS);
  return s;
}

const TEXT_POOL = ['', ' ', 'NULL', 'null', '\\', "'", '"', "''", '\\x00', 'ü', '😀', '中文', 'tab\t', 'nl\n', 'cr\r', ' lead', 'trail ', '{a,b}', '\u0001'];

function textValue(r: Rng, maxChars: number): string {
  if (r.chance(0.3)) return r.pick(TEXT_POOL);
  if (r.chance(0.01)) return randomText(r, 50).repeat(r.int(200, 4000)); // crosses buffer growth points
  return randomText(r, maxChars);
}

/** The first `n` characters (code points), as varchar(n) counts them. */
const clip = (s: string, n: number) => [...s].slice(0, n).join('');

// ------------------------------------------------------------------ numbers

function intSpec(ddl: string, bits: 16 | 32 | 64): TypeSpec {
  const max = (1n << BigInt(bits - 1)) - 1n;
  const min = -max - 1n;
  const pool = [min, max, 0n, -1n, 1n, 255n, 256n, 65535n, 65536n, 4294967296n, 9007199254740993n, -9007199254740993n].filter((v) => v >= min && v <= max);
  return {
    label: ddl, ddl, kind: 'int', element: true, key: bits !== 16,
    gen: (r) => lit(String(r.chance(0.3) ? r.pick(pool) : r.chance(0.5) ? r.bigint(-1000n, 1000n) : r.bigint(min, max)), ddl),
  };
}

/** Digits of 10^p − 1 at most: a random integer of up to `p` digits, edges favoured. */
function digits(r: Rng, p: number): bigint {
  if (p === 0) return 0n;
  const top = 10n ** BigInt(p);
  if (r.chance(0.15)) return top - 1n;
  if (r.chance(0.1)) return 1n;
  if (r.chance(0.1)) return 0n;
  return r.bigint(0n, top - 1n) / 10n ** BigInt(r.int(0, p));
}

/** k · 10^−s as Postgres reads it, exactly. */
export function scaledText(k: bigint, scale: number): string {
  const negative = k < 0n;
  let body = (negative ? -k : k).toString();
  if (scale <= 0) body = body === '0' ? '0' : body + '0'.repeat(-scale);
  else {
    body = body.padStart(scale + 1, '0');
    body = `${body.slice(0, -scale)}.${body.slice(-scale)}`;
  }
  return negative && /[1-9]/.test(body) ? `-${body}` : body;
}

/** The lake's decimal for numeric(p,s) (README "Types": s > p → decimal(s,s), s < 0 → decimal(p − s,0)). */
export function lakeDecimal(p: number, s: number): { precision: number; scale: number } | null {
  const width = s < 0 ? p - s : Math.max(p, s);
  return width > 38 ? null : { precision: width, scale: Math.max(s, 0) };
}

function numericSpec(r: Rng): TypeSpec {
  const shape = r.int(0, 9);
  let p: number;
  let s: number;
  if (shape <= 4) { p = r.int(1, 38); s = r.int(0, p); }
  else if (shape <= 6) { p = r.int(1, 30); s = p + r.int(1, 8); } // scale above precision
  else if (shape <= 8) { p = r.int(1, 30); s = -r.int(1, 8); } // negative scale
  else { p = r.int(30, 60); s = r.int(-12, 12); } // may need more than 38 digits: text
  const ddl = `numeric(${p},${s})`;
  const lake = lakeDecimal(p, s);
  return {
    label: ddl, ddl, kind: 'decimal', element: true, key: true, duck: lake ? `DECIMAL(${lake.precision},${lake.scale})` : 'VARCHAR',
    gen: (g) => {
      const k = digits(g, p) * (g.chance(0.5) ? -1n : 1n);
      return lit(scaledText(k, s), ddl);
    },
    poison: lake ? () => {
      // a constrained numeric cannot hold ±Infinity (Postgres refuses it), only NaN
      return { sql: lit('NaN', ddl), valueText: 'NaN', reason: `has no decimal representation (column is decimal(${lake.precision},${lake.scale});` };
    } : undefined,
  };
}

/** Unconstrained numeric under export.unconstrainedNumericScale = u: decimal(38,u). */
function unconstrainedSpec(u: number): TypeSpec {
  const intDigits = 38 - u;
  const max = `${'9'.repeat(intDigits) || '0'}.${'9'.repeat(u)}`.replace(/\.$/, '');
  const column = `(column is decimal(38,${u});`;
  return {
    label: 'numeric', ddl: 'numeric', kind: 'decimal', element: true, duck: `DECIMAL(38,${u})`,
    gen: (r) => {
      if (r.chance(0.1)) {
        // trailing zeros past the scale are not digits lost (dscale 20, 40)
        const fits = intDigits === 0 ? [`0.5${'0'.repeat(40)}`] : u === 0 ? [`-7.${'0'.repeat(40)}`] : ['1.500', '1.50000000000000000000', `-7.${'0'.repeat(40)}`];
        return lit(r.pick([max, `-${max}`, u ? `0.${'0'.repeat(u - 1)}1` : '1', '0', ...fits, intDigits > 28 ? '1e28' : '0']), 'numeric');
      }
      const scale = r.int(0, u);
      return lit(scaledText(digits(r, r.int(0, Math.min(intDigits, 30)) + scale) * (r.chance(0.5) ? -1n : 1n), scale), 'numeric');
    },
    poison: (r) => r.pick([
      { sql: lit(`1${'0'.repeat(intDigits)}`, 'numeric'), valueText: `1${'0'.repeat(intDigits)}`, reason: `has more than ${intDigits} integer digits ${column}` },
      { sql: lit(`0.${'0'.repeat(u)}1`, 'numeric'), valueText: `0.${'0'.repeat(u)}1`, reason: `has more than ${u} fractional digits ${column}` },
      ...['NaN', 'Infinity', '-Infinity'].map((v) => ({ sql: lit(v, 'numeric'), valueText: v, reason: `has no decimal representation ${column}` })),
    ]),
  };
}

function floatText(r: Rng, single: boolean): string {
  const pool = single
    ? ['NaN', 'Infinity', '-Infinity', '-0', '0', '3.4028235e38', '-3.4028235e38', '1.1754944e-38', '1e-45', '0.1', '16777217']
    : ['NaN', 'Infinity', '-Infinity', '-0', '0', '1.7976931348623157e308', '-1.7976931348623157e308', '2.2250738585072014e-308', '5e-324', '0.1', '9007199254740993'];
  if (r.chance(0.25)) return r.pick(pool);
  const bytes = new DataView(new ArrayBuffer(8));
  bytes.setUint32(0, r.int(0, 0xffffffff));
  bytes.setUint32(4, r.int(0, 0xffffffff));
  let v = r.chance(0.5) ? bytes.getFloat64(0) : (r.next() - 0.5) * 10 ** r.int(-10, 10);
  if (single) v = Math.fround(v);
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return Object.is(v, -0) ? '-0' : String(v);
}

// ------------------------------------------------------------------ time

const DAY_SPAN_FROM = -2_451_000; // a little after 4714-11-24 BC, days since 2000
const DATE_SPAN_TO = 2_145_031_948; // 5874897-12-31
const TIMESTAMP_SPAN_TO = 106_740_000; // before 294247-01-10, the last µs Parquet holds

function dateValue(r: Rng): string {
  if (r.chance(0.3)) return lit(r.pick(['infinity', '-infinity', '4714-11-24 BC', '5874897-12-31', '1970-01-01', '1969-12-31', '2000-01-01', '0001-01-01', '0001-12-31 BC', '2024-02-29', '1582-10-10']), 'date');
  const days = r.chance(0.5) ? r.int(-40_000, 40_000) : r.int(DAY_SPAN_FROM, DATE_SPAN_TO);
  return `(date '2000-01-01' + ${days})`;
}

function timestampValue(r: Rng, tz: boolean): string {
  const type = tz ? 'timestamptz' : 'timestamp';
  if (r.chance(0.3)) {
    return lit(r.pick([
      'infinity', '-infinity', '4713-01-01 00:00:00 BC', '0001-01-01 00:00:00 BC', '294246-12-31 23:59:59.999999', '1970-01-01 00:00:00', '1969-12-31 23:59:59.999999',
      '2000-01-01 00:00:00', '1900-01-01 00:00:00.000001',
      // DST: a missing hour, a repeated one, either side of the Atlantic (timestamptz reads them in that zone)
      tz ? '2024-03-31 02:30:00 Europe/Berlin' : '2024-03-31 02:30:00', tz ? '2024-10-27 02:30:00.5 Europe/Berlin' : '2024-10-27 02:30:00.5',
      tz ? '2024-11-03 01:30:00 America/New_York' : '2024-11-03 01:30:00', tz ? '1916-05-01 00:30:00 Europe/London' : '1916-05-01 00:30:00',
    ]), type);
  }
  const days = r.chance(0.5) ? r.int(-40_000, 40_000) : r.int(DAY_SPAN_FROM, TIMESTAMP_SPAN_TO);
  const micros = r.chance(0.2) ? 0 : r.int(0, 86_399_999_999);
  return `(${type} '2000-01-01 00:00:00${tz ? '+00' : ''}' + ${days} * interval '1 day' + interval '${micros} microseconds')`;
}

function timestampPoison(tz: boolean): (r: Rng) => Poison {
  return (r) => {
    const v = r.pick(['294247-01-10 04:00:54.775807', '294276-12-31 23:59:59.999999', '294250-06-01 12:00:00.000001']);
    return { sql: lit(`${v}${tz ? '+00' : ''}`, tz ? 'timestamptz' : 'timestamp'), valueText: `${v}${tz ? '+00' : ''}`, reason: "does not fit Parquet's µs since 1970" };
  };
}

const hex = (r: Rng, n: number) => Array.from({ length: n }, () => r.int(0, 15).toString(16)).join('');

// ------------------------------------------------------------------ the catalogue

/** Fixed types; numeric(p,s), varchar(n), char(n), enums, domains and composites are drawn per case. */
const FIXED: TypeSpec[] = [
  intSpec('int2', 16), intSpec('int4', 32), intSpec('int8', 64),
  { label: 'float4', ddl: 'float4', kind: 'float4', element: true, gen: (r) => lit(floatText(r, true), 'float4') },
  { label: 'float8', ddl: 'float8', kind: 'float8', element: true, gen: (r) => lit(floatText(r, false), 'float8') },
  { label: 'bool', ddl: 'bool', kind: 'bool', element: true, gen: (r) => (r.chance(0.5) ? 'true' : 'false') },
  { label: 'text', ddl: 'text', kind: 'text', element: true, key: true, gen: (r) => lit(textValue(r, 40), 'text') },
  { label: 'name', ddl: 'name', kind: 'text', element: true, gen: (r) => lit(clip(randomText(r, 20), 20).replace(/[^\x20-\x7e]/g, 'x'), 'name') },
  { label: 'bytea', ddl: 'bytea', kind: 'bytea', element: true, gen: (r) => (r.chance(0.01) ? `decode(repeat('00ff', ${r.int(1000, 100_000)}), 'hex')` : lit(`\\x${hex(r, 2 * r.size(64))}`, 'bytea')) },
  { label: 'date', ddl: 'date', kind: 'date', element: true, key: true, gen: dateValue },
  { label: 'timestamp', ddl: 'timestamp', kind: 'timestamp', element: true, gen: (r) => timestampValue(r, false), poison: timestampPoison(false) },
  { label: 'timestamptz', ddl: 'timestamptz', kind: 'timestamp', element: true, gen: (r) => timestampValue(r, true), poison: timestampPoison(true) },
  {
    label: 'time', ddl: 'time', kind: 'text', element: true,
    gen: (r) => (r.chance(0.3) ? lit(r.pick(['00:00:00', '24:00:00', '23:59:59.999999', '12:34:56.789']), 'time') : `(time '00:00' + interval '${r.int(0, 86_399_999_999)} microseconds')`),
  },
  {
    label: 'timetz', ddl: 'timetz', kind: 'text', element: true,
    gen: (r) => lit(r.chance(0.3) ? r.pick(['00:00:00+1559', '24:00:00-1559', '23:59:59.999999+14', '12:00:00+05:30']) : `${r.int(0, 23)}:${r.int(0, 59)}:${r.int(0, 59)}.${r.int(0, 999999)}${r.chance(0.5) ? '+' : '-'}${r.int(0, 14)}`, 'timetz'),
  },
  {
    label: 'interval', ddl: 'interval', kind: 'text', element: true,
    gen: (r) => (r.chance(0.3)
      ? lit(r.pick(['178000000 years', '-178000000 years', '1 day -00:00:01', '00:00:00.000001', '1 mon -1 days', '-2147483648 days', '2147483647 days 2562047788:00:54.775807']), 'interval')
      : `make_interval(${r.int(-1000, 1000)}, ${r.int(-30, 30)}, 0, ${r.int(-400, 400)}, ${r.int(-50, 50)}, ${r.int(-100, 100)}, ${(r.next() * 100).toFixed(6)})`),
  },
  { label: 'uuid', ddl: 'uuid', kind: 'text', element: true, key: true, gen: (r) => lit(r.chance(0.1) ? r.pick(['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff']) : hex(r, 32), 'uuid') },
  {
    label: 'inet', ddl: 'inet', kind: 'text', element: true,
    gen: (r) => lit(r.chance(0.5) ? `${r.int(0, 255)}.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(0, 255)}/${r.int(8, 32)}` : `${hex(r, 4)}:${hex(r, 3)}::${hex(r, 2)}/${r.int(16, 128)}`, 'inet'),
  },
  { label: 'cidr', ddl: 'cidr', kind: 'text', element: true, gen: (r) => lit(`10.${r.int(0, 255)}.0.0/16`, 'cidr') },
  { label: 'macaddr', ddl: 'macaddr', kind: 'text', element: true, gen: (r) => lit(hex(r, 12), 'macaddr') },
  { label: 'macaddr8', ddl: 'macaddr8', kind: 'text', element: true, gen: (r) => lit(hex(r, 16), 'macaddr8') },
  {
    label: 'json', ddl: 'json', kind: 'text', element: true,
    gen: (r) => lit(r.pick(['{"b": 1, "a": [1, 2, {"deep": null}], "a": "dup"}', '[]', 'null', '"\\u00e9 \\ud83d\\ude00"', '  {"x" :1.000}  ', `{"k": ${JSON.stringify(randomText(r, 10))}}`, String(r.next())]), 'json'),
  },
  {
    label: 'jsonb', ddl: 'jsonb', kind: 'text', element: true,
    gen: (r) => lit(r.pick(['{"b": 1, "a": [1, 2, {"deep": null}], "a": "dup"}', '[]', 'null', '{"n": 1.000000000000000000001}', '"\\u00e9"', `{${JSON.stringify(randomText(r, 8))}: ${JSON.stringify(randomText(r, 10))}}`, String(r.int(-1e9, 1e9))]), 'jsonb'),
  },
  { label: 'money', ddl: 'money', kind: 'text', element: true, gen: (r) => lit(r.chance(0.2) ? r.pick(['-92233720368547758.08', '92233720368547758.07', '0']) : scaledText(r.bigint(-(10n ** 12n), 10n ** 12n), 2), 'money') },
  { label: 'bit(5)', ddl: 'bit(5)', kind: 'text', element: true, gen: (r) => lit(r.int(0, 31).toString(2).padStart(5, '0'), 'bit(5)') },
  { label: 'varbit', ddl: 'varbit', kind: 'text', element: true, gen: (r) => lit(Array.from({ length: r.size(80) }, () => r.int(0, 1)).join(''), 'varbit') },
  { label: 'pg_lsn', ddl: 'pg_lsn', kind: 'text', element: true, gen: (r) => lit(`${r.int(0, 0xffffffff).toString(16)}/${r.int(0, 0xffffffff).toString(16)}`, 'pg_lsn') },
  { label: 'xml', ddl: 'xml', kind: 'text', element: false, gen: (r) => lit(`<a x="1">${randomText(r, 5).replace(/[<>&"'\u0000-\u001f\u007f\u200b\ufeff]/g, 'y')}</a>`, 'xml') },
  { label: 'tsvector', ddl: 'tsvector', kind: 'text', element: false, gen: (r) => `to_tsvector('simple', ${lit(randomText(r, 30), 'text')})` },
  // anything else: its text form, with a warning
  { label: 'point', ddl: 'point', kind: 'text', element: true, gen: (r) => `point(${floatText(r, false).replace(/^(NaN|-?Infinity)$/, "'$1'::float8")}, ${r.int(-5, 5)})` },
  { label: 'int4range', ddl: 'int4range', kind: 'text', element: true, gen: (r) => lit(r.pick(['empty', '[1,5)', '(,3]', `[${r.int(-9, 0)},${r.int(1, 9)}]`]), 'int4range') },
];

/** A per-case catalogue: the fixed types plus freshly drawn numeric, varchar/char, enum, domains, composite. */
export function caseTypes(r: Rng, tag: string, unconstrainedScale: number): TypeSpec[] {
  const types = [...FIXED, unconstrainedSpec(unconstrainedScale)];
  for (let i = 0; i < 4; i++) types.push(numericSpec(r));
  const vn = r.int(1, 40);
  types.push({ label: `varchar(${vn})`, ddl: `varchar(${vn})`, kind: 'text', element: true, key: true, gen: (g) => lit(clip(textValue(g, vn), vn), `varchar(${vn})`) });
  const cn = r.int(1, 12);
  types.push({ label: `char(${cn})`, ddl: `char(${cn})`, kind: 'bpchar', element: true, gen: (g) => lit(clip(textValue(g, cn), cn), `char(${cn})`) });
  const vu = r.chance(0.5) ? 'varchar' : 'char';
  types.push({ label: vu, ddl: vu, kind: vu === 'char' ? 'bpchar' : 'text', element: true, gen: (g) => lit(vu === 'char' ? clip(textValue(g, 1), 1) || 'x' : textValue(g, 20), vu) });
  // an enum with hostile labels
  const labels = r.shuffle(['sad', 'ok', 'happy ☺', 'with space', 'Quote"d', "it's", 'NULL', '中文']).slice(0, r.int(1, 8));
  const mood = `"fz ${tag} mood"`;
  types.push({
    label: 'enum', ddl: mood, kind: 'text', element: true, key: true,
    setup: [`CREATE TYPE ${mood} AS ENUM (${labels.map((l) => `'${l.replaceAll("'", "''")}'`).join(', ')})`],
    gen: (g) => lit(g.pick(labels), mood),
  });
  // domains over a numeric, a text, a timestamptz and an array
  const grams = `"fz ${tag} grams"`;
  types.push({
    label: 'domain numeric(8,3)', ddl: grams, kind: 'decimal', element: true, duck: 'DECIMAL(8,3)',
    setup: [`CREATE DOMAIN ${grams} AS numeric(8,3) CHECK (VALUE > -100000)`],
    gen: (g) => `${lit(scaledText(digits(g, 8) * (g.chance(0.5) ? -1n : 1n), 3), 'numeric(8,3)')}::${grams}`,
  });
  const label = `fz_${tag}_label`;
  types.push({
    label: 'domain text', ddl: label, kind: 'text', element: true, key: true,
    setup: [`CREATE DOMAIN ${label} AS text CHECK (VALUE <> 'forbidden')`],
    gen: (g) => `${lit(textValue(g, 20), 'text')}::${label}`,
  });
  const when = `fz_${tag}_when`;
  types.push({
    label: 'domain timestamptz', ddl: when, kind: 'timestamp', element: true, duck: 'TIMESTAMP WITH TIME ZONE',
    setup: [`CREATE DOMAIN ${when} AS timestamptz`],
    gen: (g) => `${timestampValue(g, true)}::${when}`,
  });
  const ints = `fz_${tag}_ints`;
  types.push({
    label: 'domain int4[]', ddl: ints, kind: 'int', element: false, duck: 'INTEGER[]',
    setup: [`CREATE DOMAIN ${ints} AS int4[]`],
    // arrays are generated by the caller's array path; this marks the domain as an array
    gen: () => { throw new Error('array domain values come from arrayValue'); },
  });
  // a composite: anything else → its text form
  const pair = `fz_${tag}_pair`;
  types.push({
    label: 'composite', ddl: pair, kind: 'text', element: true,
    setup: [`CREATE TYPE ${pair} AS (a int, "b c" text)`],
    gen: (g) => `ROW(${g.int(-9, 9)}, ${lit(textValue(g, 6), 'text')})::${pair}`,
  });
  return types;
}

/** Domains over arrays: the column is an array though its type name is not `…[]`. */
export const ARRAY_DOMAIN_LABEL = 'domain int4[]';
