// One definition of a primary key's fingerprint, spelled in each engine's SQL: Postgres (the
// source), DuckDB (the local lake) and Athena (the deployed lake). Delete detection compares
// count and hash sums of the keys each side holds, so the three spellings must give the same
// numbers for the same key — the unit and integration tests hold them to it.
//
// A key's two hashes h1, h2 (unsigned 32-bit integers):
//   - a single smallint/integer/bigint key (the common case): the 64 bits of Postgres's
//     hashint8extended(k, k >> 32) (summed as one signed 64-bit value: int8SumsSql) — Bob Jenkins' lookup3 over the key's low half folded with its
//     high half, seeded with the high half so that no two keys share the mixer's input. h1 is the
//     low 32 bits, h2 the high. Postgres calls its built-in (one function call a row over an
//     index-only scan: Postgres evaluates expressions a row at a time, so every operator it does
//     not run costs time); DuckDB and Athena, which evaluate column batches, run the same
//     additions, xors and rotations spelled out in 64-bit integer arithmetic that never
//     overflows (every value stays below 2^58) and never shifts a negative number.
//   - any other key: md5 of its canonical text (each column's text form; several columns joined
//     as keyTextSql says), bytes 0–3 and 4–7.
//   pos, where the key falls on the bisection's line: a single integer key's value (minus the
//   lake's smallest key), for every other key h1.
//
// Sums of 32-bit values stay exact in every engine up to 2^31 rows (Athena's sum(bigint) is a
// bigint), and two independent 32-bit sums plus the count make an undetected difference a
// 2^-64 event per compared range. A power sum alone would not do: {1, 5, 6} and {2, 3, 7} share
// count, sum and sum of squares; a mixed hash shares nothing with the key's arithmetic.
//
// Hash positions rather than key ranges for strings and composite keys: a range split needs the
// three engines to order keys alike, and Postgres orders text by the database's collation while
// DuckDB and Athena compare code points. md5 is the same everywhere.
import { ConfigError } from '../errors.ts';
import { quoteIdent } from '../identifiers.ts';
import type { CatalogColumn } from '../source/type-map.ts';

export type KeyDialect = 'postgres' | 'duckdb' | 'athena';
export type LakeDialect = Exclude<KeyDialect, 'postgres'>;

const INTEGER_KEYS = new Set(['int2', 'int4', 'int8']);
/** Types whose Postgres text form is what the lake file holds (read as text, or a string column). */
const STRING_KEYS = new Set(['text', 'varchar', 'uuid']);

/**
 * How the bisection places keys (`kind`: by the integer key itself, or by h1) and how a key is
 * hashed (`hash`: hashint8extended for a single integer key, md5 of its text for any other).
 */
export interface KeyLine {
  readonly kind: 'integer' | 'hash';
  readonly hash: 'int8' | 'md5';
}

/**
 * The key columns delete detection can compare, or a message naming the column that it cannot
 * (a char(n) key's text form drops the padding the file keeps; a timestamp's depends on the
 * session; numeric, bytea … are not supported yet).
 */
export function keyLineProblem(display: string, keyColumns: readonly CatalogColumn[]): string | null {
  for (const column of keyColumns) {
    if (!INTEGER_KEYS.has(column.typeName) && !STRING_KEYS.has(column.typeName)) {
      return `${display}: deletes.detect compares primary keys of type smallint, integer, bigint, text, varchar or uuid; key column ${JSON.stringify(column.name)} is ${column.formatted}`;
    }
  }
  return null;
}

export function keyLineOf(keyColumns: readonly CatalogColumn[]): KeyLine {
  return keyColumns.length === 1 && INTEGER_KEYS.has(keyColumns[0].typeName) ? { kind: 'integer', hash: 'int8' } : { kind: 'hash', hash: 'md5' };
}

/** A key column's canonical text in `dialect` (`column` is the engine's name of it). */
function columnText(dialect: KeyDialect, column: string): string {
  return dialect === 'postgres' ? `${quoteIdent(column)}::text` : `CAST(${quoteIdent(column)} AS VARCHAR)`;
}

/**
 * The key's canonical text. One column: its text. Several: each text with U+0001 doubled, joined
 * by U+0001 U+0002, so no two keys share a text (joined plainly, ('a\u0001b', 'c') and
 * ('a', 'b\u0001c') collided and a delete was found a run late). The same functions exist in
 * all three dialects (replace, chr).
 */
export function keyTextSql(dialect: KeyDialect, columns: readonly string[]): string {
  if (columns.length === 0) throw new ConfigError('a key needs at least one column');
  if (columns.length === 1) return columnText(dialect, columns[0]);
  return columns.map((c) => `replace(${columnText(dialect, c)}, chr(1), chr(1) || chr(1))`).join(' || chr(1) || chr(2) || ');
}

/** md5 of the text as 32 hex digits (Athena prints them upper case; both read the same below). */
export function md5HexSql(dialect: KeyDialect, text: string): string {
  // md5 takes and gives varbinary in Trino.
  return dialect === 'athena' ? `to_hex(md5(to_utf8(${text})))` : `md5(${text})`;
}

/** One unsigned 32-bit slice (`part` 0: bytes 0–3, 1: bytes 4–7) of an md5 in hex, as a bigint. */
export function hexSliceSql(dialect: KeyDialect, hex: string, part: 0 | 1): string {
  const start = part === 0 ? 1 : 9;
  switch (dialect) {
    case 'postgres':
      return `('x' || substr(${hex}, ${start}, 8))::bit(32)::int8`;
    case 'duckdb':
      return `CAST('0x' || substr(${hex}, ${start}, 8) AS BIGINT)`;
    case 'athena':
      return `from_base(substr(${hex}, ${start}, 8), 16)`;
  }
}

/** One unsigned 32-bit slice of md5(text) as a bigint. */
export function hashSliceSql(dialect: KeyDialect, text: string, part: 0 | 1): string {
  return hexSliceSql(dialect, md5HexSql(dialect, text), part);
}

const MASK = '4294967295';

/** Postgres: an integer key's 64-bit hash (h1 = its low 32 bits, h2 = its high 32 bits), built in. */
export function int8HashPostgresSql(column: string): string {
  const key = `${quoteIdent(column)}::int8`;
  return `hashint8extended(${key}, ${key} >> 32)`;
}

/** Postgres: h1 and h2 of an int8 hash `h`. */
export function int8SlicesPostgresSql(h: string): [string, string] {
  return [`(${h} & ${MASK})`, `((${h} >> 32) & ${MASK})`];
}

/**
 * The two sums an integer key's range reports: the sum of its keys' 64-bit hashes, signed as
 * Postgres's int8, and 0 — one sum a row instead of two sliced ones (a fifth of the source's
 * time on a million keys). Postgres sums `h` (int8) exactly in numeric; the lake, which has h's
 * halves h1 (low, unsigned) and h2 (high, unsigned), sums 2^32 · (h2 − 2^32 when h2 ≥ 2^31) +
 * h1: a hugeint in DuckDB, a decimal(38, 0) in Athena (its sum of bigints is a bigint).
 */
export function int8SumsSql(dialect: KeyDialect, h: string): [string, string] {
  if (dialect === 'postgres') return [`sum(${h})`, '0'];
  const high = `sum(h2) - 4294967296 * count(*) FILTER (WHERE h2 >= 2147483648)`;
  const wide = dialect === 'athena' ? `CAST(${high} AS DECIMAL(38, 0))` : `CAST(${high} AS HUGEINT)`;
  return [`${wide} * 4294967296 + sum(h1)`, '0'];
}

/** The few integer operations the emulation needs, in DuckDB's and in Trino's spelling. */
function integerOps(dialect: LakeDialect) {
  const athena = dialect === 'athena';
  return {
    and: (x: string, y: string) => (athena ? `bitwise_and(${x}, ${y})` : `(${x} & ${y})`),
    or: (x: string, y: string) => (athena ? `bitwise_or(${x}, ${y})` : `(${x} | ${y})`),
    xor: (x: string, y: string) => (athena ? `bitwise_xor(${x}, ${y})` : `xor(${x}, ${y})`),
    // x · 2^n of a non-negative x below 2^(63 − n) (DuckDB's shift costs less than its checked multiply).
    shl: (x: string, n: number) => (athena ? `(${x} * ${1n << BigInt(n)})` : `(${x} << ${n})`),
    // x / 2^n of a non-negative x, rounded down (Trino's `/` on bigints truncates; DuckDB's
    // `/` is a double's, its shift is cheaper than its integer division).
    // An exact division (DuckDB's `//` and Trino's `/` agree on it, whatever the sign).
    exact: (x: string, y: bigint) => (athena ? `(${x} / ${y})` : `(${x} // ${y})`),
    shr: (x: string, n: number) => (athena ? `(${x} / ${1n << BigInt(n)})` : `(${x} >> ${n})`),
  };
}

/** lookup3's starting value for a 4-byte key: 0x9e3779b9 + 4 + 3923095. */
const LOOKUP3_INIT = (0x9e3779b9n + 4n + 3923095n) & 0xffffffffn;
/** lookup3's mix(): each line `x -= z; x ^= rot(z, r); z += y`. */
const MIX_LINES: readonly (readonly ['a' | 'b' | 'c', 'a' | 'b' | 'c', 'a' | 'b' | 'c', number])[] = [
  ['a', 'c', 'b', 4], ['b', 'a', 'c', 6], ['c', 'b', 'a', 8], ['a', 'c', 'b', 16], ['b', 'a', 'c', 19], ['c', 'b', 'a', 4],
];
/** lookup3's final(): each line `x ^= y; x -= rot(y, r)`. */
const FINAL_LINES: readonly (readonly ['a' | 'b' | 'c', 'a' | 'b' | 'c', number])[] = [
  ['c', 'b', 14], ['a', 'c', 11], ['b', 'a', 25], ['c', 'b', 16], ['a', 'c', 4], ['b', 'a', 14], ['c', 'b', 24],
];

/**
 * DuckDB and Athena: `SELECT <pass>, h1, h2 FROM <from>` where h1, h2 are the slices of
 * Postgres's hashint8extended(k, k >> 32) of the bigint `key` (an expression over `from`'s
 * columns). The state of lookup3 (a, b, c) lives in bigint columns holding unsigned 32-bit
 * values, one subquery per line of the algorithm, so no expression repeats another's work.
 *
 * Postgres (hashfunc.c, hashfn.c): lo = low 32 bits of k, hi = the next 32 (k >> 32, arithmetic);
 * the input is lo ^ hi (lo ^ ~hi for negative k); with a non-zero seed (hi ≠ 0), a += seed's high
 * word (all ones when k < 0), b += its low word (hi), then mix(a, b, c); then a += input and
 * final(a, b, c); the result is b << 32 | c.
 */
export function int8HashLakeSql(dialect: LakeDialect, key: string, pass: readonly string[], from: string, options: { readonly unsigned32?: boolean } = {}): string {
  const op = integerOps(dialect);
  const mask = (x: string) => op.and(x, MASK);
  // A state word is a constant (folded here: a key below 2^32 starts from constants) or a column.
  type Word = bigint | string;
  const sql32 = (w: Word) => (typeof w === 'bigint' ? w.toString() : w);
  const rot32 = (x: bigint, r: number) => ((x << BigInt(r)) | (x >> BigInt(32 - r))) & 0xffffffffn;
  const carried = [...pass];
  let sql = from;
  let layer = 0;
  const state: Record<'a' | 'b' | 'c', Word> = { a: LOOKUP3_INIT, b: LOOKUP3_INIT, c: LOOKUP3_INIT };
  /** One subquery computing `columns` from the previous one's. */
  const step = (columns: Record<string, string>) => {
    const names = Object.keys(columns);
    const kept = carried.filter((c) => !names.includes(c));
    sql = `SELECT ${[...kept, ...names.map((n) => `${columns[n]} AS ${n}`)].join(', ')} FROM (${sql}) AS "h${layer++}"`;
    for (const n of names) if (!carried.includes(n)) carried.push(n);
  };
  /** Sets state words: constants stay in `state`, expressions become columns h<name>. */
  const assign = (words: Partial<Record<'a' | 'b' | 'c', Word>>) => {
    const columns: Record<string, string> = {};
    for (const [name, word] of Object.entries(words) as ['a' | 'b' | 'c', Word][]) {
      if (typeof word === 'bigint') state[name] = word;
      else {
        columns[`h${name}`] = word;
        state[name] = `h${name}`;
      }
    }
    if (Object.keys(columns).length > 0) step(columns);
  };
  // rot(x, r) for 32-bit x: (x · 2^r) below 2^57, its low word or'd with the bits shifted out.
  const rot = (x: string, r: number) => op.or(mask(op.shl(x, r)), op.shr(x, 32 - r));
  // final(): x ^= y; x -= rot(y, r).
  const finalLines = () => {
    for (const [x, y, r] of FINAL_LINES) {
      const [vx, vy] = [state[x], state[y]];
      if (typeof vx === 'bigint' && typeof vy === 'bigint') assign({ [x]: ((vx ^ vy) - rot32(vy, r)) & 0xffffffffn });
      else assign({ [x]: mask(`${op.xor(sql32(vx), sql32(vy))} - ${typeof vy === 'bigint' ? rot32(vy, r) : rot(vy, r)}`) });
    }
  };
  const output = () => `SELECT ${[...pass, `${sql32(state.c)} AS h1`, `${sql32(state.b)} AS h2`].join(', ')} FROM (${sql}) AS "hashed"`;
  step({ hk: key });
  if (options.unsigned32) {
    // Every key in [0, 2^32): no seed, the input is the key itself.
    assign({ a: mask(`${LOOKUP3_INIT} + hk`) });
    finalLines();
    return output();
  }
  const add = (x: string, y: string) => mask(`${x} + ${y}`);
  const sub = (x: string, y: string) => mask(`${x} - ${y}`);
  // Its low word; its high word, signed (k − lo is a multiple of 2^32: the division is exact).
  step({ hl: mask('hk'), hs: op.exact(`(hk - ${mask('hk')})`, 1n << 32n) });
  // Seeded (hi ≠ 0): a gets the seed's high word (0 or all ones), b its low word; then mix().
  step({
    hf: op.xor('hl', `CASE WHEN hk >= 0 THEN ${mask('hs')} ELSE ${op.xor(mask('hs'), MASK)} END`),
    ha: `CASE WHEN hs < 0 THEN ${(LOOKUP3_INIT + 0xffffffffn) & 0xffffffffn} ELSE ${LOOKUP3_INIT} END`,
    hb: `CASE WHEN hs = 0 THEN ${LOOKUP3_INIT} ELSE ${add(`${LOOKUP3_INIT}`, mask('hs'))} END`,
    hc: `${LOOKUP3_INIT}`,
  });
  state.a = 'ha';
  state.b = 'hb';
  state.c = 'hc';
  for (const [x, z, y, r] of MIX_LINES) {
    step({ [`h${x}`]: `CASE WHEN hs = 0 THEN h${x} ELSE ${op.xor(sub(`h${x}`, `h${z}`), rot(`h${z}`, r))} END`, [`h${z}`]: `CASE WHEN hs = 0 THEN h${z} ELSE ${add(`h${z}`, `h${y}`)} END` });
  }
  assign({ a: add('ha', 'hf') });
  finalLines();
  return output();
}

/** Ranges a lake predicate tests one by one; more are tested as aligned blocks (rangesInBlocksSql). */
const MAX_COMPARED_RANGES = 8;

/**
 * `value` within position ranges [start, end) shifted by `offset` (disjoint, start ≥ 0), as a lake
 * engine's predicate. A few ranges are compared one by one. Many — a bisection level's hundreds —
 * are cut into aligned power-of-two blocks and tested as one IN list per block size on
 * (value − offset) / 2^k, which both engines test by hash: DuckDB evaluates a long OR row by row
 * (500 ranges: ~1 s per million keys; IN lists: ~20 ms). The overall bounds come first, on the
 * value itself, so the engine can still skip files and row groups by their statistics.
 */
export function lakeRangesSql(dialect: LakeDialect, value: string, offset: bigint, ranges: readonly (readonly [bigint, bigint])[]): string {
  if (ranges.length <= MAX_COMPARED_RANGES) return rangesPredicate(value, offset, ranges);
  const blocks = new Map<number, bigint[]>();
  let low = ranges[0][0];
  let high = ranges[0][1];
  for (const [start, end] of ranges) {
    if (start < low) low = start;
    if (end > high) high = end;
    for (let a = start; a < end;) {
      let k = 0;
      while (k < 62 && a % (1n << BigInt(k + 1)) === 0n && a + (1n << BigInt(k + 1)) <= end) k++;
      const list = blocks.get(k) ?? [];
      list.push(a >> BigInt(k));
      blocks.set(k, list);
      a += 1n << BigInt(k);
    }
  }
  const position = offset === 0n ? value : `(${value} - (${offset.toString()}))`;
  const shifted = (k: number) => (k === 0 ? position : dialect === 'athena' ? `(${position} / ${(1n << BigInt(k)).toString()})` : `(${position} >> ${k})`);
  const tests = [...blocks].sort(([a], [b]) => a - b).map(([k, list]) => `${shifted(k)} IN (${list.join(', ')})`);
  return `(${value} >= ${(low + offset).toString()} AND ${value} < ${(high + offset).toString()} AND (${tests.join(' OR ')}))`;
}

/** `value` within position ranges [start, end) shifted by `offset`, as a predicate. */
export function rangesPredicate(value: string, offset: bigint, ranges: readonly (readonly [bigint, bigint])[]): string {
  if (ranges.length === 0) return 'false';
  return `(${ranges.map(([a, b]) => `(${value} >= ${(a + offset).toString()} AND ${value} < ${(b + offset).toString()})`).join(' OR ')})`;
}
