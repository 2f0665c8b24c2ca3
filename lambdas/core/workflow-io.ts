// The shapes that travel between Step Functions states, validated at each handler's edge.
import { z } from 'zod';
import type { CommitResult, TableTask } from './exporter.ts';
import { TableState, type Watermark } from './state.ts';
import type { LakeDeps } from './exporter.ts';
import { abandonRun } from './exporter.ts';

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
  /** Seconds between now and the table's watermark; null when it has none. */
  readonly stalenessSeconds: number | null;
  readonly error?: string;
}

export interface RunSummary {
  readonly runId: string;
  readonly succeeded: number;
  readonly failed: number;
  readonly durationSeconds: number;
  readonly tables: TableSummary[];
}

/** Canonical cursor text (`YYYY-MM-DD HH:MM:SS.ffffff+00`) → epoch ms, for staleness only. */
export function cursorMillis(cursor: string): number {
  return Date.parse(`${cursor.slice(0, 23).replace(' ', 'T')}Z`);
}

/**
 * The run's outcome per table. Failed tables are tidied (their unfinished files removed and
 * the lease freed) so the lake is as it was and the next run can start at once.
 */
export async function summarizeRun(deps: LakeDeps, input: z.infer<typeof summarizeInputSchema>, now = new Date()): Promise<RunSummary> {
  const results = [
    ...input.results,
    ...input.failed.map((f) => ({ table: f.table, status: 'failed' as const, error: f.error, cause: null })),
  ];
  const tables: TableSummary[] = [];
  for (const result of results) {
    if (result.status === 'failed') await abandonRun(deps, result.table, input.runId);
    const state = new TableState(deps.store, deps.config.lake.prefix, result.table);
    const watermark: Watermark | null = await state.watermark();
    const stalenessSeconds = watermark ? Math.max(0, Math.round((now.getTime() - cursorMillis(watermark.cursor)) / 1000)) : null;
    tables.push(result.status === 'succeeded'
      ? { table: result.table, status: 'succeeded', rows: result.rows, files: result.files, bytes: result.bytes, nullCursorRows: result.nullCursorRows, stalenessSeconds }
      : { table: result.table, status: 'failed', rows: 0, files: 0, bytes: 0, nullCursorRows: 0, stalenessSeconds, error: [result.error, result.cause].filter(Boolean).join(': ') });
  }
  // A skipped table is another run's to export: reported, not a failure.
  for (const skipped of input.skipped) {
    tables.push({ table: skipped.table, status: 'skipped', rows: 0, files: 0, bytes: 0, nullCursorRows: 0, stalenessSeconds: null, error: skipped.reason });
  }
  const failed = tables.filter((t) => t.status === 'failed').length;
  return {
    runId: input.runId,
    succeeded: tables.filter((t) => t.status === 'succeeded').length,
    failed,
    durationSeconds: Math.round((now.getTime() - Date.parse(input.startedAt)) / 1000),
    tables,
  };
}

export type { CommitResult };
