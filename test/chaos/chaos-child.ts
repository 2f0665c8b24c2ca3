// One export run of a chaos schedule, in its own process so that a SIGKILL leaves no finally and
// no cleanup. The store and the row source are wrapped only to inject faults: every store
// operation is counted, and the run dies, or sees an S3-like error, at the operations the
// schedule drew. The outcome (or each fault, before it lands) goes to the harness as lines on
// stderr/stdout, written synchronously so a kill right after cannot swallow them.
import { appendFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { runExport } from '../../bin/local/run-export.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import type { ObjectStore, PutOptions, RowSource, StreamedWrite } from '../../lambdas/core/ports.ts';
import type { RunFaults } from './schedule.ts';

export interface ChildInput {
  readonly databaseUrl: string;
  /** `file:///…` for a directory lake; for S3, the bucket on `s3Endpoint`. */
  readonly lakeUrl: string;
  readonly s3?: { readonly endpoint: string; readonly bucket: string };
  readonly config: unknown;
  readonly request: RunRequest;
  readonly faults: RunFaults;
}

/** Lines the harness reads: `FAULT <what>` on stderr as faults land, `OUTCOME <json>` on stdout. */
const report = (fd: 1 | 2, line: string) => writeSync(fd, `${line}\n`);

const die = (why: string): never => {
  report(2, `FAULT kill ${why}`);
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
};

/** What S3 answers when it is having a bad moment (the SDK's shape: name and $metadata). */
function s3Error(name: 'InternalError' | 'SlowDown'): Error {
  const error = new Error(name === 'SlowDown' ? 'Please reduce your request rate.' : 'We encountered an internal error. Please try again.');
  return Object.assign(error, { name, $metadata: { httpStatusCode: 503 } });
}

/** CHAOS_TRACE=<dir>: every store operation of the run, one line each, in <dir>/<runId>.ops (for debugging a seed). */
const trace = process.env.CHAOS_TRACE ? path.join(process.env.CHAOS_TRACE, `${(JSON.parse(process.argv[2]) as ChildInput).request.runId}.ops`) : null;

/** Store operations so far: the harness prints it beside the outcome, to place the drawn k. */
let ops = 0;

function faultyStore(inner: ObjectStore, faults: RunFaults): ObjectStore {
  let commitOps = 0;
  let manifestOps = 0;
  const around = async <T>(what: string, keys: readonly string[], work: () => Promise<T>): Promise<T> => {
    const op = ++ops;
    // The commit phase starts at publishing (the first move) or, for a run with nothing to publish, at the watermark.
    if (commitOps > 0 || what.startsWith('move ') || keys.some((k) => k.endsWith('/watermark.json') && what.startsWith('put '))) commitOps++;
    if (commitOps > 0 && keys.some((k) => /\/_state\/[^/]+\/runs\//.test(k))) manifestOps++;
    const counted = faults.killAt?.phase === 'commit' ? commitOps : faults.killAt?.phase === 'manifests' ? manifestOps : op;
    const kill = faults.killAt?.op === counted ? faults.killAt.timing : null;
    const error = faults.storeErrors.find((e) => e.op === op);
    const label = `store op ${op}${commitOps ? ` (commit phase op ${commitOps})` : ''}${manifestOps ? ` (manifest op ${manifestOps})` : ''}: ${what}`;
    if (trace) appendFileSync(trace, `${label}\n`);
    if (kill === 'before') die(`before ${label}`);
    if (error && !error.after) {
      report(2, `FAULT store ${error.name} at ${label}`);
      throw s3Error(error.name);
    }
    const running = work();
    if (kill === 'during') {
      // Let the operation start (a temp file written, a lock taken, part of a batch deleted), then die.
      running.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      die(`during ${label}`);
    }
    const result = await running;
    if (kill === 'after') die(`after ${label}`);
    if (error?.after) {
      report(2, `FAULT store ${error.name} after ${label} (the operation happened)`);
      throw s3Error(error.name);
    }
    return result;
  };
  // The wrapper inherits from the store it wraps, so what runExport asks of the real class
  // (a DirectoryStore sweeps a killed writer's temporary files) still reaches it.
  return Object.assign(Object.create(inner) as ObjectStore, {
    url: inner.url,
    put: (key: string, body: Uint8Array | string, options?: PutOptions) => around(`put ${key}${options?.ifMatch ? ' ifMatch' : options?.ifNoneMatch ? ' ifNoneMatch' : ''}`, [key], () => inner.put(key, body, options)),
    get: (key: string) => around(`get ${key}`, [key], () => inner.get(key)),
    list: (prefix: string) => around(`list ${prefix}`, [], () => inner.list(prefix)),
    delete: (keys: readonly string[]) => around(`delete ${keys.length} keys${keys.length ? ` (${keys[0]}${keys.length > 1 ? ', …' : ''})` : ''}`, keys, () => inner.delete(keys)),
    deleteIf: (key: string, etag: string) => around(`delete ${key} ifMatch`, [key], () => inner.deleteIf(key, etag)),
    move: (from: string, to: string) => around(`move ${from} → ${to}`, [from, to], () => inner.move(from, to)),
    // Streamed files (multipart on S3, a temporary file renamed locally): each part and the
    // completion are steps a kill or a fault can hit; an abort is the writer's own clean-up.
    ...(inner.openWrite ? {
      openWrite: (key: string): StreamedWrite => {
        const write = inner.openWrite!(key);
        let part = 0;
        return {
          write: (bytes: Uint8Array) => around(`write part ${++part} of ${key}`, [key], () => write.write(bytes)),
          complete: () => around(`complete ${key}`, [key], () => write.complete()),
          abort: () => write.abort(),
        };
      },
    } : {}),
  });
}

/** Terminate this process's exporter sessions from a side connection (as a failover or an admin would). */
async function dropOwnConnections(databaseUrl: string): Promise<number> {
  const admin = new pg.Client(databaseUrl);
  admin.on('error', () => undefined);
  await admin.connect();
  try {
    const { rows } = await admin.query(`SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
      WHERE application_name = 'pg-lake-export' AND datname = current_database() AND pid <> pg_backend_pid()`);
    return rows.filter((r: { done: boolean }) => r.done).length;
  } finally {
    await admin.end();
  }
}

function faultySource(inner: RowSource, faults: RunFaults, databaseUrl: string): RowSource {
  let calls = 0;
  const around = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    const call = ++calls;
    if (faults.sourceErrors.includes(call)) {
      report(2, `FAULT source ECONNRESET at source call ${call}: ${what}`);
      throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104, syscall: 'read' });
    }
    if (faults.dropConnectionAtCall === call) {
      const running = work();
      running.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 15));
      const dropped = await dropOwnConnections(databaseUrl).catch(() => 0);
      report(2, `FAULT drop ${dropped} connections during source call ${call}: ${what}`);
      return running;
    }
    return work();
  };
  return {
    describeTable: (t) => around('describeTable', () => inner.describeTable(t)),
    readClock: (lag) => around('readClock', () => inner.readClock(lag)),
    queryText: (sql, params) => around('queryText', () => inner.queryText(sql, params)),
    copyBinary: (select, reuse) => around('copyBinary', () => inner.copyBinary(select, reuse)),
    close: () => inner.close(),
  };
}

/** The production S3 adapter and client, pointed at the local S3 API server. */
function s3Store(s3: NonNullable<ChildInput['s3']>): ObjectStore {
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'chaos', AWS_SECRET_ACCESS_KEY: 'chaos' });
  return new S3Store(createS3Client(), s3.bucket);
}

// Every import above evaluated: a child that dies before this line never ran the exporter.
report(2, 'LOADED');
const input = JSON.parse(process.argv[2]) as ChildInput;
const source = new PostgresSource(input.databaseUrl);
try {
  const outcome = await runExport({
    source: faultySource(source, input.faults, input.databaseUrl),
    store: faultyStore(input.s3 ? s3Store(input.s3) : new DirectoryStore(input.lakeUrl), input.faults),
    config: validateConfig(input.config, 'chaos config'),
  }, input.request);
  report(1, `OUTCOME ${JSON.stringify({ ...outcome, storeOps: ops })}`);
} catch (error) {
  // planRun itself failed (e.g. the database was unreachable): a failed run, not a crash.
  report(1, `OUTCOME ${JSON.stringify({ runId: input.request.runId, tables: [], warnings: [], storeOps: ops, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })}`);
} finally {
  await source.close();
}
process.exit(0);
