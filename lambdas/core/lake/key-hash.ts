// One definition of a primary key's fingerprint, spelled in each engine's SQL: Postgres (the
// source), DuckDB (the local lake) and Athena (the deployed lake). Delete detection compares
// count and hash sums of the keys each side holds, so the three spellings must give the same
// numbers for the same key — the unit and integration tests hold them to it.
//
//   text(k)  canonical text of the key: each column's text form (an integer in decimal, a string
//            as it is, a uuid lower case with dashes), columns joined by U+0001
//   h1, h2   md5(text(k)) bytes 0–3 and 4–7 as unsigned 32-bit integers
//   pos      where the key falls on the bisection's line: for a single integer key the key
//            itself (minus the lake's smallest key), for every other key h1
//
// Sums of 32-bit values stay exact in every engine up to 2^31 rows (Athena's sum(bigint) is a
// bigint), and two independent 32-bit sums plus the count make an undetected difference a
// 2^-64 event per compared range.
//
// Hash positions rather than key ranges for strings and composite keys: a range split needs the
// three engines to order keys alike, and Postgres orders text by the database's collation while
// DuckDB and Athena compare code points. md5 is the same everywhere.
import { ConfigError } from '../errors.ts';
import { quoteIdent } from '../identifiers.ts';
import type { CatalogColumn } from '../source/type-map.ts';

export type KeyDialect = 'postgres' | 'duckdb' | 'athena';

const INTEGER_KEYS = new Set(['int2', 'int4', 'int8']);
/** Types whose Postgres text form is what the lake file holds (read as text, or a string column). */
const STRING_KEYS = new Set(['text', 'varchar', 'uuid']);

/** How the bisection places keys: by the integer key itself, or by the key's hash. */
export type KeyLine = { readonly kind: 'integer' } | { readonly kind: 'hash' };

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
  return keyColumns.length === 1 && INTEGER_KEYS.has(keyColumns[0].typeName) ? { kind: 'integer' } : { kind: 'hash' };
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

/** The key's position on the bisection line, a non-negative bigint for keys ≥ `lowest`. */
export function positionSql(dialect: KeyDialect, line: KeyLine, columns: readonly string[], lowest: bigint): string {
  if (line.kind === 'hash') return hashSliceSql(dialect, keyTextSql(dialect, columns), 0);
  const key = dialect === 'postgres' ? `${quoteIdent(columns[0])}::int8` : `CAST(${quoteIdent(columns[0])} AS BIGINT)`;
  return `(${key} - (${lowest.toString()}))`;
}

/** `value` within position ranges [start, end) shifted by `offset`, as a predicate. */
export function rangesPredicate(value: string, offset: bigint, ranges: readonly (readonly [bigint, bigint])[]): string {
  if (ranges.length === 0) return 'false';
  return `(${ranges.map(([a, b]) => `(${value} >= ${(a + offset).toString()} AND ${value} < ${(b + offset).toString()})`).join(' OR ')})`;
}

/**
 * Position ranges [start, end) as a predicate on the key: an integer key is compared as itself,
 * so that Postgres can use the primary key's index; a hash position is filtered by the caller
 * once it is computed (null here), so that md5 runs once per row, not once per range.
 */
export function keyRangesSql(dialect: KeyDialect, line: KeyLine, columns: readonly string[], lowest: bigint, ranges: readonly (readonly [bigint, bigint])[]): string | null {
  if (line.kind === 'hash') return null;
  const value = dialect === 'postgres' ? quoteIdent(columns[0]) : `CAST(${quoteIdent(columns[0])} AS BIGINT)`;
  return rangesPredicate(value, lowest, ranges);
}
