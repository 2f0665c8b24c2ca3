// Post-commit validation: does the query engine see what a committed run's manifest says it
// published? Two questions, each one aggregate query through the QueryEngine port:
//  (a) rows per partition of the run's files, counted by the engine for the run's _lake_run_id,
//      against the manifest's row counts (a file listed but unreadable, a copy of a file, rows
//      filed where the manifest says none are, a partition the projection does not reach);
//  (b) versions (key, cursor) of the committed window held more than once (what a failed
//      replacement or a stray copy leaves; <table>_current would hide it, the history would not).
// Pure: the engine and the lake's state objects only, so the same check runs in Lambda against
// Athena and on a laptop against DuckDB.
import { CursorZone } from '../cursor-zone.ts';
import { StateError } from '../errors.ts';
import { quoteIdent, quoteLiteral } from '../identifiers.ts';
import { partitionKeysOf, partitionOfKey as partitionOfDataKey, type Granularity, type PartitionDay } from './keys.ts';
import { META_DELETED, META_EXPORTED_AT, META_RUN_ID } from '../page/page-layout.ts';
import type { LakeSchema, QueryEngine, QueryResult } from '../ports.ts';
import type { PendingRun, RunManifest, TableState, Window } from '../protocol/table-state.ts';

export interface PartitionMismatch {
  /** `year=2024/month=02/day=29`, as in the lake's paths. */
  readonly partition: string;
  /** Rows of the run the manifest lists in this partition. */
  readonly expected: number;
  /** Rows with the run's _lake_run_id the engine counts there. */
  readonly seen: number;
}

export interface DuplicateVersion {
  /** Key column (engine name) → value as the engine prints it. */
  readonly key: Readonly<Record<string, string | null>>;
  readonly cursor: string | null;
  readonly copies: number;
  /** Set when the rows held more than once are tombstones (`_lake_deleted`). */
  readonly tombstone?: true;
}

export interface ValidationResult {
  readonly table: string;
  readonly runId: string;
  readonly committedAt: string;
  /** Engine names of the key columns and the cursor column (schema.json). */
  readonly key: readonly string[];
  readonly cursor: string;
  readonly ok: boolean;
  /** Partitions the run's files are in (each compared, matching or not). */
  readonly partitions: number;
  readonly expectedRows: number;
  readonly seenRows: number;
  readonly mismatches: readonly PartitionMismatch[];
  readonly duplicates: {
    /** Versions (key, cursor) held more than once in the committed window. */
    readonly versions: number;
    /** Rows beyond the first copy of each such version. */
    readonly extraRows: number;
    /** The first few, ordered by key and cursor. */
    readonly sample: readonly DuplicateVersion[];
  };
  /** What was not checked, and why (no key, nothing exported). */
  readonly notes: readonly string[];
  /** The SQL sent to the engine, in order. */
  readonly queries: readonly string[];
  readonly bytesScanned: number;
}

export interface ValidateOptions {
  /**
   * The run to check; default: the run of the table's watermark (its last commit). Counts are
   * exact for a run after which no run published files (lastCommittedRun picks one): a later
   * window or full re-run may carry some of its versions into its own files, still under this
   * run's _lake_run_id, and they would count as seen but not listed.
   */
  readonly runId?: string;
  /**
   * The cursorTimeZone the run was exported with (for a `timestamp` cursor: the window's
   * instants become wall-clock bounds in it). Default: the watermark's, else UTC.
   */
  readonly cursorTimeZone?: string;
  /** How many duplicated versions to name. @default 10 */
  readonly sampleSize?: number;
}

const CANONICAL = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(?:\+00)?$/;

/** `year=2024/month=02/day=29`; `year=2024/month=02` for a month partitioned table. */
export function partitionLabel(day: PartitionDay, granularity: Granularity = 'day'): string {
  return partitionKeysOf(granularity).map((k) => `${k.name}=${String(day[k.name]).padStart(k.digits, '0')}`).join('/');
}

function partitionOfKey(table: string, key: string): PartitionDay {
  const day = partitionOfDataKey(key);
  if (!day) throw new StateError(`${table}: manifest file ${key} is not under a year=[/month=[/day=]] partition`);
  return day;
}

/** Rows the run itself exported, by partition label; carried pages add their partitions with 0. */
export function expectedRowsByPartition(table: string, manifest: RunManifest, granularity: Granularity = 'day'): Map<string, { day: PartitionDay; rows: number }> {
  const out = new Map<string, { day: PartitionDay; rows: number }>();
  for (const page of manifest.pages) {
    for (const file of page.files) {
      const day = partitionOfKey(table, file.key);
      const label = partitionLabel(day, granularity);
      const entry = out.get(label) ?? { day, rows: 0 };
      // A carried page keeps earlier runs' versions with their own _lake_run_id.
      out.set(label, { day, rows: entry.rows + (page.carriedFrom ? 0 : file.rows) });
    }
  }
  return out;
}

/**
 * The run to validate: the one the table's watermark names (its last commit) or, when that run
 * published nothing (no new rows), the latest committed run that did — no later run has files,
 * so none can have carried its rows elsewhere and its counts stay exact. Null: nothing committed.
 */
export async function lastCommittedRun(state: TableState): Promise<{ runId: string; cursorTimeZone: string; lastCommit: string } | null> {
  const watermark = await state.watermark();
  if (!watermark) return null;
  const cursorTimeZone = watermark.cursorTimeZone ?? 'UTC';
  const hasFiles = (m: RunManifest | undefined) => m !== undefined && m.pages.some((p) => p.files.length > 0);
  const last = (await state.read<RunManifest>(state.manifestKey(watermark.runId)))?.value;
  if (!last || hasFiles(last)) return { runId: watermark.runId, cursorTimeZone, lastCommit: watermark.runId };
  const publishing = (await state.manifests()).filter(hasFiles).sort((a, b) => a.committedAt.localeCompare(b.committedAt)).at(-1);
  return { runId: publishing?.runId ?? watermark.runId, cursorTimeZone, lastCommit: watermark.runId };
}

/** Count query (a): the run's rows per partition over the years its files are in. */
export function partitionCountSql(lakeTable: string, runId: string, years: { from: number; to: number }, granularity: Granularity = 'day'): string {
  const keys = partitionKeysOf(granularity).map((k) => quoteIdent(k.name));
  const year = keys[0];
  return [
    `SELECT ${keys.join(', ')}, count(*) AS "rows"`,
    `FROM ${quoteIdent(lakeTable)}`,
    // The year range prunes the projection (Athena lists only these years); rows of the run in a
    // partition the manifest does not list are still counted, and reported.
    `WHERE ${quoteIdent(META_RUN_ID)} = ${quoteLiteral(runId)} AND ${year} BETWEEN ${years.from} AND ${years.to}`,
    `GROUP BY ${keys.join(', ')}`,
    `ORDER BY ${keys.join(', ')}`,
  ].join('\n');
}

/**
 * Bounds of a window as engine SQL on the cursor column: `CAST('…' AS TIMESTAMP)` reads the
 * same in Athena (Trino) and DuckDB, and compares with date, timestamp and (DuckDB, session
 * zone UTC) timestamptz columns. A wall-clock cursor's bounds are converted to its zone.
 */
export function windowSql(cursor: string, window: Window, wallZone: CursorZone | null): string[] {
  const bound = (text: string): string | null => {
    const wall = wallZone ? wallZone.wallOf(text) : text;
    const match = CANONICAL.exec(wall);
    return match ? `CAST(${quoteLiteral(match[1])} AS TIMESTAMP)` : null; // ±infinity: unbounded
  };
  const column = quoteIdent(cursor);
  const out = [`${column} IS NOT NULL`];
  const from = window.from === null ? null : bound(window.from);
  if (from) out.push(`${column} ${window.fromInclusive ? '>=' : '>'} ${from}`);
  const to = bound(window.to);
  if (to) out.push(`${column} <= ${to}`);
  return out;
}

/**
 * Duplicate query (b): versions held more than once, how many in all, the first few named. With
 * `tombstones` (the schema declares `_lake_deleted`), a tombstone and a live version of one key
 * are told apart: a tombstone's cursor is its run's window end, and a version the same run read
 * at that very cursor before the key was deleted is another fact, not a copy. Two tombstones of
 * one key and cursor are still a duplicate.
 */
export function duplicateSql(lakeTable: string, schema: Pick<LakeSchema, 'key' | 'cursor'> & { readonly tombstones?: boolean }, where: readonly string[], sampleSize: number): string {
  const keys = schema.key.map(quoteIdent);
  const cursor = quoteIdent(schema.cursor);
  const groups = [...keys, cursor];
  const shown = [...keys.map((k, i) => `CAST(${k} AS VARCHAR) AS "k${i}"`), `CAST(${cursor} AS VARCHAR) AS "cursor"`];
  if (schema.tombstones) {
    const deleted = `coalesce(${quoteIdent(META_DELETED)}, false)`;
    groups.push(deleted);
    shown.push(`${deleted} AS "deleted"`);
  }
  return [
    `SELECT ${shown.join(', ')}, count(*) AS "copies", count(*) OVER () AS "versions", sum(count(*) - 1) OVER () AS "extra"`,
    `FROM ${quoteIdent(lakeTable)}`,
    `WHERE ${where.join(' AND ')}`,
    `GROUP BY ${groups.join(', ')}`,
    'HAVING count(*) > 1',
    `ORDER BY ${groups.join(', ')}`,
    `LIMIT ${sampleSize}`,
  ].join('\n');
}

function integer(result: QueryResult, row: readonly (string | null)[], column: string): number {
  const index = result.columns.findIndex((c) => c.name === column);
  const text = index < 0 ? null : row[index];
  const value = Number(text);
  if (text === null || !Number.isSafeInteger(value)) {
    throw new StateError(`the engine answered ${JSON.stringify(text ?? null)} for ${column}, not a count${result.queryId ? ` (query ${result.queryId})` : ''}`);
  }
  return value;
}

/** A duplicated version in words: `id=5, cursor 2024-02-29 23:59:59.999999+00 ×2`. */
export function describeDuplicate(d: DuplicateVersion, cursorName: string): string {
  const key = Object.entries(d.key).map(([k, v]) => `${k}=${v ?? 'NULL'}`).join(', ');
  return `${key}, ${cursorName} ${d.cursor ?? 'NULL'} ×${d.copies}${d.tombstone ? ' (tombstone)' : ''}`;
}

/**
 * Check a committed run against what the engine sees (module comment). Throws StateError when
 * the run has no manifest (not committed, or its roll-forward pending) or the schema is missing.
 */
export async function validateRun(engine: QueryEngine, state: TableState, options: ValidateOptions = {}): Promise<ValidationResult> {
  const table = state.lakeTable;
  const watermark = await state.watermark();
  const runId = options.runId ?? watermark?.runId;
  if (runId === undefined) throw new StateError(`${table}: nothing committed yet, nothing to validate`);
  const manifest = (await state.read<RunManifest>(state.manifestKey(runId)))?.value;
  if (!manifest) {
    const pending = await state.read<PendingRun>(state.pendingRunKey(runId));
    if (pending && watermark?.runId === runId) throw new StateError(`${table}: run ${runId} is committed but not finished (no manifest yet); the next run finishes it, validate after that`);
    throw new StateError(`${table}: run ${runId} has no manifest (${state.store.url}${state.manifestKey(runId)}): it never committed, or a later re-run replaced all its pages`);
  }
  const schema = (await state.read<Partial<LakeSchema>>(state.schemaKey()))?.value;
  if (!schema?.cursor || !schema.key) throw new StateError(`${table}: ${state.schemaKey()} does not name the key and cursor columns (written by commits since the current-state views); run an export first`);
  const sampleSize = options.sampleSize ?? 10;
  const queries: string[] = [];
  let bytesScanned = 0;
  const ask = async (sql: string): Promise<QueryResult> => {
    queries.push(sql);
    const result = await engine.query(sql);
    bytesScanned += result.bytesScanned;
    return result;
  };
  const notes: string[] = [];

  // (a) rows per partition.
  // A month or year partitioned table (tables[].partition) has no day (or month) column.
  const granularity = schema.granularity ?? 'day';
  const expected = expectedRowsByPartition(table, manifest, granularity);
  const seen = new Map<string, number>();
  if (expected.size > 0) {
    const years = [...expected.values()].map((e) => e.day.year);
    const result = await ask(partitionCountSql(table, runId, { from: Math.min(...years), to: Math.max(...years) }, granularity));
    const has = (name: string) => result.columns.some((c) => c.name === name);
    for (const row of result.rows) {
      const day = { year: integer(result, row, 'year'), month: has('month') ? integer(result, row, 'month') : 1, day: has('day') ? integer(result, row, 'day') : 1 };
      seen.set(partitionLabel(day, granularity), integer(result, row, 'rows'));
    }
  } else {
    notes.push('the run published no files: no partition to count');
  }
  const labels = [...new Set([...expected.keys(), ...seen.keys()])].sort();
  const mismatches = labels
    .map((partition) => ({ partition, expected: expected.get(partition)?.rows ?? 0, seen: seen.get(partition) ?? 0 }))
    .filter((m) => m.expected !== m.seen);

  // (b) duplicated versions in the committed window.
  let duplicates: ValidationResult['duplicates'] = { versions: 0, extraRows: 0, sample: [] };
  if (schema.key.length === 0) {
    notes.push('the table has no primary key: duplicates of (key, cursor) cannot be told apart from distinct rows');
  } else if (expected.size > 0) {
    // A snapshot's cursor is the export time, outside any cursor window: its folder is the run.
    const snapshot = schema.cursor === META_EXPORTED_AT;
    const cursorType = schema.columns?.find((c) => c.name === schema.cursor)?.type;
    const zoneName = options.cursorTimeZone ?? (watermark?.runId === runId ? watermark.cursorTimeZone : undefined) ?? 'UTC';
    const wallZone = cursorType === 'timestamp' && zoneName !== 'UTC' ? new CursorZone(zoneName) : null;
    const where = snapshot ? ['true'] : windowSql(schema.cursor, manifest.window, wallZone);
    // Schemas committed before tombstones existed do not declare the column (and hold none).
    const tombstones = schema.columns?.some((c) => c.name === META_DELETED) ?? false;
    const result = await ask(duplicateSql(table, { key: schema.key, cursor: schema.cursor, tombstones }, where, sampleSize));
    const index = (name: string) => result.columns.findIndex((c) => c.name === name);
    const sample = result.rows.map((row): DuplicateVersion => ({
      key: Object.fromEntries(schema.key!.map((k, i) => [k, row[index(`k${i}`)] ?? null])),
      cursor: row[index('cursor')] ?? null,
      copies: integer(result, row, 'copies'),
      ...(tombstones && row[index('deleted')] === 'true' ? { tombstone: true as const } : {}),
    }));
    const first = result.rows[0];
    duplicates = first ? { versions: integer(result, first, 'versions'), extraRows: integer(result, first, 'extra'), sample } : duplicates;
  }
  const expectedRows = [...expected.values()].reduce((n, e) => n + e.rows, 0);
  const seenRows = [...seen.values()].reduce((n, s) => n + s, 0);
  return {
    table, runId, committedAt: manifest.committedAt, key: schema.key, cursor: schema.cursor,
    ok: mismatches.length === 0 && duplicates.versions === 0,
    partitions: expected.size, expectedRows, seenRows, mismatches, duplicates, notes, queries, bytesScanned,
  };
}

/** The result in a few lines for a person: what was checked, and every problem by name. */
export function describeValidation(result: ValidationResult): string[] {
  const cursorName = result.cursor;
  const lines: string[] = [];
  const verdict = result.ok ? 'ok' : 'MISMATCH';
  lines.push(`${result.table}: ${verdict}: run ${result.runId} (committed ${result.committedAt}): ${result.partitions} partition${result.partitions === 1 ? '' : 's'}, ${result.expectedRows} rows expected, ${result.seenRows} seen; ${result.duplicates.versions} duplicated version${result.duplicates.versions === 1 ? '' : 's'}; ${result.queries.length} quer${result.queries.length === 1 ? 'y' : 'ies'}, ${result.bytesScanned} bytes scanned`);
  for (const m of result.mismatches) lines.push(`  ${result.table} ${m.partition}: manifest lists ${m.expected} rows of run ${result.runId}, the engine sees ${m.seen}`);
  if (result.duplicates.versions > 0) {
    lines.push(`  ${result.table}: ${result.duplicates.versions} version${result.duplicates.versions === 1 ? '' : 's'} (key, ${cursorName}) held more than once (${result.duplicates.extraRows} extra rows):`);
    for (const d of result.duplicates.sample) lines.push(`    ${describeDuplicate(d, cursorName)}`);
    if (result.duplicates.sample.length < result.duplicates.versions) lines.push(`    … and ${result.duplicates.versions - result.duplicates.sample.length} more`);
  }
  for (const note of result.notes) lines.push(`  ${result.table}: note: ${note}`);
  return lines;
}
