// Run the whole export in one process: plan, export every table's pages, commit. The CLI's
// `run` and the tests use it; the Lambdas run the same core functions one step at a time.
import { selectTables } from '../../lambdas/core/config.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { type ExportDeps, type RunRequest, type TableTask } from '../../lambdas/core/protocol/run-model.ts';
import type { TableSummary } from '../../lambdas/core/protocol/summarize.ts';
import { ExportError, describeError } from '../../lambdas/core/errors.ts';
import { quoteQualified } from '../../lambdas/core/identifiers.ts';
import type { RowSource } from '../../lambdas/core/ports.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { describeTableShape } from '../../lambdas/core/source/table-shape.ts';
import { windowPredicates } from '../../lambdas/core/source/queries.ts';

/**
 * A table's outcome in a local run: the line Summarize gives the deployed workflow, with the
 * window it exported and what a signal or the window's end held back.
 */
export type TableOutcome = Omit<TableSummary, 'status' | 'stalenessSeconds' | 'validation'> & {
  /** `interrupted`: the run was stopped (SIGINT/SIGTERM) before this table committed; nothing of it was published. */
  readonly status: TableSummary['status'] | 'interrupted';
  readonly windowFrom: string | null;
  readonly windowTo: string | null;
  /** A scheduled run that exported nothing: rows beyond the window's end, which wait for a later run. */
  readonly heldBack?: { readonly rows: number; readonly cursor: string; readonly cursorType: string };
};

export interface RunOutcome {
  readonly runId: string;
  readonly tables: TableOutcome[];
  readonly warnings: string[];
  readonly durationMs: number;
  /** Set when a signal stopped the run: which one. */
  readonly interrupted?: string;
}

export interface RunControl {
  /**
   * Aborted on Ctrl-C or SIGTERM (its `reason` names the signal): the run stops at its next
   * database request, removes what the unfinished tables wrote and gives back their leases,
   * so the next run needs no --take-over.
   */
  readonly signal?: AbortSignal;
  /** Called once the tables are planned, before the first page (the CLI sizes its progress bars). */
  readonly onPlanned?: (tasks: readonly TableTask[]) => Promise<void> | void;
  /** For a scheduled run that exports 0 rows, count the rows past the window's end (one query). @default false */
  readonly countHeldBack?: boolean;
}

/** Stopped by a signal: raised by the source wrapper below at the run's next database request. */
class InterruptedError extends ExportError {
  override name = 'InterruptedError';
}

/** The source, refusing every request once `signal` is aborted (a COPY already under way finishes). */
function interruptible(source: RowSource, signal: AbortSignal): RowSource {
  const check = () => {
    if (signal.aborted) throw new InterruptedError(`interrupted by ${String(signal.reason)}`);
  };
  return {
    describeTable: async (table) => { check(); return source.describeTable(table); },
    readClock: async (lag) => { check(); return source.readClock(lag); },
    copyBinary: async (select, reuse) => { check(); return source.copyBinary(select, reuse); },
    queryText: async (sql, params) => { check(); return source.queryText(sql, params); },
    close: () => source.close(),
  };
}

/** Undo a table's unfinished run: its files, its journal, its lease, and any temporary files. */
async function abandonTable(deps: ExportDeps, task: TableTask): Promise<void> {
  await abandonRun(deps, task.table, task.runId).catch(() => undefined);
  const state = new TableState(deps.store, deps.config.lake.prefix, task.table);
  await deps.store.sweepAbandonedWrites?.(state.pendingPrefix(task.runId)).catch(() => undefined);
}

/** Rows of a table past `windowTo` (in its cursor's own clock): what the window's end held back. */
async function countHeldBack(deps: ExportDeps, table: string, windowTo: string): Promise<TableOutcome['heldBack']> {
  const [resolved] = selectTables(deps.config, [table]);
  const shape = await describeTableShape(deps.source, resolved, deps.config);
  if (!shape.cursor) return undefined;
  const where = windowPredicates(shape, { from: windowTo, fromInclusive: false, to: 'infinity' }).join(' AND ');
  const [row] = await deps.source.queryText(`SELECT count(*)::text AS n FROM ${quoteQualified(shape.table.name)} WHERE ${where}`);
  return { rows: Number(row.n), cursor: shape.cursor.name, cursorType: shape.cursor.typeName };
}

const outcomeOf = (task: TableTask, status: TableOutcome['status'], error: string): TableOutcome => ({
  table: task.table, status, rows: task.rows, files: task.files, bytes: task.bytes,
  windowFrom: task.window.from, windowTo: task.window.to, nullCursorRows: task.nullCursorRows, error,
});

/** `now` fixes the run's id time and export timestamp (tests compare files byte for byte). */
export async function runExport(deps: ExportDeps, request: RunRequest = {}, now = new Date(), control: RunControl = {}): Promise<RunOutcome> {
  const started = Date.now();
  const signal = control.signal;
  const runDeps: ExportDeps = signal ? { ...deps, source: interruptible(deps.source, signal) } : deps;
  // In one process the salt is given (LAKE_HASH_SALT) or there is none: a deploy config's secret,
  // which only the deployed Export reads, must not let Plan pass a table this run cannot hash.
  const { source: _deployOnly, ...localConfig } = deps.config;
  const plan = await planRun(deps.hashSalt ? runDeps : { ...runDeps, config: localConfig }, request, now);
  const tables: TableOutcome[] = [
    ...plan.skipped.map((s) => ({ table: s.table, status: 'skipped' as const, rows: 0, files: 0, bytes: 0, windowFrom: null, windowTo: null, nullCursorRows: 0, error: s.reason })),
    // A table whose planning a signal cut short is interrupted, not failed.
    ...plan.failed.map((f) => ({
      table: f.table, status: signal?.aborted && f.error.includes(InterruptedError.name) ? 'interrupted' as const : 'failed' as const,
      rows: 0, files: 0, bytes: 0, windowFrom: null, windowTo: null, nullCursorRows: 0, error: f.error,
    })),
  ];
  if (!signal?.aborted) await control.onPlanned?.(plan.tables);
  for (const planned of plan.tables) {
    let task = planned;
    if (signal?.aborted) {
      await abandonTable(deps, task);
      tables.push(outcomeOf(task, 'interrupted', `stopped by ${String(signal.reason)} before its export began; nothing published, lease released`));
      continue;
    }
    try {
      while (!task.done) task = await exportTable(runDeps, task);
      const result = await commitTable(runDeps, task);
      let heldBack: TableOutcome['heldBack'];
      if (control.countHeldBack && result.rows === 0 && task.kind === 'scheduled' && result.windowTo !== null) {
        heldBack = await countHeldBack(runDeps, task.table, result.windowTo).catch(() => undefined);
      }
      tables.push({
        table: task.table, status: 'succeeded', rows: result.rows, files: result.files, bytes: result.bytes,
        windowFrom: result.windowFrom, windowTo: result.windowTo, nullCursorRows: result.nullCursorRows, ...(heldBack ? { heldBack } : {}),
      });
    } catch (error) {
      await abandonTable(deps, task);
      if (signal?.aborted) tables.push(outcomeOf(task, 'interrupted', `stopped by ${String(signal.reason)} after ${task.rows} rows; nothing published, lease released`));
      else tables.push(outcomeOf(task, 'failed', describeError(error)));
    }
  }
  return {
    runId: plan.runId, tables, warnings: plan.warnings, durationMs: Date.now() - started,
    ...(signal?.aborted ? { interrupted: String(signal.reason) } : {}),
  };
}
