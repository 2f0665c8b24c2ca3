// Export: the window's keyset pages, read, encoded in the worker into growing files, staged and
// journalled chunk by chunk until the window is done or the invocation's time budget runs low.
import { ByteBuffer } from '../page/byte-buffer.ts';
import { releaseParts, sharedPageEncoder } from '../page/encode-worker.ts';
import { ConfigError, ExportError, SchemaMismatchError, ThrottlingError, WindowConflictError, describeError, isTransientStoreError } from '../errors.ts';
import { dataFileKey } from '../lake/keys.ts';
import { liveDataLocation } from './compact.ts';
import type { AppendedPage, ChunkSettings, FilePart, RunStamp } from '../page/page-layout.ts';
import type { ObjectStore, StreamedWrite } from '../ports.ts';
import { TableState, type FileEntry, type PageEntry } from './table-state.ts';
import { runPagePipeline } from './page-pipeline.ts';
import { describeTableShape, type TableShape } from '../source/table-shape.ts';
import { pageQuery } from '../source/queries.ts';
import { replacedPages, carryHistory } from './carry-history.ts';
import { renewLease } from './lease.ts';
import { nullKeyMessage } from './plan.ts';
import { assertSegmentPage, gatherSegments, isBackfillToGather, nextInLane, recordSegment, resumeSegment, segmentPages } from './segments.ts';
import { type ExportDeps, type TableTask, findTable, newWriterId, withPage } from './run-model.ts';
import { detectDeletes, type DeleteDetectionDeps } from './reconcile.ts';

/**
 * Export pages until the window is done or `deadline` (epoch ms) is near, then, for a re-run,
 * carry the history of the pages it replaces; returns the new task (`done`: ready to commit).
 */
export async function exportTable(deps: ExportDeps & DeleteDetectionDeps, task: TableTask, deadline = Number.POSITIVE_INFINITY): Promise<TableTask> {
  if (task.done) return task;
  const table = findTable(deps.config, task.table);
  const state = new TableState(deps.store, deps.config.lake.prefix, task.table);
  await renewLease(deps, state, task);
  let renewedAt = Date.now();
  // Renewed once a quarter of the lease has passed (two requests, not two per page): the lease
  // stays at least three quarters ahead, and commit is fenced whatever happens here.
  const keepLease = async (current: TableTask): Promise<void> => {
    if (Date.now() - renewedAt <= deps.config.export.leaseSeconds * 250) return;
    await renewLease(deps, state, current);
    renewedAt = Date.now();
  };
  const shape = await describeTableShape(deps.source, table, deps.config);
  if (shape.fingerprint !== task.fingerprint) {
    throw new SchemaMismatchError(`${task.display}: the table's columns (or its cursorTimeZone or partition.granularity) changed during run ${task.runId}; the next run exports with the new ones`);
  }
  // A backfill segment resumes from its own journal (a retried child, a redriven Map Run).
  let current = await resumeSegment(state, task);
  // Done already (a redelivered item): a lane's child goes on with its next segment.
  if (current.done) return nextInLane(current);
  // A backfill's table task totals its segments (exporting any the Distributed Map did not).
  if (isBackfillToGather(current)) current = await gatherSegments(state, current, deadline, (child) => exportTable(deps, child, deadline));
  else if (current.carried === null) current = await exportPages(deps, state, shape, await followJournals(state, current), deadline, keepLease);
  // Pages done: tombstones for keys deleted from Postgres, as the run's next pages (README "Deletes").
  current = await detectDeletes(deps, state, shape, current, deadline);
  // Pages done: a re-run next carries what the pages it replaces hold beyond its own versions
  // (once, in the table's task, after every segment).
  const replaced = !current.segment && (current.done || current.carried !== null) ? await replacedPages(state, shape, current) : [];
  if (current.done && current.carried === null && replaced.length > 0) current = { ...current, done: false, carried: 0 };
  if (current.carried !== null && !current.done) current = await carryHistory(deps, state, shape, current, replaced, deadline, keepLease);
  if (current.done) {
    // An earlier attempt of this invocation (retried after a timeout, data changed since) may
    // have journalled pages beyond the last one: they are not part of the run.
    // A segment's own numbers only: the other segments' pages are theirs.
    const end = current.segment ? segmentPages(current.segment).last : Number.POSITIVE_INFINITY;
    const beyond = (await state.pendingPages(current.runId)).filter((p) => p.page > current.page && p.page <= end);
    await deps.store.delete(beyond.flatMap((p) => [state.pendingPageKey(current.runId, p.page), ...p.files.map((f) => state.stagedOf(current.runId, f))]));
  }
  await recordSegment(state, current);
  return nextInLane(current);
}

/**
 * The task moved past the page journals already written after its page (by an earlier attempt,
 * or another invocation of the same pages): a journal is written once, and the pages after it
 * continue from its last key.
 */
async function followJournals(state: TableState, task: TableTask): Promise<TableTask> {
  let current = task;
  const end = task.segment ? segmentPages(task.segment).last : Number.POSITIVE_INFINITY;
  for (let page = task.page + 1; page <= end; page++) {
    const entry = (await state.read<PageEntry>(state.pendingPageKey(task.runId, page)))?.value;
    // Only exported chunks: carried history and tombstones are written again by their own steps.
    if (!entry || entry.carriedFrom || 'tombstones' in entry) break;
    current = { ...withPage(current, entry), after: entry.rows > 0 ? entry.last : current.after };
  }
  return current;
}

export function chunkSettings(lake: { readonly rowGroupMB: number; readonly rowGroupRows: number; readonly targetFileMB: number }): ChunkSettings {
  return { rowGroupRows: lake.rowGroupRows, rowGroupBytes: lake.rowGroupMB * 1048576, targetFileBytes: lake.targetFileMB * 1048576 };
}

/** The store's streamed write, or (a store without one) the bytes gathered and put whole. */
function openStagedWrite(store: ObjectStore, key: string): StreamedWrite {
  if (store.openWrite) return store.openWrite(key);
  // A copy: the caller frees its bytes once a write resolves (StreamedWrite.write).
  let gathered = new ByteBuffer();
  return {
    write: async (bytes) => { gathered.append(bytes, 0, bytes.byteLength); },
    complete: async () => { await store.put(key, gathered.view()); gathered = new ByteBuffer(); },
    abort: async () => { gathered = new ByteBuffer(); },
  };
}

/** One chunk's files being uploaded: one streamed write per file, keyed by the file's number. */
interface OpenChunk {
  readonly entry: number;
  readonly writes: Map<number, { readonly key: string; readonly staged: string; readonly write: StreamedWrite; completed: boolean }>;
  /** Files begun per partition folder: a day that comes back within the chunk gets `-2`, `-3`… */
  readonly perPartition: Map<string, number>;
  rows: number;
  first: string[] | null;
  last: string[];
}

/**
 * The window's pages, read and appended by the encoder to one growing file per partition day;
 * a chunk of pages whose files are complete is staged and then journalled (one entry), in order,
 * until done or the deadline. A crash mid-chunk leaves nothing a later run publishes: staged
 * files are not in any journal (a directory lake's unfinished file is a `.tmp`, an S3 one an
 * incomplete multipart upload), and the retry writes the chunk again from the last journalled key.
 */
async function exportPages(deps: ExportDeps, state: TableState, shape: TableShape, task: TableTask, deadline: number, keepLease: (task: TableTask) => Promise<void>): Promise<TableTask> {
  const snapshot = shape.table.config.mode === 'snapshot';
  const pageRows = deps.config.export.pageRows;
  const prefix = deps.config.lake.prefix;
  // The table's live generation and granularity: a compaction may have moved its files.
  const location = await liveDataLocation(deps, state, shape.table);
  const stamp: RunStamp = { runId: task.runId, exportedAtMicros: task.exportedAtMicros };
  const layout = { ...shape.layout, granularity: location.granularity };
  const chunks = sharedPageEncoder().openChunks({ layout, stamp, settings: chunkSettings(deps.config.lake), hashSalt: deps.hashSalt });
  // This invocation's own staging folder: another invocation of the same pages never overwrites its files.
  const writer = newWriterId();
  let current = task;
  let chunk: OpenChunk | null = null;

  const uploadFailure = (error: unknown, entry: number): Error => {
    // Throttling outlasting the client's retries: the workflow retries the chunk later (same keys).
    const Failure = error instanceof ThrottlingError || isTransientStoreError(error) ? ThrottlingError : ExportError;
    // An adapter's own named error already says what failed where; otherwise say it here.
    const detail = error instanceof ExportError ? error.message : `upload to ${deps.store.url} failed: ${describeError(error)}`;
    return new Failure(`${task.display}: chunk ${entry}: ${detail}`, { cause: error });
  };
  const writeParts = async (open: OpenChunk, parts: readonly FilePart[]): Promise<void> => {
    for (const part of parts) {
      let file = open.writes.get(part.file);
      if (!file) {
        // The file's key, computed once: its partition, the run and the chunk's journal number
        // (and, for a partition's second file in the chunk, its ordinal).
        const first = dataFileKey(prefix, task.table, part.day, current.runId, open.entry, snapshot, location);
        const nth = (open.perPartition.get(first) ?? 0) + 1;
        open.perPartition.set(first, nth);
        const key = nth === 1 ? first : first.replace(/\.parquet$/, `-${nth}.parquet`);
        const staged = state.writerStagedKey(current.runId, writer, key);
        file = { key, staged, write: openStagedWrite(deps.store, staged), completed: false };
        open.writes.set(part.file, file);
      }
      await file.write.write(part.bytes);
    }
    releaseParts(parts);
  };

  const completeFile = async (open: OpenChunk, n: number): Promise<void> => {
    const file = open.writes.get(n);
    if (!file) throw new ExportError(`${task.display}: chunk ${open.entry}: file ${n} finished without producing a byte`);
    if (file.completed) return;
    await file.write.complete();
    file.completed = true;
  };

  const finish = async (page: AppendedPage, pageNo: number, last: boolean): Promise<void> => {
    if (!chunk && page.rows === 0 && !page.closed?.length) return;
    const open: OpenChunk = chunk ??= { entry: current.page + 1, writes: new Map(), perPartition: new Map(), rows: 0, first: null, last: [] };
    assertSegmentPage(current, open.entry);
    await keepLease(current);
    try {
      await writeParts(open, page.parts);
      // A finished file is made whole now (still staged): an S3 upload holds less than a part
      // in memory until then, and a chunk may finish many small files.
      for (const n of page.finished) await completeFile(open, n);
    } catch (error) {
      throw error instanceof ExportError && !error.cause ? error : uploadFailure(error, open.entry);
    }
    if (page.rows > 0) {
      open.rows += page.rows;
      open.first ??= page.firstKey;
      open.last = page.lastKey;
    }
    deps.log?.('page exported', { table: task.display, page: pageNo, chunk: open.entry, rows: page.rows, chunkRows: open.rows, totalRows: current.rows + open.rows });
    if (!page.closed) return;
    // The chunk's files are whole objects now (still staged, invisible to every table): journal
    // the chunk. A crash before the journal leaves staged files no journal names, which commit
    // never publishes and the run's cleanup removes.
    const files: FileEntry[] = page.closed.map((f) => ({ key: open.writes.get(f.file)!.key, staged: open.writes.get(f.file)!.staged, rows: f.rows, bytes: f.bytes }));
    const entry: PageEntry = { page: open.entry, rows: open.rows, first: open.first ?? [], last: open.last, files };
    // Written once: another invocation that journalled this page first decides what it holds.
    if (!(await state.write(state.pendingPageKey(current.runId, open.entry), entry, { ifNoneMatch: true }))) {
      throw new WindowConflictError(`${task.display}: run ${current.runId} page ${open.entry} was journalled by another invocation of the same pages; this one stops without it`);
    }
    chunk = null;
    current = { ...withPage(current, entry), after: open.last, done: last };
    deps.log?.('chunk exported', { table: task.display, chunk: open.entry, rows: open.rows, files: files.length, bytes: files.reduce((n, f) => n + f.bytes, 0), totalRows: current.rows });
  };

  try {
    const windowDone = await runPagePipeline(shape.layout, {
      read: async (after, pageNo, spare) => {
        try {
          return await deps.source.copyBinary(pageQuery(shape, task.window, after, pageRows, task.segment), spare);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          const Failure = error instanceof ThrottlingError ? ThrottlingError : ExportError;
          throw new Failure(`${task.display}: page ${pageNo}: ${message}`, { cause: error });
        }
      },
      check: (bounds, pageNo, last) => {
        // A NULL that reached a nullable key after Plan checked the window: resuming after this
        // row would skip rows (or, for a text key, read 'NULL' as a value).
        if (!last && bounds.lastKeyNulls.length) throw new ConfigError(nullKeyMessage(task.display, `page ${pageNo} ends on a row whose ${bounds.lastKeyNulls.map((c) => JSON.stringify(c)).join(', ')} is NULL`));
      },
      encode: (bytes, _pageNo, final) => chunks.append(bytes, final),
      finish,
    }, { after: current.after, page: 0 }, pageRows, deadline);
    // Every page read was finished, and its chunk journalled; an empty window has no chunk at all.
    if (windowDone) current = { ...current, done: true };
  } finally {
    // A chunk not journalled is dropped: its uploads aborted (nothing becomes visible) and the
    // encoder's open files with them. Its pages are read again by the next attempt.
    const left = chunk as OpenChunk | null;
    if (left) await Promise.all([...left.writes.values()].filter((f) => !f.completed).map((f) => f.write.abort().catch(() => undefined)));
    await chunks.end();
  }
  return current;
}
