// The shapes that travel between Step Functions states, validated at each handler's edge.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { CommitResult, TableTask } from './exporter.ts';
import { TableState, type Watermark } from './state.ts';
import type { LakeDeps } from './exporter.ts';
import { abandonRun } from './exporter.ts';
import { selectTables } from './config.ts';

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

const failedSchema = z.object({ table: z.string(), status: z.literal('failed'), error: z.string().nullish(), cause: z.string().nullish() });
const succeededSchema = z.object({
  table: z.string(), status: z.literal('succeeded'), rows: z.number(), files: z.number(), bytes: z.number(),
  windowFrom: z.string().nullable(), windowTo: z.string(), watermark: z.string(), nullCursorRows: z.number(),
});

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
      ? { table: result.table, status: 'succeeded', rows: result.rows, files: result.files, bytes: result.bytes, nullCursorRows: result.nullCursorRows, stalenessSeconds }
      : { table: result.table, status: 'failed', rows: 0, files: 0, bytes: 0, nullCursorRows: 0, stalenessSeconds, error: [result.error, result.cause].filter(Boolean).join(': ') });
  }
  // A skipped table is another run's to export: reported, not a failure.
  for (const skipped of input.skipped) {
    tables.push({ table: skipped.table, status: 'skipped', rows: 0, files: 0, bytes: 0, nullCursorRows: 0, stalenessSeconds: staleness.get(skipped.table) ?? null, error: skipped.reason });
  }
  const failed = tables.filter((t) => t.status === 'failed').length;
  return {
    runId: input.runId,
    succeeded: tables.filter((t) => t.status === 'succeeded').length,
    failed,
    durationSeconds: Math.round((now.getTime() - Date.parse(input.startedAt)) / 1000),
    tables,
    stalenessSeconds: Object.fromEntries(configured.map((table) => [table, staleness.get(table) ?? null])),
  };
}

/**
 * What Summarize emits to CloudWatch. Per table in the run: rows, bytes, NULL-cursor rows, and
 * TableSucceeded / TableFailed (1 or 0): the Stale alarm counts successes, so a run that failed
 * never looks like a fresh one. Per configured table: StalenessSeconds, seconds since its last
 * success (for the dashboard; every run measures every table, failed ones included).
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
  return metrics;
}

export type { CommitResult };
