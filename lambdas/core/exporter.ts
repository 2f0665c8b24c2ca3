// The export protocol: plan a window per table, export it page by page, commit it. The same
// functions run in the Lambdas (one step each), in the CLI and in the tests.
//
// Cursor values travel as canonical text, `YYYY-MM-DD HH:MM:SS.ffffff+00` (UTC, fixed width),
// so they compare as strings and never pass through a JS Date.
//
// Exactly once rests on four rules (README "How exactly-once works"):
//  1. Data file names are deterministic (run id, page, day): a retried page overwrites itself.
//  2. A page's file list is journalled under pending/ before its files are staged there, so a
//     crash can always find and remove what an unfinished run wrote; files become visible to
//     tables only when commit publishes them (moves them to their data keys).
//  3. The watermark write is the commit point; everything after it (manifest, replacing older
//     pages, clearing pending/) is idempotent and rolled forward by the next plan.
//  4. A lease per table keeps two executions from exporting the same table at once.
import { randomBytes } from 'node:crypto';
import type { LakeConfig, ResolvedTable } from './config.ts';
import { selectTables } from './config.ts';
import { lakeSchema } from './current-view.ts';
import { CheckFailedError, ConfigError, ExportError, SchemaMismatchError, StateError, ThrottlingError, WindowConflictError, describeError, isTransientStoreError } from './errors.ts';
import { CursorZone } from './cursor-zone.ts';
import { dataFileKey } from './layout.ts';
import { pageBounds, sharedPageEncoder } from './encode-worker.ts';
import { META_COLUMNS, type EncodedPage, type RunStamp } from './page-layout.ts';
import type { ClockReading, ObjectStore, RowSource, TableRegistry } from './ports.ts';
import { TableState, type Lease, type PageEntry, type PendingRun, type Replacement, type RunManifest, type Supersede, type Watermark, type Window } from './state.ts';
import { describeTableShape, duplicateKeyQuery, incompatibleChanges, lakeColumns, nullCursorQuery, nullKeyQuery, pageQuery, windowPredicates, type TableShape } from './table-shape.ts';
import { quoteIdent, quoteQualified } from './identifiers.ts';
import type { LakeColumn, LakeSchema } from './ports.ts';

export interface ExportDeps {
  readonly source: RowSource;
  readonly store: ObjectStore;
  readonly config: LakeConfig;
  /** The query engine's catalog; Glue when deployed. The lake's schema.json is always written. */
  readonly registry?: TableRegistry;
  /** Salt of columns.hash (LAKE_HASH_SALT, or the secret when deployed). Never logged. */
  readonly hashSalt?: string;
  /** The salt exists but only the step that hashes reads it (Plan checks configuration only). */
  readonly hashSaltDeferred?: boolean;
  /** Structured progress/warning events; the Lambda logger or the CLI's printer. */
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** What the steps that only touch the lake need. */
export type LakeDeps = Pick<ExportDeps, 'store' | 'config' | 'log' | 'registry'>;

/** What a console re-run may ask for (validated by the plan handler's schema). */
export interface RunRequest {
  readonly tables?: readonly string[];
  readonly window?: { readonly from: string; readonly to: string };
  readonly full?: boolean;
  /** Take tables' leases even from live holders (the operator knows that run is dead). */
  readonly takeOver?: boolean;
  /** Set by the caller to tie the run to its execution; default: generated. */
  readonly runId?: string;
}

/** The small state that travels between workflow steps for one table. */
export interface TableTask {
  readonly table: string;
  readonly display: string;
  readonly runId: string;
  readonly startedAt: string;
  readonly exportedAtMicros: string;
  readonly kind: PendingRun['kind'];
  readonly window: Window;
  readonly fingerprint: string;
  readonly after: string[] | null;
  readonly page: number;
  readonly rows: number;
  readonly files: number;
  readonly bytes: number;
  /** Ready to commit: every page exported and, for a re-run, the replaced pages' history carried. */
  readonly done: boolean;
  /** Re-runs: null while pages are exported, then how many replaced pages have had their history carried. */
  readonly carried: number | null;
  readonly nullCursorRows: number;
}

export interface RunPlan {
  readonly runId: string;
  readonly startedAt: string;
  readonly tables: TableTask[];
  readonly skipped: { table: string; reason: string }[];
  /** Tables that cannot run (e.g. an incompatible type change); the others go on. */
  readonly failed: { table: string; error: string }[];
  readonly warnings: string[];
}

export interface CommitResult {
  readonly table: string;
  readonly status: 'succeeded';
  readonly rows: number;
  readonly files: number;
  readonly bytes: number;
  readonly windowFrom: string | null;
  readonly windowTo: string;
  readonly watermark: string;
  readonly nullCursorRows: number;
}


export function newRunId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

function findTable(config: LakeConfig, lakeName: string): ResolvedTable {
  const [table] = selectTables(config, [lakeName]);
  return table;
}

// ---------------------------------------------------------------- lease

function leaseUntil(deps: LakeDeps, from = Date.now()): string {
  return new Date(from + deps.config.export.leaseSeconds * 1000).toISOString();
}

async function acquireLease(deps: LakeDeps, state: TableState, runId: string, takeOver: boolean): Promise<string | null> {
  const lease: Lease = { runId, expiresAt: leaseUntil(deps) };
  if (await state.write(state.leaseKey(), lease, { ifNoneMatch: true })) return null;
  const current = await state.read<Lease>(state.leaseKey());
  if (!current) return acquireLease(deps, state, runId, takeOver);
  if (current.value.runId === runId) {
    await state.write(state.leaseKey(), lease, { ifMatch: current.etag });
    return null;
  }
  if (!takeOver && new Date(current.value.expiresAt).getTime() > Date.now()) {
    return `run ${current.value.runId} holds its lease until ${current.value.expiresAt} (if that run is dead, re-run with --take-over, or {"takeOver": true} in the console)`;
  }
  // Expired: take it over only if nobody else did in between.
  if (await state.write(state.leaseKey(), lease, { ifMatch: current.etag })) return null;
  return 'another run took over the expired lease first';
}

async function renewLease(deps: LakeDeps, state: TableState, task: TableTask): Promise<void> {
  const current = await state.read<Lease>(state.leaseKey());
  if (!current || current.value.runId !== task.runId) {
    throw new WindowConflictError(`${task.display}: run ${task.runId} no longer holds the table's lease (${current ? `held by ${current.value.runId}` : 'released'}); stopping without writing`);
  }
  const lease: Lease = { runId: task.runId, expiresAt: leaseUntil(deps) };
  if (!(await state.write(state.leaseKey(), lease, { ifMatch: current.etag }))) {
    throw new WindowConflictError(`${task.display}: the lease changed hands while run ${task.runId} renewed it`);
  }
}

/** Give the lease back if this run holds it (after commit, or after the table failed). */
export async function releaseLease(deps: LakeDeps, table: string, runId: string): Promise<void> {
  const state = new TableState(deps.store, deps.config.lake.prefix, table);
  const current = await state.read<Lease>(state.leaseKey());
  if (current && current.value.runId === runId) await deps.store.delete([state.leaseKey()]);
}

/**
 * After a table failed: remove what this run wrote unless it committed, and free the lease,
 * so the lake is as it was and the next run need not wait for the lease to expire.
 */
export async function abandonRun(deps: LakeDeps, table: string, runId: string): Promise<void> {
  const state = new TableState(deps.store, deps.config.lake.prefix, table);
  const lease = await state.read<Lease>(state.leaseKey());
  if (lease && lease.value.runId !== runId) return; // another run owns the table now; leave its work alone
  const watermark = await state.watermark();
  if (watermark?.runId !== runId) await removeRun(deps, state, runId);
  await releaseLease(deps, table, runId);
}

async function removeRun(deps: LakeDeps, state: TableState, runId: string): Promise<void> {
  // A run with a manifest committed: what is left under pending/ is tidying, never its data.
  const committed = await state.read<RunManifest>(state.manifestKey(runId));
  const pages = committed ? [] : await state.pendingPages(runId);
  // Published keys too: a crash between publishing and the watermark leaves them visible.
  const published = pages.flatMap((p) => p.files.map((f) => f.key));
  deps.log?.('removing an unfinished run', { table: state.lakeTable, runId, files: published.length });
  await deps.store.delete(published);
  await deps.store.delete(await deps.store.list(state.pendingPrefix(runId)));
}

/** Move a run's staged files to their data keys (bounded parallelism; repeatable). */
async function publish(deps: LakeDeps, state: TableState, runId: string, pages: readonly PageEntry[]): Promise<void> {
  const files = pages.flatMap((p) => p.files.map((f) => f.key));
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const key = files[next++];
      await deps.store.move(state.stagedKey(runId, key), key);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, files.length) }, worker));
}

// ---------------------------------------------------------------- recovery

/** Finish what a committed run left undone; remove what an uncommitted run wrote. */
async function recover(deps: LakeDeps, state: TableState, watermark: Watermark | null): Promise<void> {
  for (const runId of await state.pendingRuns()) {
    if (watermark && watermark.runId === runId) {
      deps.log?.('rolling forward a committed run', { table: state.lakeTable, runId });
      await finishCommit(deps, state, runId, watermark.committedAt);
    } else {
      await removeRun(deps, state, runId);
    }
  }
}

// ---------------------------------------------------------------- plan

/** A canonical cursor text, comparable as a string (fixed width, years 0001–9999). */
function comparable(text: string | undefined): text is string {
  return text !== undefined && /^\d{4}-\d{2}-\d{2} /.test(text);
}

/**
 * The pages of committed runs that may hold a version whose cursor lies in [from, to] (texts in
 * the clock the page keys were written in). A page whose bounds cannot be compared is included:
 * a re-run keeps every version of a replaced page it does not export again, so a page too many
 * costs time, never data.
 */
function pagesOverlapping(manifests: RunManifest[], from: string, to: string): Supersede[] {
  const out: Supersede[] = [];
  for (const m of manifests) {
    const pages = m.pages.filter((p) => p.files.length > 0 && (!comparable(p.first[0]) || !comparable(p.last[0]) || (p.last[0] >= from && p.first[0] <= to))).map((p) => p.page);
    if (pages.length) out.push({ runId: m.runId, pages });
  }
  return out;
}

/** The day before that of a canonical cursor text (as midnight): the last complete day. */
function lastCompleteDay(canonical: string): string {
  const day = new Date(`${canonical.slice(0, 10)}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() - 1);
  return `${day.toISOString().slice(0, 10)} 00:00:00.000000+00`;
}

/**
 * Where a scheduled window starts: the watermark; for a timestamp cursor whose cursorTimeZone
 * changed since, the instant at which the new zone's wall clock shows the time the old one
 * reached, so the rows already exported are neither skipped nor exported again.
 */
function resumeFrom(shape: TableShape, watermark: Watermark, deps: ExportDeps): string {
  const before = watermark.cursorTimeZone ?? 'UTC';
  if (shape.cursor?.typeName !== 'timestamp' || !shape.zone || before === shape.zone.name) return watermark.cursor;
  const from = shape.zone.instantOf(new CursorZone(before).wallOf(watermark.cursor), 'earlier');
  deps.log?.('cursorTimeZone changed: the window starts at the wall-clock time the last run reached', { table: shape.table.display, was: before, now: shape.zone.name, watermark: watermark.cursor, from });
  return from;
}

interface PlannedRun {
  readonly runId: string;
  readonly startedAt: string;
  readonly exportedAtMicros: string;
  /** The window's upper bound from the database clock (canonical text). */
  readonly upper: string;
  /** A prepared transaction exists: windows may not move past the watermark (ClockReading.prepared). */
  readonly prepared: ClockReading['prepared'];
}

function nullKeyMessage(table: string, what: string): string {
  return `${table}: ${what}; a keyset cannot page past a NULL key without losing rows: set tables[].primaryKey to columns that are never NULL, or make them NOT NULL`;
}

/** A re-run window as canonical cursor texts, from before to; a usage error otherwise. */
async function canonicalWindow(source: RowSource, window: NonNullable<RunRequest['window']>): Promise<{ from: string; to: string }> {
  const from = await canonicalCursor(source, window.from, 'window.from');
  const to = await canonicalCursor(source, window.to, 'window.to');
  if (from >= to) throw new ConfigError(`window: from ${window.from} must be before to ${window.to}`);
  return { from, to };
}

/** A timestamp text from the database or a user, in canonical form (asks Postgres to parse it). */
async function canonicalCursor(source: RowSource, text: string, what: string): Promise<string> {
  try {
    const [row] = await source.queryText(`SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t`, [text]);
    return row.t!;
  } catch (error) {
    throw new ConfigError(`${what}: ${JSON.stringify(text)} is not a timestamp Postgres understands (${(error as Error).message})`, { cause: error });
  }
}

async function planTable(deps: ExportDeps, shape: TableShape, request: RunRequest, run: PlannedRun): Promise<TableTask | { skipped: string }> {
  const table = shape.table;
  const state = new TableState(deps.store, deps.config.lake.prefix, table.lakeName);
  const conflict = await acquireLease(deps, state, run.runId, request.takeOver === true);
  if (conflict) return { skipped: `${table.display}: skipped, ${conflict}` };
  try {
    const watermark = await state.watermark();
    await recover(deps, state, watermark);
    const snapshot = table.config.mode === 'snapshot';
    // A snapshot replaces every file, so its columns may change freely.
    const previous = snapshot ? null : await state.read<{ columns: LakeColumn[] }>(state.schemaKey());
    const changes = previous ? incompatibleChanges(table.display, previous.value.columns, lakeColumns(shape)) : [];
    if (changes.length) throw new SchemaMismatchError(changes.join('; '));
    let kind: PendingRun['kind'] = 'scheduled';
    // A date cursor only moves in whole days: today is not over, so the window ends at the last
    // complete day (a row written later today with today's date is exported tomorrow).
    // Complete in the writers' zone: their today may still be yesterday in UTC, or already tomorrow.
    // A timestamp cursor's window never ends inside the first pass of an hour the clocks repeat.
    const upper = shape.cursor?.typeName === 'date' ? lastCompleteDay(shape.zone ? shape.zone.wallOf(run.upper) : run.upper)
      : shape.cursor?.typeName === 'timestamp' && shape.zone ? shape.zone.beforeRepeat(run.upper) : run.upper;
    const from = watermark ? resumeFrom(shape, watermark, deps) : null;
    // A prepared transaction began at an unknown time, but after the last plan moved the
    // watermark (it was open in a session then, and held that window back, or had not begun):
    // so its rows lie past the watermark, and the window may not move until it is resolved.
    if (run.prepared && !snapshot && from === null) {
      await releaseLease(deps, table.lakeName, run.runId);
      return { skipped: `${table.display}: skipped, prepared transaction ${JSON.stringify(run.prepared.gid)} (prepared ${run.prepared.prepared}) may hold rows of any age; the first export waits until it is committed or rolled back (COMMIT PREPARED / ROLLBACK PREPARED)` };
    }
    const held = run.prepared && !snapshot && from !== null ? from : null;
    // The bound can fall below the watermark (a larger safety lag, a clock step): nothing new then.
    const to = held ?? (from !== null && upper < from ? from : upper);
    let window: Window = { from, fromInclusive: false, to };
    let supersede: Supersede[] = [];
    if (snapshot && request.window) deps.log?.('a snapshot table has no cursor window: taking a full snapshot', { table: table.display });
    if (request.full || snapshot) {
      kind = 'full';
      window = { from: null, fromInclusive: false, to: held ?? upper };
      supersede = (await state.manifests()).map((m) => ({ runId: m.runId, pages: m.pages.map((p) => p.page) }));
    } else if (request.window) {
      if (!watermark) throw new ConfigError(`window: ${table.display} has never been exported; run it without a window first`);
      kind = 'window';
      let { from, to } = request.window;
      // Beyond the watermark is the scheduled run's territory; re-exporting it here would duplicate.
      if (to > watermark.cursor) {
        deps.log?.(`window ends after the watermark: re-exporting up to ${watermark.cursor} only; later rows are the next scheduled run's`, { table: table.display, windowTo: to, watermark: watermark.cursor });
        to = watermark.cursor;
        if (from >= to) from = to;
      }
      // Exactly the window asked for: the pages it touches are replaced, keeping every version
      // the re-run does not export again (see carryHistory).
      window = { from, fromInclusive: true, to };
      // Page keys hold the cursor's own values: for a timestamp cursor in another zone, wall-clock times.
      const wall = (instant: string) => (shape.cursor?.typeName === 'timestamp' && shape.zone ? shape.zone.wallOf(instant) : instant);
      supersede = pagesOverlapping(await state.manifests(), wall(from), wall(to));
    } else if (held !== null) {
      deps.log?.('window held at the watermark by a prepared transaction: nothing new is exported until it is committed or rolled back', { table: table.display, gid: run.prepared!.gid, prepared: run.prepared!.prepared });
    } else if (window.from !== null && window.from >= window.to) {
      deps.log?.('nothing new: the watermark is at or past the upper bound', { table: table.display, watermark: window.from, upper: window.to });
    }
    let nullCursorRows = 0;
    if (shape.cursor && !shape.cursor.notNull) {
      const q = nullCursorQuery({ ...shape, cursor: shape.cursor }, 10);
      nullCursorRows = Number((await deps.source.queryText(q.count))[0].n);
      if (nullCursorRows > 0) {
        const sample = (await deps.source.queryText(q.sample)).map((r) => r.key);
        deps.log?.('rows with a NULL cursor are not exported', { table: table.display, cursor: shape.cursor.name, rows: nullCursorRows, sampleKeys: sample });
      }
    }
    const nullKeys = window.from !== null && window.from >= window.to ? null : nullKeyQuery(shape, window);
    if (nullKeys) {
      const n = Number((await deps.source.queryText(nullKeys.count))[0].n);
      if (n > 0) {
        const at = (await deps.source.queryText(nullKeys.sample)).map((r) => r.at);
        const where = shape.cursor && at.length ? ` (${shape.cursor.name} = ${at.join(', ')})` : '';
        throw new ConfigError(nullKeyMessage(table.display, `${n} row${n === 1 ? '' : 's'} of this run's window have a NULL in primaryKey column${nullKeys.columns.length > 1 ? 's' : ''} ${nullKeys.columns.map((c) => JSON.stringify(c)).join(', ')}${where}`));
      }
    }
    const duplicates = window.from !== null && window.from >= window.to ? null : duplicateKeyQuery(shape, window);
    if (duplicates) {
      const rows = await deps.source.queryText(duplicates);
      if (rows.length) {
        const keys = rows.map((r) => `(${r.key}) ×${r.n}`).join(', ');
        throw new ConfigError(`${table.display}: primaryKey ${shape.keyColumns.map((c) => JSON.stringify(c.name)).join(', ')} is not unique in this run's window: ${keys}${rows.length === 3 ? ' …' : ''}; rows sharing a key would be lost at page boundaries and hide each other in ${table.lakeName}_current: set tables[].primaryKey to columns that identify a row`);
      }
    }
    const pending: PendingRun = { runId: run.runId, kind, window, supersede, startedAt: run.startedAt, basedOn: watermark?.runId ?? null };
    await state.write(state.pendingRunKey(run.runId), pending);
    return {
      table: table.lakeName, display: table.display, runId: run.runId, startedAt: run.startedAt, exportedAtMicros: run.exportedAtMicros,
      kind, window, fingerprint: shape.fingerprint, after: null, page: 0, rows: 0, files: 0, bytes: 0, carried: null,
      done: window.from !== null && window.from >= window.to && kind === 'scheduled', nullCursorRows,
    };
  } catch (error) {
    await releaseLease(deps, table.lakeName, run.runId);
    throw error;
  }
}

/**
 * Resolve the tables, check each against the catalog (a table that does not match fails by
 * name with all its problems at once; the others go on), read the database clock, then plan
 * each table's window.
 */
export async function planRun(deps: ExportDeps, request: RunRequest = {}, now = new Date()): Promise<RunPlan> {
  if (request.full && request.window) throw new ConfigError('full and window cannot be combined: full re-exports everything');
  const tables = selectTables(deps.config, request.tables);
  // The request itself is checked once: a bad window is one usage error, not one per table.
  const window = request.window ? await canonicalWindow(deps.source, request.window) : undefined;
  const shapes: TableShape[] = [];
  const failed: RunPlan['failed'] = [];
  // One table that does not match the database (missing, no key, a misspelled column) fails by
  // name; the others are planned and exported.
  for (const table of tables) {
    try {
      const shape = await describeTableShape(deps.source, table, deps.config);
      if (!deps.hashSalt && !deps.hashSaltDeferred && shape.layout.columns.some((c) => c.hashed)) {
        throw new ConfigError(`${shape.table.display}: columns.hash needs a salt: set LAKE_HASH_SALT (locally) or source.hashSaltSecretArn (deployed)`);
      }
      shapes.push(shape);
    } catch (error) {
      if (!(error instanceof ExportError)) throw error;
      failed.push({ table: table.lakeName, error: describeError(error) });
    }
  }
  const clock = await deps.source.readClock(deps.config.export.safetyLagSeconds);
  const upper = await canonicalCursor(deps.source, clock.upper, 'upper bound');
  const warnings = shapes.flatMap((s) => s.warnings);
  if (!clock.seesAllSessions) {
    warnings.push("the database user cannot see other users' transactions (GRANT pg_read_all_stats TO it): a transaction that commits after a run with an older cursor value could be missed");
  }
  if (clock.heldBackBy) warnings.push(`window upper bound held back to ${upper} by open transaction pid ${clock.heldBackBy.pid} (since ${clock.heldBackBy.xactStart})`);
  const runId = request.runId ?? newRunId(now);
  const startedAt = now.toISOString();
  const exportedAtMicros = String(BigInt(now.getTime()) * 1000n);
  if (clock.prepared) warnings.push(`prepared transaction ${JSON.stringify(clock.prepared.gid)} (prepared ${clock.prepared.prepared}) holds every incremental table at its watermark until it is committed or rolled back`);
  const plan: RunPlan = { runId, startedAt, tables: [], skipped: [], failed, warnings };
  for (const shape of shapes) {
    try {
      const planned = await planTable(deps, shape, { ...request, window }, { runId, startedAt, exportedAtMicros, upper, prepared: clock.prepared });
      if ('skipped' in planned) plan.skipped.push({ table: shape.table.lakeName, reason: planned.skipped });
      else plan.tables.push(planned);
    } catch (error) {
      // One table's trouble (its lake state unreachable, its type changed) must not stop the others.
      plan.failed.push({ table: shape.table.lakeName, error: describeError(error) });
    }
  }
  return plan;
}

// ---------------------------------------------------------------- export

/**
 * Export pages until the window is done or `deadline` (epoch ms) is near, then, for a re-run,
 * carry the history of the pages it replaces; returns the new task (`done`: ready to commit).
 */
export async function exportTable(deps: ExportDeps, task: TableTask, deadline = Number.POSITIVE_INFINITY): Promise<TableTask> {
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
  let current = task;
  if (current.carried === null) {
    current = await exportPages(deps, state, shape, current, deadline, keepLease);
    // Pages done: a re-run next carries what the pages it replaces hold beyond its own versions.
    if (current.done && (await replacedPages(state, shape, current)).length > 0) current = { ...current, done: false, carried: 0 };
  }
  if (current.carried !== null && !current.done) current = await carryHistory(deps, state, shape, current, deadline, keepLease);
  if (current.done) {
    // An earlier attempt of this invocation (retried after a timeout, data changed since) may
    // have journalled pages beyond the last one: they are not part of the run.
    const beyond = (await state.pendingPages(current.runId)).filter((p) => p.page > current.page);
    await deps.store.delete(beyond.flatMap((p) => [state.pendingPageKey(current.runId, p.page), ...p.files.map((f) => state.stagedKey(current.runId, f.key))]));
  }
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
      return await deps.source.copyBinary(pageQuery(shape, task.window, after, pageRows), spares.pop());
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

/** The earlier runs' pages a re-run replaces, in a fixed order (the carry's page numbering). */
async function replacedPages(state: TableState, shape: TableShape, task: TableTask): Promise<{ runId: string; page: number }[]> {
  // A snapshot replaces the whole table by design: it has no history to keep.
  if (task.kind === 'scheduled' || shape.table.config.mode === 'snapshot') return [];
  const planned = await state.read<PendingRun>(state.pendingRunKey(task.runId));
  if (!planned) throw new WindowConflictError(`${task.display}: run ${task.runId} has no pending run any more (another run removed it); stopping without writing`);
  return planned.value.supersede.flatMap((s) => s.pages.map((page) => ({ runId: s.runId, page })));
}

/**
 * Re-runs repair, never destroy: each page a re-run replaces is rewritten without the versions
 * the re-run exported again (Postgres's values win) and keeps every other version — history
 * Postgres no longer holds, or rows outside the window. The kept rows become a page of this run
 * (journalled, staged, published at commit like any other), numbered after its exported pages;
 * commit then removes the replaced pages. Resumable page by page across invocations.
 */
async function carryHistory(deps: ExportDeps, state: TableState, shape: TableShape, task: TableTask, deadline: number, keepLease: (task: TableTask) => Promise<void>): Promise<TableTask> {
  const { keepHistory, versionKeys } = await import('./history.ts');
  const replaced = await replacedPages(state, shape, task);
  const carried = task.carried ?? 0;
  const exportedPages = task.page - carried;
  const own = (await state.pendingPages(task.runId)).filter((p) => p.page <= exportedPages && !p.carriedFrom);
  const keyColumns = [shape.cursor!.name, ...shape.keyColumns.map((c) => c.name)];
  // Versions this run exported, by page, loaded for the replaced pages whose cursors they overlap.
  const exported = new Map<number, Set<string>>();
  const exportedKeys = async (page: PageEntry): Promise<Set<string>> => {
    let keys = exported.get(page.page);
    if (!keys) {
      keys = new Set<string>();
      for (const f of page.files) {
        const staged = await deps.store.get(state.stagedKey(task.runId, f.key));
        if (!staged) throw new StateError(`${task.display}: run ${task.runId}: staged file ${f.key} of page ${page.page} is missing`);
        for (const k of versionKeys(staged.body, keyColumns)) keys.add(k);
      }
      if (exported.size >= 16) exported.delete(exported.keys().next().value!);
      exported.set(page.page, keys);
    }
    return keys;
  };
  const manifests = new Map<string, RunManifest | null>();
  let current = task;
  const began = Date.now();
  for (let i = carried; i < replaced.length; i++) {
    // At least one page per invocation; then only while two more fit before the deadline.
    if (i > carried && Date.now() + (2 * (Date.now() - began)) / (i - carried) > deadline) break;
    await keepLease(current);
    const { runId, page } = replaced[i];
    if (!manifests.has(runId)) manifests.set(runId, (await state.read<RunManifest>(state.manifestKey(runId)))?.value ?? null);
    const old = manifests.get(runId)?.pages.find((p) => p.page === page);
    const pageNo = exportedPages + i + 1;
    const files: { key: string; rows: number; bytes: number; parquet: Uint8Array }[] = [];
    if (old) {
      const versions = new Set<string>();
      for (const p of own.filter((o) => cursorRangesOverlap(o, old))) for (const k of await exportedKeys(p)) versions.add(k);
      for (const f of old.files) {
        const body = await deps.store.get(f.key);
        if (!body) throw new StateError(`${task.display}: ${f.key}, listed by run ${runId} page ${page}, is missing from the lake`);
        const kept = keepHistory(body.body, keyColumns, versions);
        if (kept.parquet) files.push({ key: `${f.key.slice(0, f.key.lastIndexOf('/') + 1)}${task.runId}-p${String(pageNo).padStart(6, '0')}.parquet`, rows: kept.rows, bytes: kept.parquet.length, parquet: kept.parquet });
      }
    }
    // Journal first, then stage, as for exported pages; a page already replaced (a manifest
    // rewritten by a commit this run's plan did not see) carries nothing.
    const entry: PageEntry = {
      page: pageNo, rows: files.reduce((n, f) => n + f.rows, 0), first: old?.first ?? [], last: old?.last ?? [],
      files: files.map(({ key, rows, bytes }) => ({ key, rows, bytes })), carriedFrom: { runId, page },
    };
    await state.write(state.pendingPageKey(task.runId, pageNo), entry);
    await Promise.all(files.map((f) => deps.store.put(state.stagedKey(task.runId, f.key), f.parquet)));
    current = { ...current, page: pageNo, carried: i + 1, files: current.files + files.length, bytes: current.bytes + files.reduce((n, f) => n + f.bytes, 0), done: i + 1 === replaced.length };
    deps.log?.('history carried', { table: task.display, replacedRun: runId, replacedPage: page, keptRows: entry.rows });
  }
  return current;
}

/** Whether two pages' cursor ranges may share a cursor value (canonical texts; unsure: yes). */
function cursorRangesOverlap(a: PageEntry, b: PageEntry): boolean {
  const [af, al, bf, bl] = [a.first[0], a.last[0], b.first[0], b.last[0]];
  if (!comparable(af) || !comparable(al) || !comparable(bf) || !comparable(bl)) return true;
  return af <= bl && bf <= al;
}

// ---------------------------------------------------------------- commit

/**
 * Remove the pages a re-run replaced. What is replaced is journalled (pending/<runId>/replace.json)
 * before any earlier manifest changes, so a crash or a failed delete anywhere in between leaves
 * the list for the next plan's roll-forward: a file is never left visible and listed by nothing.
 * Written once: after a crash past this point the manifests no longer name those pages.
 */
async function replaceSuperseded(deps: LakeDeps, state: TableState, runId: string, supersede: readonly Supersede[]): Promise<void> {
  if (supersede.length === 0) return;
  let journal = (await state.read<Replacement>(state.replacementKey(runId)))?.value;
  if (!journal) {
    const files: string[] = [];
    for (const s of supersede) {
      const old = await state.read<RunManifest>(state.manifestKey(s.runId));
      files.push(...(old?.value.pages ?? []).filter((p) => s.pages.includes(p.page)).flatMap((p) => p.files.map((f) => f.key)));
    }
    journal = { supersede: [...supersede], files };
    await state.write(state.replacementKey(runId), journal);
  }
  for (const s of journal.supersede) {
    const old = await state.read<RunManifest>(state.manifestKey(s.runId));
    if (!old || !old.value.pages.some((p) => s.pages.includes(p.page))) continue;
    const kept = old.value.pages.filter((p) => !s.pages.includes(p.page));
    if (kept.length) await state.write(state.manifestKey(s.runId), { ...old.value, pages: kept });
    else await deps.store.delete([state.manifestKey(s.runId)]);
  }
  await deps.store.delete(journal.files);
}

/** Everything after the commit point; safe to repeat. `published`: the caller just published every file. */
async function finishCommit(deps: LakeDeps, state: TableState, runId: string, committedAt: string, published = false): Promise<RunManifest> {
  const pendingRun = await state.read<PendingRun>(state.pendingRunKey(runId));
  const existing = await state.read<RunManifest>(state.manifestKey(runId));
  if (!pendingRun) {
    if (existing) return existing.value;
    throw new StateError(`${state.root}: run ${runId} is committed but neither its pending run nor its manifest exists`);
  }
  // A manifest already written is the truth: after a crash in the tidying below, the journals
  // left under pending/ may be only some of the run's pages.
  const pages = existing ? existing.value.pages : await state.pendingPages(runId);
  if (!published) await publish(deps, state, runId, pages);
  // The schema (and, for a snapshot, the folder the table reads) switches only after the commit
  // point: until then Athena and the local views keep showing the last committed state.
  const schema = await state.read<LakeSchema>(state.pendingSchemaKey(runId));
  if (schema) {
    await state.write(state.schemaKey(), schema.value);
    await deps.registry?.register(state.lakeTable, schema.value);
  }
  const manifest: RunManifest = existing?.value ?? { runId, kind: pendingRun.value.kind, window: pendingRun.value.window, committedAt, pages };
  if (!existing) await state.write(state.manifestKey(runId), manifest);
  await replaceSuperseded(deps, state, runId, pendingRun.value.supersede);
  // run.json last: while it exists, the next plan knows this run still needs finishing.
  const leftovers = await deps.store.list(state.pendingPrefix(runId));
  await deps.store.delete(leftovers.filter((k) => k !== state.pendingRunKey(runId)));
  await deps.store.delete([state.pendingRunKey(runId)]);
  return manifest;
}

/** `work` again after a transient store fault, up to three attempts with backoff (idempotent work only). */
async function retried<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= 3 || !(error instanceof ThrottlingError || isTransientStoreError(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 * 4 ** (attempt - 1)));
    }
  }
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
  const table = quoteQualified(shape.table.name);
  const where = windowPredicates(shape, task.window).join(' AND ');
  const keys = shape.keyColumns.map((c) => `${quoteIdent(c.name)}::text`).join(` || ',' || `);
  for (const column of checks.notNull) {
    const rows = await deps.source.queryText(`SELECT ${keys} AS key FROM ${table} WHERE ${where} AND ${quoteIdent(column)} IS NULL LIMIT 5`);
    if (rows.length) failures.push(`notNull ${column}: NULL in rows with key ${rows.map((r) => r.key).join(' / ')}${rows.length === 5 ? ' …' : ''}`);
  }
  for (const column of checks.unique) {
    const rows = await deps.source.queryText(`SELECT ${quoteIdent(column)}::text AS value, count(*)::text AS n FROM ${table} WHERE ${where} GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 5`);
    if (rows.length) failures.push(`unique ${column}: ${rows.map((r) => `${JSON.stringify(r.value)} ×${r.n}`).join(', ')}`);
  }
  if (failures.length) throw new CheckFailedError(`${task.display}: check failed, nothing published: ${failures.join('; ')}`);
}

/** Make the run's files the table's truth: move the watermark (the commit point), then tidy up. */
export async function commitTable(deps: ExportDeps, task: TableTask): Promise<CommitResult> {
  if (!task.done) throw new StateError(`${task.display}: run ${task.runId} cannot commit before its last page is exported`);
  const state = new TableState(deps.store, deps.config.lake.prefix, task.table);
  const result = (cursor: string): CommitResult => ({
    table: task.table, status: 'succeeded', rows: task.rows, files: task.files, bytes: task.bytes,
    windowFrom: task.window.from, windowTo: task.window.to, watermark: cursor, nullCursorRows: task.nullCursorRows,
  });
  // Read once: its etag guards the commit-point write below, whatever happens in between.
  const current = await state.read<Watermark>(state.watermarkKey());
  // The same input delivered again (the first answer was lost): already committed, finish and say so.
  if (current?.value.runId === task.runId) {
    await finishCommit(deps, state, task.runId, current.value.committedAt);
    await releaseLease(deps, task.table, task.runId);
    return result(current.value.cursor);
  }
  await renewLease(deps, state, task);
  const shape = await describeTableShape(deps.source, findTable(deps.config, task.table), deps.config);
  if (shape.fingerprint !== task.fingerprint) {
    throw new SchemaMismatchError(`${task.display}: the table's columns (or its cursorTimeZone) changed during run ${task.runId}; nothing was published, the next run exports with the new ones`);
  }
  const pages = await state.pendingPages(task.runId);
  // Pages that carry a replaced page's history hold rows this run did not export.
  const rows = pages.reduce((n, p) => n + (p.carriedFrom ? 0 : p.rows), 0);
  if (pages.length !== task.page || rows !== task.rows) {
    throw new StateError(`${task.display}: run ${task.runId} journalled ${pages.length} pages / ${rows} rows but exported ${task.page} pages / ${task.rows} rows`);
  }
  // Fencing: the watermark must still be the one this run's window was planned from.
  const planned = await state.read<PendingRun>(state.pendingRunKey(task.runId));
  if (!planned) throw new WindowConflictError(`${task.display}: run ${task.runId} has no pending run any more (another run removed it); nothing published`);
  if ((current?.value.runId ?? null) !== (planned.value.basedOn ?? null)) {
    throw new WindowConflictError(`${task.display}: the watermark moved from run ${planned.value.basedOn ?? '(none)'} to ${current?.value.runId} while run ${task.runId} exported; nothing published`);
  }
  const cursor = task.kind === 'window' ? current?.value.cursor ?? task.window.to : task.window.to;
  if (current && task.kind !== 'full' && cursor < current.value.cursor) {
    throw new StateError(`${task.display}: watermark would move back from ${current.value.cursor} to ${cursor}`);
  }
  await runChecks(deps, shape, task);
  // Columns dropped from an incremental table stay declared, so older files keep them readable;
  // a snapshot declares exactly its own columns and reads its own folder.
  const snapshot = shape.table.config.mode === 'snapshot';
  const previous = snapshot ? null : await state.read<{ columns: LakeColumn[] }>(state.schemaKey());
  const fresh = lakeColumns(shape);
  const dropped = (previous?.value.columns ?? []).filter((c) => !fresh.some((f) => f.name === c.name));
  // Dropped columns go before the export metadata columns, which stay last.
  const tableColumns = fresh.length - META_COLUMNS.length;
  const columns = [...fresh.slice(0, tableColumns), ...dropped, ...fresh.slice(tableColumns)];
  const schema: LakeSchema = { ...lakeSchema(shape, columns), ...(snapshot ? { snapshotRunId: task.runId } : {}) };
  await state.write(state.pendingSchemaKey(task.runId), schema);
  // Publish, then commit: a crash in between leaves visible files of an uncommitted run, which
  // the next plan removes (they are journalled); the reverse order would commit unseen data.
  // The lease is checked again on each side of publishing: no other run may be recovering it.
  await renewLease(deps, state, task);
  await publish(deps, state, task.runId, pages);
  await renewLease(deps, state, task);
  const committedAt = new Date().toISOString();
  // The zone the cursor's wall clock was read in: the next run starts from the same wall time.
  const watermark: Watermark = { cursor, runId: task.runId, committedAt, cursorTimeZone: shape.table.config.cursorTimeZone };
  const written = current
    ? await state.write(state.watermarkKey(), watermark, { ifMatch: current.etag })
    : await state.write(state.watermarkKey(), watermark, { ifNoneMatch: true });
  if (!written) throw new WindowConflictError(`${task.display}: the watermark changed while run ${task.runId} committed; its files will be removed by the next run`);
  try {
    // Idempotent: a transient store fault here is retried at once rather than leaving a re-run's
    // replaced files visible beside their replacements until the next run.
    await retried(() => finishCommit(deps, state, task.runId, committedAt, true));
  } catch (error) {
    // Past the commit point the data is in: say so, and that the next plan finishes the tidying
    // (until then a re-run's replaced files may be visible beside their replacements).
    const Failure = error instanceof ThrottlingError || isTransientStoreError(error) ? ThrottlingError : ExportError;
    throw new Failure(`${task.display}: run ${task.runId} is committed (watermark ${cursor}), but finishing it failed: ${describeError(error)}; the next run (or a retry of this step) finishes it`, { cause: error });
  }
  await releaseLease(deps, task.table, task.runId);
  return result(cursor);
}
