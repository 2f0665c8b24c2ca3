// What a piece of work costs, for the reconciliation's must-show (issue 15): wall time, and CPU
// time of this process (all its threads: DuckDB's, the encoder workers') plus the local Postgres
// server's (its backends, live and exited). CPU time barely moves when the machine is shared —
// on a loaded 2-core runner wall times vary tenfold — so tests compare it; the bench script
// (deletes-bench.ts) compares wall times on a quiet machine. Linux only (/proc), as the local
// stack is.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import type { TestDatabase } from '../support/local-stack.ts';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux). */
const TICKS = 100;

/** utime, stime, cutime, cstime (ticks) and the parent of a process; null when it is gone. */
function stat(pid: number): { ppid: number; own: number; children: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name is parenthesised and may hold spaces: fields count from the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), own: Number(fields[11]) + Number(fields[12]), children: Number(fields[13]) + Number(fields[14]) };
}

/** The Postgres server's CPU time so far (ms): the postmaster, its live children and the children it reaped. */
export async function postgresCpuMillis(db: TestDatabase): Promise<number> {
  const [{ pid }] = await db.query('SELECT pg_backend_pid()::text AS pid');
  const postmaster = stat(Number(pid))?.ppid;
  if (postmaster === undefined) throw new Error(`no /proc entry for the Postgres backend ${pid}`);
  const root = stat(postmaster);
  if (root === null) throw new Error(`no /proc entry for the postmaster ${postmaster}`);
  let ticks = root.own + root.children;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = stat(Number(entry));
    if (child?.ppid === postmaster) ticks += child.own + child.children;
  }
  return (ticks * 1000) / TICKS;
}

/** This process's CPU time so far (ms), every thread. */
export function processCpuMillis(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

export interface Cost {
  readonly wallMillis: number;
  /** This process's and Postgres's. */
  readonly cpuMillis: number;
  readonly postgresCpuMillis: number;
}

/** The wall and CPU time (this process and Postgres) `work` takes. */
export async function measure<T>(db: TestDatabase, work: () => Promise<T>): Promise<{ result: T; cost: Cost }> {
  const [own0, pg0] = [processCpuMillis(), await postgresCpuMillis(db)];
  const started = performance.now();
  const result = await work();
  const wallMillis = performance.now() - started;
  const [own1, pg1] = [processCpuMillis(), await postgresCpuMillis(db)];
  return { result, cost: { wallMillis, cpuMillis: own1 - own0 + pg1 - pg0, postgresCpuMillis: pg1 - pg0 } };
}

export const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1];

/** The machine's load, for the printed numbers. */
export const loadAverage = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' ');
