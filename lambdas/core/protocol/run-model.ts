// What travels between the protocol's steps and its callers: the dependencies a step needs, a
// console re-run's request, a table's small task state, and the plan and commit results.
// The shapes that cross a process boundary are zod schemas, their types inferred: one source for
// the check at each handler's edge and for the code.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { type LakeConfig, type ResolvedTable, selectTables } from '../config.ts';
import type { ObjectStore, RowSource, TableRegistry } from '../ports.ts';
import type { PageEntry, PendingRun, Window } from './table-state.ts';

export interface ExportDeps {
  readonly source: RowSource;
  readonly store: ObjectStore;
  readonly config: LakeConfig;
  /** The query engine's catalog; Glue when deployed. The lake's schema.json is always written. */
  readonly registry?: TableRegistry;
  /**
   * Salt of columns.hash, never logged. The composition root decides which step is given it
   * (deployed: Export only, from source.hashSaltSecretArn; locally: LAKE_HASH_SALT).
   */
  readonly hashSalt?: string;
  /** Structured progress/warning events; the Lambda logger or the CLI's printer. */
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** What the steps that only touch the lake need. */
export type LakeDeps = Pick<ExportDeps, 'store' | 'config' | 'log' | 'registry'>;

/**
 * What a console re-run may ask for, as the execution input: `{}` (scheduled), `{"tables": [...]}`,
 * `{"window": {...}}`, `{"full": true}`; `takeOver` takes tables' leases even from live holders
 * (the operator knows that run is dead).
 */
export const runRequestSchema = z.strictObject({
  tables: z.array(z.string().min(1)).min(1).optional(),
  window: z.strictObject({ from: z.string().min(1), to: z.string().min(1) }).optional(),
  full: z.boolean().optional(),
  takeOver: z.boolean().optional(),
});

export type RunRequest = Readonly<z.infer<typeof runRequestSchema>> & {
  /** Set by the caller to tie the run to its execution (never by the execution input); default: generated. */
  readonly runId?: string;
};

const windowSchema: z.ZodType<Window> = z.strictObject({ from: z.string().nullable(), fromInclusive: z.boolean(), to: z.string() });
const count = z.number().int().min(0);

/**
 * A backfill segment: keys from `from` (inclusive) up to `to` (exclusive), each a prefix of the
 * (cursor, pk…) keyset as texts, null for unbounded; CTID segments add heap blocks [from, to).
 */
export const segmentRangeSchema = z.strictObject({
  index: z.number().int().min(0).max(63),
  from: z.array(z.string()).min(1).nullable(),
  to: z.array(z.string()).min(1).nullable(),
  blocks: z.strictObject({ from: count, to: count.nullable() }).optional(),
});
export type SegmentRange = Readonly<z.infer<typeof segmentRangeSchema>>;

/** The small state that travels between workflow steps for one table. */
export const tableTaskSchema = z.strictObject({
  table: z.string(),
  display: z.string(),
  runId: z.string(),
  startedAt: z.string(),
  exportedAtMicros: z.string().regex(/^\d+$/),
  kind: z.enum(['scheduled', 'window', 'full']) satisfies z.ZodType<PendingRun['kind']>,
  window: windowSchema,
  fingerprint: z.string(),
  after: z.array(z.string()).nullable(),
  page: count,
  rows: count,
  files: count,
  bytes: count,
  /** Ready to commit: every page exported and, for a re-run, the replaced pages' history carried. */
  done: z.boolean(),
  /** Re-runs: null while pages are exported, then how many replaced pages have had their history carried. */
  carried: count.nullable(),
  nullCursorRows: count,
  /**
   * A backfill (a first load or full re-run split into key ranges that a Distributed Map exports
   * at once): how many segments, the lake key of their list (JSON Lines, the map's items), and,
   * once every segment is exported, how many pages they journalled (null until then).
   */
  backfill: z.strictObject({ segments: z.number().int().min(2).max(64), items: z.string().min(1), pages: count.nullable() }).optional(),
  /** Set on one segment's own task (a Distributed Map child): its share of the keyset. */
  segment: segmentRangeSchema.optional(),
  /** A child that exports a lane of segments in turn (tables[].backfill.concurrency): the segments after this one. */
  lane: z.array(segmentRangeSchema).max(63).optional(),
  /** Set when this execution adopted the run: its plan's run id, which the table's lease names as holder. */
  holder: z.string().optional(),
  /** Commit Table's progress when one invocation was not enough: checks done, files published (in journal order). */
  commit: z.strictObject({ checked: z.boolean(), published: count }).optional(),
});
export type TableTask = Readonly<z.infer<typeof tableTaskSchema>>;

/** What a Distributed Map child is given: the table's task and one line of the segment list. */
export const segmentItemSchema = z.strictObject({ task: tableTaskSchema, segment: segmentRangeSchema });

/** A Distributed Map child's item when the table limits its own concurrency: a lane of segments, exported in turn. */
export const laneItemSchema = z.strictObject({
  task: tableTaskSchema,
  segment: z.strictObject({ lane: z.number().int().min(0).max(63), segments: z.array(segmentRangeSchema).min(1).max(64) }),
});

/** What Plan returns: the tables to export, and those it skipped or could not plan. */
export const runPlanSchema = z.object({
  runId: z.string(),
  startedAt: z.string(),
  tables: z.array(tableTaskSchema),
  skipped: z.array(z.object({ table: z.string(), reason: z.string() })),
  /** Tables that cannot run (e.g. an incompatible type change); the others go on. */
  failed: z.array(z.object({
    table: z.string(),
    error: z.string(),
    /** A transient store or database fault: worth planning again. */
    transient: z.literal(true).optional(),
  })),
  warnings: z.array(z.string()),
});
export type RunPlan = Readonly<z.infer<typeof runPlanSchema>>;

/**
 * A committed table: what Commit Table returns (Validate Table, when on, adds `validation` to it
 * in the workflow's state) and what Summarize reads back.
 */
export const commitResultSchema = z.object({
  table: z.string(),
  status: z.literal('succeeded'),
  rows: count,
  files: count,
  bytes: count,
  windowFrom: z.string().nullable(),
  windowTo: z.string(),
  watermark: z.string(),
  nullCursorRows: count,
  /** Tombstones the run committed (tables with deletes.detect), counted by Commit: a compaction in the same execution removes the run's manifest. */
  deletes: count.optional(),
});
export type CommitResult = Readonly<z.infer<typeof commitResultSchema>>;

/** The task counted up to a journalled page of its run: the page's number, rows, files and bytes added. */
export function withPage(task: TableTask, entry: PageEntry): TableTask {
  return { ...task, page: entry.page, rows: task.rows + entry.rows, files: task.files + entry.files.length, bytes: task.bytes + entry.files.reduce((n, f) => n + f.bytes, 0) };
}

/** An id for one invocation's staging folder (TableState.writerStagedKey). */
export function newWriterId(): string {
  return randomBytes(4).toString('hex');
}

export function newRunId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

export function findTable(config: LakeConfig, lakeName: string): ResolvedTable {
  const [table] = selectTables(config, [lakeName]);
  return table;
}
