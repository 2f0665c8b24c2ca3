// Delete detection, the lake side: the live keys of a lake table — every key whose latest version
// is live, exactly the keys of `<table>_current` — counted and hashed by the query engine as the
// source side does in Postgres (source/queries.ts), with the same fingerprint (key-hash.ts).
//
// The keys are not read through `<table>_current`: that view ranks every version of every key
// (a sort of the whole table, most of the lake side's time). The live keys are the table's
// distinct keys but the few whose latest version is dead (a tombstone or a soft delete); only
// the versions of keys that have a dead version at all are ranked. The ranking is the view's
// (lake/current-view.ts); test/unit/key-sql.test.ts holds the two to the same keys.
import { ExportError } from '../errors.ts';
import { quoteIdent } from '../identifiers.ts';
import { META_DELETED, META_EXPORTED_AT } from '../page/page-layout.ts';
import type { LakeSchema, QueryEngine } from '../ports.ts';
import type { PositionRange } from './key-bisect.ts';
import { hexSliceSql, int8HashLakeSql, int8SumsSql, keyTextSql, lakeRangesSql, md5HexSql, type KeyLine, type LakeDialect } from './key-hash.ts';

export type { LakeDialect } from './key-hash.ts';

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
  /** The column that orders a key's versions (schema.json's cursor). */
  readonly cursor: string;
  /** Whether the table declares the tombstone column (schemas from before tombstones do not). */
  readonly tombstones: boolean;
  /** The soft-delete column, when the table has one. */
  readonly softDelete?: string;
  /**
   * No version is a tombstone or soft-deleted (the span query counted none): the live keys are
   * the distinct keys, nothing to rank. @default false
   */
  readonly noneDead?: boolean;
}

export function lakeKeysOf(dialect: LakeDialect, lakeTable: string, schema: LakeSchema): LakeKeys {
  return {
    dialect, lakeTable, key: schema.key, cursor: schema.cursor,
    tombstones: schema.columns.some((c) => c.name === META_DELETED),
    ...(schema.softDelete === undefined ? {} : { softDelete: schema.softDelete }),
  };
}

const keyNames = (keys: LakeKeys) => keys.key.map((_, i) => `k${i}`);
const asBigint = (column: string) => `CAST(${quoteIdent(column)} AS BIGINT)`;

/** What makes a version dead (a tombstone, a soft delete), or null when the table has neither column. */
function deadSql(keys: LakeKeys): string | null {
  const dead = [...(keys.tombstones ? [`${quoteIdent(META_DELETED)} IS TRUE`] : []), ...(keys.softDelete === undefined ? [] : [`${quoteIdent(keys.softDelete)} IS TRUE`])];
  return dead.length === 0 ? null : `(${dead.join(' OR ')})`;
}

/**
 * A single integer key's smallest and largest value over every version (`lo`, `hi`; null when
 * the table is empty), the versions' count (`n`) and how many are dead (`d`), in one pass.
 */
export function lakeKeySpanSql(keys: LakeKeys): string {
  const k = asBigint(keys.key[0]);
  const dead = deadSql(keys);
  return `SELECT CAST(min(${k}) AS VARCHAR) AS lo, CAST(max(${k}) AS VARCHAR) AS hi, CAST(count(*) AS VARCHAR) AS n, `
    + `${dead === null ? "'0'" : `CAST(count(*) FILTER (WHERE ${dead}) AS VARCHAR)`} AS d FROM ${quoteIdent(keys.lakeTable)}`;
}

/**
 * The live keys (columns k0, k1, …, distinct), limited to `onKey` (a predicate on the table's
 * columns) when given. A key is dead when its latest version — by cursor, then export time, a
 * tombstone first on a tie, as `<table>_current` orders them — is a tombstone or soft-deleted.
 * `distinct` gives the table's distinct keys (within `onKey`); by default a plain DISTINCT.
 */
function liveKeysSql(keys: LakeKeys, onKey: string | null, distinct?: string): string {
  const table = quoteIdent(keys.lakeTable);
  const names = keyNames(keys);
  const select = keys.key.map((k, i) => `${quoteIdent(k)} AS ${names[i]}`).join(', ');
  const where = onKey === null ? '' : ` WHERE ${onKey}`;
  const distinctKeys = distinct ?? `SELECT DISTINCT ${select} FROM ${table}${where}`;
  const isDead = deadSql(keys);
  // Without tombstones or soft deletes every key's latest version is live.
  if (isDead === null || keys.noneDead === true) return distinctKeys;
  const candidates = `SELECT DISTINCT ${select} FROM ${table} WHERE ${isDead}${onKey === null ? '' : ` AND ${onKey}`}`;
  const order = `"v"."c" DESC, "v"."e" DESC${keys.tombstones ? ', "v"."t" DESC NULLS LAST' : ''}`;
  const ranked = [
    `SELECT ${names.map((n) => `"v".${n}`).join(', ')}, "v"."d", row_number() OVER (PARTITION BY ${names.map((n) => `"v".${n}`).join(', ')} ORDER BY ${order}) AS "r"`,
    `FROM (SELECT ${select}, ${quoteIdent(keys.cursor)} AS "c", ${quoteIdent(META_EXPORTED_AT)} AS "e", ${keys.tombstones ? quoteIdent(META_DELETED) : 'NULL'} AS "t", ${isDead} AS "d" FROM ${table}${where}) AS "v"`,
    `JOIN (${candidates}) AS "dead" ON ${names.map((n) => `"v".${n} = "dead".${n}`).join(' AND ')}`,
  ].join(' ');
  const gone = `SELECT ${names.join(', ')} FROM (${ranked}) AS "latest" WHERE "r" = 1 AND "d"`;
  // Distinct keys, then the (few) dead ones left out: one grouping of the whole table.
  return `SELECT ${names.map((n) => `"keys".${n}`).join(', ')} FROM (${distinctKeys}) AS "keys" `
    + `LEFT JOIN (${gone}) AS "gone" ON ${names.map((n) => `"keys".${n} = "gone".${n}`).join(' AND ')} WHERE "gone".k0 IS NULL`;
}

/**
 * DuckDB: the distinct values (k0, bigint) of a dense integer key within `onKey`, which holds
 * every key at or above `lowest`: grouped 32 to a word — position (key − lowest) >> 5, its bits
 * OR'd together — then each set bit turned back into its key. Exact like DISTINCT, with a
 * grouping 32 times smaller: on a 1M-key table DISTINCT was most of the lake side's time (98 of
 * 150 CPU-ms; by words 31). Dense keys only (the caller's choice): each word yields 32
 * candidates, so sparse keys would multiply the rows. Athena keeps DISTINCT: it bills the bytes
 * it reads, the same either way, and the plain form needs no bit aggregate.
 */
function denseKeysSql(keys: LakeKeys, lowest: bigint, onKey: string): string {
  const p = `(${asBigint(keys.key[0])} - (${lowest.toString()}))`;
  const values = Array.from({ length: 32 }, (_, i) => `(${i}, ${(1n << BigInt(i)).toString()})`).join(', ');
  return `SELECT "words"."w" * 32 + "bit"."i" + (${lowest.toString()}) AS k0 FROM (SELECT ${p} >> 5 AS "w", bit_or(CAST(1 AS BIGINT) << (${p} & 31)) AS "bits" FROM ${quoteIdent(keys.lakeTable)} WHERE ${onKey} GROUP BY ${p} >> 5) AS "words" `
    + `CROSS JOIN (VALUES ${values}) AS "bit" ("i", "m") WHERE ("words"."bits" & "bit"."m") <> 0`;
}

export interface LakeAggregateOptions {
  /**
   * The integer key is dense (about a key per 4 positions or more): DuckDB finds its distinct
   * values by words of 32 (denseKeysSql). @default false
   */
  readonly denseKeys?: boolean;
}

/**
 * The live keys within position `ranges` with their hashes and position: columns k0 …, h1, h2, p.
 * An integer key's ranges are tested on the key before anything else (the engine prunes files by
 * it); a hash position once the hash is computed.
 */
function hashedKeysSql(keys: LakeKeys, line: KeyLine, lowest: bigint, ranges: readonly PositionRange[], options: LakeAggregateOptions = {}): string {
  const names = keyNames(keys);
  const onKey = line.kind === 'integer' ? lakeRangesSql(keys.dialect, asBigint(keys.key[0]), lowest, ranges) : null;
  const live = liveKeysSql(keys, onKey, onKey !== null && options.denseKeys && keys.dialect === 'duckdb' ? denseKeysSql(keys, lowest, onKey) : undefined);
  let hashed: string;
  if (line.hash === 'int8') {
    // Keys known to lie in [0, 2^32) (a range test on them holds them there) skip the seeded steps.
    const unsigned32 = onKey !== null && ranges.every(([a, b]) => a + lowest >= 0n && b + lowest <= 1n << 32n);
    hashed = int8HashLakeSql(keys.dialect, 'CAST(k0 AS BIGINT)', names, live, { unsigned32 });
  } else {
    const md5 = `SELECT ${names.join(', ')}, ${md5HexSql(keys.dialect, keyTextSql(keys.dialect, names))} AS m FROM (${live}) AS "live"`;
    hashed = `SELECT ${names.join(', ')}, ${hexSliceSql(keys.dialect, 'm', 0)} AS h1, ${hexSliceSql(keys.dialect, 'm', 1)} AS h2 FROM (${md5}) AS "md5"`;
  }
  if (line.kind === 'integer') return `SELECT *, (CAST(k0 AS BIGINT) - (${lowest.toString()})) AS p FROM (${hashed}) AS "keys"`;
  // The whole line needs no test (an engine may copy h1's expression, md5 and all, into it).
  const whole = ranges.length === 1 && ranges[0][0] === 0n && ranges[0][1] >= 1n << 32n;
  return `SELECT *, h1 AS p FROM (${hashed}) AS "keys"${whole ? '' : ` WHERE ${lakeRangesSql(keys.dialect, 'h1', 0n, ranges)}`}`;
}

/** Count and hash sums of the live keys within `ranges`, by bucket floor(position / width): b, n, s1, s2. */
export function lakeKeyAggregateSql(keys: LakeKeys, line: KeyLine, lowest: bigint, width: bigint, ranges: readonly PositionRange[], options: LakeAggregateOptions = {}): string {
  // Integer division: DuckDB's `/` is a double's; Trino's `/` on bigints truncates.
  const bucket = keys.dialect === 'duckdb' ? `p // ${width.toString()}` : `p / ${width.toString()}`;
  const [s1, s2] = line.hash === 'int8' ? int8SumsSql(keys.dialect, 'h') : ['sum(h1)', 'sum(h2)'];
  return [
    `SELECT CAST(${bucket} AS VARCHAR) AS b, CAST(count(*) AS VARCHAR) AS n, CAST(${s1} AS VARCHAR) AS s1, CAST(${s2} AS VARCHAR) AS s2`,
    `FROM (${hashedKeysSql(keys, line, lowest, ranges, options)}) AS "positioned"`,
    `GROUP BY ${bucket}`,
  ].join('\n');
}

/** The live keys within `ranges`, each column as text (k0, k1, …). */
export function lakeKeyListSql(keys: LakeKeys, line: KeyLine, lowest: bigint, ranges: readonly PositionRange[]): string {
  const names = keyNames(keys);
  const text = names.map((n) => `CAST(${n} AS VARCHAR) AS ${n}`).join(', ');
  // An integer key is listed without hashing it.
  if (line.kind === 'integer') return `SELECT ${text} FROM (${liveKeysSql(keys, lakeRangesSql(keys.dialect, asBigint(keys.key[0]), lowest, ranges))}) AS "live"`;
  return `SELECT ${text} FROM (${hashedKeysSql(keys, line, lowest, ranges)}) AS "positioned"`;
}
