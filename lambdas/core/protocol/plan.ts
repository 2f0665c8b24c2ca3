// Plan: resolve the tables, check them against the catalog, read the database clock, and give
// each table its window (watermark, upper] — or a re-run's window — under its lease.
//
// Cursor values travel as canonical text, `YYYY-MM-DD HH:MM:SS.ffffff+00` (UTC, fixed width),
// so they compare as strings and never pass through a JS Date.
import { selectTables } from '../config.ts';
import { CursorZone } from '../cursor-zone.ts';
import { ConfigError, ExportError, SchemaMismatchError, ThrottlingError, describeError } from '../errors.ts';
import type { ClockReading, RowSource, LakeColumn } from '../ports.ts';
import { TableState, type Lease, type PendingRun, type RunManifest, type Supersede, type Watermark, type Window } from './table-state.ts';
import { describeTableShape, incompatibleChanges, lakeColumns, type TableShape } from '../source/table-shape.ts';
import { CANONICAL_CURSOR_SQL, duplicateKeyQuery, nullCursorQuery, nullKeyQuery } from '../source/queries.ts';
import { acquireLease, releaseLease } from './lease.ts';
import { chooseSegmentCount, planSegments, writeLanes, writeSegments } from './segments.ts';
import { recover } from './recovery.ts';
import { adoptBackfill, recordBackfill, runAdoptedBy } from './adopt-backfill.ts';
import { keyLineProblem } from '../lake/key-hash.ts';
import { type ExportDeps, type RunRequest, type TableTask, type RunPlan, newRunId } from './run-model.ts';

/** A canonical cursor text, comparable as a string (fixed width, years 0001–9999). */
export function comparable(text: string | undefined): text is string {
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

/**
 * The hidden writer (ClockReading.hiddenWriter) that may hold rows of this table: one that holds
 * a lock on it (writing a table, or a partition or child of it, locks it, and the lock is kept
 * until the transaction ends), or any, for a view or foreign table, whose writers lock other
 * relations.
 */
function hiddenWriterOf(shape: TableShape, writer: ClockReading['hiddenWriter']): ClockReading['hiddenWriter'] {
  if (!writer) return null;
  if (shape.relkind !== 'r' && shape.relkind !== 'p') return writer;
  const { schema, name } = shape.table.name;
  return writer.relations.some((r) => r.schema === schema && r.name === name) ? writer : null;
}

interface PlannedRun {
  readonly runId: string;
  readonly startedAt: string;
  readonly exportedAtMicros: string;
  /** The window's upper bound from the database clock (canonical text). */
  readonly upper: string;
  /** A writer that hides its start: the tables it wrote may not move past their watermark. */
  readonly hiddenWriter: ClockReading['hiddenWriter'];
}

export function nullKeyMessage(table: string, what: string): string {
  return `${table}: ${what}; a keyset cannot page past a NULL key without losing rows: set tables[].primaryKey to columns that are never NULL, or make them NOT NULL`;
}

/** A re-run window as canonical cursor texts, from before to; a usage error otherwise. */
async function canonicalWindow(source: RowSource, window: NonNullable<RunRequest['window']>): Promise<{ from: string; to: string }> {
  const from = await canonicalCursor(source, window.from, 'window.from');
  const to = await canonicalCursor(source, window.to, 'window.to');
  // Both ends are included: a window of one instant re-exports the rows that share it.
  if (from > to) throw new ConfigError(`window: from ${window.from} must not be after to ${window.to}`);
  return { from, to };
}

/** A timestamp text from the database or a user, in canonical form (asks Postgres to parse it). */
async function canonicalCursor(source: RowSource, text: string, what: string): Promise<string> {
  try {
    const [row] = await source.queryText(CANONICAL_CURSOR_SQL, [text]);
    if (row.t === null) throw new Error('±infinity is not an instant a window can start or end at (a window ends at the watermark anyway)');
    return row.t;
  } catch (error) {
    throw new ConfigError(`${what}: ${JSON.stringify(text)} is not a timestamp Postgres understands (${(error as Error).message})`, { cause: error });
  }
}

/**
 * A first load or a full re-run of a big table is a backfill: its window split into key ranges
 * (written beside the pending run, after it) that a Distributed Map exports at once. The
 * watermark after it is the window's end, as for any run: rows written meanwhile are the next
 * run's. Undefined when the table is exported in one sequence of pages.
 */
async function planBackfill(deps: ExportDeps, state: TableState, shape: TableShape, runId: string, kind: PendingRun['kind'], window: Window, held: boolean): Promise<TableTask['backfill']> {
  const firstLoad = kind === 'scheduled' && window.from === null && !held;
  if (!firstLoad && kind !== 'full') return undefined;
  const count = await chooseSegmentCount(deps, shape);
  if (count < 2) return undefined;
  const segments = await planSegments(deps, shape, window, count);
  if (segments.length < 2) return undefined;
  const listed = await writeSegments(state, runId, segments);
  // A table that limits its own concurrency: its segments in that many lanes (the map's items).
  const lanes = shape.table.config.backfill?.concurrency;
  const items = lanes !== undefined && lanes < segments.length ? await writeLanes(state, runId, segments, lanes) : listed;
  deps.log?.('backfill: the window is split into key-range segments (the workflow\'s Distributed Map exports them at once)', { table: shape.table.display, segments: segments.length, by: shape.table.config.backfill?.by ?? 'key' });
  return { segments: segments.length, items, pages: null };
}

async function planTable(deps: ExportDeps, shape: TableShape, request: RunRequest, run: PlannedRun): Promise<TableTask | { skipped: string }> {
  const table = shape.table;
  const state = new TableState(deps.store, deps.config.lake.prefix, table.lakeName);
  // As it was before this plan: adopting a backfill whose live lease was taken over is refused.
  const before = (await state.read<Lease>(state.leaseKey()))?.value ?? null;
  const conflict = await acquireLease(deps, state, run.runId, request.takeOver === true);
  // A retried plan finds the lease with the backfill run it adopted the first time.
  const readopting = conflict !== null && (await runAdoptedBy(state, run.runId)) !== null;
  if (conflict && !readopting) return { skipped: `${table.display}: skipped, ${conflict}` };
  try {
    const watermark = await state.watermark();
    // What a killed writer left half-written (a directory lake's temporary files) goes too.
    await deps.store.sweepAbandonedWrites?.(state.root);
    const snapshot = table.config.mode === 'snapshot';
    // A backfill that failed goes on where it stopped, as its own run (README "Backfill").
    const adopted = snapshot ? null : await adoptBackfill(deps, state, shape, request, watermark, run.runId, readopting ? null : before);
    await recover(deps, state, watermark, run.runId, adopted?.runId);
    if (adopted) return adopted;
    // A retried plan of a run another execution adopted (or a removal claimed) since: that run is theirs.
    const own = await state.read<PendingRun>(state.pendingRunKey(run.runId));
    if (own && (own.value.adoptedBy !== undefined || own.value.removing)) {
      await releaseLease(deps, table.lakeName, run.runId);
      return { skipped: `${table.display}: skipped, run ${run.runId} was ${own.value.removing ? 'claimed for removal' : `continued by execution ${own.value.adoptedBy}`} since this plan first ran` };
    }
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
    // A prepared transaction (or a session hiding its activity) began at an unknown time, but
    // after the last plan moved the watermark (it was open in a visible session then, and held
    // that window back, or had not begun): its rows lie past the watermark, and the window may
    // not move until it ends.
    const writer = snapshot ? null : hiddenWriterOf(shape, run.hiddenWriter);
    if (writer && from === null) {
      await releaseLease(deps, table.lakeName, run.runId);
      return { skipped: `${table.display}: skipped, ${writer.who} (since ${writer.since}) may hold rows of any age; the first export waits until it ends (COMMIT PREPARED / ROLLBACK PREPARED, or the session's COMMIT)` };
    }
    const held = writer && from !== null ? from : null;
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
      deps.log?.('window held at the watermark by a writer that hides its start: nothing new is exported until it ends', { table: table.display, writer: writer!.who, since: writer!.since });
    } else if (window.from !== null && window.from >= window.to) {
      deps.log?.('nothing new: the watermark is at or past the upper bound', { table: table.display, watermark: window.from, upper: window.to });
    }
    let nullCursorRows = 0;
    if (shape.cursor) {
      const q = nullCursorQuery({ ...shape, cursor: shape.cursor }, 10);
      nullCursorRows = Number((await deps.source.queryText(q.count))[0].n);
      if (nullCursorRows > 0) {
        const sample = (await deps.source.queryText(q.sample)).map((r) => r.key);
        deps.log?.('rows with a NULL or infinity cursor are not exported', { table: table.display, cursor: shape.cursor.name, rows: nullCursorRows, sampleKeys: sample });
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
    const backfill = await planBackfill(deps, state, shape, run.runId, kind, window, held !== null);
    const task: TableTask = {
      table: table.lakeName, display: table.display, runId: run.runId, startedAt: run.startedAt, exportedAtMicros: run.exportedAtMicros,
      kind, window, fingerprint: shape.fingerprint, after: null, page: 0, rows: 0, files: 0, bytes: 0, carried: null,
      done: window.from !== null && window.from >= window.to && kind === 'scheduled', nullCursorRows, ...(backfill ? { backfill } : {}),
    };
    if (backfill) await recordBackfill(deps, state, shape, task);
    return task;
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
      // The salt itself, or the secret that holds it (read only by the step that hashes).
      if (!deps.hashSalt && !deps.config.source?.hashSaltSecretArn && shape.layout.columns.some((c) => c.hashed)) {
        throw new ConfigError(`${shape.table.display}: columns.hash needs a salt: set LAKE_HASH_SALT (locally) or source.hashSaltSecretArn (deployed)`);
      }
      // Detection follows the export: a key it cannot compare fails here, before any page is read.
      const keyProblem = shape.table.config.deletes?.detect ? keyLineProblem(shape.table.display, shape.keyColumns) : null;
      if (keyProblem) throw new ConfigError(keyProblem);
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
  if (clock.hiddenWriter) {
    const writer = clock.hiddenWriter;
    const held = shapes.filter((s) => s.table.config.mode !== 'snapshot' && hiddenWriterOf(s, writer)).map((s) => s.table.display);
    if (held.length) warnings.push(`${writer.who} (since ${writer.since}) holds ${held.join(', ')} at the watermark until it ends (COMMIT PREPARED / ROLLBACK PREPARED, or the session's COMMIT)`);
  }
  const plan: RunPlan = { runId, startedAt, tables: [], skipped: [], failed, warnings };
  for (const shape of shapes) {
    try {
      const planned = await planTable(deps, shape, { ...request, window }, { runId, startedAt, exportedAtMicros, upper, hiddenWriter: clock.hiddenWriter });
      if ('skipped' in planned) plan.skipped.push({ table: shape.table.lakeName, reason: planned.skipped });
      else plan.tables.push(planned);
    } catch (error) {
      // One table's trouble (its lake state unreachable, its type changed) must not stop the others.
      plan.failed.push({ table: shape.table.lakeName, error: describeError(error), ...(error instanceof ThrottlingError ? { transient: true } : {}) });
    }
  }
  return plan;
}
