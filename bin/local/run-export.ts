// Run the whole export in one process: plan, export every table's pages, commit. The CLI's
// `run` and the tests use it; the Lambdas run the same core functions one step at a time.
import { abandonRun, commitTable, exportTable, planRun, type ExportDeps, type RunRequest } from '../../lambdas/core/exporter.ts';
import { describeError } from '../../lambdas/core/errors.ts';

export interface TableOutcome {
  readonly table: string;
  readonly status: 'succeeded' | 'failed' | 'skipped';
  readonly rows: number;
  readonly files: number;
  readonly bytes: number;
  readonly windowFrom: string | null;
  readonly windowTo: string | null;
  /** Rows left out because their cursor is NULL (logged with sample keys). */
  readonly nullCursorRows: number;
  readonly error?: string;
}

export interface RunOutcome {
  readonly runId: string;
  readonly tables: TableOutcome[];
  readonly warnings: string[];
  readonly durationMs: number;
}

/** `now` fixes the run's id time and export timestamp (tests compare files byte for byte). */
export async function runExport(deps: ExportDeps, request: RunRequest = {}, now = new Date()): Promise<RunOutcome> {
  const started = Date.now();
  const plan = await planRun(deps, request, now);
  const tables: TableOutcome[] = [
    ...plan.skipped.map((s) => ({ table: s.table, status: 'skipped' as const, rows: 0, files: 0, bytes: 0, windowFrom: null, windowTo: null, nullCursorRows: 0, error: s.reason })),
    ...plan.failed.map((f) => ({ table: f.table, status: 'failed' as const, rows: 0, files: 0, bytes: 0, windowFrom: null, windowTo: null, nullCursorRows: 0, error: f.error })),
  ];
  for (const planned of plan.tables) {
    let task = planned;
    try {
      while (!task.done) task = await exportTable(deps, task);
      const result = await commitTable(deps, task);
      tables.push({ table: task.table, status: 'succeeded', rows: result.rows, files: result.files, bytes: result.bytes, windowFrom: result.windowFrom, windowTo: result.windowTo, nullCursorRows: result.nullCursorRows });
    } catch (error) {
      await abandonRun(deps, task.table, task.runId).catch(() => undefined);
      tables.push({ table: task.table, status: 'failed', rows: task.rows, files: task.files, bytes: task.bytes, windowFrom: task.window.from, windowTo: task.window.to, nullCursorRows: task.nullCursorRows, error: describeError(error) });
    }
  }
  return { runId: plan.runId, tables, warnings: plan.warnings, durationMs: Date.now() - started };
}
