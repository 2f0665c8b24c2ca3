// Publishing a run's staged files, everything after the commit point (manifest, replacing the
// pages a re-run supersedes, clearing pending/), and cleaning up after a run that did not commit.
// All of it is idempotent: the next plan rolls a committed run forward or removes an uncommitted one.
import { StateError, ThrottlingError, WindowConflictError, isTransientStoreError } from '../errors.ts';
import type { LakeSchema } from '../ports.ts';
import { TableState, type Lease, type PageEntry, type PendingRun, type Replacement, type RunManifest, type Supersede, type Watermark, type WatermarkFence } from './table-state.ts';
import { assertLeaseHeld, leaseHolder, withdrawLease, withdrawnHolder } from './lease.ts';
import type { LakeDeps } from './run-model.ts';
import { isAdoptableBackfill, unstagedFiles } from './adopt-backfill.ts';

/**
 * After a table failed: remove what this run wrote unless it committed, and free the lease,
 * so the lake is as it was and the next run need not wait for the lease to expire. A backfill
 * keeps what its finished segments staged (invisible to readers): the next plan continues it
 * (adopt-backfill.ts) or, when it cannot, removes it. `runId` may be the execution's own run id
 * when its plan adopted an earlier backfill run, which then holds the lease under its own id.
 */
export async function abandonRun(deps: LakeDeps, table: string, runId: string): Promise<void> {
  const state = new TableState(deps.store, deps.config.lake.prefix, table);
  const lease = await state.read<Lease>(state.leaseKey());
  // Another run or execution holds the table now (one that adopted this run, too): leave its work
  // alone. A lease already withdrawn for this run is an earlier attempt of this step's.
  if (lease && leaseHolder(lease.value) !== runId && leaseHolder(lease.value) !== withdrawnHolder(runId)) return;
  const run = lease?.value.runId ?? runId;
  // This run's Commit may still be running (Step Functions stopped waiting for it, the task failed
  // around it): the lease is taken from it first, so that it fails its next lease check, and the
  // watermark is fenced before anything is removed, so that a Commit past its last check cannot
  // commit files removed here (breaker HI: holding the lease to the end let it commit meanwhile).
  const withdrawn = lease ? await withdrawLease(deps, state, runId) : null;
  if (lease && withdrawn === null) return;
  const committed = await state.watermark();
  const watermark = committed?.runId === run ? committed : (await fenceWatermark(state, run)).watermark;
  if (watermark?.runId !== run) {
    if (await isAdoptableBackfill(state, run)) {
      // Files a commit published before it died go back to staging: nothing of an uncommitted run stays visible.
      const pendingKeys = new Set(await deps.store.list(state.pendingPrefix(run)));
      const { published } = await unstagedFiles(state, run, (await state.pendingPages(run, pendingKeys)).flatMap((p) => p.files), pendingKeys);
      for (const f of published) await deps.store.move(f.key, state.stagedOf(run, f));
      deps.log?.('a failed backfill keeps its finished segments staged: the next run of the table continues it', { table: state.lakeTable, runId: run });
    } else await removeRun(deps, state, run);
  }
  if (withdrawn !== null) await deps.store.deleteIf(state.leaseKey(), withdrawn);
}

type ClaimedRun = { value: PendingRun; etag: string } | null;

/**
 * `claimed`: the run's run.json as read before the caller last checked its lease (recover); a
 * plan that adopted the run since (a backfill keeps its id, and its keys become live when it
 * commits) rewrote it, and the removal's claim over it (If-Match) fails: the loser stops.
 */
async function removeRun(deps: LakeDeps, state: TableState, runId: string, claimed?: ClaimedRun): Promise<void> {
  const run = claimed === undefined ? await state.read<PendingRun>(state.pendingRunKey(runId)) : claimed;
  if (run && !run.value.removing && !(await state.write(state.pendingRunKey(runId), { ...run.value, removing: true }, { ifMatch: run.etag }))) {
    throw new WindowConflictError(`${state.lakeTable}: run ${runId}'s run.json changed since this removal read it (another execution adopted or removed the run); left alone`);
  }
  // A run with a manifest committed: what is left under pending/ is tidying, never its data.
  const committed = await state.read<RunManifest>(state.manifestKey(runId));
  const pending = await deps.store.list(state.pendingPrefix(runId));
  const pages = committed ? [] : await state.pendingPages(runId, pending);
  // Published keys too: a crash between publishing and the watermark leaves them visible.
  const published = pages.flatMap((p) => p.files.map((f) => f.key));
  deps.log?.('removing an unfinished run', { table: state.lakeTable, runId, files: published.length });
  // On S3 a move is a copy and a delete: a copy in flight when its staged file goes below lands
  // when it lands, possibly after its data key was deleted here, and that file would stay
  // visible, named by nothing. Later commits and recoveries delete these keys again
  // (sweepRemoved). Only a Commit moves files, and it writes the run's pending schema before it
  // publishes (a compaction writes its generation in place, where no reader looks until it commits).
  const publishing = pending.includes(state.pendingSchemaKey(runId)) && !pending.includes(state.compactionKey(runId));
  if (publishing && published.length > 0) {
    // A removal done again after one killed while clearing pending/ finds only the journals left:
    // the keys an earlier removal listed stay listed.
    const earlier = (await state.read<Removed>(state.removedKey(runId)))?.value.files ?? [];
    await state.write(state.removedKey(runId), { files: [...new Set([...earlier, ...published])], removedAt: new Date().toISOString() } satisfies Removed);
  }
  // Staged files first: a Commit of the run still publishing can then move nothing more, and what
  // it moved before is among the published keys deleted next (breaker HI: moves landing between
  // the two deletes stayed visible for good). The journals and run.json go last.
  const staged = state.stagedPrefix(runId);
  await deps.store.delete(pending.filter((k) => k.startsWith(staged)));
  await deps.store.delete(published);
  await clearPending(deps, state, runId, pending.filter((k) => !k.startsWith(staged)));
}

/** Moves at once while publishing: an S3 move is a copy and a delete of ~20–50 ms each, and a prefix takes thousands of requests a second. */
const PUBLISH_CONCURRENCY = 32;

/** Move a run's staged files to their data keys (bounded parallelism; repeatable). */
export async function publish(deps: LakeDeps, state: TableState, runId: string, pages: readonly PageEntry[]): Promise<void> {
  const files = pages.flatMap((p) => p.files);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++];
      await deps.store.move(state.stagedOf(runId, file), file.key);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PUBLISH_CONCURRENCY, files.length) }, worker));
}


/**
 * Finish what a committed run left undone; remove what an uncommitted run wrote — except
 * `adopted`, a failed backfill this plan continues, which holds the lease now.
 */
export async function recover(deps: LakeDeps, state: TableState, watermark: Watermark | null, owner: string, adopted?: string, now = new Date()): Promise<void> {
  let fenced = false;
  for (const runId of await state.pendingRuns()) {
    if (runId === owner || runId === adopted) continue;
    // Read before the lease check: an adoption after the check rewrites it (removeRun's claim).
    const claimed: ClaimedRun = await state.read<PendingRun>(state.pendingRunKey(runId));
    // A takeover can take the lease from this run while it recovers; the new holder's own run
    // may already be pending (it was listed above). Checked before each run is touched: a run
    // listed here began before the check, so a lease still ours means its holder is gone.
    await assertLeaseHeld(state, adopted ?? owner);
    if (!fenced && (!watermark || watermark.runId !== runId)) {
      // Before removing a run: the watermark as it is now, fenced (below).
      ({ watermark, fenced } = await fenceWatermark(state, runId));
    }
    if (watermark && watermark.runId === runId && await state.store.get(state.compactionKey(runId))) {
      // Not finishCommit: it would delete the replaced generation at once, under queries that
      // resolved the table before the switch (breaker HG).
      deps.log?.('rolling forward a committed compaction', { table: state.lakeTable, runId });
      await finishCompaction(deps, state, runId, watermark.committedAt, now);
    } else if (watermark && watermark.runId === runId) {
      deps.log?.('rolling forward a committed run', { table: state.lakeTable, runId });
      await finishCommit(deps, state, runId, watermark.committedAt);
    } else {
      await removeRun(deps, state, runId, claimed);
    }
  }
  await sweepRemoved(deps, state, now);
}

/** removed/<id>.json: the data keys of a run removed before it committed. */
export interface Removed {
  readonly files: readonly string[];
  readonly removedAt: string;
}

/**
 * Whether `minutes` have passed since a list (retired/, removed/) was written, on one clock, the
 * store's: the list's time against the lease's, written as this run began or last renewed it.
 * The machine that runs next may be ahead of the one that wrote the list (breaker HG: a laptop
 * 2 h ahead deleted a generation after a minute). A store that keeps no times: this machine's
 * clock against the time the list records.
 */
export function gracePassed(minutes: number, list: { modifiedAt?: Date }, recordedAt: string, lease: { modifiedAt?: Date } | null, now: Date): boolean {
  const [since, at] = list.modifiedAt && lease?.modifiedAt ? [list.modifiedAt, lease.modifiedAt] : [new Date(recordedAt), now];
  return since.getTime() + minutes * 60_000 <= at.getTime();
}

/**
 * The least time a removed list is kept, whatever compaction.graceMinutes says: longer than a
 * Commit can live (a Lambda invocation ends within 15 minutes), so longer than any copy it sent.
 */
const REMOVED_MIN_MINUTES = 15;

/**
 * The data keys of removed runs deleted again, at every recovery and commit (before it publishes,
 * and after its commit point) until compaction.graceMinutes, and at least 15 minutes, have passed
 * since the removal; then the list goes (not when `dropLists` is false). A copy that was in
 * flight when its run was removed (removeRun) is gone by the table's next commit after it lands.
 * The keys hold the removed run's id, which no other run writes. A run whose removal did not
 * finish is still pending (its run.json goes last) and is skipped: the next recovery removes it
 * again, or, a backfill, a plan adopts it and its commit drops the list (finishCommit) before
 * anything here could delete what it publishes.
 */
export async function sweepRemoved(deps: LakeDeps, state: TableState, now: Date, dropLists = true): Promise<void> {
  const lists = await deps.store.list(state.removedPrefix());
  if (lists.length === 0) return;
  const lease = await state.read<Lease>(state.leaseKey());
  // The floor also keeps a list from the plan that wrote it: S3's LastModified has whole seconds,
  // and that plan took its lease in the same second (breaker HJ, graceMinutes 0).
  const minutes = Math.max(deps.config.compaction.graceMinutes, REMOVED_MIN_MINUTES);
  for (const key of lists) {
    const removed = await state.read<Removed>(key);
    const runId = key.slice(state.removedPrefix().length).replace(/\.json$/, '');
    if (!removed || await deps.store.get(state.pendingRunKey(runId))) continue;
    await deps.store.delete(removed.value.files);
    if (dropLists && gracePassed(minutes, removed, removed.value.removedAt, lease, now)) await deps.store.delete([key]);
  }
}


/**
 * The watermark rewritten with only its fencedAt changed (If-Match), so that its etag changes: the
 * Commit of `runId`, about to be removed, may have stalled past its lease after reading the
 * watermark (a paused process, a write in flight, a Lambda still running after Step Functions
 * gave up on it), and its conditional write of the commit point must fail rather than commit
 * files removed here (breaker HG: 114 versions lost for good). A write that lost to another is
 * read again: that commit landed first, and the run it names is rolled forward.
 * Before a table's first commit there is no watermark to rewrite. If a Commit of the run has
 * begun publishing (its pending schema is written first), a fence alone is created in the
 * watermark's place (WatermarkFence), on which that Commit's create-once write then fails.
 * Otherwise nothing is written: a Commit that has not got that far fails later by itself, at its
 * lease check (released or taken) or at moving a staged file removed here.
 * Returns the committed watermark (null: none) and whether anything was fenced.
 */
async function fenceWatermark(state: TableState, runId: string): Promise<{ watermark: Watermark | null; fenced: boolean }> {
  for (;;) {
    const current = await state.watermarkObject();
    if (!current && !(await state.store.get(state.pendingSchemaKey(runId)))) return { watermark: null, fenced: false };
    // S3's etag of a simple PUT is the MD5 of its body: the same body would keep the same etag.
    const fencedAt = new Date().toISOString();
    const fence: Watermark | WatermarkFence = current?.value ? { ...current.value, fencedAt } : { fencedAt };
    if (await state.write(state.watermarkKey(), fence, current ? { ifMatch: current.etag } : { ifNoneMatch: true })) return { watermark: current?.value ?? null, fenced: true };
  }
}

/** The data keys of the superseded pages (`supersede`) as their runs' manifests list them now. */
async function supersededFiles(state: TableState, supersede: readonly Supersede[]): Promise<string[]> {
  const files: string[] = [];
  for (const s of supersede) {
    const old = await state.read<RunManifest>(state.manifestKey(s.runId));
    // One at a time, not push(...): a manifest may hold more files than a call takes arguments.
    for (const page of old?.value.pages ?? []) if (s.pages.includes(page.page)) for (const f of page.files) files.push(f.key);
  }
  return files;
}

/**
 * A run's pending/ folder removed, run.json last: while it exists, the next plan knows the run
 * still needs finishing (or removing). `listed`: its keys, when the caller has listed them.
 */
async function clearPending(deps: LakeDeps, state: TableState, runId: string, listed?: readonly string[]): Promise<void> {
  const leftovers = listed ?? await deps.store.list(state.pendingPrefix(runId));
  await deps.store.delete(leftovers.filter((k) => k !== state.pendingRunKey(runId)));
  await deps.store.delete([state.pendingRunKey(runId)]);
}

/**
 * Remove the pages a re-run replaced. What is replaced is journalled (pending/<runId>/replace.json)
 * before any earlier manifest changes, so a crash or a failed delete anywhere in between leaves
 * the list for the next plan's roll-forward: a file is never left visible and listed by nothing.
 * Written once: after a crash past this point the manifests no longer name those pages.
 */
async function replaceSuperseded(deps: LakeDeps, state: TableState, runId: string, supersede: readonly Supersede[]): Promise<void> {
  if (supersede.length === 0) return;
  let journal = (await state.read<Replacement>(state.replacementKey(runId)))?.value;
  if (!journal) {
    journal = { supersede: [...supersede], files: await supersededFiles(state, supersede) };
    // Written once, for the same reason as the manifest: the first list is the complete one.
    if (!(await state.write(state.replacementKey(runId), journal, { ifNoneMatch: true }))) {
      journal = (await state.read<Replacement>(state.replacementKey(runId)))!.value;
    }
  }
  for (const s of journal.supersede) {
    const old = await state.read<RunManifest>(state.manifestKey(s.runId));
    if (!old || !old.value.pages.some((p) => s.pages.includes(p.page))) continue;
    const kept = old.value.pages.filter((p) => !s.pages.includes(p.page));
    if (kept.length) await state.write(state.manifestKey(s.runId), { ...old.value, pages: kept });
    else await deps.store.delete([state.manifestKey(s.runId)]);
  }
  await deps.store.delete(journal.files);
}

/**
 * Point readers at a committed run's schema (schema.json, then the Glue table), written only
 * over the schema.json it read while the watermark named the run (If-Match). A writer that
 * stalled past the commit point (a paused process, a write in flight) while another finished its
 * run and the table moved on (a compaction switched generations, runs committed) must not send
 * readers back to what its run wrote, nor re-create the manifest a later compaction merged
 * (breaker HG): it stops when the watermark names another run. Returns whether to go on.
 */
async function switchReaders(deps: LakeDeps, state: TableState, runId: string): Promise<boolean> {
  for (;;) {
    const [watermark, current, schema] = await Promise.all([
      state.watermark(), state.read<LakeSchema>(state.schemaKey()), state.read<LakeSchema>(state.pendingSchemaKey(runId)),
    ]);
    if (watermark?.runId !== runId) return false;
    if (!schema) return true;
    if (await state.write(state.schemaKey(), schema.value, current ? { ifMatch: current.etag } : { ifNoneMatch: true })) {
      await deps.registry?.register(state.lakeTable, schema.value);
      return true;
    }
  }
}

/** Everything after the commit point; safe to repeat. `published`: the caller just published every file. */
export async function finishCommit(deps: LakeDeps, state: TableState, runId: string, committedAt: string, published = false): Promise<RunManifest> {
  const pendingRun = await state.read<PendingRun>(state.pendingRunKey(runId));
  const existing = await state.read<RunManifest>(state.manifestKey(runId));
  if (!pendingRun) {
    if (existing) return existing.value;
    throw new StateError(`${state.root}: run ${runId} is committed but neither its pending run nor its manifest exists`);
  }
  // A manifest already written is the truth: after a crash in the tidying below, the journals
  // left under pending/ may be only some of the run's pages.
  const pages = existing ? existing.value.pages : await state.pendingPages(runId);
  if (!published) await publish(deps, state, runId, pages);
  // The schema (and, for a snapshot, the folder the table reads) switches only after the commit
  // point: until then Athena and the local views keep showing the last committed state.
  let manifest: RunManifest = existing?.value ?? { runId, kind: pendingRun.value.kind, window: pendingRun.value.window, committedAt, pages };
  if (!(await switchReaders(deps, state, runId))) return manifest;
  // Written once: two runs finishing the same committed run at once (a takeover racing a
  // recovery) would otherwise let the one that listed the journals while the other cleared
  // them overwrite the complete manifest with part of it.
  if (!existing && !(await state.write(state.manifestKey(runId), manifest, { ifNoneMatch: true }))) {
    manifest = (await state.read<RunManifest>(state.manifestKey(runId)))!.value;
    if (!published) await publish(deps, state, runId, manifest.pages);
  }
  await replaceSuperseded(deps, state, runId, pendingRun.value.supersede);
  // This run committed: its keys are live, whatever an earlier, unfinished removal of it listed.
  await deps.store.delete([state.removedKey(runId)]);
  await clearPending(deps, state, runId);
  // A run removed by this execution's plan (its rows are in this run) may have had copies in
  // flight that landed since: gone as this run's rows become visible, not at the next run.
  await sweepRemoved(deps, state, new Date());
  return manifest;
}

/** retired/<id>.json: the files a compaction replaced, and when readers stopped being sent to them. */
export interface Retired {
  readonly files: readonly string[];
  /** They go compaction.graceMinutes (as configured when they go) after this. */
  readonly retiredAt: string;
}

/**
 * After the commit point, keeping the old generation for the grace period: schema and Glue
 * switched, the new manifest written, the old files listed for deletion, the old manifests and
 * the pending run removed. Repeatable from any point.
 */
export async function finishCompaction(deps: LakeDeps, state: TableState, runId: string, committedAt: string, now: Date): Promise<void> {
  const pending = await state.read<PendingRun>(state.pendingRunKey(runId));
  if (!pending) return;
  const existing = await state.read<RunManifest>(state.manifestKey(runId));
  const pages = existing ? existing.value.pages : await state.pendingPages(runId);
  if (!(await switchReaders(deps, state, runId))) return;
  if (!existing) {
    const manifest: RunManifest = { runId, kind: pending.value.kind, window: pending.value.window, committedAt, pages };
    await state.write(state.manifestKey(runId), manifest, { ifNoneMatch: true });
  }
  // The old files are listed before any old manifest goes, and once: the first list is complete.
  if (!(await state.read<Retired>(state.retiredKey(runId)))) {
    const retired: Retired = { files: await supersededFiles(state, pending.value.supersede), retiredAt: now.toISOString() };
    await state.write(state.retiredKey(runId), retired, { ifNoneMatch: true });
  }
  await deps.store.delete(pending.value.supersede.filter((s) => s.runId !== runId).map((s) => state.manifestKey(s.runId)));
  await clearPending(deps, state, runId);
}

/** `work` again after a transient store fault, up to three attempts with backoff (idempotent work only). */
export async function retried<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= 3 || !(error instanceof ThrottlingError || isTransientStoreError(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 * 4 ** (attempt - 1)));
    }
  }
}
