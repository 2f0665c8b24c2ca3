// Commit: checks, schema, publish, then the watermark — the commit point — then the tidying.
// A commit too big for one invocation resumes: the journals are read into index objects a
// thousand at a time, files are published in journal order, and each invocation returns the
// task with its progress (`commit`) when the deadline comes, until the watermark is written.
import { CheckFailedError, ExportError, SchemaMismatchError, StateError, ThrottlingError, WindowConflictError, describeError, isTransientStoreError } from '../errors.ts';
import { lakeSchema } from '../lake/current-view.ts';
import { META_COLUMNS } from '../page/page-layout.ts';
import type { LakeSchema } from '../ports.ts';
import { partitionYearOf, projectionYears } from '../lake/keys.ts';
import { TableState, type FileEntry, type PageEntry, type PendingRun, type RunManifest, type Watermark } from './table-state.ts';
import { describeTableShape, lakeColumns, type TableShape } from '../source/table-shape.ts';
import { checkNotNullQuery, checkUniqueQuery } from '../source/queries.ts';
import { leaseHolder, renewLease, releaseLease } from './lease.ts';
import { finishCommit, retried, sweepRemoved, type Retired } from './recovery.ts';
import { recordedLocation } from './compact.ts';
import { tombstonesIn } from './reconcile.ts';
import { type ExportDeps, type TableTask, type CommitResult, findTable } from './run-model.ts';

/** Journals per index object: one invocation reads at least this many before it checks the clock. */
const INDEX_CHUNK = 1_000;
/** Moves at once while publishing: an S3 move is a copy and a delete of ~20–50 ms each. */
const PUBLISH_CONCURRENCY = 32;

/** One index object: the journals it was built from (their keys) and their entries. */
interface JournalIndex {
  readonly keys: string[];
  readonly pages: PageEntry[];
}

/**
 * The run's page journals, read through index objects (pending/<runId>/index/cNNNNN.json, one
 * per thousand journals) that an earlier invocation wrote: null when the deadline came first
 * (the chunks read so far are kept for the next invocation). An index whose keys are not the
 * journals listed now is read again.
 */
async function readJournals(state: TableState, runId: string, deadline: number): Promise<PageEntry[] | null> {
  const keys = (await state.store.list(state.pendingPrefix(runId))).filter((k) => /\/p\d{6}\.json$/.test(k)).sort();
  const pages: PageEntry[] = [];
  let built = false;
  for (let start = 0, chunk = 0; start < keys.length; start += INDEX_CHUNK, chunk++) {
    const chunkKeys = keys.slice(start, start + INDEX_CHUNK);
    const indexKey = `${state.pendingPrefix(runId)}index/c${String(chunk).padStart(5, '0')}.json`;
    const index = (await state.read<JournalIndex>(indexKey))?.value;
    if (index && index.keys.length === chunkKeys.length && index.keys.every((k, i) => k === chunkKeys[i])) {
      pages.push(...index.pages);
      continue;
    }
    // At least one index per invocation, so a short budget still makes progress.
    if (built && Date.now() >= deadline) return null;
    built = true;
    const entries = await state.readAll<PageEntry>(chunkKeys);
    await state.write(indexKey, { keys: chunkKeys, pages: entries } satisfies JournalIndex);
    pages.push(...entries);
  }
  return pages.sort((a, b) => a.page - b.page);
}

/**
 * Move the run's staged files to their data keys in journal order, from the `from`-th, 32 at a
 * time, until done or the deadline; returns how many (from the first) are published. Moves are
 * repeatable, so an invocation that dies mid-way is redone from the last count returned.
 */
async function publishFrom(deps: ExportDeps, state: TableState, task: TableTask, files: readonly FileEntry[], from: number, deadline: number): Promise<number> {
  let next = from;
  let renewedAt = Date.now();
  const worker = async () => {
    while (next < files.length && (next === from || Date.now() < deadline)) {
      const file = files[next++];
      await deps.store.move(state.stagedOf(task.runId, file), file.key);
      // A long publish keeps the lease a quarter ahead, as Export does.
      if (Date.now() - renewedAt > deps.config.export.leaseSeconds * 250) {
        renewedAt = Date.now();
        await renewLease(deps, state, task);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PUBLISH_CONCURRENCY, files.length - from) }, worker));
  return next;
}

/**
 * The table's data-quality checks over the run's window, asked of the database before anything
 * is published; a failure fails the table and the lake stays as it was.
 */
async function runChecks(deps: ExportDeps, shape: TableShape, task: TableTask): Promise<void> {
  const checks = shape.table.config.checks;
  if (!checks) return;
  const failures: string[] = [];
  if (task.rows < checks.minRows) failures.push(`minRows: the run exported ${task.rows} rows, at least ${checks.minRows} required`);
  for (const column of checks.notNull) {
    const rows = await deps.source.queryText(checkNotNullQuery(shape, task.window, column));
    if (rows.length) failures.push(`notNull ${column}: NULL in rows with key ${rows.map((r) => r.key).join(' / ')}${rows.length === 5 ? ' …' : ''}`);
  }
  for (const column of checks.unique) {
    const rows = await deps.source.queryText(checkUniqueQuery(shape, task.window, column));
    if (rows.length) failures.push(`unique ${column}: ${rows.map((r) => `${JSON.stringify(r.value)} ×${r.n}`).join(', ')}`);
  }
  if (failures.length) throw new CheckFailedError(`${task.display}: check failed, nothing published: ${failures.join('; ')}`);
}

/** Make the run's files the table's truth in one call, however many invocations' worth it takes. */
export async function commitTable(deps: ExportDeps, task: TableTask): Promise<CommitResult> {
  let step = await commitTableStep(deps, task);
  while (!('status' in step)) step = await commitTableStep(deps, step);
  return step;
}

/**
 * Make the run's files the table's truth: move the watermark (the commit point), then tidy up —
 * or, when `deadline` (epoch ms) comes first, the task with its progress (`commit`), for the
 * workflow to call again (Commit Table ⟲ Committed?).
 */
export async function commitTableStep(deps: ExportDeps, task: TableTask, deadline = Number.POSITIVE_INFINITY): Promise<CommitResult | TableTask> {
  if (!task.done) throw new StateError(`${task.display}: run ${task.runId} cannot commit before its last page is exported`);
  const state = new TableState(deps.store, deps.config.lake.prefix, task.table);
  try {
    // Read once: its etag guards the commit-point write, whatever happens in between.
    const current = await state.watermarkObject();
    // The same input delivered again (the first answer was lost): already committed.
    if (current?.value?.runId === task.runId) return await committedAlready(deps, state, task, current.value);
    return await commitRun(deps, state, task, current, deadline);
  } catch (error) {
    // The same input delivered twice at once: the other copy committed this very run while this
    // one worked (its lease then gone, the watermark moved under it, or the journals it counts
    // already cleared). Committed, then; any other error stands.
    const now = await state.watermark().catch(() => null);
    if (now && now.runId !== task.runId && await compactedAway(state, task.runId)) return resultOf(task, now.cursor, []);
    if (now?.runId !== task.runId) throw error;
    return committedAlready(deps, state, task, now);
  }
}

/**
 * Whether a compaction merged this run's committed files since (within its grace period, while
 * its retired list names them): a Commit delivered again after that finds the watermark naming
 * the compaction, and its run committed (breaker HG: it failed the table, and TableFailed fired).
 */
async function compactedAway(state: TableState, runId: string): Promise<boolean> {
  for (const key of await state.store.list(state.retiredPrefix())) {
    const retired = await state.read<Retired>(key);
    if (retired?.value.files.some((file) => file.includes(`/${runId}-p`))) return true;
  }
  return false;
}

function resultOf(task: TableTask, cursor: string, pages: readonly PageEntry[]): CommitResult {
  const deletes = tombstonesIn(pages);
  return {
    table: task.table, status: 'succeeded', rows: task.rows, files: task.files, bytes: task.bytes,
    windowFrom: task.window.from, windowTo: task.window.to, watermark: cursor, nullCursorRows: task.nullCursorRows,
    ...(deletes > 0 ? { deletes } : {}),
  };
}

/** The watermark names this run: finish what is left (idempotent), free the lease, say so. */
async function committedAlready(deps: ExportDeps, state: TableState, task: TableTask, watermark: Watermark): Promise<CommitResult> {
  const manifest = await finishCommit(deps, state, task.runId, watermark.committedAt);
  await releaseLease(deps, task.table, leaseHolder(task));
  return resultOf(task, watermark.cursor, manifest.pages);
}

async function commitRun(deps: ExportDeps, state: TableState, task: TableTask, current: { value: Watermark | null; etag: string } | null, deadline: number): Promise<CommitResult | TableTask> {
  await renewLease(deps, state, task);
  const shape = await describeTableShape(deps.source, findTable(deps.config, task.table), deps.config);
  if (shape.fingerprint !== task.fingerprint) {
    throw new SchemaMismatchError(`${task.display}: the table's columns (or its cursorTimeZone or partition.granularity) changed during run ${task.runId}; nothing was published, the next run exports with the new ones`);
  }
  const progress = task.commit ?? { checked: false, published: 0 };
  const pages = await readJournals(state, task.runId, deadline);
  if (!pages) return { ...task, commit: progress };
  // Pages that carry a replaced page's history hold rows this run did not export.
  const rows = pages.reduce((n, p) => n + (p.carriedFrom ? 0 : p.rows), 0);
  // A backfill's pages are numbered by segment: count them, not the highest number.
  const expectedPages = task.backfill ? (task.backfill.pages ?? Number.NaN) + (task.carried ?? 0) : task.page;
  if (pages.length !== expectedPages || rows !== task.rows) {
    throw new StateError(`${task.display}: run ${task.runId} journalled ${pages.length} pages / ${rows} rows but exported ${expectedPages} pages / ${task.rows} rows`);
  }
  // Fencing: the watermark must still be the one this run's window was planned from.
  const planned = await state.read<PendingRun>(state.pendingRunKey(task.runId));
  if (!planned) throw new WindowConflictError(`${task.display}: run ${task.runId} has no pending run any more (another run removed it); nothing published`);
  const base = current?.value ?? null;
  if ((base?.runId ?? null) !== (planned.value.basedOn ?? null)) {
    throw new WindowConflictError(`${task.display}: the watermark moved from run ${planned.value.basedOn ?? '(none)'} to ${base?.runId ?? '(none)'} while run ${task.runId} exported; nothing published`);
  }
  const cursor = task.kind === 'window' ? base?.cursor ?? task.window.to : task.window.to;
  if (base && task.kind !== 'full' && cursor < base.cursor) {
    throw new StateError(`${task.display}: watermark would move back from ${base.cursor} to ${cursor}`);
  }
  if (!progress.checked) await runChecks(deps, shape, task);
  // Columns dropped from an incremental table stay declared, so older files keep them readable;
  // a snapshot declares exactly its own columns and reads its own folder.
  const snapshot = shape.table.config.mode === 'snapshot';
  const previous = snapshot ? null : await state.read<LakeSchema>(state.schemaKey());
  const fresh = lakeColumns(shape);
  const dropped = (previous?.value.columns ?? []).filter((c) => !fresh.some((f) => f.name === c.name));
  // Dropped columns go before the export metadata columns, which stay last.
  const tableColumns = fresh.length - META_COLUMNS.length;
  const columns = [...fresh.slice(0, tableColumns), ...dropped, ...fresh.slice(tableColumns)];
  // The projection follows the data: the years written so far, through next year; it never
  // narrows. A schema from before this rule (no years) covered lake.partitionYears, which may have
  // been narrowed since: it covers them and every year a committed file lies in.
  const thisYear = new Date().getUTCFullYear();
  const covered = previous ? previous.value.years ?? projectionYears(deps.config.lake.partitionYears, yearsOf((await state.manifests()).flatMap((m) => m.pages)), thisYear) : null;
  const years = projectionYears(covered, yearsOf(pages), thisYear);
  // Where the files live (a compaction's generation and granularity) stays as recorded.
  const location = recordedLocation(deps.config, previous?.value ?? null, shape.table);
  // The last compaction's time stays: tables[].compaction.everyHours counts from it.
  const compactedAt = previous?.value.compactedAt;
  const schema: LakeSchema = { ...lakeSchema(shape, columns), years, ...location, ...(compactedAt ? { compactedAt } : {}), ...(snapshot ? { snapshotRunId: task.runId } : {}) };
  await state.write(state.pendingSchemaKey(task.runId), schema);
  // A row in a year the registered projection does not cover would be invisible to Athena, with
  // no error: widen it (on the last committed schema) before any such file is published.
  // Written over the schema.json read above only (If-Match), with the lease checked just before: a
  // Commit that stalled here while a compaction switched the table to a new generation must not
  // send readers back to the old one (breaker HI). Glue follows; should this invocation die in
  // between, the commit's switchReaders registers the run's schema, years included, anyway.
  if (previous && covered && (years.from < covered.from || years.to > covered.to)) {
    await renewLease(deps, state, task);
    if (!(await state.write(state.schemaKey(), { ...previous.value, years }, { ifMatch: previous.etag }))) {
      throw new WindowConflictError(`${task.display}: the table's schema.json changed while run ${task.runId} committed (another run or a compaction moved the table on); nothing published`);
    }
    await deps.registry?.register(state.lakeTable, { ...previous.value, years });
  }
  // Publish, then commit: a crash in between leaves visible files of an uncommitted run, which
  // the next plan removes (they are journalled); the reverse order would commit unseen data.
  // The lease is checked again on each side of publishing: no other run may be recovering it.
  await renewLease(deps, state, task);
  const files = pages.flatMap((p) => p.files);
  // Late copies of runs removed before this one (its plan's) go before its own rows are visible.
  await sweepRemoved(deps, state, new Date(), false);
  const published = await publishFrom(deps, state, task, files, Math.min(progress.published, files.length), deadline);
  if (published < files.length) return { ...task, commit: { checked: true, published } };
  await renewLease(deps, state, task);
  const committedAt = new Date().toISOString();
  // The zone the cursor's wall clock was read in: the next run starts from the same wall time.
  const watermark: Watermark = { cursor, runId: task.runId, committedAt, cursorTimeZone: shape.table.config.cursorTimeZone };
  // Over the object read at the start, a fence before any commit included (recovery.ts fenceWatermark).
  const written = current
    ? await state.write(state.watermarkKey(), watermark, { ifMatch: current.etag })
    : await state.write(state.watermarkKey(), watermark, { ifNoneMatch: true });
  if (!written) throw new WindowConflictError(`${task.display}: the watermark changed while run ${task.runId} committed; its files will be removed by the next run`);
  try {
    // The manifest from the journals in hand, past the commit point (before it, a manifest would
    // mark an uncommitted run as committed): finishing then reads it instead of every journal
    // again — a run of 20,000 pages is one object, not 20,000 requests. Written once, as there.
    const manifest: RunManifest = { runId: task.runId, kind: planned.value.kind, window: planned.value.window, committedAt, pages };
    await retried(() => state.write(state.manifestKey(task.runId), manifest, { ifNoneMatch: true }));
    // Idempotent: a transient store fault here is retried at once rather than leaving a re-run's
    // replaced files visible beside their replacements until the next run.
    await retried(() => finishCommit(deps, state, task.runId, committedAt, true));
  } catch (error) {
    // Past the commit point the data is in: say so, and that the next plan finishes the tidying
    // (until then a re-run's replaced files may be visible beside their replacements).
    const Failure = error instanceof ThrottlingError || isTransientStoreError(error) ? ThrottlingError : ExportError;
    throw new Failure(`${task.display}: run ${task.runId} is committed (watermark ${cursor}), but finishing it failed: ${describeError(error)}; the next run (or a retry of this step) finishes it`, { cause: error });
  }
  await releaseLease(deps, task.table, leaseHolder(task));
  return resultOf(task, cursor, pages);
}

/** The partition year of every file of `pages`. */
function* yearsOf(pages: readonly PageEntry[]): Generator<number> {
  for (const page of pages) {
    for (const file of page.files) {
      const year = partitionYearOf(file.key);
      if (year !== null) yield year;
    }
  }
}
