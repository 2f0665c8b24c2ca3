// Delete detection, the lake side: the keys of `<table>_current` (every key whose latest version
// is live), counted and hashed by the query engine as the source side does in Postgres
// (source/queries.ts), with the same fingerprint (key-hash.ts).
import { ExportError } from '../errors.ts';
import { quoteIdent } from '../identifiers.ts';
import type { QueryEngine } from '../ports.ts';
import { currentViewName } from './current-view.ts';
import type { PositionRange } from './key-bisect.ts';
import { hashSliceSql, keyTextSql, positionRangesSql, positionSql, type KeyLine } from './key-hash.ts';

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
  const text = keyTextSql(keys.dialect, keys.key);
  const k = `CAST(${quoteIdent(keys.key[0])} AS BIGINT)`;
  const bounds = line.kind === 'integer' ? `CAST(min(${k}) AS VARCHAR)` : 'CAST(NULL AS VARCHAR)';
  return [
    `SELECT ${bounds} AS lo, ${bounds.replace('min(', 'max(')} AS hi, CAST(count(*) AS VARCHAR) AS n,`,
    `  CAST(sum(${hashSliceSql(keys.dialect, text, 0)}) AS VARCHAR) AS s1, CAST(sum(${hashSliceSql(keys.dialect, text, 1)}) AS VARCHAR) AS s2`,
    `FROM ${view(keys)}`,
  ].join('\n');
}

export function lakeKeyAggregateSql(keys: LakeKeys, line: KeyLine, lowest: bigint, width: bigint, ranges: readonly PositionRange[]): string {
  const text = keyTextSql(keys.dialect, keys.key);
  const position = positionSql(keys.dialect, line, keys.key, lowest);
  // Integer division: DuckDB's `/` is a double's; Trino's `/` on bigints truncates.
  const bucket = keys.dialect === 'duckdb' ? `(${position}) // ${width.toString()}` : `(${position}) / ${width.toString()}`;
  return [
    `SELECT CAST(${bucket} AS VARCHAR) AS b, CAST(count(*) AS VARCHAR) AS n,`,
    `  CAST(sum(${hashSliceSql(keys.dialect, text, 0)}) AS VARCHAR) AS s1, CAST(sum(${hashSliceSql(keys.dialect, text, 1)}) AS VARCHAR) AS s2`,
    `FROM ${view(keys)}`,
    `WHERE ${positionRangesSql(keys.dialect, line, keys.key, lowest, ranges)}`,
    'GROUP BY 1',
  ].join('\n');
}

export function lakeKeyListSql(keys: LakeKeys, line: KeyLine, lowest: bigint, ranges: readonly PositionRange[]): string {
  const select = keys.key.map((k, i) => `CAST(${quoteIdent(k)} AS VARCHAR) AS k${i}`).join(', ');
  return `SELECT ${select} FROM ${view(keys)} WHERE ${positionRangesSql(keys.dialect, line, keys.key, lowest, ranges)}`;
}
