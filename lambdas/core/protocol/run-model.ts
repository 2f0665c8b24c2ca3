// What travels between the protocol's steps and its callers: the dependencies a step needs, a
// console re-run's request, a table's small task state, and the plan and commit results.
import { randomBytes } from 'node:crypto';
import { type LakeConfig, type ResolvedTable, selectTables } from '../config.ts';
import type { ObjectStore, RowSource, TableRegistry } from '../ports.ts';
import type { PendingRun, Window } from './table-state.ts';

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
  readonly failed: { table: string; error: string; /** A transient store or database fault: worth planning again. */ transient?: true }[];
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

export function findTable(config: LakeConfig, lakeName: string): ResolvedTable {
  const [table] = selectTables(config, [lakeName]);
  return table;
}
