// Summarize Run: each table's outcome, the staleness of every configured table, and the
// CloudWatch values the step emits. Failed tables are tidied here, once per run.
import { z } from 'zod';
import { selectTables } from '../config.ts';
import { abandonRun } from './recovery.ts';
import { runPlanSchema, type LakeDeps } from './run-model.ts';
import { TableState, type Watermark } from './table-state.ts';
import { tombstonesOfRun } from './reconcile.ts';
import { committedTableSchema, failedTableSchema, validationStatusSchema } from './workflow-io.ts';

/** What Summarize is given: the Map's per-table results, and what Plan skipped or could not plan. */
export const summarizeInputSchema = z.object({
  runId: z.string(),
  startedAt: z.string(),
  results: z.array(z.union([committedTableSchema, failedTableSchema])),
  skipped: runPlanSchema.shape.skipped.default([]),
  failed: runPlanSchema.shape.failed.default([]),
});

/** One table's line in the run's summary (Step Functions output: small, hundreds of tables fit in 256 KB). */
export const tableSummarySchema = z.object({
  table: z.string(),
  status: z.enum(['succeeded', 'failed', 'skipped']),
  rows: z.number().int().min(0),
  files: z.number().int().min(0),
  bytes: z.number().int().min(0),
  /** Rows left out because their cursor is NULL (logged with sample keys). */
  nullCursorRows: z.number().int().min(0),
  /** Seconds since the table's last successful commit (its watermark's committedAt); null before the first. */
  stalenessSeconds: z.number().int().min(0).nullable(),
  error: z.string().optional(),
  /**
   * What Validate Table found, in a word (absent: validation is off, or the table did not commit);
   * the counts stay in the table's result, not repeated here (hundreds of tables, 256 KB).
   */
  validation: validationStatusSchema.optional(),
  /** Tombstones the run wrote: keys found deleted from Postgres (tables with deletes.detect only). */
  deletes: z.number().int().min(0).optional(),
});
export type TableSummary = Readonly<z.infer<typeof tableSummarySchema>>;

export interface RunSummary {
  readonly runId: string;
  readonly succeeded: number;
  readonly failed: number;
  readonly durationSeconds: number;
  readonly tables: TableSummary[];
  /**
   * Seconds since the last successful commit of every configured table, also those this run
   * did not export (a re-run of a few tables still measures all); null before the first.
   */
  readonly stalenessSeconds: Readonly<Record<string, number | null>>;
  /**
   * Tables whose validation found rows the engine counts differently from the manifest, or
   * duplicated versions; and tables whose validation could not run. Null when validation is off.
   */
  readonly validation: { readonly mismatched: number; readonly skipped: number } | null;
  /**
   * Tables whose Compact Table failed (after its retries; the export stands, the Compact
   * function's log says why). Null when the workflow does not compact.
   */
  readonly compaction: { readonly failed: number } | null;
}

/** One CloudWatch value the Summarize step emits; `table` is the `Table` dimension (absent: per run). */
export interface RunMetric {
  readonly name: string;
  readonly unit: 'Count' | 'Bytes' | 'Seconds';
  readonly value: number;
  readonly table?: string;
}

/** Watermarks read at once in Summarize: hundreds of tables must not take minutes, nor flood S3. */
const WATERMARK_READS_AT_ONCE = 16;

/** Seconds since each table's last successful commit (null before its first), read from its watermark. */
async function secondsSinceSuccess(deps: LakeDeps, tables: readonly string[], now: Date): Promise<Map<string, number | null>> {
  const out = new Map<string, number | null>();
  let next = 0;
  const reader = async () => {
    while (next < tables.length) {
      const table = tables[next++];
      const watermark: Watermark | null = await new TableState(deps.store, deps.config.lake.prefix, table).watermark();
      out.set(table, watermark ? Math.max(0, Math.round((now.getTime() - Date.parse(watermark.committedAt)) / 1000)) : null);
    }
  };
  await Promise.all(Array.from({ length: Math.min(WATERMARK_READS_AT_ONCE, tables.length) }, reader));
  return out;
}

/**
 * The run's outcome per table. Failed tables are tidied (their unfinished files removed and
 * the lease freed) so the lake is as it was and the next run can start at once. Staleness is
 * measured for every configured table, failed or not exported this time included, after that.
 */
export async function summarizeRun(deps: LakeDeps, input: z.infer<typeof summarizeInputSchema>, now = new Date()): Promise<RunSummary> {
  const results = [
    ...input.results,
    ...input.failed.map((f) => ({ table: f.table, status: 'failed' as const, error: f.error, cause: null })),
  ];
  for (const result of results) if (result.status === 'failed') await abandonRun(deps, result.table, input.runId);
  const configured = selectTables(deps.config).map((t) => t.lakeName);
  const staleness = await secondsSinceSuccess(deps, [...new Set([...configured, ...results.map((r) => r.table)])], now);
  const tables: TableSummary[] = [];
  // Tables that look for deletes: their tombstones, as Commit counted them (else from the run's manifest, one read each).
  const detecting = new Set(selectTables(deps.config).filter((t) => t.config.deletes?.detect).map((t) => t.lakeName));
  for (const result of results) {
    const stalenessSeconds = staleness.get(result.table) ?? null;
    const deletes = result.status === 'succeeded' && detecting.has(result.table)
      ? { deletes: result.deletes ?? await tombstonesOfRun(new TableState(deps.store, deps.config.lake.prefix, result.table), input.runId) }
      : {};
    tables.push(result.status === 'succeeded'
      ? { table: result.table, status: 'succeeded', rows: result.rows, files: result.files, bytes: result.bytes, nullCursorRows: result.nullCursorRows, stalenessSeconds, ...(result.validation ? { validation: result.validation.status } : {}), ...deletes }
      : { table: result.table, status: 'failed', rows: 0, files: 0, bytes: 0, nullCursorRows: 0, stalenessSeconds, error: [result.error, result.cause].filter(Boolean).join(': ') });
  }
  // A skipped table is another run's to export: reported, not a failure.
  for (const skipped of input.skipped) {
    tables.push({ table: skipped.table, status: 'skipped', rows: 0, files: 0, bytes: 0, nullCursorRows: 0, stalenessSeconds: staleness.get(skipped.table) ?? null, error: skipped.reason });
  }
  const failed = tables.filter((t) => t.status === 'failed').length;
  const validated = tables.filter((t) => t.validation !== undefined);
  return {
    runId: input.runId,
    succeeded: tables.filter((t) => t.status === 'succeeded').length,
    failed,
    durationSeconds: Math.round((now.getTime() - Date.parse(input.startedAt)) / 1000),
    tables,
    stalenessSeconds: Object.fromEntries(configured.map((table) => [table, staleness.get(table) ?? null])),
    validation: deps.config.validation.enabled
      ? { mismatched: validated.filter((t) => t.validation === 'mismatch').length, skipped: validated.filter((t) => t.validation === 'skipped').length }
      : null,
    compaction: deps.config.compaction.enabled
      ? { failed: input.results.filter((r) => r.status === 'succeeded' && r.compaction?.status === 'failed').length }
      : null,
  };
}

/**
 * What Summarize emits to CloudWatch. Per table in the run: rows, bytes, NULL-cursor rows, and
 * TableSucceeded / TableFailed (1 or 0): the Stale alarm counts successes, so a run that failed
 * never looks like a fresh one. Per configured table: StalenessSeconds, seconds since its last
 * success (for the dashboard; every run measures every table, failed ones included). With
 * validation on, per run: ValidationMismatch (tables whose validation found a mismatch or
 * duplicates) and ValidationSkipped (tables the engine could not validate). With compaction on,
 * per run: CompactionFailed (tables whose Compact Table failed). Per table with deletes.detect:
 * DeletesDetected, the tombstones the run wrote.
 */
export function runMetrics(summary: RunSummary): RunMetric[] {
  const metrics: RunMetric[] = [];
  for (const table of summary.tables) {
    metrics.push(
      { table: table.table, name: 'RowsExported', unit: 'Count', value: table.rows },
      { table: table.table, name: 'BytesWritten', unit: 'Bytes', value: table.bytes },
      { table: table.table, name: 'NullCursorRows', unit: 'Count', value: table.nullCursorRows },
      { table: table.table, name: 'TableSucceeded', unit: 'Count', value: table.status === 'succeeded' ? 1 : 0 },
      { table: table.table, name: 'TableFailed', unit: 'Count', value: table.status === 'failed' ? 1 : 0 },
    );
    if (table.deletes !== undefined) metrics.push({ table: table.table, name: 'DeletesDetected', unit: 'Count', value: table.deletes });
  }
  for (const [table, seconds] of Object.entries(summary.stalenessSeconds)) {
    if (seconds !== null) metrics.push({ table, name: 'StalenessSeconds', unit: 'Seconds', value: seconds });
  }
  metrics.push({ name: 'TablesFailed', unit: 'Count', value: summary.failed });
  // Per run, so one alarm covers every table (the summary and the log name which).
  if (summary.validation) {
    metrics.push(
      { name: 'ValidationMismatch', unit: 'Count', value: summary.validation.mismatched },
      { name: 'ValidationSkipped', unit: 'Count', value: summary.validation.skipped },
    );
  }
  if (summary.compaction) metrics.push({ name: 'CompactionFailed', unit: 'Count', value: summary.compaction.failed });
  return metrics;
}
