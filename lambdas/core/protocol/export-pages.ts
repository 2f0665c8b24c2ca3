// Export: the window's keyset pages, read, encoded in the worker, journalled and staged in order
// until the window is done or the invocation's time budget runs low.
import { pageBounds, sharedPageEncoder } from '../page/encode-worker.ts';
import { ConfigError, ExportError, SchemaMismatchError, ThrottlingError, describeError, isTransientStoreError } from '../errors.ts';
import { dataFileKey } from '../lake/keys.ts';
import type { EncodedPage, RunStamp } from '../page/page-layout.ts';
import { TableState, type PageEntry } from './table-state.ts';
import { describeTableShape, type TableShape } from '../source/table-shape.ts';
import { pageQuery } from '../source/queries.ts';
import { replacedPages, carryHistory } from './carry-history.ts';
import { renewLease } from './lease.ts';
import { nullKeyMessage } from './plan.ts';
import { assertSegmentPage, gatherSegments, isBackfillToGather, recordSegment, resumeSegment, segmentPages } from './segments.ts';
import { type ExportDeps, type TableTask, findTable } from './run-model.ts';
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
    throw new SchemaMismatchError(`${task.display}: the table's columns (or its cursorTimeZone) changed during run ${task.runId}; the next run exports with the new ones`);
  }
  // A backfill segment resumes from its own journal (a retried child, a redriven Map Run).
  let current = await resumeSegment(state, task);
  if (current.done) return current;
  // A backfill's table task totals its segments (exporting any the Distributed Map did not).
  if (isBackfillToGather(current)) current = await gatherSegments(state, current, deadline, (child) => exportTable(deps, child, deadline));
  else if (current.carried === null) current = await exportPages(deps, state, shape, current, deadline, keepLease);
  // Pages done: tombstones for keys deleted from Postgres, as the run's next pages (README "Deletes").
  current = await detectDeletes(deps, state, shape, current);
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
    await deps.store.delete(beyond.flatMap((p) => [state.pendingPageKey(current.runId, p.page), ...p.files.map((f) => state.stagedKey(current.runId, f.key))]));
  }
  await recordSegment(state, current);
  return current;
}

/** The window's pages, read, encoded, journalled and staged in order, until done or the deadline. */
async function exportPages(deps: ExportDeps, state: TableState, shape: TableShape, task: TableTask, deadline: number, keepLease: (task: TableTask) => Promise<void>): Promise<TableTask> {
  const snapshot = shape.table.config.mode === 'snapshot';
  const pageRows = deps.config.export.pageRows;
  const prefix = deps.config.lake.prefix;
  const stamp: RunStamp = { runId: task.runId, exportedAtMicros: task.exportedAtMicros };
  // Page memory goes round: COPY writes into a spare, the encoder takes it and gives it back.
  const spares: Buffer[] = [];
  const readPage = async (after: string[] | null, pageNo: number): Promise<Buffer> => {
    try {
      return await deps.source.copyBinary(pageQuery(shape, task.window, after, pageRows, task.segment), spares.pop());
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const Failure = error instanceof ThrottlingError ? ThrottlingError : ExportError;
      throw new Failure(`${task.display}: page ${pageNo}: ${message}`, { cause: error });
    }
  };
  // A pipeline: the database sends page n + 2 (its keyset starts after page n + 1's last key,
  // found by a cheap scan) while the worker thread encodes page n + 1 and this thread journals
  // and stages page n. Pages are journalled strictly in order.
  const encoder = sharedPageEncoder();
  const layout = deps.hashSalt ? { ...shape.layout, hashSalt: deps.hashSalt } : shape.layout;
  const queue: { pageNo: number; last: boolean; encoded: Promise<EncodedPage & { spare: Buffer | null }> }[] = [];
  let current = task;
  let pageMillis = 0;
  let lastFinished = Date.now();

  const finish = async (next: (typeof queue)[number]): Promise<void> => {
    const encoded = await next.encoded;
    if (encoded.spare) spares.push(encoded.spare);
    const pageNo = next.pageNo;
    assertSegmentPage(current, pageNo);
    await keepLease(current);
    const files = encoded.files.map((f) => ({ key: dataFileKey(prefix, task.table, f.day, current.runId, pageNo, snapshot), rows: f.rows, bytes: f.parquet.length, parquet: f.parquet }));
    // Journal first, then stage: nothing is visible to a table before commit, and whatever a
    // crash leaves under pending/ is found and removed by the next plan. A retried page
    // rewrites its journal; files only an earlier attempt staged are never published.
    const entry: PageEntry = {
      page: pageNo, rows: encoded.rows, first: encoded.firstKey, last: encoded.lastKey,
      files: files.map(({ key, rows, bytes }) => ({ key, rows, bytes })),
    };
    await state.write(state.pendingPageKey(current.runId, pageNo), entry);
    try {
      await Promise.all(files.map((f) => deps.store.put(state.stagedKey(current.runId, f.key), f.parquet)));
    } catch (error) {
      // Throttling outlasting the client's retries: the workflow retries the page later (same keys).
      const Failure = error instanceof ThrottlingError || isTransientStoreError(error) ? ThrottlingError : ExportError;
      // An adapter's own named error already says what failed where; otherwise say it here.
      const detail = error instanceof ExportError ? error.message : `upload to ${deps.store.url} failed: ${describeError(error)}`;
      throw new Failure(`${task.display}: page ${pageNo}: ${detail}`, { cause: error });
    }
    current = {
      ...current,
      after: encoded.lastKey,
      page: pageNo,
      rows: current.rows + encoded.rows,
      files: current.files + files.length,
      bytes: current.bytes + files.reduce((n, f) => n + f.bytes, 0),
      done: next.last,
    };
    const now = Date.now();
    pageMillis = now - lastFinished;
    lastFinished = now;
    deps.log?.('page exported', { table: task.display, page: pageNo, rows: encoded.rows, files: files.length, totalRows: current.rows, millis: pageMillis });
  };

  // At least one page per invocation, so a short budget still makes progress.
  let reading: Promise<Buffer> | null = readPage(current.after, current.page + 1);
  let pageNo = current.page;
  try {
    while (reading) {
      const bytes = await reading;
      reading = null;
      const bounds = pageBounds(shape.layout, bytes);
      if (bounds.rows === 0) {
        while (queue.length) await finish(queue.shift()!);
        current = { ...current, done: true };
        break;
      }
      pageNo++;
      const last = bounds.rows < pageRows;
      // A NULL that reached a nullable key after Plan checked the window: resuming after this
      // row would skip rows (or, for a text key, read 'NULL' as a value).
      if (!last && bounds.lastKeyNulls.length) throw new ConfigError(nullKeyMessage(task.display, `page ${pageNo} ends on a row whose ${bounds.lastKeyNulls.map((c) => JSON.stringify(c)).join(', ')} is NULL`));
      // Read on while the pages in hand will be done well before the deadline.
      if (!last && Date.now() + (queue.length + 3) * pageMillis < deadline) {
        reading = readPage(bounds.lastKey, pageNo + 1);
        reading.catch(() => undefined); // observed here; awaited (and thrown) next iteration
      }
      // `bytes` moves to the worker: not usable after this line.
      const encoded = encoder.encode(layout, bytes, stamp);
      encoded.catch(() => undefined); // awaited in order by finish()
      queue.push({ pageNo, last, encoded });
      // One page stays with the encoder while the one before it is journalled and staged.
      while (queue.length > (reading ? 1 : 0)) await finish(queue.shift()!);
    }
  } finally {
    // Whatever is still in flight (deadline, failure) is dropped; the connection must be idle
    // before the caller uses or closes it.
    await reading?.catch(() => undefined);
    await Promise.all(queue.map((q) => q.encoded.catch(() => undefined)));
  }
  return current;
}
