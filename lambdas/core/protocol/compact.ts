// Compaction: a table whose partitions collect small files (one or more per run) is rewritten
// into a new generation folder, `<table>/generation=<id>/…`, one file per partition (or a few of
// up to compaction.targetFileMB), and readers switch to it in one update: schema.json for the
// local views, one Glue UpdateTable (the projection's storage.location.template) for Athena. A
// query planned before the switch reads the old generation, which stays for graceMinutes; one
// planned after reads the new one. No listing ever mixes the two: S3 listings are not atomic,
// so files are never swapped inside a folder that readers list.
//
// The protocol is the run protocol's (recovery.ts), so every entry point recovers a compaction
// killed at any step:
//  - under the table's lease, like an export: no run exports or commits while it builds;
//  - it is a pending run: run.json (supersede = every page of every manifest), then each new
//    page journalled before its file is written, so a compaction killed before its commit point
//    is removed by the next plan (or compaction) like any uncommitted run;
//  - the commit point is the watermark (same cursor, this run's id): whoever finds it (a plan, a
//    compaction) rolls the compaction forward (recovery.ts finishCompaction: schema and Glue
//    switched, manifest written), keeping the old files for the grace period (retired/<id>.json).
// Pages of a compaction hold other runs' versions (each row keeps its _lake_run_id), so they are
// marked carried, as a re-run's carried history is: validation counts them for no run.
//
// Cost: a generation rewrites the whole table (reads and writes every byte once), so it grows
// with the table. Tables opt out (tables[].compaction: false) or space it (everyHours).
import { type LakeConfig, type ResolvedTable } from '../config.ts';
import { ConfigError, StateError, WindowConflictError } from '../errors.ts';
import { folderOfKey, isCoarserOrSame, locationOf, partitionOf, partitionOfKey, partitionPrefix, type DataLocation, type Granularity, type PartitionDay } from '../lake/keys.ts';
import type { LakeSchema } from '../ports.ts';
import { chunkSettings } from './export-pages.ts';
import { isAdoptableBackfill } from './adopt-backfill.ts';
import { acquireLease, releaseLease } from './lease.ts';
import { comparable } from './plan.ts';
import { abandonRun, finishCompaction, gracePassed, recover, type Retired } from './recovery.ts';
import { findTable, newRunId, type LakeDeps } from './run-model.ts';
import { TableState, type FileEntry, type Lease, type PageEntry, type PendingRun, type RunManifest, type Watermark } from './table-state.ts';

/** One page of the new generation: the old files it merges, all of one target partition. */
interface PlannedPage {
  readonly page: number;
  readonly partition: PartitionDay;
  readonly sources: readonly FileEntry[];
  readonly first: string[];
  readonly last: string[];
}

/** pending/<id>/compaction.json: what a compaction writes, fixed before its first file. */
interface CompactionPlan {
  readonly generation: string;
  readonly to: DataLocation;
  readonly pages: readonly PlannedPage[];
}

export interface CompactOptions {
  /** Compact whatever the thresholds say. */
  readonly force?: boolean;
  /** Take the lease even from a live holder (the operator knows that run is dead). */
  readonly takeOver?: boolean;
  /** Set by the caller to tie the compaction to its execution; default: generated. */
  readonly runId?: string;
  /**
   * Epoch ms by which the compaction must have committed (the Lambda's time, less a reserve).
   * A generation cannot be continued by another invocation (runs may commit in between, and its
   * commit point is fenced on the watermark it read), so a compaction that would not finish in
   * time stops before it: it removes what it wrote, gives back the lease and fails, naming
   * compaction.maxTableMB. @default no limit (the CLI)
   */
  readonly deadline?: number;
  readonly now?: () => Date;
}

export interface CompactResult {
  readonly table: string;
  readonly status: 'compacted' | 'skipped';
  /** Why nothing was compacted, or what triggered the compaction. */
  readonly reason: string;
  readonly generation?: string;
  readonly granularity?: Granularity;
  readonly filesBefore: number;
  readonly filesAfter: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  /** Files of earlier generations deleted because their grace period had passed. */
  readonly retiredFilesDeleted: number;
}

/** The thresholds that apply to a table: its own, else the top-level compaction settings. */
export function compactionSettings(config: LakeConfig, table: ResolvedTable): { enabled: boolean; minFiles: number; maxMedianBytes: number; targetBytes: number; everyHours?: number } {
  const own = table.config.compaction;
  const top = config.compaction;
  const targetBytes = top.targetFileMB * 1e6;
  if (own === false) return { enabled: false, minFiles: top.minFiles, maxMedianBytes: top.maxMedianMB * 1e6, targetBytes };
  return { enabled: true, minFiles: own?.minFiles ?? top.minFiles, maxMedianBytes: (own?.maxMedianMB ?? top.maxMedianMB) * 1e6, targetBytes, everyHours: own?.everyHours };
}

function configuredGranularity(table: ResolvedTable): Granularity {
  return table.config.partition?.granularity ?? 'day';
}

function granularityPath(config: LakeConfig, table: ResolvedTable): string {
  return `tables[${config.tables.indexOf(table.config)}].partition.granularity`;
}

/**
 * Where a run writes a table's files: its live generation (the last compaction's), in the
 * granularity the lake holds. A configured granularity the lake does not hold yet takes effect
 * at the next compaction (files keep the live one until then, so one folder never mixes two);
 * a finer one than the lake holds is refused, since a compaction only merges partitions.
 */
export async function liveDataLocation(deps: LakeDeps, state: TableState, table: ResolvedTable): Promise<DataLocation> {
  const wanted = configuredGranularity(table);
  if (table.config.mode === 'snapshot') return { granularity: wanted };
  const schema = (await state.read<LakeSchema>(state.schemaKey()))?.value;
  return recordedLocation(deps.config, schema ?? null, table);
}

/** The location a commit records in schema.json: the previous one, or the configured granularity for a table's first commit. */
export function recordedLocation(config: LakeConfig, previous: DataLocation | null, table: ResolvedTable): DataLocation {
  const wanted = configuredGranularity(table);
  if (table.config.mode === 'snapshot' || !previous) return { granularity: wanted };
  const { generation } = locationOf(previous);
  const live = previous.granularity ?? 'day';
  if (!isCoarserOrSame(live, wanted)) {
    throw new ConfigError(`${granularityPath(config, table)}: ${table.display} is partitioned by ${live} in the lake; ${wanted} is finer, and a compaction only merges partitions: set it back to ${live}, or export the table anew under another lakeName`);
  }
  return { granularity: live, ...(generation ? { generation } : {}) };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Why a table needs compacting (null: it does not): the first partition over the thresholds. */
export function compactionTrigger(files: readonly FileEntry[], settings: { minFiles: number; maxMedianBytes: number; targetBytes?: number }): string | null {
  const byFolder = new Map<string, number[]>();
  // Only files under compaction.targetFileMB count: merging files of that size already would
  // rewrite them as they are, compaction after compaction (breaker HG).
  for (const f of files) if (f.bytes < (settings.targetBytes ?? Number.POSITIVE_INFINITY)) byFolder.set(folderOfKey(f.key), [...(byFolder.get(folderOfKey(f.key)) ?? []), f.bytes]);
  for (const [folder, sizes] of [...byFolder].sort((a, b) => a[0].localeCompare(b[0]))) {
    const m = median(sizes);
    if (sizes.length > settings.minFiles && m < settings.maxMedianBytes) {
      return `${folder} holds ${sizes.length} files${settings.targetBytes ? ` under ${settings.targetBytes} bytes` : ''} (more than ${settings.minFiles}) with a median of ${Math.round(m)} bytes (under ${settings.maxMedianBytes})`;
    }
  }
  return null;
}

/** (cursor…) bounds covering every page given: the lowest first, the highest last; empty (always overlapping) when one cannot be compared. */
function coveringBounds(pages: readonly PageEntry[]): { first: string[]; last: string[] } {
  if (pages.some((p) => !comparable(p.first[0]) || !comparable(p.last[0]))) return { first: [], last: [] };
  const firsts = pages.map((p) => p.first[0]).sort();
  const lasts = pages.map((p) => p.last[0]).sort();
  return { first: [firsts[0]], last: [lasts[lasts.length - 1]] };
}

/** The new generation's pages: per target partition, the old files in key order, cut at targetBytes. */
export function planPages(manifests: readonly RunManifest[], granularity: Granularity, targetBytes: number): PlannedPage[] {
  const byPartition = new Map<string, { partition: PartitionDay; files: { file: FileEntry; page: PageEntry }[] }>();
  for (const m of manifests) {
    for (const page of m.pages) {
      for (const file of page.files) {
        const day = partitionOfKey(file.key);
        if (!day) throw new StateError(`run ${m.runId} page ${page.page}: ${file.key} is not under a year=[/month=[/day=]] partition`);
        const partition = partitionOf(day, granularity);
        const label = `${partition.year}-${partition.month}-${partition.day}`;
        const entry = byPartition.get(label) ?? { partition, files: [] };
        entry.files.push({ file, page });
        byPartition.set(label, entry);
      }
    }
  }
  const out: PlannedPage[] = [];
  const ordered = [...byPartition.values()].sort((a, b) => a.partition.year - b.partition.year || a.partition.month - b.partition.month || a.partition.day - b.partition.day);
  for (const { partition, files } of ordered) {
    files.sort((a, b) => a.file.key.localeCompare(b.file.key));
    let bin: typeof files = [];
    let bytes = 0;
    const cut = () => {
      if (!bin.length) return;
      out.push({ page: out.length + 1, partition, sources: bin.map((b) => b.file), ...coveringBounds(bin.map((b) => b.page)) });
      bin = [];
      bytes = 0;
    };
    for (const f of files) {
      if (bin.length && bytes + f.file.bytes > targetBytes) cut();
      bin.push(f);
      bytes += f.file.bytes;
    }
    cut();
  }
  return out;
}

/** The key of a new generation's file: page, then the part for a page whose files had different columns. */
function compactedKey(deps: LakeDeps, state: TableState, plan: CompactionPlan, page: PlannedPage, part: number): string {
  const folder = partitionPrefix(deps.config.lake.prefix, state.lakeTable, page.partition, plan.to);
  return `${folder}${plan.generation}-p${String(page.page).padStart(6, '0')}${part ? `-s${part}` : ''}.parquet`;
}

/** Renew the lease this compaction holds; a lost lease stops it before it writes anything more. */
async function holdLease(deps: LakeDeps, state: TableState, runId: string): Promise<void> {
  const current = await state.read<Lease>(state.leaseKey());
  const lost = () => new WindowConflictError(`${state.lakeTable}: compaction ${runId} lost the table's lease (${current ? `held by ${current.value.runId}` : 'released'}); stopping without writing`);
  if (!current || current.value.runId !== runId) throw lost();
  const lease: Lease = { runId, expiresAt: new Date(Date.now() + deps.config.export.leaseSeconds * 1000).toISOString() };
  if (!(await state.write(state.leaseKey(), lease, { ifMatch: current.etag }))) throw lost();
}

/** Delete the files of generations whose grace period has passed; returns how many files went. */
async function deleteRetired(deps: LakeDeps, state: TableState, now: Date): Promise<number> {
  const lease = await state.read<Lease>(state.leaseKey());
  let deleted = 0;
  for (const key of await deps.store.list(state.retiredPrefix())) {
    const retired = await state.read<Retired>(key);
    if (!retired) continue;
    if (!gracePassed(deps.config.compaction.graceMinutes, retired, retired.value.retiredAt, lease, now)) continue;
    await deps.store.delete(retired.value.files);
    await deps.store.delete([key]);
    deleted += retired.value.files.length;
  }
  return deleted;
}

/**
 * The error of a compaction that stops before its invocation's end: how far it got, at what
 * rate, and the maxTableMB that keeps the step from starting it again.
 */
function outOfTime(config: LakeConfig, table: ResolvedTable, progress: { pagesDone: number; pages: number; bytesRead: number; bytes: number; millis: number; budgetMillis: number }): ConfigError {
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  const rate = progress.bytesRead / Math.max(progress.millis, 1) * 1000;
  return new ConfigError(`${table.display}: compaction stopped before its invocation's time ran out, after ${progress.pagesDone} of ${progress.pages} pages (${mb(progress.bytesRead)} of ${mb(progress.bytes)} MB in ${(progress.millis / 1000).toFixed(1)} s); what it wrote is removed and the table is as it was. A generation is written in one invocation, which at this rate rewrites about ${mb(rate * progress.budgetMillis / 1000)} MB: set compaction.maxTableMB (${config.compaction.maxTableMB}) below ${mb(progress.bytes)} so the step skips this table, and run pg-lake-export compact --force --tables ${table.lakeName} where no time limit applies`);
}

/**
 * Compact one table if its thresholds (or a granularity change, or `force`) call for it: build
 * the new generation, switch readers to it, retire the old one. Takes and gives back the lease.
 */
export async function compactTable(deps: LakeDeps, lakeTable: string, options: CompactOptions = {}): Promise<CompactResult> {
  const clock = options.now ?? (() => new Date());
  const table = findTable(deps.config, lakeTable);
  const state = new TableState(deps.store, deps.config.lake.prefix, table.lakeName);
  const result = (status: CompactResult['status'], reason: string, extra: Partial<CompactResult> = {}): CompactResult => ({
    table: table.lakeName, status, reason, filesBefore: 0, filesAfter: 0, bytesBefore: 0, bytesAfter: 0, retiredFilesDeleted: 0, ...extra,
  });
  if (table.config.mode === 'snapshot') return result('skipped', 'a snapshot table is rewritten whole by every run');
  const runId = options.runId ?? newRunId(clock());
  const conflict = await acquireLease(deps, state, runId, options.takeOver === true);
  if (conflict) return result('skipped', conflict);
  const skip = async (reason: string, extra: Partial<CompactResult> = {}): Promise<CompactResult> => {
    await releaseLease(deps, table.lakeName, runId);
    return result('skipped', reason, extra);
  };
  try {
    // A failed backfill waits for the table's next run to continue it (adopt-backfill.ts): the
    // recovery below would remove its finished segments, and compacting around it would leave the
    // manifests its commit supersedes merged into the new generation.
    for (const pending of await state.pendingRuns()) {
      if (pending !== runId && await isAdoptableBackfill(state, pending)) return await skip(`a failed backfill (run ${pending}) waits for the table's next run to continue it`);
    }
    await deps.store.sweepAbandonedWrites?.(state.root);
    // Every other unfinished run: rolled forward if committed (a killed compaction keeping the
    // generation it replaced for the grace period), removed if not (a killed compaction too).
    await recover(deps, state, await state.watermark(), runId, undefined, clock());
    const retiredFilesDeleted = await deleteRetired(deps, state, clock());
    const read = await state.watermarkObject();
    const watermark = read?.value ? { value: read.value, etag: read.etag } : null;
    const schema = await state.read<LakeSchema>(state.schemaKey());
    if (!watermark || !schema) return skip('nothing committed yet', { retiredFilesDeleted });
    const live = recordedLocation(deps.config, schema.value, table);
    const wanted = configuredGranularity(table);
    const manifests = (await state.manifests()).sort((a, b) => a.runId.localeCompare(b.runId));
    const files = manifests.flatMap((m) => m.pages.flatMap((p) => p.files));
    const before = { filesBefore: files.length, bytesBefore: files.reduce((n, f) => n + f.bytes, 0), retiredFilesDeleted };
    const settings = compactionSettings(deps.config, table);
    let reason: string | null = wanted !== live.granularity ? `partition granularity changes from ${live.granularity} to ${wanted}` : null;
    if (!settings.enabled && !options.force) {
      if (reason) throw new ConfigError(`${granularityPath(deps.config, table)}: ${table.display}: ${reason}, which takes a compaction, and tables[].compaction is false`);
      return skip('tables[].compaction is false', before);
    }
    if (!reason && settings.everyHours !== undefined && schema.value.compactedAt && !options.force) {
      const next = new Date(schema.value.compactedAt).getTime() + settings.everyHours * 3_600_000;
      if (next > clock().getTime()) return skip(`compacted at ${schema.value.compactedAt}; everyHours ${settings.everyHours} not yet passed`, before);
    }
    reason ??= options.force ? 'forced' : compactionTrigger(files, settings);
    if (!reason) return skip(`no partition holds more than ${settings.minFiles} files with a median under ${settings.maxMedianBytes} bytes`, before);
    if (files.length === 0) return skip('no files', before);
    const maxTableBytes = deps.config.compaction.maxTableMB * 1e6;
    if (!options.force && before.bytesBefore > maxTableBytes) {
      return skip(`${reason}, but the table holds ${Math.round(before.bytesBefore / 1e6)} MB, more than compaction.maxTableMB (${deps.config.compaction.maxTableMB}) that one invocation rewrites: run pg-lake-export compact --force --tables ${table.lakeName} where no time limit applies, or raise compaction.maxTableMB`, before);
    }

    const plan: CompactionPlan = { generation: runId, to: { granularity: wanted, generation: runId }, pages: planPages(manifests, wanted, deps.config.compaction.targetFileMB * 1e6) };
    const pending: PendingRun = {
      runId, kind: 'full', window: { from: watermark.value.cursor, fromInclusive: false, to: watermark.value.cursor },
      supersede: manifests.map((m) => ({ runId: m.runId, pages: m.pages.map((p) => p.page) })), startedAt: clock().toISOString(), basedOn: watermark.value.runId,
    };
    await state.write(state.pendingRunKey(runId), pending);
    await state.write(state.compactionKey(runId), plan);
    deps.log?.('compacting', { table: table.display, generation: runId, reason, files: files.length, pages: plan.pages.length });
    const { mergeLakeFiles } = await import('./compact-merge.ts');
    // Row groups as the exporter writes them (lake.rowGroupMB, lake.rowGroupRows).
    const writer = chunkSettings(deps.config.lake);
    let renewedAt = Date.now();
    let filesAfter = 0;
    let bytesAfter = 0;
    const began = Date.now();
    let bytesRead = 0;
    for (const page of plan.pages) {
      const pageBytes = page.sources.reduce((n, f) => n + f.bytes, 0);
      // At this compaction's own rate so far, the page and one more like it must fit.
      if (bytesRead > 0 && options.deadline !== undefined && Date.now() + (2 * pageBytes * (Date.now() - began)) / bytesRead > options.deadline) {
        throw outOfTime(deps.config, table, { pagesDone: page.page - 1, pages: plan.pages.length, bytesRead, bytes: before.bytesBefore, millis: Date.now() - began, budgetMillis: Math.max(0, options.deadline - began) });
      }
      bytesRead += pageBytes;
      if (Date.now() - renewedAt > deps.config.export.leaseSeconds * 250) {
        await holdLease(deps, state, runId);
        renewedAt = Date.now();
      }
      // All at once: the page holds them all anyway (targetFileMB), and S3 answers each GET in tens of ms.
      const bodies = await Promise.all(page.sources.map(async (source) => {
        const object = await deps.store.get(source.key);
        if (!object) throw new StateError(`${table.display}: ${source.key}, listed by a committed run, is missing from the lake; nothing switched`);
        return object.body;
      }));
      const merged = (await mergeLakeFiles(bodies, writer)).map((m, part) => ({ ...m, key: compactedKey(deps, state, plan, page, part) }));
      const rows = merged.reduce((n, m) => n + m.rows, 0);
      const expected = page.sources.reduce((n, s) => n + s.rows, 0);
      if (rows !== expected) throw new StateError(`${table.display}: compaction page ${page.page} read ${rows} rows from files whose manifests list ${expected}; nothing switched`);
      // Journal first, then write: a compaction killed here is removed with its files by the next plan.
      const entry: PageEntry = {
        page: page.page, rows, first: page.first, last: page.last,
        files: merged.map((m) => ({ key: m.key, rows: m.rows, bytes: m.parquet.length })),
        // Other runs' versions, as a carried page's are: no run's own rows.
        carriedFrom: { runId, page: page.page },
      };
      await state.write(state.pendingPageKey(runId, page.page), entry);
      await Promise.all(merged.map((m) => deps.store.put(m.key, m.parquet)));
      filesAfter += merged.length;
      bytesAfter += merged.reduce((n, m) => n + m.parquet.length, 0);
    }
    const next: LakeSchema = { ...schema.value, granularity: wanted, generation: runId, compactedAt: clock().toISOString() };
    await state.write(state.pendingSchemaKey(runId), next);
    await holdLease(deps, state, runId);
    // The commit point: the same cursor, this run's id. Fenced on the watermark read above.
    const committed: Watermark = { ...watermark.value, runId };
    if (!(await state.write(state.watermarkKey(), committed, { ifMatch: watermark.etag }))) {
      throw new WindowConflictError(`${table.display}: the watermark changed while compaction ${runId} built its generation; the next run removes it`);
    }
    await finishCompaction(deps, state, runId, committed.committedAt, clock());
    deps.log?.('compacted', { table: table.display, generation: runId, filesBefore: files.length, filesAfter });
    await releaseLease(deps, table.lakeName, runId);
    return result('compacted', reason, { ...before, generation: runId, granularity: wanted, filesAfter, bytesAfter });
  } catch (error) {
    // Not committed: its files and journals go now (a committed one is finished by the next run).
    await abandonRun(deps, table.lakeName, runId).catch(() => undefined);
    throw error;
  }
}
