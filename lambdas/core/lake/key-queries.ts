// Delete detection, the lake side: the keys of `<table>_current` (every key whose latest version
// is live), counted and hashed by the query engine as the source side does in Postgres
// (source/queries.ts), with the same fingerprint (key-hash.ts).
import { ExportError } from '../errors.ts';
import { quoteIdent } from '../identifiers.ts';
import type { QueryEngine } from '../ports.ts';
import { currentViewName } from './current-view.ts';
import type { PositionRange } from './key-bisect.ts';
import { hexSliceSql, keyRangesSql, keyTextSql, md5HexSql, positionSql, rangesPredicate, type KeyLine } from './key-hash.ts';

export type LakeDialect = 'duckdb' | 'athena';

/** Which SQL the engine speaks, from its description (`athena (…)`, `duckdb …`). */
export function engineDialect(engine: QueryEngine): LakeDialect {
  if (engine.description.startsWith('athena')) return 'athena';
  if (engine.description.startsWith('duckdb')) return 'duckdb';
  throw new ExportError(`query engine ${JSON.stringify(engine.description)}: delete detection speaks the SQL of athena or duckdb only`);
}

export interface LakeKeys {
  readonly dialect: LakeDialect;
  readonly lakeTable: string;
  /** The key columns as the engine names them (schema.json's key). */
  readonly key: readonly string[];
}

const view = (keys: LakeKeys) => quoteIdent(currentViewName(keys.lakeTable));

/**
 * The whole view in one pass: count and hash sums of every live key (`n`, `s1`, `s2`) and, for a
 * single integer key, its smallest and largest value (`lo`, `hi`; decimal text, null when empty).
 */
export function lakeKeyWholeSql(keys: LakeKeys, line: KeyLine): string {
  const k = `CAST(${quoteIdent(keys.key[0])} AS BIGINT)`;
  const integer = line.kind === 'integer';
  // md5 once per key (a subquery), both slices from it: md5 is most of the query's cost.
  return [
    `SELECT ${integer ? 'CAST(min(k) AS VARCHAR)' : 'CAST(NULL AS VARCHAR)'} AS lo, ${integer ? 'CAST(max(k) AS VARCHAR)' : 'CAST(NULL AS VARCHAR)'} AS hi, CAST(count(*) AS VARCHAR) AS n,`,
    `  CAST(sum(${hexSliceSql(keys.dialect, 'm', 0)}) AS VARCHAR) AS s1, CAST(sum(${hexSliceSql(keys.dialect, 'm', 1)}) AS VARCHAR) AS s2`,
    `FROM (SELECT ${integer ? k : 'NULL'} AS k, ${md5HexSql(keys.dialect, keyTextSql(keys.dialect, keys.key))} AS m FROM ${view(keys)}) AS "keys"`,
  ].join('\n');
}

export function lakeKeyAggregateSql(keys: LakeKeys, line: KeyLine, lowest: bigint, width: bigint, ranges: readonly PositionRange[]): string {
  // Integer division: DuckDB's `/` is a double's; Trino's `/` on bigints truncates.
  const bucket = keys.dialect === 'duckdb' ? `p // ${width.toString()}` : `p / ${width.toString()}`;
  return [
    `SELECT CAST(${bucket} AS VARCHAR) AS b, CAST(count(*) AS VARCHAR) AS n,`,
    `  CAST(sum(${hexSliceSql(keys.dialect, 'm', 0)}) AS VARCHAR) AS s1, CAST(sum(${hexSliceSql(keys.dialect, 'm', 1)}) AS VARCHAR) AS s2`,
    `FROM ${keySubquery(keys, line, lowest, ranges, [])}`,
    'GROUP BY 1',
  ].join('\n');
}

export function lakeKeyListSql(keys: LakeKeys, line: KeyLine, lowest: bigint, ranges: readonly PositionRange[]): string {
  const select = keys.key.map((k, i) => `CAST(${quoteIdent(k)} AS VARCHAR) AS k${i}`);
  return `SELECT ${keys.key.map((_, i) => `k${i}`).join(', ')} FROM ${keySubquery(keys, line, lowest, ranges, select)}`;
}

/** The view's keys within `ranges`: md5 `m` once per row, position `p` (a hash one from `m`), `columns`. */
function keySubquery(keys: LakeKeys, line: KeyLine, lowest: bigint, ranges: readonly PositionRange[], columns: readonly string[]): string {
  const onKey = keyRangesSql(keys.dialect, line, keys.key, lowest, ranges);
  // A listing of integer keys needs no md5; aggregates and hash positions do.
  const md5 = columns.length === 0 || onKey === null ? [`${md5HexSql(keys.dialect, keyTextSql(keys.dialect, keys.key))} AS m`] : [];
  const select = [...md5, ...(onKey === null ? [] : [`${positionSql(keys.dialect, line, keys.key, lowest)} AS p`]), ...columns];
  const inner = `SELECT ${select.join(', ')} FROM ${view(keys)}${onKey === null ? '' : ` WHERE ${onKey}`}`;
  if (onKey !== null) return `(${inner}) AS "keys"`;
  return `(SELECT ${hexSliceSql(keys.dialect, 'm', 0)} AS p, * FROM (${inner}) AS "hashed") AS "keys" WHERE ${rangesPredicate('p', 0n, ranges)}`;
}
