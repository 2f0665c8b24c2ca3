// The shapes that travel between Step Functions states, validated at each handler's edge, and
// the Validate step's glue (what it checks, the few counts it returns). The table's task and
// commit result are in run-model.ts; Summarize is in summarize.ts.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { TableState } from './table-state.ts';
import { commitResultSchema, type LakeDeps } from './run-model.ts';
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

/** What Validate Table found, in a word: `skipped` when the engine could not answer. */
export const validationStatusSchema = z.enum(['ok', 'mismatch', 'skipped']);

/**
 * What `Validate Table` adds to a committed table's result (under `validation`): counts only, so
 * hundreds of tables stay far below the 256 KB state limit (~130 bytes a table); the function
 * logs the details (partitions compared, bytes scanned, each mismatch and duplicate by name).
 * `skipped`: the engine could not answer (after the state's retries; `error` names why).
 */
export const tableValidationSchema = z.union([
  z.strictObject({
    status: validationStatusSchema.exclude(['skipped']),
    /** The run checked: this run, or the last that published files when this one found nothing new. */
    runId: z.string(),
    expectedRows: z.number().int().min(0),
    seenRows: z.number().int().min(0),
    /** Partitions whose row count differs from the manifest's. */
    mismatchedPartitions: z.number().int().min(0),
    /** Versions (key, cursor) held more than once in the run's window. */
    duplicateVersions: z.number().int().min(0),
  }),
  z.strictObject({ status: validationStatusSchema.extract(['skipped']), error: z.string() }),
]);
export type TableValidation = z.infer<typeof tableValidationSchema>;

/**
 * What `Compact Table` leaves under a committed table's `compaction`: the handler's status, or
 * `failed` and the error's name when the state's Catch recorded the failure as a warning.
 */
export const tableCompactionSchema = z.union([
  z.object({ status: z.enum(['compacted', 'skipped']) }),
  z.object({ status: z.literal('failed'), error: z.string().nullish() }),
]);

/** A committed table's result as the Map's state holds it: Commit's result, and Validate's counts and Compact's status when on. */
export const committedTableSchema = commitResultSchema.extend({ validation: tableValidationSchema.optional(), compaction: tableCompactionSchema.optional() });

/** A table whose steps failed, as the Map's Catch records it (the error's name and cause). */
export const failedTableSchema = z.object({ table: z.string(), status: z.literal('failed'), error: z.string().nullish(), cause: z.string().nullish() });

/**
 * Each validation query may wait this long before it is stopped: both queries (and their
 * polling) fit in the Validate function's timeout, so a slow query is stopped, not left running.
 */
export const VALIDATE_QUERY_TIMEOUT_MILLIS = 6 * 60_000;

/** What `Validate Table` is given: the table's commit result (it only reads `table`). */
export const validateInputSchema = committedTableSchema;

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
