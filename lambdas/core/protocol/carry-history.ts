// Re-runs repair, never destroy: the history of the pages a re-run replaces is carried into the
// re-run as pages of its own (README "How exactly-once works").
import { StateError, WindowConflictError } from '../errors.ts';
import { TableState, type PageEntry, type PendingRun, type RunManifest } from './table-state.ts';
import type { TableShape } from '../source/table-shape.ts';
import { comparable } from './plan.ts';
import type { ExportDeps, TableTask } from './run-model.ts';

/** The earlier runs' pages a re-run replaces, in a fixed order (the carry's page numbering). */
export async function replacedPages(state: TableState, shape: TableShape, task: TableTask): Promise<{ runId: string; page: number }[]> {
  // A snapshot replaces the whole table by design: it has no history to keep.
  if (task.kind === 'scheduled' || shape.table.config.mode === 'snapshot') return [];
  const planned = await state.read<PendingRun>(state.pendingRunKey(task.runId));
  if (!planned) throw new WindowConflictError(`${task.display}: run ${task.runId} has no pending run any more (another run removed it); stopping without writing`);
  return planned.value.supersede.flatMap((s) => s.pages.map((page) => ({ runId: s.runId, page })));
}

/**
 * Re-runs repair, never destroy: each page a re-run replaces is rewritten without the versions
 * the re-run exported again (Postgres's values win) and keeps every other version — history
 * Postgres no longer holds, or rows outside the window. The kept rows become a page of this run
 * (journalled, staged, published at commit like any other), numbered after its exported pages;
 * commit then removes the replaced pages. Resumable page by page across invocations.
 */
export async function carryHistory(deps: ExportDeps, state: TableState, shape: TableShape, task: TableTask, replaced: readonly { runId: string; page: number }[], deadline: number, keepLease: (task: TableTask) => Promise<void>): Promise<TableTask> {
  const { keepHistory, versionKeys } = await import('../page/history.ts');
  const carried = task.carried ?? 0;
  const exportedPages = task.page - carried;
  const own = (await state.pendingPages(task.runId)).filter((p) => p.page <= exportedPages && !p.carriedFrom);
  const keyColumns = [shape.cursor!.name, ...shape.keyColumns.map((c) => c.name)];
  // Versions this run exported, by page, loaded for the replaced pages whose cursors they overlap.
  const exported = new Map<number, Set<string>>();
  const exportedKeys = async (page: PageEntry): Promise<Set<string>> => {
    let keys = exported.get(page.page);
    if (!keys) {
      keys = new Set<string>();
      for (const f of page.files) {
        const staged = (await deps.store.get(state.stagedOf(task.runId, f))) ?? (await deps.store.get(f.key));
        if (!staged) throw new StateError(`${task.display}: run ${task.runId}: staged file ${f.key} of page ${page.page} is missing`);
        for (const k of versionKeys(staged.body, keyColumns)) keys.add(k);
      }
      if (exported.size >= 16) exported.delete(exported.keys().next().value!);
      exported.set(page.page, keys);
    }
    return keys;
  };
  const manifests = new Map<string, RunManifest | null>();
  let current = task;
  const began = Date.now();
  for (let i = carried; i < replaced.length; i++) {
    // At least one page per invocation; then only while two more fit before the deadline.
    if (i > carried && Date.now() + (2 * (Date.now() - began)) / (i - carried) > deadline) break;
    await keepLease(current);
    const { runId, page } = replaced[i];
    if (!manifests.has(runId)) manifests.set(runId, (await state.read<RunManifest>(state.manifestKey(runId)))?.value ?? null);
    const old = manifests.get(runId)?.pages.find((p) => p.page === page);
    const pageNo = exportedPages + i + 1;
    const files: { key: string; rows: number; bytes: number; parquet: Uint8Array }[] = [];
    if (old) {
      const versions = new Set<string>();
      for (const p of own.filter((o) => cursorRangesOverlap(o, old))) for (const k of await exportedKeys(p)) versions.add(k);
      for (const [index, f] of old.files.entries()) {
        const body = await deps.store.get(f.key);
        if (!body) throw new StateError(`${task.display}: ${f.key}, listed by run ${runId} page ${page}, is missing from the lake`);
        const kept = keepHistory(body.body, keyColumns, versions);
        // A page may hold several files in one folder (a month partition's days, a compaction's parts): each keeps its own key.
        if (kept.parquet) files.push({ key: `${f.key.slice(0, f.key.lastIndexOf('/') + 1)}${task.runId}-p${String(pageNo).padStart(6, '0')}${index ? `-c${index}` : ''}.parquet`, rows: kept.rows, bytes: kept.parquet.length, parquet: kept.parquet });
      }
    }
    // Journal first, then stage, as for exported pages; a page already replaced (a manifest
    // rewritten by a commit this run's plan did not see) carries nothing.
    const entry: PageEntry = {
      page: pageNo, rows: files.reduce((n, f) => n + f.rows, 0), first: old?.first ?? [], last: old?.last ?? [],
      files: files.map(({ key, rows, bytes }) => ({ key, rows, bytes })), carriedFrom: { runId, page },
    };
    await state.write(state.pendingPageKey(task.runId, pageNo), entry);
    await Promise.all(files.map((f) => deps.store.put(state.stagedKey(task.runId, f.key), f.parquet)));
    current = { ...current, page: pageNo, carried: i + 1, files: current.files + files.length, bytes: current.bytes + files.reduce((n, f) => n + f.bytes, 0), done: i + 1 === replaced.length };
    deps.log?.('history carried', { table: task.display, replacedRun: runId, replacedPage: page, keptRows: entry.rows });
  }
  return current;
}

/** Whether two pages' cursor ranges may share a cursor value (canonical texts; unsure: yes). */
function cursorRangesOverlap(a: PageEntry, b: PageEntry): boolean {
  const [af, al, bf, bl] = [a.first[0], a.last[0], b.first[0], b.last[0]];
  if (!comparable(af) || !comparable(al) || !comparable(bf) || !comparable(bl)) return true;
  return af <= bl && bf <= al;
}
