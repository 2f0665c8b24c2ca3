// Deletes without CDC (README "Deletes"): once a scheduled run's pages are exported, compare the
// keys Postgres holds with the keys whose latest lake version is live, and write a tombstone for
// every key gone from Postgres — as pages of the run itself, journalled and staged like its
// exported pages, published by its commit. A crash, a retry or a copy of the step delivered
// twice therefore neither loses nor doubles a tombstone: the run's detection is kept
// (pending/<run>/deletes.json, written once) before any tombstone, and each tombstone page is
// staged, then journalled once, so every attempt writes the same keys under the same page
// numbers and the first journal of a page stands; nothing is visible before commit.
//
// The rule for concurrent writers. Detection runs after the run's window (W, U] is read, against
// the lake as last committed (versions up to W) and Postgres as it is now (time T ≥ U):
//   - a key counts as deleted only if Postgres holds no row for it at all at T (whatever its
//     cursor), so a key inserted or updated after U — not yet in the lake, or newer than the
//     lake's version — is never taken for a delete;
//   - the tombstone's cursor is U, the run's window end. Every version this or an earlier run
//     exported has a cursor ≤ U, so the tombstone is the key's latest version (on a tie with a
//     version this run read before the delete, `<table>_current` ranks the tombstone first);
//     a row written after detection has a cursor > U (its transaction began after the window's
//     end was taken: the plan holds U back to the oldest open writer), so it is newer than the
//     tombstone and the key is live again from the next run on;
//   - a key this run exported and Postgres deleted before T is not in the committed lake yet:
//     the next detection finds it (its version is committed by then);
//   - a key deleted and inserted again between two detections was never seen gone: without CDC
//     there is no event to see. The history then shows no delete for it.
// Rows that stop matching tables[].where count as deleted: the lake holds what the where holds.
import { ConfigError, ExportError } from '../errors.ts';
import type { LakeSchema, QueryEngine } from '../ports.ts';
import { findMissingKeys, type BisectResult, type KeySide, type PositionRange, type RangeAggregate } from '../lake/key-bisect.ts';
import { keyLineOf, keyLineProblem, type KeyLine } from '../lake/key-hash.ts';
import { engineDialect, lakeKeyAggregateSql, lakeKeyListSql, lakeKeySpanSql, lakeKeysOf, type LakeAggregateOptions, type LakeKeys } from '../lake/key-queries.ts';
import { dataFileKey, dayFromEpochDays } from '../lake/keys.ts';
import { liveDataLocation } from './compact.ts';
import type { TableShape } from '../source/table-shape.ts';
import { keyAggregateQuery, keyListQuery, tombstoneCursorQuery } from '../source/queries.ts';
import type { PageEntry, RunManifest, TableState, Window } from './table-state.ts';
import { newWriterId, withPage, type ExportDeps, type TableTask } from './run-model.ts';

/** What delete detection adds to the export's dependencies: the engine that reads the lake. */
export interface DeleteDetectionDeps {
  /** Athena when deployed, DuckDB over the local lake; needed by tables with deletes.detect. */
  readonly engine?: QueryEngine;
}

/** A tombstone page's journal entry (and manifest page): marked, so runs can count their deletes. */
export interface TombstonePageEntry extends PageEntry {
  readonly tombstones: true;
}

/** Tombstones among a run's pages (its marked pages' rows). */
export function tombstonesIn(pages: readonly PageEntry[]): number {
  return pages.reduce((n, p) => n + ('tombstones' in p && p.tombstones === true ? p.rows : 0), 0);
}

/** Tombstones a committed run wrote (its manifest's marked pages); 0 when it has no manifest. */
export async function tombstonesOfRun(state: TableState, runId: string): Promise<number> {
  return tombstonesIn((await state.read<RunManifest>(state.manifestKey(runId)))?.value.pages ?? []);
}

/**
 * Detection gets an invocation of its own when less than this remains of the current one: it
 * reads every key on both sides (Athena: several queries of seconds each).
 */
const DETECTION_RESERVE_MILLIS = 120_000;

/** Keys a position range query may span at most before the line is a hash (int8 arithmetic stays exact). */
const MAX_INTEGER_SPAN = 1n << 62n;

/** A window end or start (canonical cursor text, UTC) in ms since 1970; NaN when unreadable. */
function instantMillis(text: string): number {
  const match = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d{1,3})?\d*(\+00|Z)?$/.exec(text);
  return match ? Date.parse(`${match[1]}T${match[2]}${match[3] ?? ''}Z`) : Number.NaN;
}

/**
 * Whether this run looks for deletes: every run, or, with `every: h`, the run whose window
 * crosses a multiple of h hours since 1970 (UTC) — one run per period, whichever runs when, and a
 * failed run's replacement starts from the same watermark, so the period is not skipped. The
 * first run of a table has nothing in the lake to compare.
 */
export function deletesDue(every: 'run' | number, window: Window): boolean {
  if (window.from === null) return false;
  if (every === 'run') return true;
  const period = every * 3_600_000;
  const from = instantMillis(window.from);
  const to = instantMillis(window.to);
  if (Number.isNaN(from) || Number.isNaN(to)) return true;
  return Math.floor(to / period) > Math.floor(from / period);
}

const readAggregates = (rows: readonly (readonly (string | null)[])[]): Map<bigint, RangeAggregate> =>
  new Map(rows.map((r) => [BigInt(r[0] ?? '0'), { count: Number(r[1] ?? 0), sum1: r[2] ?? '0', sum2: r[3] ?? '0' }]));

/** The source side: Postgres through the row source. */
function sourceSide(deps: ExportDeps, shape: TableShape, line: KeyLine, lowest: bigint): KeySide {
  return {
    async aggregate(width, ranges) {
      const rows = await deps.source.queryText(keyAggregateQuery(shape, line, lowest, width, ranges ?? []));
      return readAggregates(rows.map((r) => [r.b, r.n, r.s1, r.s2]));
    },
    async keys(ranges) {
      const rows = await deps.source.queryText(keyListQuery(shape, line, lowest, ranges));
      return rows.map((r) => shape.keyColumns.map((_, i) => r[`k${i}`] ?? ''));
    },
  };
}

/** The lake side: the lake table's live keys (those of `<table>_current`) through the query engine. */
function lakeSide(engine: QueryEngine, keys: LakeKeys, line: KeyLine, lowest: bigint, options: LakeAggregateOptions): KeySide {
  return {
    async aggregate(width, ranges) {
      return readAggregates((await engine.query(lakeKeyAggregateSql(keys, line, lowest, width, ranges ?? [], options))).rows);
    },
    async keys(ranges: readonly PositionRange[]) {
      return (await engine.query(lakeKeyListSql(keys, line, lowest, ranges))).rows.map((r) => r.map((v) => v ?? ''));
    },
  };
}

export interface Detection extends BisectResult {
  readonly line: KeyLine['kind'];
  readonly millis: number;
  /** Time spent waiting on each side's queries (they run side by side: the sum may exceed millis). */
  readonly sideMillis: { readonly lake: number; readonly source: number };
}

/** The keys `<table>_current` holds live that the source no longer has. */
export async function findDeletedKeys(deps: ExportDeps & DeleteDetectionDeps, shape: TableShape, schema: LakeSchema, lakeTable: string): Promise<Detection> {
  const started = Date.now();
  const engine = deps.engine;
  if (!engine) throw new ConfigError(`${shape.table.display}: tables[].deletes.detect needs the query engine that reads the lake (Athena when deployed, DuckDB locally), and this step has none`);
  const problem = keyLineProblem(shape.table.display, shape.keyColumns);
  if (problem) throw new ConfigError(problem);
  if (schema.key.length !== shape.keyColumns.length) throw new ExportError(`${shape.table.display}: the lake's key (${schema.key.join(', ')}) is not the table's (${shape.keyColumns.map((c) => c.name).join(', ')}); re-export it with {"full": true}`);
  let keys = lakeKeysOf(engineDialect(engine), lakeTable, schema);
  let line = keyLineOf(shape.keyColumns);
  const timed = { lake: 0, source: 0 };
  let lowest = 0n;
  let span = 1n << 32n;
  let spanQueries = 0;
  let denseKeys = false;
  if (line.kind === 'integer') {
    // The line runs over the lake's keys (every version: a cheap min/max): the source's keys
    // past them (inserted since) are not compared, so they do not make every run bisect.
    const spanStarted = Date.now();
    const [row] = (await engine.query(lakeKeySpanSql(keys))).rows;
    timed.lake += Date.now() - spanStarted;
    spanQueries = 1;
    if (row?.[0] === null || row?.[0] === undefined || row[1] === null || row[1] === undefined) {
      return { missing: [], aggregateQueries: { lake: 1, source: 0 }, keyQueries: { lake: 0, source: 0 }, levels: 0, line: line.kind, millis: Date.now() - started, sideMillis: timed };
    }
    lowest = BigInt(row[0]);
    span = BigInt(row[1]) - lowest + 1n;
    // A key a position in 4 or closer: distinct keys by words of 32 bits (lake/key-queries.ts).
    denseKeys = BigInt(row[2] ?? '0') * 4n >= span;
    // No tombstone nor soft delete anywhere: the live keys are the distinct keys.
    if (row[3] === '0') keys = { ...keys, noneDead: true };
    // Keys spread wider than int8 arithmetic allows: place them by their hash like any other key.
    if (span > MAX_INTEGER_SPAN) {
      line = { kind: 'hash', hash: line.hash };
      denseKeys = false;
      lowest = 0n;
      span = 1n << 32n;
    }
  }
  const result = await findMissingKeys(timedSide(lakeSide(engine, keys, line, lowest, { denseKeys }), timed, 'lake'), timedSide(sourceSide(deps, shape, line, lowest), timed, 'source'), { span });
  return {
    ...result,
    aggregateQueries: { lake: result.aggregateQueries.lake + spanQueries, source: result.aggregateQueries.source },
    line: line.kind,
    millis: Date.now() - started,
    sideMillis: timed,
  };
}

/** A side whose queries' time is added to `timed[name]`. */
function timedSide(side: KeySide, timed: { lake: number; source: number }, name: 'lake' | 'source'): KeySide {
  const time = async <T>(work: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await work();
    } finally {
      timed[name] += Date.now() - started;
    }
  };
  return { aggregate: (width, ranges) => time(() => side.aggregate(width, ranges)), keys: (ranges) => time(() => side.keys(ranges)) };
}

/** Keys in the keyset's order: integers by value, strings by code unit (the page's first and last). */
function compareKeys(shape: TableShape): (a: readonly string[], b: readonly string[]) => number {
  const integer = shape.keyColumns.map((c) => c.typeName.startsWith('int'));
  return (a, b) => {
    for (let i = 0; i < a.length; i++) {
      if (a[i] === b[i]) continue;
      if (integer[i]) return BigInt(a[i]) < BigInt(b[i]) ? -1 : 1;
      return a[i] < b[i] ? -1 : 1;
    }
    return 0;
  };
}

/**
 * The export's hook, called once the run's pages are exported: for a scheduled run of a table
 * with deletes.detect that is due, find the deleted keys and journal and stage their tombstones
 * as the run's next pages (pageRows at most each). Returns the task with the pages counted; any
 * other task as it is (or, near `deadline`, not done yet). It runs in the invocation that ends
 * the window's pages (a later call with the task done returns before it); a retried attempt
 * takes the run's kept detection and the tombstone pages already journalled.
 */
export async function detectDeletes(deps: ExportDeps & DeleteDetectionDeps, state: TableState, shape: TableShape, task: TableTask, deadline = Number.POSITIVE_INFINITY): Promise<TableTask> {
  const config = shape.table.config.deletes;
  // Backfill segments (a first load or full re-run) have nothing committed to compare.
  const segmented = 'segment' in task && task.segment !== undefined && task.segment !== null;
  if (!config?.detect || !task.done || task.kind !== 'scheduled' || task.carried !== null || segmented || !shape.cursor) return task;
  if (!deletesDue(config.every, task.window)) return task;
  // Too little time left: the task goes back not done, and the next invocation (which finds no
  // page after the last one) detects with a whole budget.
  if (Date.now() + DETECTION_RESERVE_MILLIS > deadline) return { ...task, done: false };
  const schema = (await state.read<LakeSchema>(state.schemaKey()))?.value;
  // Nothing committed yet (or a lake from before keys were recorded): nothing to compare.
  if (!schema?.key?.length) return task;
  const found = await detectionOf(deps, state, shape, schema, task);
  if (found.keys.length === 0) return task;
  const { encodeTombstones } = await import('../lake/tombstone-file.ts');
  const layout = shape.layout;
  const cursorField = layout.keyFields[0];
  const keyFields = layout.keyFields.slice(1);
  // Tombstones are filed by their cursor's day, whatever column partitions the table (they hold no other value).
  const days = layout.columns[cursorField].lakeType.kind === 'date' ? Number(found.cursor) : Math.floor(Number(BigInt(found.cursor) / 1_000_000n) / 86_400);
  const day = dayFromEpochDays(days);
  // Where this table's files go now (its partition granularity and generation), as for its pages.
  const location = await liveDataLocation(deps, state, shape.table);
  const stamp = { runId: task.runId, exportedAtMicros: task.exportedAtMicros };
  // This invocation's own staging folder, as for exported chunks.
  const writer = newWriterId();
  let current = task;
  for (let start = 0, pageNo = found.firstPage; start < found.keys.length; start += deps.config.export.pageRows, pageNo++) {
    const keys = found.keys.slice(start, start + deps.config.export.pageRows);
    // Written already (by an earlier attempt, or a copy of this one): the same keys, counted as they are.
    let entry = (await state.read<TombstonePageEntry>(state.pendingPageKey(task.runId, pageNo)))?.value;
    if (!entry) {
      const parquet = encodeTombstones(layout, { keyFields, keys, cursorField, cursorValue: found.cursor }, stamp);
      const key = dataFileKey(deps.config.lake.prefix, task.table, day, task.runId, pageNo, false, location);
      const staged = state.writerStagedKey(task.runId, writer, key);
      // Stage, then journal once: a journal always names a whole file, and of two copies the first journal stands.
      await deps.store.put(staged, parquet);
      const written: TombstonePageEntry = {
        page: pageNo, rows: keys.length, first: [task.window.to, ...keys[0]], last: [task.window.to, ...keys[keys.length - 1]],
        files: [{ key, staged, rows: keys.length, bytes: parquet.length }], tombstones: true,
      };
      entry = (await state.write(state.pendingPageKey(task.runId, pageNo), written, { ifNoneMatch: true }))
        ? written
        : (await state.read<TombstonePageEntry>(state.pendingPageKey(task.runId, pageNo)))?.value;
      if (!entry) throw new ExportError(`${task.display}: run ${task.runId} tombstone page ${pageNo} was journalled by another invocation and then removed`);
    }
    current = withPage(current, entry);
  }
  return current;
}

/** A run's detection, kept under pending/ once made: the keys its tombstones hold, their cursor value, the first page number. */
interface KeptDetection {
  readonly keys: string[][];
  readonly cursor: string;
  readonly firstPage: number;
}

/**
 * The run's deleted keys: detected once per run and journalled (written once) before any
 * tombstone, so a retried attempt, or a copy of the step delivered twice, writes the same
 * tombstones under the same page numbers instead of detecting again (keys deleted or inserted
 * in between would give other pages: a key could get two tombstones, another none).
 */
async function detectionOf(deps: ExportDeps & DeleteDetectionDeps, state: TableState, shape: TableShape, schema: LakeSchema, task: TableTask): Promise<KeptDetection> {
  const key = `${state.pendingPrefix(task.runId)}deletes.json`;
  const earlier = (await state.read<KeptDetection>(key))?.value;
  if (earlier) return earlier;
  const detection = await findDeletedKeys(deps, shape, schema, task.table);
  deps.log?.('deletes detected', {
    table: task.display, deletes: detection.missing.length, line: detection.line, levels: detection.levels,
    aggregateQueries: detection.aggregateQueries, keyQueries: detection.keyQueries, millis: detection.millis, sideMillis: detection.sideMillis,
  });
  let cursor = '';
  if (detection.missing.length > 0) {
    const [row] = await deps.source.queryText(tombstoneCursorQuery({ ...shape, cursor: shape.cursor! }, task.window.to));
    if (!row?.v) throw new ExportError(`${task.display}: the tombstones' cursor value for ${task.window.to} could not be computed`);
    cursor = row.v;
  }
  const made: KeptDetection = { keys: [...detection.missing].sort(compareKeys(shape)), cursor, firstPage: task.page + 1 };
  if (await state.write(key, made, { ifNoneMatch: true })) return made;
  return (await state.read<KeptDetection>(key))?.value ?? made;
}
