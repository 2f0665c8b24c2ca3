// All the SQL the export protocol sends to Postgres, built from a checked TableShape: the keyset
// page, the window's predicates and the commit checks. Identifiers are quoted, values are
// literals (quoteLiteral) or bind parameters; nothing else reaches the server.
import { SchemaMismatchError } from '../errors.ts';
import { quoteIdent, quoteLiteral, quoteQualified } from '../identifiers.ts';
import type { Window } from '../protocol/table-state.ts';
import type { CatalogColumn } from './type-map.ts';
import type { TableShape } from './table-shape.ts';
import { hexSliceSql, int8HashPostgresSql, int8SlicesPostgresSql, int8SumsSql, keyTextSql, md5HexSql, rangesPredicate, type KeyLine } from '../lake/key-hash.ts';

/** Cursor predicates of a window; bounds are literals cast to timestamptz. */
export function windowPredicates(shape: TableShape, window: Window): string[] {
  const out: string[] = [];
  if (shape.cursor) {
    const cursor = quoteIdent(shape.cursor.name);
    // Bounds are instants; a timestamp cursor's wall clock is compared in its own zone.
    const bound = shape.cursor.typeName === 'timestamp' && shape.zone && !shape.zone.utc
      ? (text: string) => `(${quoteLiteral(text)}::timestamptz AT TIME ZONE ${quoteLiteral(shape.zone!.name)})`
      : (text: string) => `${quoteLiteral(text)}::timestamptz`;
    out.push(`${cursor} IS NOT NULL`);
    if (window.from !== null) out.push(`${cursor} ${window.fromInclusive ? '>=' : '>'} ${bound(window.from)}`);
    out.push(`${cursor} <= ${bound(window.to)}`);
  }
  if (shape.table.config.where) out.push(`(${shape.table.config.where})`);
  if (out.length === 0) out.push('true');
  return out;
}

/** The keyset page: rows after `after` in (cursor, pk…) order — pk alone for snapshots — at most `limit`. */
export function pageQuery(shape: TableShape, window: Window, after: readonly string[] | null, limit: number, range?: KeyRange): string {
  const keyCols = shape.cursor ? [shape.cursor, ...shape.keyColumns] : [...shape.keyColumns];
  const predicates = windowPredicates(shape, window);
  if (range) predicates.push(...rangePredicates(shape, range));
  if (after) {
    if (after.length !== keyCols.length) throw new SchemaMismatchError(`${shape.table.display}: resume key has ${after.length} values, the key has ${keyCols.length} columns`);
    const left = keyCols.map((c) => quoteIdent(c.name)).join(', ');
    const right = keyCols.map((c, i) => `${quoteLiteral(after[i])}::${c.formatted}`).join(', ');
    predicates.push(`(${left}) > (${right})`);
  }
  // ORDER BY reads a bare name as the output column first: a key selected as `"k"::text` would
  // page in text order while the keyset compares in the column's own. Qualified, it is the table's.
  const table = quoteQualified(shape.table.name);
  return `SELECT ${shape.layout.columns.map((c) => c.select).join(', ')} FROM ${table} WHERE ${predicates.join(' AND ')} ORDER BY ${keyCols.map((c) => `${table}.${quoteIdent(c.name)}`).join(', ')} LIMIT ${limit}`;
}

/**
 * Rows of the window whose key has a NULL in a column that allows one (a user-asserted key):
 * a keyset cannot page past them exactly, so the table fails rather than lose rows. Counted
 * with the cursor of a few of them, for the message. Null when every key column is NOT NULL.
 */
export function nullKeyQuery(shape: TableShape, window: Window): { count: string; sample: string; columns: string[] } | null {
  const nullable = shape.keyColumns.filter((c) => !c.notNull);
  if (nullable.length === 0) return null;
  const table = quoteQualified(shape.table.name);
  const cond = `(${nullable.map((c) => `${quoteIdent(c.name)} IS NULL`).join(' OR ')}) AND ${windowPredicates(shape, window).join(' AND ')}`;
  const shown = shape.cursor ?? shape.keyColumns.find((c) => c.notNull) ?? null;
  return {
    columns: nullable.map((c) => c.name),
    count: `SELECT count(*)::text AS n FROM ${table} WHERE ${cond}`,
    sample: shown ? `SELECT ${quoteIdent(shown.name)}::text AS at FROM ${table} WHERE ${cond} LIMIT 3` : `SELECT NULL::text AS at LIMIT 0`,
  };
}

/**
 * Key values of a user-asserted primaryKey that more than one row of the window holds (at most
 * three, with their counts). Null when the key is the table's own primary key.
 */
export function duplicateKeyQuery(shape: TableShape, window: Window): string | null {
  if (!shape.keyAsserted) return null;
  const keys = shape.keyColumns.map((c) => quoteIdent(c.name));
  const shown = shape.keyColumns.map((c) => `${quoteLiteral(`${c.name}=`)} || coalesce(${quoteIdent(c.name)}::text, 'NULL')`).join(` || ', ' || `);
  return `SELECT ${shown} AS key, count(*)::text AS n FROM ${quoteQualified(shape.table.name)} WHERE ${windowPredicates(shape, window).join(' AND ')} GROUP BY ${keys.join(', ')} HAVING count(*) > 1 ORDER BY count(*) DESC LIMIT 3`;
}

/** A timestamp text ($1) as the canonical cursor text: UTC, µs, fixed width. */
export const CANONICAL_CURSOR_SQL = `SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t`;

/** checks.notNull: up to five keys of the window's rows whose `column` is NULL. */
export function checkNotNullQuery(shape: TableShape, window: Window, column: string): string {
  const keys = shape.keyColumns.map((c) => `${quoteIdent(c.name)}::text`).join(` || ',' || `);
  return `SELECT ${keys} AS key FROM ${quoteQualified(shape.table.name)} WHERE ${windowPredicates(shape, window).join(' AND ')} AND ${quoteIdent(column)} IS NULL LIMIT 5`;
}

/** checks.unique: up to five values of `column` that more than one row of the window holds. */
export function checkUniqueQuery(shape: TableShape, window: Window, column: string): string {
  return `SELECT ${quoteIdent(column)}::text AS value, count(*)::text AS n FROM ${quoteQualified(shape.table.name)} WHERE ${windowPredicates(shape, window).join(' AND ')} GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 5`;
}

/**
 * Rows no window will ever hold because their cursor is NULL or 'infinity' (it never falls
 * below a window's end): counted and a few keys shown.
 */
export function nullCursorQuery(shape: TableShape & { cursor: CatalogColumn }, sampleSize: number): { count: string; sample: string } {
  const table = quoteQualified(shape.table.name);
  const cursor = quoteIdent(shape.cursor.name);
  const cond = [`(${cursor} IS NULL OR ${cursor} = 'infinity')`];
  if (shape.table.config.where) cond.push(`(${shape.table.config.where})`);
  const keys = shape.keyColumns.map((c) => `${quoteIdent(c.name)}::text`).join(` || ',' || `);
  return {
    count: `SELECT count(*)::text AS n FROM ${table} WHERE ${cond.join(' AND ')}`,
    sample: `SELECT ${keys} AS key FROM ${table} WHERE ${cond.join(' AND ')} LIMIT ${sampleSize}`,
  };
}


/**
 * A backfill segment's share of the keyset: keys from `from` (inclusive) up to `to`
 * (exclusive), each a prefix of the (cursor, pk…) key as texts (null: unbounded); for CTID
 * segments, heap blocks [blocks.from, blocks.to).
 */
export interface KeyRange {
  readonly from: readonly string[] | null;
  readonly to: readonly string[] | null;
  readonly blocks?: { readonly from: number; readonly to: number | null };
}

/** The keyset's columns, in page order: (cursor, pk…), or the pk alone for a snapshot. */
export function keysetColumns(shape: TableShape): CatalogColumn[] {
  return shape.cursor ? [shape.cursor, ...shape.keyColumns] : [...shape.keyColumns];
}

/** Row comparisons that keep a page inside its segment (same-length prefixes of the keyset). */
export function rangePredicates(shape: TableShape, range: KeyRange): string[] {
  const keyCols = keysetColumns(shape);
  const compare = (bound: readonly string[], op: '>=' | '<') => {
    if (bound.length === 0 || bound.length > keyCols.length) throw new SchemaMismatchError(`${shape.table.display}: a segment bound has ${bound.length} values, the key has ${keyCols.length} columns`);
    const cols = keyCols.slice(0, bound.length);
    return `(${cols.map((c) => quoteIdent(c.name)).join(', ')}) ${op} (${cols.map((c, i) => `${quoteLiteral(bound[i])}::${c.formatted}`).join(', ')})`;
  };
  const out: string[] = [];
  if (range.from) out.push(compare(range.from, '>='));
  if (range.to) out.push(compare(range.to, '<'));
  if (range.blocks) {
    if (range.blocks.from > 0) out.push(`ctid >= '(${Math.trunc(range.blocks.from)},0)'::tid`);
    if (range.blocks.to !== null) out.push(`ctid < '(${Math.trunc(range.blocks.to)},0)'::tid`);
  }
  return out;
}

/**
 * The planner's size estimate of a table (pg_class.reltuples, -1 when never analyzed; its heap
 * blocks from the file size, summed over a partitioned table's partitions), for choosing a
 * backfill. $1: the quoted qualified name.
 */
export const TABLE_ESTIMATE_SQL = `SELECT c.reltuples::float8::text AS rows, ((CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t) ELSE pg_relation_size(c.oid) END) / current_setting('block_size')::int)::text AS blocks FROM pg_class c WHERE c.oid = $1::regclass`;

/**
 * The leading keyset column's histogram (pg_stats, from the last ANALYZE; a partitioned table's
 * are its inherited statistics): equal-frequency bounds, in order. $1 schema, $2 table, $3 column.
 */
export const HISTOGRAM_BOUNDS_SQL = `SELECT u.b AS bound FROM pg_stats s, unnest(s.histogram_bounds::text::text[]) WITH ORDINALITY AS u(b, i) WHERE s.schemaname = $1 AND s.tablename = $2 AND s.attname = $3 AND s.inherited = (SELECT c.relkind = 'p' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2) ORDER BY u.i`;

/** A block sample of the window's keys (TABLESAMPLE SYSTEM, `percent` of the heap), in keyset order. */
export function sampledKeysQuery(shape: TableShape, window: Window, percent: number): string {
  const table = quoteQualified(shape.table.name);
  const keyCols = keysetColumns(shape);
  const pct = Math.min(100, Math.max(0.000001, percent)).toFixed(6);
  return `SELECT ${keyCols.map((c, i) => `${table}.${quoteIdent(c.name)}::text AS k${i}`).join(', ')} FROM ${table} TABLESAMPLE SYSTEM (${pct}) WHERE ${windowPredicates(shape, window).join(' AND ')} ORDER BY ${keyCols.map((c) => `${table}.${quoteIdent(c.name)}`).join(', ')}`;
}

/**
 * Delete detection, the source side (README "Deletes"): count and hash sums of the table's keys
 * within position `ranges`, by bucket floor(position / width) (key-hash.ts says which hash).
 * Every row counts, whatever its cursor (a key updated since the window still exists); `where`
 * applies, so a row that no longer matches it counts as deleted.
 *
 * An integer key's buckets are key ranges: each is one aggregate over an index-only scan of the
 * primary key (a LATERAL subquery per bucket), with no per-row grouping — Postgres's hash
 * aggregate costs more per row than the hash itself. Index-only as long as the table's
 * visibility map is current (autovacuum keeps it so) and `where` reads no other column.
 */
export function keyAggregateQuery(shape: TableShape, line: KeyLine, lowest: bigint, width: bigint, ranges: readonly (readonly [bigint, bigint])[]): string {
  const keys = shape.keyColumns.map((c) => c.name);
  const where = shape.table.config.where ? [`(${shape.table.config.where})`] : [];
  const table = quoteQualified(shape.table.name);
  if (line.kind === 'integer') {
    const buckets = keyBuckets(width, ranges);
    if (buckets.length <= MAX_LATERAL_BUCKETS) {
      const key = quoteIdent(keys[0]);
      const [s1, s2] = int8SumsSql('postgres', 'h');
      const values = buckets.map(([b, start, end]) => `(${b.toString()}::int8, ${(start + lowest).toString()}::int8, ${(end + lowest).toString()}::int8)`);
      const inner = `SELECT ${int8HashPostgresSql(keys[0])} AS h FROM ${table} WHERE ${[`${key} >= "r"."lo"`, `${key} < "r"."hi"`, ...where].join(' AND ')} OFFSET 0`;
      // OFFSET 0 keeps a single bucket's bounds parameters: inlined as constants spanning the
      // whole table they would make the planner prefer a sequential scan of the heap.
      // Summed by bucket: two ranges may share one (not the bisection's, whose ranges are whole buckets of the level above).
      return `SELECT "r"."b"::text AS b, sum("a"."n")::text AS n, sum("a"."s1")::text AS s1, sum("a"."s2")::text AS s2 FROM (SELECT * FROM (VALUES ${values.join(', ')}) AS "v" ("b", "lo", "hi") OFFSET 0) AS "r" `
        + `CROSS JOIN LATERAL (SELECT count(*) AS n, ${s1} AS s1, ${s2} AS s2 FROM (${inner}) AS "keys") AS "a" GROUP BY "r"."b" HAVING sum("a"."n") > 0`;
    }
  }
  const h1 = line.hash === 'int8' ? int8SlicesPostgresSql('h')[0] : hexSliceSql('postgres', 'h', 0);
  const [s1, s2] = line.hash === 'int8' ? int8SumsSql('postgres', 'h') : [`sum(${h1})`, `sum(${hexSliceSql('postgres', 'h', 1)})`];
  const hash = line.hash === 'int8' ? int8HashPostgresSql(keys[0]) : md5HexSql('postgres', keyTextSql('postgres', keys));
  const position = line.kind === 'integer' ? `(${quoteIdent(keys[0])}::int8 - (${lowest.toString()}))` : null;
  const onKey = line.kind === 'integer' ? [rangesPredicate(quoteIdent(keys[0]), lowest, ranges)] : [];
  // OFFSET 0: the hash is computed once per row, not copied into each sum and range test.
  const inner = `SELECT ${hash} AS h${position ? `, ${position} AS p` : ''} FROM ${table}${[...onKey, ...where].length ? ` WHERE ${[...onKey, ...where].join(' AND ')}` : ''} OFFSET 0`;
  const positioned = position ? `(${inner})` : `(SELECT ${h1} AS p, * FROM (${inner}) AS "hashed" WHERE ${rangesPredicate(h1, 0n, ranges)})`;
  return `SELECT (p / ${width.toString()})::text AS b, count(*)::text AS n, (${s1})::text AS s1, (${s2})::text AS s2 FROM ${positioned} AS "keys" GROUP BY p / ${width.toString()}`;
}

/** Buckets (LATERAL subqueries) one aggregate query asks at most; more are grouped by hash instead. */
const MAX_LATERAL_BUCKETS = 4096;

/** The buckets [number, start, end) of width `width` that position `ranges` cover, each cut to its range. */
export function keyBuckets(width: bigint, ranges: readonly (readonly [bigint, bigint])[]): [bigint, bigint, bigint][] {
  const out: [bigint, bigint, bigint][] = [];
  for (const [start, end] of ranges) {
    for (let b = start / width; b * width < end; b++) {
      out.push([b, b * width > start ? b * width : start, (b + 1n) * width < end ? (b + 1n) * width : end]);
      if (out.length > MAX_LATERAL_BUCKETS) return out;
    }
  }
  return out;
}

/** Delete detection: the key values (text, one column each: k0, k1, …) within position `ranges`. */
export function keyListQuery(shape: TableShape, line: KeyLine, lowest: bigint, ranges: readonly (readonly [bigint, bigint])[]): string {
  const keys = shape.keyColumns.map((c) => c.name);
  const where = shape.table.config.where ? [`(${shape.table.config.where})`] : [];
  const table = quoteQualified(shape.table.name);
  const select = keys.map((c, i) => `${quoteIdent(c)}::text AS k${i}`).join(', ');
  // An integer key's ranges are tested on the key itself, where its index serves them; no hash.
  if (line.kind === 'integer') return `SELECT ${select} FROM ${table} WHERE ${[rangesPredicate(quoteIdent(keys[0]), lowest, ranges), ...where].join(' AND ')}`;
  const h1 = line.hash === 'int8' ? int8SlicesPostgresSql(int8HashPostgresSql(keys[0]))[0] : hexSliceSql('postgres', md5HexSql('postgres', keyTextSql('postgres', keys)), 0);
  const inner = `SELECT ${h1} AS p, ${select} FROM ${table}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} OFFSET 0`;
  return `SELECT ${keys.map((_, i) => `k${i}`).join(', ')} FROM (${inner}) AS "keys" WHERE ${rangesPredicate('p', 0n, ranges)}`;
}

/**
 * A tombstone's cursor value, from the window's end (an instant, text): µs since 1970 of a
 * timestamp cursor (a `timestamp` one as its wall clock in the cursor's zone), days since 1970
 * of a date cursor; as `v`.
 */
export function tombstoneCursorQuery(shape: TableShape & { cursor: CatalogColumn }, windowEnd: string): string {
  const instant = `${quoteLiteral(windowEnd)}::timestamptz`;
  const zone = quoteLiteral(shape.zone?.name ?? 'UTC');
  switch (shape.cursor.typeName) {
    case 'timestamptz':
      return `SELECT (extract(epoch FROM ${instant}) * 1000000)::int8::text AS v`;
    case 'timestamp':
      return `SELECT (extract(epoch FROM (${instant} AT TIME ZONE ${zone})) * 1000000)::int8::text AS v`;
    default:
      return `SELECT ((${instant} AT TIME ZONE ${zone})::date - date '1970-01-01')::text AS v`;
  }
}

/**
 * The table's heap file node: a rewrite (CLUSTER, VACUUM FULL, pg_repack) changes it and moves
 * every row to other blocks, so by: ctid segments planned before no longer cover the rows.
 */
export function heapFileNodeQuery(shape: TableShape): { text: string; values: string[] } {
  return { text: 'SELECT pg_relation_filenode($1::regclass)::text AS node', values: [quoteQualified(shape.table.name)] };
}
