// Plays one chaos schedule against real parts — an embedded Postgres database of its own, a
// directory lake, the real exporter in child processes — and judges the result (checker.ts).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type pg from 'pg';
import type { LocalS3Server } from '../support/s3-server.ts';
import type { LocalPostgres } from '../../bin/local/embedded-postgres.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { V8_FLAGS } from '../../lib/runtime-options.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import type { RunOutcome } from '../../bin/local/run-export.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import type { ChildInput } from './chaos-child.ts';
import {
  LakeReader, checkDuplicates, checkInvented, checkLost, indexAudit, lifetimes, versionKey,
  type CommittedRun, type LakeVersion, type RunTimes, type Violation,
} from './checker.ts';
import { describeStep, type RunFaults, type RunKind, type Schedule, type Step } from './schedule.ts';
import {
  TABLE, beginLate, connect, createWorld, dropExporterConnections, finishPrepared, inTransaction, insertRows, prepare,
  readAudit, readTable, updateRange, updateSome,
} from './world.ts';

const CHILD = path.resolve(import.meta.dirname, 'chaos-child.ts');

/** Postgres settings the suite needs: prepared transactions to hold, commit times to audit. */
export const CHAOS_SERVER_SETTINGS = ['max_prepared_transactions=10', 'track_commit_timestamp=on', 'max_connections=100'];

export interface Totals {
  schedules: number;
  steps: number;
  runs: number;
  kills: number;
  storeFaults: number;
  sourceFaults: number;
  connectionsDropped: number;
  auditVersionsChecked: number;
  lakeVersionsChecked: number;
  /** Quiet moments at which a committed run's roll-forward was pending and its replaced pages still visible. */
  rollForwardsPending: number;
}

export function emptyTotals(): Totals {
  return { schedules: 0, steps: 0, runs: 0, kills: 0, storeFaults: 0, sourceFaults: 0, connectionsDropped: 0, auditVersionsChecked: 0, lakeVersionsChecked: 0, rollForwardsPending: 0 };
}

interface RunRecord {
  readonly name: string;
  readonly runId: string;
  readonly kind: RunKind;
  readonly startUs: bigint;
  endUs: bigint;
  /** The other runs in flight at any moment of this one. */
  overlapped: boolean;
  exit: 'done' | 'killed' | 'crashed' | 'running';
  outcome: (RunOutcome & { error?: string; storeOps: number }) | null;
  faults: string[];
  dropped: number;
  stderrTail: string;
  /** Killed by the harness after RUN_TIMEOUT_MS. */
  hung?: boolean;
}

const RUN_TIMEOUT_MS = 180_000;

export interface ScheduleResult {
  readonly violations: Violation[];
  /** One line per step, with what each run did. */
  readonly transcript: string[];
  readonly totals: Totals;
  readonly store: Schedule['store'];
}

const nowUs = () => BigInt(Date.now()) * 1000n;

function stampRunId(seed: number, name: string): string {
  return `${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-s${seed}${name}`;
}

export interface EngineOptions {
  readonly server: LocalPostgres;
  /** The S3 API server for schedules whose lake is a bucket. */
  readonly s3?: LocalS3Server;
  /** Progress lines (one per step) when set. */
  readonly log?: (line: string) => void;
}

let databases = 0;

export async function runSchedule(schedule: Schedule, options: EngineOptions): Promise<ScheduleResult> {
  const totals = emptyTotals();
  totals.schedules = 1;
  const violations: Violation[] = [];
  const transcript: string[] = [];
  const log = (line: string) => options.log?.(line);
  const databaseName = `chaos_${schedule.seed}_${process.pid}_${++databases}`;
  const databaseUrl = await options.server.createDatabase(databaseName);
  /** A prepared transaction's name, unique in the server (gids are not per database). */
  const gid = (slot: number) => `${databaseName}_p${slot}`;
  const lakeDir = mkdtempSync(path.join(os.tmpdir(), 'chaos-lake-'));
  const lakeUrl = pathToFileURL(lakeDir).href;
  const main = await connect(databaseUrl);
  const admin = await connect(databaseUrl);
  const late = new Map<number, pg.Client>();
  const prepared = new Set<number>();
  const runs: RunRecord[] = [];
  const inFlight = new Map<RunRecord, Promise<void>>();
  // An S3 lake lives in a bucket of its own on the local S3 API server; DuckDB reads copies of its files.
  const bucket = `chaos-${schedule.seed}-${process.pid}-${databases}`;
  const s3 = schedule.store === 's3' ? options.s3 : undefined;
  if (schedule.store === 's3' && !s3) throw new Error(`seed ${schedule.seed} wants an S3 lake but no S3 API server was given`);
  if (s3) s3.createBucket(bucket);
  const store: ObjectStore = s3 ? (Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'chaos', AWS_SECRET_ACCESS_KEY: 'chaos' }), new S3Store(createS3Client(), bucket)) : new DirectoryStore(lakeUrl);
  const reader = new LakeReader(store, TABLE, lakeDir, s3 !== undefined);
  const config = { export: { pageRows: schedule.pageRows, safetyLagSeconds: 0, leaseSeconds: 60 }, tables: [{ name: TABLE }] };
  const windows = new Map<string, { kind: CommittedRun['kind']; window: CommittedRun['window'] }>();
  const committedIds = new Set<string>();
  /** Set when a child could not even load the exporter (a broken checkout, not a chaos finding). */
  let unloadable: string | null = null;
  let rollForwardDuplicates = 0;
  /** txid → the step that wrote it, so a lost or invented version names its writer. */
  const writers = new Map<string, string>();
  const writerOf = (audit: ReadonlyMap<string, { txid: string }[]>, key: string): string => {
    const txid = audit.get(key)?.[0]?.txid;
    return txid ? writers.get(txid) ?? `transaction ${txid}` : 'not audited';
  };
  let previous: { versions: Set<string>; latest: Map<string, bigint>; after: string } | null = null;

  /** An operator takes the lease over when its holder is known dead (killed, or finished without releasing it). */
  const leaseHeldByDeadRun = async (): Promise<string | null> => {
    const lease = await reader.state.read<{ runId: string }>(reader.state.leaseKey()).catch(() => null);
    const holder = lease ? runs.find((r) => r.runId === lease.value.runId) : undefined;
    return holder && holder.exit !== 'running' ? holder.name : null;
  };

  const startRun = (step: Extract<Step, { op: 'run' }> | { op: 'final'; run: string; faults: RunFaults }, deadHolder: string | null = null): RunRecord => {
    const record: RunRecord = {
      name: step.run, runId: stampRunId(schedule.seed, step.run), kind: step.op === 'run' ? step.kind : 'scheduled',
      startUs: nowUs(), endUs: 0n, overlapped: inFlight.size > 0, exit: 'running', outcome: null, faults: [], dropped: 0, stderrTail: '',
    };
    for (const other of inFlight.keys()) other.overlapped = true;
    const request: { -readonly [K in keyof RunRequest]: RunRequest[K] } = { runId: record.runId };
    if (step.op === 'final') request.takeOver = true;
    else {
      if (step.takeOver || deadHolder) request.takeOver = true;
      if (deadHolder && !step.takeOver) transcript.push(`    (${step.run} takes the lease over: its holder ${deadHolder} is dead)`);
      if (step.kind === 'full') request.full = true;
      if (step.kind === 'window' && step.window) {
        const from = Date.now() - step.window.fromAgoSeconds * 1000;
        request.window = { from: new Date(from).toISOString(), to: new Date(from + step.window.spanSeconds * 1000).toISOString() };
      }
    }
    const input: ChildInput = { databaseUrl, lakeUrl, s3: s3 ? { endpoint: s3.address, bucket } : undefined, config, request, faults: step.faults };
    // With the functions' V8 flags (their exec wrapper's): killed and faulted as deployed.
    const child = spawn(process.execPath, [...V8_FLAGS, CHILD, JSON.stringify(input)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    // A run that never ends is a finding too (and must not stall the session).
    const hangTimer = setTimeout(() => {
      record.hung = true;
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    let dropTimer: NodeJS.Timeout | undefined;
    if (step.faults.dropConnectionsAfterMs !== undefined) {
      dropTimer = setTimeout(() => {
        dropExporterConnections(admin).then((n) => {
          record.dropped += n;
          if (n) record.faults.push(`${n} exporter connections terminated`);
        }, () => undefined);
      }, step.faults.dropConnectionsAfterMs);
    }
    const done = new Promise<void>((resolve) => {
      child.on('close', (code, signal) => {
        clearTimeout(dropTimer);
        clearTimeout(hangTimer);
        record.endUs = nowUs() + 1000n;
        record.faults.push(...stderr.split('\n').filter((l) => l.startsWith('FAULT ') && !l.startsWith('FAULT drop 0 ')).map((l) => l.slice(6)));
        const line = stdout.split('\n').find((l) => l.startsWith('OUTCOME '));
        record.outcome = line ? (JSON.parse(line.slice(8)) as RunRecord['outcome']) : null;
        record.exit = record.hung ? 'crashed' : signal === 'SIGKILL' ? 'killed' : code === 0 && record.outcome ? 'done' : 'crashed';
        if (!stderr.includes('LOADED')) unloadable = `the exporter did not load (exit ${code ?? signal}): ${stderr.trim().split('\n').slice(0, 6).join(' | ')}`;
        record.stderrTail = stderr.split('\n').filter((l) => l && l !== 'LOADED' && !l.startsWith('FAULT ')).slice(-8).join('\n');
        inFlight.delete(record);
        resolve();
      });
    });
    runs.push(record);
    inFlight.set(record, done);
    return record;
  };

  const describeRun = (r: RunRecord): string => {
    const table = r.outcome?.tables[0];
    const result = r.exit === 'killed' ? 'KILLED'
      : r.exit === 'crashed' ? `CRASHED (${r.stderrTail.split('\n').at(-1) ?? ''})`
        : r.outcome?.error ? `failed: ${r.outcome.error}`
          : table ? `${table.status}${table.error ? `: ${table.error}` : ''} (${table.rows} rows, window ${table.windowFrom ?? '-∞'} .. ${table.windowTo ?? ''})` : 'no table in outcome';
    const ops = r.outcome ? `, ${r.outcome.storeOps} store ops` : '';
    return `    → ${r.name} ${r.runId}: ${result}${ops}${r.faults.length ? ` [faults landed: ${r.faults.join(' | ')}]` : ''}`;
  };

  /** Manifests and watermark say which runs committed, and their windows. */
  const learnCommitted = async (): Promise<void> => {
    for (const m of await reader.manifests()) {
      committedIds.add(m.runId);
      windows.set(m.runId, { kind: m.kind, window: m.window });
    }
    const watermark = await reader.state.watermark();
    if (watermark) committedIds.add(watermark.runId);
  };

  /**
   * At a quiet moment (no run in flight): the versions in files of committed runs must be unique
   * and audited, none of the last quiet moment's may be gone, and no key's latest version may be
   * older than it was (d: a re-run never destroys, `_current` never goes back).
   */
  const checkpoint = async (label: string): Promise<void> => {
    await learnCommitted();
    const files = (await reader.visibleFiles()).filter((f) => committedIds.has(LakeReader.runOf(f)));
    const rows = await reader.read(files);
    const audit = indexAudit(await readAudit(main));
    // A run that failed after its commit point has published its files but not yet removed the
    // pages it replaces: until the next plan rolls it forward both are visible (noted, judged at the end).
    const watermark = await reader.state.watermark();
    const rollForward = watermark && (await reader.state.store.get(reader.state.pendingRunKey(watermark.runId))) !== null;
    const twice = checkDuplicates(rows, `${label}, committed files`);
    if (rollForward && twice.length) {
      transcript.push(`    (checkpoint ${label}: run ${watermark.runId} is committed but not finished, roll-forward pending: ${twice[0].message})`);
      rollForwardDuplicates++;
    } else violations.push(...twice);
    violations.push(...checkInvented(rows, audit, `${label}, committed files`));
    const versions = new Set(rows.map((r) => versionKey(r.id, r.us)));
    const latest = new Map<string, bigint>();
    for (const r of rows) if ((latest.get(r.id) ?? -1n) < r.us) latest.set(r.id, r.us);
    if (previous) {
      const removed = [...previous.versions].filter((v) => !versions.has(v));
      const back = [...previous.latest].filter(([id, us]) => (latest.get(id) ?? -1n) < us);
      if (removed.length) {
        violations.push({ check: 'd', message: `${label}: ${removed.length} versions in committed files ${previous.after} are gone now: ${removed.slice(0, 5).map((k) => `${k} (by ${writerOf(audit, k)})`).join('; ')}${removed.length > 5 ? '; …' : ''}` });
      }
      if (back.length) {
        violations.push({ check: 'd', message: `${label}: the latest lake version of ${back.length} keys went back since ${previous.after} (_current went backwards): ${back.slice(0, 5).map(([id, us]) => `${id}: ${us} → ${latest.get(id) ?? 'gone'}`).join('; ')}` });
      }
    }
    previous = { versions, latest, after: `after step ${label}` };
  };

  const sabotage = async (what: Extract<Step, { op: 'sabotage' }>['what']): Promise<void> => {
    const [file] = await reader.visibleFiles();
    const object = file ? await store.get(file) : null;
    if (!file || !object) throw new Error('sabotage: no data file to damage');
    if (what === 'copy-data-file') await store.put(file.replace(/-p(\d{6})\.parquet$/, 'x-p$1.parquet'), object.body);
    else await store.delete([file]);
  };

  const waitAll = async (): Promise<void> => {
    while (inFlight.size) await Promise.all(inFlight.values());
  };

  const step = async (s: Step, index: number): Promise<void> => {
    const label = `step ${index + 1} (${describeStep(s)})`;
    switch (s.op) {
      case 'insert': writers.set(await inTransaction(main, () => insertRows(main, s.rows)), label); break;
      case 'update': writers.set(await inTransaction(main, () => updateSome(main, s.keys, s.clock ? 'clock_timestamp()' : 'now()')), label); break;
      case 'bulk-update': writers.set(await inTransaction(main, () => updateRange(main, s.fromKey, s.toKey)), label); break;
      case 'late-begin': {
        const client = await connect(databaseUrl);
        late.set(s.slot, client);
        writers.set(await beginLate(client, s.slot, s.keys, s.inserts), label);
        break;
      }
      case 'late-end': {
        const client = late.get(s.slot);
        if (!client) throw new Error(`late #${s.slot} is not open (its BEGIN failed)`);
        late.delete(s.slot);
        await client.query(s.commit ? 'COMMIT' : 'ROLLBACK');
        await client.end();
        break;
      }
      case 'prepare': writers.set(await prepare(main, gid(s.slot), s.slot, s.keys, s.inserts), label); prepared.add(s.slot); break;
      case 'prepared-end':
        if (!prepared.has(s.slot)) throw new Error(`prepared #${s.slot} does not exist (its PREPARE failed)`);
        await finishPrepared(main, gid(s.slot), s.commit); prepared.delete(s.slot); break;
      case 'run': startRun(s, await leaseHeldByDeadRun()); break;
      case 'wait': {
        const waiting = [...inFlight.keys()];
        await waitAll();
        for (const r of waiting) transcript.push(describeRun(r));
        await checkpoint(String(index + 1));
        break;
      }
      case 'sleep': await new Promise((resolve) => setTimeout(resolve, s.ms)); break;
      case 'sabotage': await sabotage(s.what); break;
    }
  };

  try {
    writers.set(await inTransaction(main, () => createWorld(main, schedule.initialRows, schedule.historySeconds)), 'the initial rows');
    for (const [index, s] of schedule.steps.entries()) {
      const line = `${String(index + 1).padStart(3)}. ${describeStep(s)}`;
      transcript.push(line);
      log(line);
      if (unloadable) throw new Error(unloadable);
      try {
        await step(s, index);
      } catch (error) {
        // A writer that could not write (e.g. its session was terminated) is noted, not judged.
        transcript.push(`    ! step failed: ${(error as Error).message}`);
      }
      totals.steps++;
    }
    // Writers stop: every held transaction ends (committed), every run finishes, then one clean run.
    await waitAll();
    for (const r of runs) if (!transcript.some((l) => l.startsWith(`    → ${r.name} `))) transcript.push(describeRun(r));
    for (const [slot, client] of late) {
      transcript.push(`end. late #${slot}: COMMIT`);
      await client.query('COMMIT').catch(() => undefined);
      await client.end();
    }
    late.clear();
    for (const slot of prepared) {
      transcript.push(`end. prepared #${slot}: COMMIT PREPARED`);
      await finishPrepared(main, gid(slot), true);
    }
    prepared.clear();
    transcript.push('end. final clean run (takeOver, no faults)');
    const final = startRun({ op: 'final', run: 'final', faults: { storeErrors: [], sourceErrors: [] } });
    await waitAll();
    if (unloadable) throw new Error(unloadable);
    transcript.push(describeRun(final));
    await finalChecks(final);
  } finally {
    for (const client of late.values()) await client.end().catch(() => undefined);
    await main.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
    reader.close();
  }

  async function finalChecks(final: RunRecord): Promise<void> {
    // (f) liveness: a run with no fault of its own and no run beside it must succeed.
    for (const r of runs) {
      const table = r.outcome?.tables[0];
      const ok = r.exit === 'done' && (table?.status === 'succeeded' || (table?.status === 'skipped' && r.overlapped));
      // By design, not a stall: a window re-run before any export; a first export waiting for a prepared transaction.
      const reason = table?.error ?? r.outcome?.error ?? '';
      const excused = r.faults.length > 0 || r.overlapped || /has never been exported|skipped, prepared transaction/.test(reason);
      if (r.hung) violations.push({ check: 'f', message: `run ${r.name} (${r.runId}) did not end within ${RUN_TIMEOUT_MS / 1000} s (killed by the harness): ${r.stderrTail}` });
      else if (r.exit === 'crashed') violations.push({ check: 'f', message: `run ${r.name} (${r.runId}): the child process crashed instead of reporting an outcome: ${r.stderrTail}` });
      else if (!ok && (!excused || r === final)) violations.push({ check: 'f', message: `run ${r.name} (${r.runId}) had no fault and no run beside it but did not succeed: ${describeRun(r).trim()}` });
    }
    await checkpoint('final');
    const visible = await reader.visibleFiles();
    const rows = await reader.read(visible);
    const auditList = await readAudit(main);
    const audit = indexAudit(auditList);
    violations.push(...checkDuplicates(rows, 'after the final run, visible files'));
    violations.push(...checkInvented(rows, audit, 'after the final run, visible files'));
    // (c) none lost, over every run that committed (its window from its manifest).
    const committed: CommittedRun[] = [];
    for (const r of runs) {
      // A manifest a later full run removed before a quiet moment: the run's own outcome has its window.
      const table = r.outcome?.tables[0];
      const reported = table?.status === 'succeeded' && table.windowTo !== null
        ? { kind: r.kind, window: { from: table.windowFrom, fromInclusive: r.kind === 'window', to: table.windowTo } }
        : undefined;
      if (reported) committedIds.add(r.runId);
      const w = windows.get(r.runId) ?? reported;
      if (committedIds.has(r.runId) && w) committed.push({ times: { runId: r.runId, name: r.name, startUs: r.startUs, endUs: r.endUs } satisfies RunTimes, ...w });
    }
    violations.push(...checkLost(lifetimes(auditList), committed, new Set(rows.map((r) => versionKey(r.id, r.us))), (txid) => writers.get(txid) ?? `transaction ${txid}`));
    // The latest version per key equals the table, exactly.
    const table = await readTable(main);
    const latest = new Map<string, LakeVersion>();
    for (const r of rows) if ((latest.get(r.id)?.us ?? -1n) < r.us) latest.set(r.id, r);
    const differ: string[] = [];
    for (const [id, row] of table) {
      const l = latest.get(id);
      const by = writerOf(audit, versionKey(id, row.us));
      if (!l) differ.push(`${id}: not in the lake (table has cursor ${row.us}, by ${by})`);
      else if (l.us !== row.us || l.values !== row.values) differ.push(`${id}: lake ${l.us} ${l.values} ≠ table ${row.us} ${row.values} (by ${by})`);
    }
    for (const id of latest.keys()) if (!table.has(id)) differ.push(`${id}: in the lake, not in the table`);
    if (differ.length) violations.push({ check: 'c', message: `after the final run, the latest lake version of ${differ.length} keys differs from the table: ${differ.slice(0, 5).join('; ')}${differ.length > 5 ? '; …' : ''}` });
    // (e) the visible files are exactly the manifests' files; nothing pending, leased or stray.
    const listed = new Set((await reader.manifests()).flatMap((m) => m.pages.flatMap((p) => p.files.map((f) => f.key))));
    const unlisted = visible.filter((f) => !listed.has(f));
    const missing = [...listed].filter((f) => !visible.includes(f));
    if (unlisted.length) violations.push({ check: 'e', message: `${unlisted.length} visible data files no manifest lists (${rows.filter((r) => unlisted.includes(r.file)).length} rows): ${unlisted.slice(0, 5).join('; ')}` });
    if (missing.length) violations.push({ check: 'e', message: `${missing.length} files manifests list are missing: ${missing.slice(0, 5).join('; ')}` });
    const pending = await reader.state.store.list(reader.state.pendingPrefix());
    if (pending.length) violations.push({ check: 'e', message: `${pending.length} objects left under ${reader.state.pendingPrefix()}: ${pending.slice(0, 5).join('; ')}` });
    if (await reader.state.store.get(reader.state.leaseKey())) violations.push({ check: 'e', message: `${reader.state.leaseKey()} left behind` });
    const stray = await reader.strayFiles();
    if (stray.length) violations.push({ check: 'e', message: `${stray.length} *.tmp / *.lock files left in the lake: ${stray.slice(0, 5).join('; ')}` });

    totals.runs = runs.length;
    totals.kills = runs.filter((r) => r.exit === 'killed').length;
    totals.storeFaults = runs.reduce((n, r) => n + r.faults.filter((f) => f.startsWith('store ')).length, 0);
    totals.sourceFaults = runs.reduce((n, r) => n + r.faults.filter((f) => f.startsWith('source ')).length, 0);
    totals.connectionsDropped = runs.reduce((n, r) => n + r.dropped + r.faults.reduce((m, f) => m + Number(/^drop (\d+) /.exec(f)?.[1] ?? 0), 0), 0);
    totals.auditVersionsChecked = auditList.length;
    totals.lakeVersionsChecked = rows.length;
    totals.rollForwardsPending = rollForwardDuplicates;
  }

  if (violations.length === 0) {
    rmSync(lakeDir, { recursive: true, force: true });
    await dropDatabase(options.server, databaseUrl);
  } else {
    transcript.push(`lake kept for inspection: ${s3 ? `s3://${bucket} (gone with the S3 server; data files read last copied to ${lakeDir})` : lakeDir}; database: ${databaseUrl}`);
  }
  return { violations, transcript, totals, store: schedule.store };
}

async function dropDatabase(server: LocalPostgres, url: string): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  const client = await connect(server.url);
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name.replaceAll('"', '""')}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
