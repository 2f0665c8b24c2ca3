// A lease per table keeps two executions from exporting the same table at once: taken with a
// conditional create at plan, renewed with If-Match while exporting, checked around publishing.
import { WindowConflictError } from '../errors.ts';
import { TableState, type Lease } from './table-state.ts';
import type { LakeDeps, TableTask } from './run-model.ts';

function leaseUntil(deps: LakeDeps, from = Date.now()): string {
  return new Date(from + deps.config.export.leaseSeconds * 1000).toISOString();
}

export async function acquireLease(deps: LakeDeps, state: TableState, runId: string, takeOver: boolean): Promise<string | null> {
  const lease: Lease = { runId, expiresAt: leaseUntil(deps) };
  if (await state.write(state.leaseKey(), lease, { ifNoneMatch: true })) return null;
  const current = await state.read<Lease>(state.leaseKey());
  if (!current) return acquireLease(deps, state, runId, takeOver);
  // Ours only when no other execution holds it for our run (an adopter names itself holder).
  if (leaseHolder(current.value) === runId) {
    await state.write(state.leaseKey(), lease, { ifMatch: current.etag });
    return null;
  }
  if (!takeOver && new Date(current.value.expiresAt).getTime() > Date.now()) {
    return `run ${current.value.runId} holds its lease until ${current.value.expiresAt} (if that run is dead, re-run with --take-over, or {"takeOver": true} in the console)`;
  }
  // Expired: take it over only if nobody else did in between.
  if (await state.write(state.leaseKey(), lease, { ifMatch: current.etag })) return null;
  return 'another run took over the expired lease first';
}

/** Who holds a lease, or whom a task's lease names: the execution that adopted the run, or the run itself. */
export function leaseHolder(of: { readonly runId: string; readonly holder?: string }): string {
  return of.holder ?? of.runId;
}

export async function renewLease(deps: LakeDeps, state: TableState, task: TableTask): Promise<void> {
  const current = await state.read<Lease>(state.leaseKey());
  const holds = (lease: Lease | undefined) => lease !== undefined && lease.runId === task.runId && leaseHolder(lease) === leaseHolder(task);
  if (!current || !holds(current.value)) {
    throw new WindowConflictError(`${task.display}: run ${task.runId} no longer holds the table's lease (${current ? `held by ${current.value.runId}` : 'released'}); stopping without writing`);
  }
  const lease: Lease = { runId: task.runId, ...(task.holder ? { holder: task.holder } : {}), expiresAt: leaseUntil(deps) };
  // Backfill segments of one run renew its lease at once: losing that race to the same run is fine.
  if (!(await state.write(state.leaseKey(), lease, { ifMatch: current.etag })) && !holds((await state.read<Lease>(state.leaseKey()))?.value)) {
    throw new WindowConflictError(`${task.display}: the lease changed hands while run ${task.runId} renewed it`);
  }
}

/**
 * Give the lease back if `holder` holds it — a run, or the execution that adopted one (after
 * commit, or after the table failed). Only the lease as read is deleted (If-Match): a lapsed
 * lease taken over between the read and the delete stays its new holder's.
 */
export async function releaseLease(deps: LakeDeps, table: string, holder: string): Promise<void> {
  const state = new TableState(deps.store, deps.config.lake.prefix, table);
  const current = await state.read<Lease>(state.leaseKey());
  if (current && leaseHolder(current.value) === holder) await deps.store.deleteIf(state.leaseKey(), current.etag);
}

/** The holder a lease is withdrawn to while `holder`'s run is removed (withdrawLease). */
export function withdrawnHolder(holder: string): string {
  return `abandoning:${holder}`;
}

/** Whether a lease was withdrawn by Table Failed (withdrawLease) and not given back: its clean-up did not finish. */
export function isWithdrawn(lease: { readonly holder?: string }): boolean {
  return lease.holder?.startsWith(withdrawnHolder('')) ?? false;
}

/**
 * Take the lease from `holder`'s own tasks before its run is removed after the table failed: it
 * is rewritten (If-Match) under withdrawnHolder(holder), so a task of the run still running (a
 * Commit Step Functions stopped waiting for) fails its next lease check instead of publishing or
 * committing while the run is removed. Returns the withdrawn lease's etag, to release it with;
 * null when no lease is there or another execution holds it.
 */
export async function withdrawLease(deps: LakeDeps, state: TableState, holder: string): Promise<string | null> {
  for (;;) {
    const current = await state.read<Lease>(state.leaseKey());
    if (!current) return null;
    const by = leaseHolder(current.value);
    if (by === withdrawnHolder(holder)) return current.etag;
    if (by !== holder) return null;
    const withdrawn: Lease = { runId: current.value.runId, holder: withdrawnHolder(holder), expiresAt: leaseUntil(deps) };
    await state.write(state.leaseKey(), withdrawn, { ifMatch: current.etag });
  }
}

/** Throws unless `runId` still holds the table's lease (a takeover may have taken it). */
export async function assertLeaseHeld(state: TableState, runId: string): Promise<void> {
  const current = await state.read<Lease>(state.leaseKey());
  if (current?.value.runId !== runId) {
    throw new WindowConflictError(`${state.lakeTable}: run ${runId} lost the table's lease (${current ? `now held by ${current.value.runId}` : 'released'}) while recovering earlier runs; it stops without touching them`);
  }
}
