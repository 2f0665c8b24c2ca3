// Backfill: a table's first load (or a full re-run) split into key ranges — segments — that a
// Step Functions Distributed Map exports at once, each with the same page protocol into the same
// run's staging; Commit then sees every segment's pages as one run.
//
//   pending/<runId>/segments.jsonl   the segments, one JSON line each (the Map's items)
//   pending/<runId>/lanes.jsonl      with tables[].backfill.concurrency: the segments dealt into
//                                    that many lanes (then these are the Map's items)
//   pending/<runId>/s<nnnn>.json     one segment's progress, written at the end of each invocation
//
// Page numbers: segment i journals pages i·10,000 + 1 …, so segments never collide and the
// journal keys (six digits) hold 64 segments of 9,999 pages each.
import { ConfigError, StateError } from '../errors.ts';
import { quoteQualified } from '../identifiers.ts';
import type { TableShape } from '../source/table-shape.ts';
import { HISTOGRAM_BOUNDS_SQL, TABLE_ESTIMATE_SQL, keysetColumns, sampledKeysQuery } from '../source/queries.ts';
import { TableState, type Window } from './table-state.ts';
import { laneItemSchema, segmentItemSchema, segmentRangeSchema, tableTaskSchema, type ExportDeps, type SegmentRange, type TableTask } from './run-model.ts';

/** Page numbers of segment i start after i × this. */
export const SEGMENT_PAGE_STRIDE = 10_000;

/**
 * Sampled blocks per segment: TABLESAMPLE SYSTEM reads whole blocks, whose rows are neighbours
 * (often inserted together), so it is the number of blocks, not of rows, that spreads the sample
 * over the table; 250 a segment put each cut within a few percent of its ideal place.
 */
const SAMPLE_BLOCKS_PER_SEGMENT = 250;

/** A sample that found too few keys reads every block only of a table this small (~800 MiB): Plan has minutes, not hours. */
const FULL_SAMPLE_MAX_BLOCKS = 100_000;

/** One segment's progress: where its next invocation resumes, and what it exported. */
export interface SegmentProgress {
  readonly index: number;
  readonly page: number;
  readonly after: string[] | null;
  readonly rows: number;
  readonly files: number;
  readonly bytes: number;
  readonly done: boolean;
}

export function segmentListKey(state: TableState, runId: string): string {
  return `${state.pendingPrefix(runId)}segments.jsonl`;
}

function progressKey(state: TableState, runId: string, index: number): string {
  return `${state.pendingPrefix(runId)}s${String(index).padStart(4, '0')}.json`;
}

/** The planner's estimate of a table: rows (-1: never analyzed) and heap blocks. */
async function estimateTable(deps: ExportDeps, shape: TableShape): Promise<{ rows: number; blocks: number }> {
  const [row] = await deps.source.queryText(TABLE_ESTIMATE_SQL, [quoteQualified(shape.table.name)]);
  return { rows: Number(row?.rows ?? -1), blocks: Number(row?.blocks ?? 0) };
}

/**
 * How many segments a first load or full re-run of this table gets: the table's
 * backfill.segments, or export.backfillSegments when the planner's row estimate reaches
 * export.backfillRows; 1 means no backfill. Views and foreign tables are not split (no heap to
 * sample, no statistics of their own).
 */
export async function chooseSegmentCount(deps: ExportDeps, shape: TableShape): Promise<number> {
  if (shape.relkind !== 'r' && shape.relkind !== 'p') return 1;
  const configured = shape.table.config.backfill;
  if (configured) return configured.segments;
  const estimate = await estimateTable(deps, shape);
  return estimate.rows >= deps.config.export.backfillRows ? deps.config.export.backfillSegments : 1;
}

/** `count - 1` cut points, evenly spaced through `sorted`, without repeats (fewer when it has fewer distinct values). */
function cutsOf<T>(sorted: readonly T[], count: number, same: (a: T, b: T) => boolean): T[] {
  const cuts: T[] = [];
  for (let j = 1; j < count; j++) {
    const cut = sorted[Math.floor((j * sorted.length) / count)];
    if (cut === undefined) continue;
    if (cuts.length && same(cuts[cuts.length - 1], cut)) continue;
    cuts.push(cut);
  }
  return cuts;
}

/**
 * Cut points on the keyset for `count` segments: the leading key column's histogram from the
 * last ANALYZE when it has enough distinct bounds, else a block sample of the window's full keys
 * (a table whose rows share few cursor values — a bulk load — still splits evenly by its key).
 */
async function keyCuts(deps: ExportDeps, shape: TableShape, window: Window, count: number): Promise<string[][]> {
  const leading = keysetColumns(shape)[0];
  const bounds = (await deps.source.queryText(HISTOGRAM_BOUNDS_SQL, [shape.table.name.schema, shape.table.name.name, leading.name]))
    .map((r) => r.bound)
    .filter((b): b is string => b !== null);
  const fromHistogram = cutsOf(bounds, count, (a, b) => a === b);
  if (bounds.length >= count * 2 && fromHistogram.length === count - 1) return fromHistogram.map((b) => [b]);
  const { blocks } = await estimateTable(deps, shape);
  const sample = async (percent: number) => (await deps.source.queryText(sampledKeysQuery(shape, window, percent)))
    .map((r) => keysetColumns(shape).map((_, i) => r[`k${i}`]))
    .filter((k): k is string[] => k.every((v) => v !== null));
  const percent = blocks > 0 ? (100 * SAMPLE_BLOCKS_PER_SEGMENT * count) / blocks : 100;
  let keys = await sample(percent);
  // Too few keys to cut (the window is a small part of the table): read every block once, if
  // that is affordable; otherwise fewer (or no) segments.
  if (keys.length < count * 10 && percent < 100 && blocks <= FULL_SAMPLE_MAX_BLOCKS) keys = await sample(100);
  return cutsOf(keys, count, (a, b) => a.every((v, i) => v === b[i]));
}

/** Heap block ranges for `count` CTID segments (the last is open: the table may grow). */
async function blockRanges(deps: ExportDeps, shape: TableShape, count: number): Promise<SegmentRange[]> {
  const { blocks } = await estimateTable(deps, shape);
  const n = Math.max(1, Math.min(count, blocks));
  return Array.from({ length: n }, (_, i) => ({
    index: i, from: null, to: null,
    blocks: { from: Math.floor((i * blocks) / n), to: i === n - 1 ? null : Math.floor(((i + 1) * blocks) / n) },
  }));
}

/**
 * Split the window into at most `count` segments (fewer when the keys do not allow more):
 * half-open ranges on the keyset order the page query uses, which together cover every key, so
 * each row of the window belongs to exactly one segment.
 */
export async function planSegments(deps: ExportDeps, shape: TableShape, window: Window, count: number): Promise<SegmentRange[]> {
  if (shape.table.config.backfill?.by === 'ctid') return blockRanges(deps, shape, count);
  const cuts = await keyCuts(deps, shape, window, count);
  const edges: (string[] | null)[] = [null, ...cuts, null];
  return cuts.length === 0 ? [] : edges.slice(0, -1).map((from, i) => ({ index: i, from, to: edges[i + 1] }));
}

/** Write the segment list (JSON Lines) where the Distributed Map's ItemReader reads it; returns its key. */
export async function writeSegments(state: TableState, runId: string, segments: readonly SegmentRange[]): Promise<string> {
  const key = segmentListKey(state, runId);
  await state.store.put(key, segments.map((s) => JSON.stringify(s)).join('\n') + '\n');
  return key;
}

/**
 * Deal the segments into `lanes` lanes (segment i to lane i mod lanes) and write them where the
 * Distributed Map's ItemReader reads them: with fewer items than segments, the map's children
 * export at most `lanes` segments of this table at once, each lane's in turn. Returns its key.
 */
export async function writeLanes(state: TableState, runId: string, segments: readonly SegmentRange[], lanes: number): Promise<string> {
  const key = `${state.pendingPrefix(runId)}lanes.jsonl`;
  const lines = Array.from({ length: lanes }, (_, lane) => JSON.stringify({ lane, segments: segments.filter((s) => s.index % lanes === lane) }));
  await state.store.put(key, `${lines.join('\n')}\n`);
  return key;
}

/** The segment list a plan wrote, each line checked. */
export async function readSegments(state: TableState, task: TableTask): Promise<SegmentRange[]> {
  const key = segmentListKey(state, task.runId);
  const object = await state.store.get(key);
  if (!object) throw new StateError(`${task.display}: run ${task.runId}: the segment list ${key} is missing (another run removed this run?)`);
  return object.body.toString('utf8').split('\n').filter((line) => line.trim() !== '').map((line, i) => {
    const parsed = segmentRangeSchema.safeParse(JSON.parse(line));
    if (!parsed.success) throw new StateError(`${task.display}: ${key} line ${i + 1} is not a segment: ${parsed.error.issues.map((x) => x.message).join('; ')}`);
    return parsed.data;
  });
}

/**
 * What Export is given: a table's (or a segment's) task, or — the first state of a Distributed
 * Map child — the table's task and one segment of its list, which becomes the segment's task.
 */
export function parseExportInput(event: unknown): TableTask {
  const item = segmentItemSchema.safeParse(event);
  if (item.success) return segmentTask(item.data.task, item.data.segment);
  const lane = laneItemSchema.safeParse(event);
  if (lane.success) {
    const [first, ...rest] = lane.data.segment.segments;
    return { ...segmentTask(lane.data.task, first), lane: rest };
  }
  return tableTaskSchema.parse(event);
}

/** A lane's child whose segment is done goes on with the lane's next segment (from its start, or its journal). */
export function nextInLane(task: TableTask): TableTask {
  if (!task.segment || !task.done || !task.lane?.length) return task;
  const [next, ...rest] = task.lane;
  return { ...segmentTask(task, next), lane: rest };
}

/** A Distributed Map child's task: the table's task narrowed to one segment, from its start. */
export function segmentTask(parent: TableTask, segment: SegmentRange): TableTask {
  const { lane: _lane, ...table } = parent;
  return { ...table, segment, page: segment.index * SEGMENT_PAGE_STRIDE, after: null, rows: 0, files: 0, bytes: 0, done: false, carried: null };
}

/**
 * Where a segment's export stands: its task moved to the progress a previous invocation (a
 * retried child, a redriven Map Run, a second Map Run after a retry) journalled, when ahead.
 */
export async function resumeSegment(state: TableState, task: TableTask): Promise<TableTask> {
  if (!task.segment) return task;
  const progress = (await state.read<SegmentProgress>(progressKey(state, task.runId, task.segment.index)))?.value;
  if (!progress || (!progress.done && progress.page <= task.page)) return task;
  return { ...task, page: progress.page, after: progress.after, rows: progress.rows, files: progress.files, bytes: progress.bytes, done: progress.done };
}

/** Journal a segment's progress (after each invocation). */
export async function recordSegment(state: TableState, task: TableTask): Promise<void> {
  if (!task.segment) return;
  const progress: SegmentProgress = { index: task.segment.index, page: task.page, after: task.after, rows: task.rows, files: task.files, bytes: task.bytes, done: task.done };
  await state.write(progressKey(state, task.runId, task.segment.index), progress);
}

/** The page numbers a segment may use: (first, last]. */
export function segmentPages(segment: SegmentRange): { first: number; last: number } {
  return { first: segment.index * SEGMENT_PAGE_STRIDE, last: (segment.index + 1) * SEGMENT_PAGE_STRIDE - 1 };
}

/** Throws before a segment's page would take a number of the next segment's. */
export function assertSegmentPage(task: TableTask, page: number): void {
  if (!task.segment || page <= segmentPages(task.segment).last) return;
  throw new ConfigError(`${task.display}: backfill segment ${task.segment.index} needs more than ${SEGMENT_PAGE_STRIDE - 1} pages of export.pageRows rows; raise tables[].backfill.segments (at most 64) or export.pageRows`);
}

/** A table's task after Plan chose a backfill, before any segment is exported. */
export function isBackfillToGather(task: TableTask): boolean {
  return task.backfill !== undefined && task.segment === undefined && task.backfill.pages === null;
}

/**
 * The table's task once its segments are exported: every segment's progress must be done (the
 * Distributed Map ended); a segment that is not is exported here, one after another, until the
 * deadline — so a caller without a Distributed Map (the CLI, a test) exports a backfill too.
 * Then the totals: rows, files, bytes and the pages journalled; page numbering continues above
 * every segment's (a full re-run carries history after them).
 */
export async function gatherSegments(state: TableState, task: TableTask, deadline: number, exportSegment: (child: TableTask) => Promise<TableTask>): Promise<TableTask> {
  if (!task.backfill) return task;
  const segments = await readSegments(state, task);
  if (segments.length !== task.backfill.segments) throw new StateError(`${task.display}: run ${task.runId} planned ${task.backfill.segments} segments, its list holds ${segments.length}`);
  const totals = { pages: 0, rows: 0, files: 0, bytes: 0 };
  let worked = false;
  for (const segment of segments) {
    let progress = (await state.read<SegmentProgress>(progressKey(state, task.runId, segment.index)))?.value;
    if (!progress?.done) {
      if (worked && Date.now() >= deadline) return task;
      const child = await exportSegment(segmentTask(task, segment));
      worked = true;
      if (!child.done) return task;
      progress = { index: segment.index, page: child.page, after: child.after, rows: child.rows, files: child.files, bytes: child.bytes, done: true };
    }
    totals.pages += progress.page - segmentPages(segment).first;
    totals.rows += progress.rows;
    totals.files += progress.files;
    totals.bytes += progress.bytes;
  }
  return {
    ...task, backfill: { ...task.backfill, pages: totals.pages }, page: segments.length * SEGMENT_PAGE_STRIDE, after: null,
    rows: totals.rows, files: totals.files, bytes: totals.bytes, done: true,
  };
}
