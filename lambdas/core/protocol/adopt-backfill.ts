// Adopting a backfill: a backfill run that failed, or whose execution died, keeps what its
// finished segments staged under pending/<runId>/ (invisible to every reader), and the next plan
// of the table continues that run — same run id, window, segment list and journals — so only the
// unfinished segments are exported again, then commits it as one run.
//
//   pending/<runId>/backfill.json  the task Plan returned for the run and what it was planned
//                                  with (written last by Plan: without it the run is not adopted)
//   lease.json (the table's)       names the adopting execution as `holder` while it continues
//                                  the run: its retried Plan and its Summarize know the run as their own
//
// A run is adopted only when nothing it was planned from has changed (the watermark, the table's
// columns and config, the segment count), its lease was released or has lapsed (no invocation of
// the dead execution still writes), and it started less than export.backfillAdoptHours ago;
// otherwise the plan removes it, says why, and starts over.
import { createHash, randomUUID } from 'node:crypto';
import { WindowConflictError, describeError } from '../errors.ts';
import type { TableShape } from '../source/table-shape.ts';
import { TableState, type FileEntry, type Lease, type PendingRun, type Watermark } from './table-state.ts';
import { readSegments, segmentPages, type SegmentProgress } from './segments.ts';
import { isWithdrawn, leaseHolder } from './lease.ts';
import { heapFileNodeQuery } from '../source/queries.ts';
import type { ExportDeps, LakeDeps, RunRequest, TableTask } from './run-model.ts';

/** How long a dead backfill waits to be adopted when export.backfillAdoptHours is not set: a week. */
export const DEFAULT_BACKFILL_ADOPT_HOURS = 168;

/** What Plan records beside a backfill run, to adopt it later. */
interface BackfillRecord {
  /** The task Plan returned (before any page): what the adopting plan returns again. */
  readonly task: TableTask;
  /** Digest of the table's config and the segment count asked for, when planned. */
  readonly planned: string;
  /** by: ctid: the heap's file node when planned (a rewrite moves every row to other blocks). */
  readonly heap?: string | null;
}

function recordKey(state: TableState, runId: string): string {
  return `${state.pendingPrefix(runId)}backfill.json`;
}

/**
 * What a backfill's rows depend on besides the table's columns (its fingerprint): the table's
 * config (checks and compaction only act later, on what was exported) and the segments asked for.
 */
function plannedWith(deps: LakeDeps, shape: TableShape): string {
  const { checks: _checks, compaction: _compaction, ...exported } = shape.table.config;
  const segments = shape.table.config.backfill?.segments ?? deps.config.export.backfillSegments;
  return createHash('sha256').update(JSON.stringify({ exported, segments })).digest('hex').slice(0, 16);
}

async function heapOf(deps: ExportDeps, shape: TableShape): Promise<string | null> {
  if (shape.table.config.backfill?.by !== 'ctid') return null;
  const query = heapFileNodeQuery(shape);
  const [row] = await deps.source.queryText(query.text, query.values);
  return row?.node ?? null;
}

/**
 * A run's journalled files that are not staged (`pendingKeys`: the listing of its pending/):
 * `published`, at their data keys, moved there by a commit that died before its commit point,
 * or `lost`. One listing per partition folder, not a read per file.
 */
export async function unstagedFiles(state: TableState, runId: string, files: readonly FileEntry[], pendingKeys: ReadonlySet<string>): Promise<{ published: FileEntry[]; lost: FileEntry[] }> {
  const unstaged = files.filter((f) => !pendingKeys.has(state.stagedOf(runId, f)));
  const folders = [...new Set(unstaged.map((f) => f.key.slice(0, f.key.lastIndexOf('/') + 1)))];
  const listed = new Set((await Promise.all(folders.map((folder) => state.store.list(folder)))).flat());
  return { published: unstaged.filter((f) => listed.has(f.key)), lost: unstaged.filter((f) => !listed.has(f.key)) };
}

/** Record a planned backfill run, so a later plan can adopt it if it fails. Written after its segment list. */
export async function recordBackfill(deps: ExportDeps, state: TableState, shape: TableShape, task: TableTask): Promise<void> {
  await state.write(recordKey(state, task.runId), { task, planned: plannedWith(deps, shape), heap: await heapOf(deps, shape) } satisfies BackfillRecord);
}

/** Whether a run is a backfill a later plan may adopt (its record was written). */
export async function isAdoptableBackfill(state: TableState, runId: string): Promise<boolean> {
  return (await state.store.get(recordKey(state, runId))) !== null;
}

/** The run whose lease `runId` holds by adoption (the lease names it holder), else null. */
export async function runAdoptedBy(state: TableState, runId: string): Promise<string | null> {
  const lease = (await state.read<Lease>(state.leaseKey()))?.value;
  return lease && lease.runId !== runId && lease.holder === runId ? lease.runId : null;
}

/** Why this dead backfill cannot be continued now, or null when it can. */
async function refusal(deps: ExportDeps, state: TableState, shape: TableShape, request: RunRequest, watermark: Watermark | null, record: BackfillRecord, before: Lease | null, now: Date): Promise<string | null> {
  const { task } = record;
  if (request.window) return 'a window re-run does not continue a backfill';
  const hours = deps.config.export.backfillAdoptHours ?? DEFAULT_BACKFILL_ADOPT_HOURS;
  const age = (now.getTime() - new Date(task.startedAt).getTime()) / 3_600_000;
  if (!(age < hours)) return `it started ${age.toFixed(1)} hours ago, export.backfillAdoptHours is ${hours}`;
  const pending = (await state.read<PendingRun>(state.pendingRunKey(task.runId)))?.value;
  if (!pending) return 'its run.json is missing';
  if ((pending.basedOn ?? null) !== (watermark?.runId ?? null)) return `the watermark moved from run ${pending.basedOn ?? '(none)'} to ${watermark?.runId ?? '(none)'} since`;
  if (task.fingerprint !== shape.fingerprint) return 'the table\'s columns (or cursorTimeZone or partition.granularity) changed since';
  if (record.planned !== plannedWith(deps, shape)) return `its tables[] entry (or export.backfillSegments) changed since`;
  if ((record.heap ?? null) !== (await heapOf(deps, shape))) return 'the table was rewritten since (CLUSTER, VACUUM FULL, pg_repack): its rows moved to other heap blocks than its by: ctid segments cover';
  // Table Failed's abandonRun withdrew the lease and did not give it back: it may still be moving
  // the run's published files back to staging, which would take them from this plan's Commit.
  if (before?.runId === task.runId && isWithdrawn(before)) {
    return `Table Failed's clean-up of it (lease ${before.holder}, until ${before.expiresAt}) did not finish: it may still be moving its files`;
  }
  // An operator's takeover of a live lease: the run may still have invocations in flight.
  if (request.takeOver && before?.runId === task.runId && new Date(before.expiresAt).getTime() > now.getTime()) {
    return `its lease (until ${before.expiresAt}) was taken over, not released or lapsed: invocations of it may still be writing`;
  }
  try {
    const segments = await readSegments(state, task);
    if (segments.length !== task.backfill?.segments) return `its segment list holds ${segments.length} of ${task.backfill?.segments} segments`;
    if (!(await state.store.get(task.backfill.items))) return `its map items ${task.backfill.items} are missing`;
    // What its segments journalled must all be there: a journal or staged file gone would fail every commit.
    const keys = new Set(await state.store.list(state.pendingPrefix(task.runId)));
    for (const segment of segments) {
      const progress = (await state.read<SegmentProgress>(`${state.pendingPrefix(task.runId)}s${String(segment.index).padStart(4, '0')}.json`))?.value;
      for (let page = segmentPages(segment).first + 1; progress && page <= progress.page; page++) {
        if (!keys.has(state.pendingPageKey(task.runId, page))) return `segment ${segment.index}'s page journal ${page} is missing`;
      }
    }
    const journals = await state.pendingPages(task.runId, keys);
    const [lost] = (await unstagedFiles(state, task.runId, journals.flatMap((p) => p.files), keys)).lost;
    if (lost) return `its file ${lost.key} is missing`;
  } catch (error) {
    return describeError(error);
  }
  return null;
}

/**
 * The dead backfill this plan continues, newest first, or null (each run refused is logged with
 * why; the plan's recovery then removes it). Adopting marks the run as this plan's and moves the
 * table's lease to the run's id, which its segments and commit renew. `owner` holds the lease,
 * or (a retried plan) the run it adopted does; `before` is the lease as it was before this plan took it.
 */
export async function adoptBackfill(deps: ExportDeps, state: TableState, shape: TableShape, request: RunRequest, watermark: Watermark | null, owner: string, before: Lease | null, now = new Date()): Promise<TableTask | null> {
  const candidates = (await state.pendingRuns()).filter((id) => id !== owner && id !== watermark?.runId).reverse();
  for (const runId of candidates) {
    const record = (await state.read<BackfillRecord>(recordKey(state, runId)))?.value;
    // Not a backfill, or one that committed (what is left is tidying): recovery's, as before.
    if (!record || (await state.store.get(state.manifestKey(runId)))) continue;
    const why = await refusal(deps, state, shape, request, watermark, record, before, now);
    if (why) {
      deps.log?.('a failed backfill cannot be continued: it is removed and the table starts over', { table: shape.table.display, runId, why });
      continue;
    }
    // Claimed over its run.json (If-Match), as a removal claims it: never adopted once a removal began.
    const run = await state.read<PendingRun>(state.pendingRunKey(runId));
    // Always rewritten, with a claim no earlier write holds: an etag is a digest of the body, so
    // skipping the write (a retried plan) or writing bytes seen before (A -> B -> A) would leave a
    // stalled removal's If-Match good.
    if (!run || run.value.removing || !(await state.write(state.pendingRunKey(runId), { ...run.value, adoptedBy: owner, claim: randomUUID() }, { ifMatch: run.etag }))) {
      const why = run?.value.removing ? 'a removal of it has begun' : 'another execution claimed it first';
      deps.log?.(`a failed backfill cannot be continued: ${why}`, { table: shape.table.display, runId });
      continue;
    }
    const current = await state.read<Lease>(state.leaseKey());
    const ours = current !== null && leaseHolder(current.value) === owner;
    if (!current || !ours) throw new WindowConflictError(`${shape.table.display}: run ${owner} lost the table's lease while adopting backfill run ${runId}`);
    // The lease names this execution: the dead execution's invocations, which hold tasks of the same run, are fenced.
    const lease: Lease = { runId, holder: owner, expiresAt: new Date(Date.now() + deps.config.export.leaseSeconds * 1000).toISOString() };
    if (!(await state.write(state.leaseKey(), lease, { ifMatch: current.etag }))) {
      throw new WindowConflictError(`${shape.table.display}: the lease changed hands while run ${owner} adopted backfill run ${runId}`);
    }
    const done = (await state.store.list(state.pendingPrefix(runId))).filter((k) => /\/s\d{4}\.json$/.test(k)).length;
    deps.log?.('continuing a failed backfill: only its unfinished segments are exported', { table: shape.table.display, runId, adoptedBy: owner, segments: record.task.backfill?.segments, segmentsWithProgress: done, window: record.task.window });
    return { ...record.task, holder: owner };
  }
  return null;
}
