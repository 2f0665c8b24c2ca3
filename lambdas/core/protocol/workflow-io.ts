// The shapes that travel between Step Functions states, validated at each handler's edge.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { CommitResult, TableTask } from './run-model.ts';
import { TableState, type Watermark } from './table-state.ts';
import type { LakeDeps } from './run-model.ts';
import { abandonRun } from './recovery.ts';
import { selectTables } from '../config.ts';
import type { QueryEngine } from '../ports.ts';
import { lastCommittedRun, validateRun, type ValidationResult } from '../lake/validate.ts';

/**
 * What the state machine gives Plan: the execution input as `request`, and the execution's
 * id and start time, from which the run id is derived (the same for a retried Plan).
 */
export const planInputSchema = z.strictObject({
  request: z.unknown(),
  execution: z.strictObject({ id: z.string().min(1), startTime: z.string().datetime({ offset: true }) }),
});

/**
 * The run id of an execution: its start time (UTC, to the second) and 8 hex digits of its id's
 * SHA-256 — the shape newRunId gives a local run, sorted by start like it.
 */
export function executionRunId(execution: { readonly id: string; readonly startTime: string }): string {
  const stamp = new Date(execution.startTime).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${createHash('sha256').update(execution.id).digest('hex').slice(0, 8)}`;
}

/** Execution input: `{}` (scheduled), `{"tables": [...]}`, `{"window": {...}}`, `{"full": true}`. */
export const runRequestSchema = z.strictObject({
  tables: z.array(z.string().min(1)).min(1).optional(),
  window: z.strictObject({ from: z.string().min(1), to: z.string().min(1) }).optional(),
  full: z.boolean().optional(),
  takeOver: z.boolean().optional(),
});

const windowSchema = z.strictObject({ from: z.string().nullable(), fromInclusive: z.boolean(), to: z.string() });

export const tableTaskSchema: z.ZodType<TableTask> = z.strictObject({
  table: z.string(),
  display: z.string(),
  runId: z.string(),
  startedAt: z.string(),
  exportedAtMicros: z.string().regex(/^\d+$/),
  kind: z.enum(['scheduled', 'window', 'full']),
  window: windowSchema,
  fingerprint: z.string(),
  after: z.array(z.string()).nullable(),
  page: z.number().int().min(0),
  rows: z.number().int().min(0),
  files: z.number().int().min(0),
  bytes: z.number().int().min(0),
  done: z.boolean(),
  carried: z.number().int().min(0).nullable(),
  nullCursorRows: z.number().int().min(0),
});

/**
 * What `Validate Table` adds to a committed table's result (under `validation`): counts only, so
 * hundreds of tables stay far below the 256 KB state limit (~130 bytes a table); the function
 * logs the details (partitions compared, bytes scanned, each mismatch and duplicate by name).
 * `skipped`: the engine could not answer (after the state's retries; `error` names why).
 */
export const tableValidationSchema = z.union([
  z.strictObject({
    status: z.enum(['ok', 'mismatch']),
    /** The run checked: this run, or the last that published files when this one found nothing new. */
    runId: z.string(),
    expectedRows: z.number().int().min(0),
    seenRows: z.number().int().min(0),
    /** Partitions whose row count differs from the manifest's. */
    mismatchedPartitions: z.number().int().min(0),
    /** Versions (key, cursor) held more than once in the run's window. */
    duplicateVersions: z.number().int().min(0),
  }),
  z.strictObject({ status: z.literal('skipped'), error: z.string() }),
]);
export type TableValidation = z.infer<typeof tableValidationSchema>;

const failedSchema = z.object({ table: z.string(), status: z.literal('failed'), error: z.string().nullish(), cause: z.string().nullish() });
const succeededSchema = z.object({
  table: z.string(), status: z.literal('succeeded'), rows: z.number(), files: z.number(), bytes: z.number(),
  windowFrom: z.string().nullable(), windowTo: z.string(), watermark: z.string(), nullCursorRows: z.number(),
  validation: tableValidationSchema.optional(),
});

/**
 * Each validation query may wait this long before it is stopped: both queries (and their
 * polling) fit in the Validate function's timeout, so a slow query is stopped, not left running.
 */
export const VALIDATE_QUERY_TIMEOUT_MILLIS = 6 * 60_000;

/** What `Validate Table` is given: the table's commit result (it only reads `table`). */
export const validateInputSchema = succeededSchema;

/** The validation result in the few counts that travel between states. */
export function shapeValidation(result: ValidationResult): TableValidation {
  return {
    status: result.ok ? 'ok' : 'mismatch',
    runId: result.runId,
    expectedRows: result.expectedRows,
    seenRows: result.seenRows,
    mismatchedPartitions: result.mismatches.length,
    duplicateVersions: result.duplicates.versions,
  };
}

/**
 * Check the table's last committed run against the engine, just after Commit: the run this
 * execution committed, or, when it found nothing new, the last run that published files (no
 * later run can have carried its rows, so its counts stay exact). A mismatch is a result, not an
 * error; an engine that cannot answer throws, and the state retries, then records a warning.
 */
export async function validateCommittedTable(engine: QueryEngine, deps: LakeDeps, table: string): Promise<{ result: ValidationResult | null; validation: TableValidation }> {
  const state = new TableState(deps.store, deps.config.lake.prefix, table);
  const last = await lastCommittedRun(state);
  if (!last) return { result: null, validation: { status: 'skipped', error: `${table}: nothing committed yet, nothing to validate` } };
  const result = await validateRun(engine, state, { runId: last.runId, cursorTimeZone: last.cursorTimeZone });
  return { result, validation: shapeValidation(result) };
}

export const summarizeInputSchema = z.object({
  runId: z.string(),
  startedAt: z.string(),
  results: z.array(z.union([succeededSchema, failedSchema])),
  skipped: z.array(z.object({ table: z.string(), reason: z.string() })).default([]),
  failed: z.array(z.object({ table: z.string(), error: z.string() })).default([]),
});

export interface TableSummary {
  readonly table: string;
  readonly status: 'succeeded' | 'failed' | 'skipped';
  readonly rows: number;
  readonly files: number;
  readonly bytes: number;
  readonly nullCursorRows: number;
  /** Seconds since the table's last successful commit (its watermark's committedAt); null before the first. */
  readonly stalenessSeconds: number | null;
  readonly error?: string;
  /**
   * What Validate Table found, in a word (absent: validation is off, or the table did not commit);
   * the counts stay in the table's result, not repeated here (hundreds of tables, 256 KB).
   */
  readonly validation?: TableValidation['status'];
}

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
  for (const result of results) {
    const stalenessSeconds = staleness.get(result.table) ?? null;
    tables.push(result.status === 'succeeded'
      ? { table: result.table, status: 'succeeded', rows: result.rows, files: result.files, bytes: result.bytes, nullCursorRows: result.nullCursorRows, stalenessSeconds, ...(result.validation ? { validation: result.validation.status } : {}) }
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
  };
}

/**
 * What Summarize emits to CloudWatch. Per table in the run: rows, bytes, NULL-cursor rows, and
 * TableSucceeded / TableFailed (1 or 0): the Stale alarm counts successes, so a run that failed
 * never looks like a fresh one. Per configured table: StalenessSeconds, seconds since its last
 * success (for the dashboard; every run measures every table, failed ones included). With
 * validation on, per run: ValidationMismatch (tables whose validation found a mismatch or
 * duplicates) and ValidationSkipped (tables the engine could not validate).
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
  return metrics;
}

export type { CommitResult };
