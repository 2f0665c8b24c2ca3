// `npm run bench [-- --rows N] [--runs R] [--page-rows P] [--json]`: one run, three pipelines over
// the same deterministic `orders` table in an embedded Postgres, each timed in its own child
// process (so peak RSS does not mix), interleaved, medians of R (≥ 3) runs:
//   limit  — drain COPY (SELECT …) TO STDOUT (FORMAT binary), discard the bytes
//   export — our export: keyset pages → Snappy Parquet files in a local lake (runExport), run
//            as the Export function runs it: bundled by esbuild with the functions' options, the
//            encoder thread from its own bundle (encoder.js); `--source` runs the TypeScript source
//   duckdb — the peer that needs no extra install: COPY (SELECT …) TO STDOUT (FORMAT csv) into a
//            file, then DuckDB read_csv → Snappy Parquet (its time includes the CSV drain)
// All three read the rows in (updated_at, id) order, as a keyset export must.
// Not a timed test in CI: numbers depend on the machine.
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { MALLOC_ARENA_MAX, NODE_OPTIONS, V8_FLAGS } from '../../lib/runtime-options.ts';

const SELF = fileURLToPath(import.meta.url);
const PROJECT_ROOT = path.resolve(path.dirname(SELF), '../..');
// The functions' V8 flags (lib/runtime-options.ts: NODE_OPTIONS and those their exec wrapper
// adds), given to every child alike; source maps make no difference here.
const LAMBDA_V8_FLAGS = [...NODE_OPTIONS.split(' ').filter((flag) => flag !== '--enable-source-maps'), ...V8_FLAGS];
const TABLE = 'orders';
const COLUMNS = 'id, customer_id, order_date, status, amount, currency, description, coupon, attrs, created_at, updated_at';
// The same rows in the same order as the export's keyset pages.
const ORDERED = `SELECT ${COLUMNS} FROM ${TABLE} ORDER BY updated_at, id`;

/** bigint key, bigint, date, short text, numeric(12,2), char(3), ~60-char text, 30%-NULL text,
 *  small jsonb, two timestamptz; 1,000 rows share each updated_at (one minute apart). */
function createTableSql(rows: number): string {
  return `
DROP TABLE IF EXISTS ${TABLE};
CREATE TABLE ${TABLE} (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  order_date date NOT NULL,
  status text NOT NULL,
  amount numeric(12,2) NOT NULL,
  currency char(3) NOT NULL,
  description text NOT NULL,
  coupon text,
  attrs jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
INSERT INTO ${TABLE}
SELECT i,
       (i * 7919) % 100000 + 1,
       date '2023-01-01' + (i % 730)::int,
       (ARRAY['new','paid','shipped','delivered','cancelled'])[1 + (i % 5)::int],
       ((i * 104729) % 10000000) / 100.0,
       (ARRAY['EUR','USD','GBP'])[1 + (i % 3)::int],
       'order ' || i || ' for ' || ((i * 7919) % 100000 + 1) || ': ' || md5(i::text),
       CASE WHEN i % 10 < 3 THEN NULL ELSE 'CPN-' || (i % 5000) END,
       jsonb_build_object('src', (ARRAY['web','app','pos'])[1 + (i % 3)::int], 'items', 1 + i % 9, 'gift', i % 7 = 0),
       timestamptz '2024-01-01 00:00:00+00' + ((i - 1) / 1000) * interval '1 minute' - (i % 86400) * interval '1 second' - (i % 1000000) * interval '1 microsecond',
       timestamptz '2024-01-01 00:00:00+00' + ((i - 1) / 1000) * interval '1 minute'
  FROM generate_series(1::bigint, ${rows}::bigint) AS i;
CREATE INDEX ${TABLE}_updated_at_id ON ${TABLE} (updated_at, id);`;
}

interface ChildResult {
  readonly mode: Mode;
  readonly seconds: number;
  /** CPU time of the whole child process (every thread, user + system) while it worked. */
  readonly cpuSeconds: number;
  readonly rows: number;
  readonly bytes: number;
  readonly peakRssMiB: number;
  /** Export only: Parquet files written, their median size and row groups per file (median). */
  readonly files?: FileStats;
  /** Export only (Linux): CPU-seconds of the run by thread kind (main, encoder, V8's helpers). */
  readonly threads?: ThreadCpu;
  /** Export only (Linux): threads read; each one's CPU is counted in whole clock ticks (utime and stime). */
  readonly threadsCounted?: number;
}

/** CPU-seconds by thread kind, read from /proc/self/task (Linux; empty elsewhere). */
type ThreadCpu = Partial<Record<'main' | 'encoder' | 'v8' | 'other', number>>;

interface FileStats {
  readonly count: number;
  readonly medianBytes: number;
  readonly medianRowGroups: number;
  readonly minRowGroupRows: number;
}

type Mode = 'limit' | 'export' | 'duckdb';
const MODES: readonly Mode[] = ['limit', 'export', 'duckdb'];

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** Files under `dir` (recursively) and their row groups, read from each footer by parquet-wasm. */
async function fileStats(dir: string): Promise<FileStats> {
  const { ParquetFile } = await import('parquet-wasm/node');
  const { openAsBlob, readdirSync } = await import('node:fs');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.parquet') && !f.includes('_state'));
  const sizes: number[] = [];
  const groups: number[] = [];
  let minRowGroupRows = Number.POSITIVE_INFINITY;
  for (const f of files) {
    const full = path.join(dir, f);
    sizes.push(statSync(full).size);
    const file = await ParquetFile.fromFile(await openAsBlob(full));
    const meta = file.metadata();
    groups.push(meta.numRowGroups());
    // The last row group of a file is whatever was left: the smallest full one says how big they are.
    for (let i = 0; i < meta.numRowGroups() - 1; i++) minRowGroupRows = Math.min(minRowGroupRows, meta.rowGroup(i).numRows());
    if (meta.numRowGroups() === 1) minRowGroupRows = Math.min(minRowGroupRows, meta.rowGroup(0).numRows());
    file.free();
  }
  return { count: files.length, medianBytes: median(sizes), medianRowGroups: median(groups), minRowGroupRows };
}

/**
 * CPU-seconds so far of each thread of this process, by kind: the main thread, the encoder
 * (the worker thread), V8's helpers (concurrent GC marking, JIT and wasm compilation) and the
 * rest (libuv's pool). Linux thread names: MainThread, WorkerThread, V8Worker.
 */
function threadCpu(): Map<string, { kind: keyof ThreadCpu; seconds: number }> {
  const out = new Map<string, { kind: keyof ThreadCpu; seconds: number }>();
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  const tick = 100; // USER_HZ: clock ticks per second on every Linux ABI Node supports
  for (const task of tasks) {
    try {
      const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const kind = name === 'MainThread' || task === String(process.pid) ? 'main' : name === 'WorkerThread' ? 'encoder' : name.startsWith('V8') ? 'v8' : 'other';
      out.set(task, { kind, seconds: (Number(fields[11]) + Number(fields[12])) / tick });
    } catch { /* the thread ended */ }
  }
  return out;
}

/** CPU-seconds by thread kind between two threadCpu() readings, and how many threads were read. */
function threadCpuSince(before: ReturnType<typeof threadCpu>): { threads: ThreadCpu; threadsCounted: number } {
  const threads: ThreadCpu = {};
  const now = threadCpu();
  for (const [task, { kind, seconds }] of now) threads[kind] = (threads[kind] ?? 0) + seconds - (before.get(task)?.seconds ?? 0);
  return { threads, threadsCounted: now.size };
}

function peakRssMiB(): number {
  // VmHWM: the resident set's high-water mark of this process (Linux); maxRSS elsewhere.
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch { /* not Linux */ }
  return process.resourceUsage().maxRSS / 1024;
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client(url);
  await client.connect();
  await client.query("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3");
  return client;
}

// ---------------------------------------------------------------- children

async function childLimit(url: string): Promise<Omit<ChildResult, 'mode' | 'peakRssMiB'>> {
  const client = await connect(url);
  const started = performance.now();
  const cpu = process.cpuUsage();
  let bytes = 0;
  for await (const chunk of client.query(copyTo(`COPY (${ORDERED}) TO STDOUT (FORMAT binary)`))) bytes += (chunk as Buffer).length;
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = cpuSecondsSince(cpu);
  const [{ n }] = (await client.query(`SELECT count(*)::int AS n FROM ${TABLE}`)).rows;
  await client.end();
  return { seconds, cpuSeconds, rows: n, bytes };
}

/** What the export child needs of the exporter: from the TypeScript source, or from its bundle. */
const EXPORTER_MODULES = `
export { validateConfig } from '../../lambdas/core/config.ts';
export { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
export { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
export { runExport } from './run-export.ts';`;
type ExporterModules = typeof import('../../lambdas/core/config.ts') & typeof import('../../lambdas/adapters/directory-store.ts')
  & typeof import('../../lambdas/adapters/postgres-source.ts') & typeof import('./run-export.ts');

/**
 * The exporter bundled as the Export function is (lib/lambda-factory.ts): one minified CommonJS
 * file with the functions' esbuild options, the encoder's own bundle and the parquet-wasm binary
 * beside it. Returns its directory.
 */
async function bundleExporter(): Promise<string> {
  const [{ build }, { BUNDLE_OPTIONS, encoderBundleFiles }] = await Promise.all([import('esbuild'), import('../../lib/encoder-bundle.ts')]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-exporter-'));
  await build({
    stdin: { contents: EXPORTER_MODULES, resolveDir: path.dirname(SELF), sourcefile: 'bench-exporter.ts', loader: 'ts' },
    outfile: path.join(dir, 'index.js'),
    bundle: true,
    platform: 'node',
    format: BUNDLE_OPTIONS.format,
    target: BUNDLE_OPTIONS.target,
    minify: BUNDLE_OPTIONS.minify,
    external: ['@aws-sdk/*'],
    logLevel: 'error',
  });
  for (const [name, text] of Object.entries(encoderBundleFiles(PROJECT_ROOT))) writeFileSync(path.join(dir, name), text);
  copyFileSync(path.join(PROJECT_ROOT, 'node_modules/parquet-wasm/node/parquet_wasm_bg.wasm'), path.join(dir, 'parquet_wasm_bg.wasm'));
  // CommonJS, as in /var/task: a package.json declaring "type": "module" above the folder would make Node read it as ESM.
  writeFileSync(path.join(dir, 'package.json'), '{}');
  return dir;
}

async function childExport(url: string, pageRows: number | undefined, rowGroupMB: number | undefined, bundle: string | undefined): Promise<Omit<ChildResult, 'mode' | 'peakRssMiB'> & { peak: number }> {
  const { validateConfig, DirectoryStore, PostgresSource, runExport } = bundle
    ? createRequire(import.meta.url)(path.join(bundle, 'index.js')) as ExporterModules
    : Object.assign({}, ...await Promise.all([
      import('../../lambdas/core/config.ts'),
      import('../../lambdas/adapters/directory-store.ts'),
      import('../../lambdas/adapters/postgres-source.ts'),
      import('./run-export.ts'),
    ])) as ExporterModules;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-lake-'));
  const config = validateConfig({ ...(rowGroupMB ? { lake: { rowGroupMB } } : {}), export: { ...(pageRows ? { pageRows } : {}), safetyLagSeconds: 0 }, tables: [{ name: TABLE }] }, 'bench');
  const source = new PostgresSource(url);
  try {
    const started = performance.now();
    const cpu = process.cpuUsage();
    const perThread = threadCpu();
    const outcome = await runExport({ source, store: new DirectoryStore(pathToFileURL(dir).href), config });
    const seconds = (performance.now() - started) / 1000;
    const cpuSeconds = cpuSecondsSince(cpu);
    const { threads, threadsCounted } = threadCpuSince(perThread);
    const [table] = outcome.tables;
    if (table.status !== 'succeeded') throw new Error(`export failed: ${table.error}`);
    // Peak RSS is taken before the files are inspected (that loads a reader of its own).
    const peak = peakRssMiB();
    return { seconds, cpuSeconds, rows: table.rows, bytes: table.bytes, peak, files: await fileStats(dir), threads, threadsCounted };
  } finally {
    await source.close();
    // BENCH_KEEP_LAKE=<dir>: keep the lake there (to inspect the files or re-encode them).
    if (process.env.BENCH_KEEP_LAKE) cpSync(dir, process.env.BENCH_KEEP_LAKE, { recursive: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function childDuckdb(url: string): Promise<Omit<ChildResult, 'mode' | 'peakRssMiB'>> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-duckdb-'));
  const csv = path.join(dir, 'orders.csv');
  const out = path.join(dir, 'orders.parquet');
  const client = await connect(url);
  try {
    const started = performance.now();
    const cpu = process.cpuUsage();
    await pipeline(client.query(copyTo(`COPY (${ORDERED}) TO STDOUT (FORMAT csv)`)), createWriteStream(csv));
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run("SET TimeZone = 'UTC'");
    const columns = `{'id': 'BIGINT', 'customer_id': 'BIGINT', 'order_date': 'DATE', 'status': 'VARCHAR', 'amount': 'DECIMAL(12,2)',
      'currency': 'VARCHAR', 'description': 'VARCHAR', 'coupon': 'VARCHAR', 'attrs': 'VARCHAR', 'created_at': 'TIMESTAMPTZ', 'updated_at': 'TIMESTAMPTZ'}`;
    await connection.run(`COPY (SELECT * FROM read_csv('${csv}', header = false, columns = ${columns})) TO '${out}' (FORMAT parquet, COMPRESSION snappy)`);
    const seconds = (performance.now() - started) / 1000;
    // DuckDB's threads are this process's threads: cpuUsage counts them.
    const cpuSeconds = cpuSecondsSince(cpu);
    const reader = await connection.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${out}')`);
    const rows = Number(reader.getRowObjectsJson()[0].n);
    connection.closeSync();
    return { seconds, cpuSeconds, rows, bytes: statSync(out).size };
  } finally {
    await client.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runChild(mode: Mode, url: string, pageRows: number | undefined, rowGroupMB: number | undefined, bundle: string | undefined): Promise<void> {
  if (mode === 'export') {
    const { peak, ...result } = await childExport(url, pageRows, rowGroupMB, bundle);
    process.stdout.write(`${JSON.stringify({ mode, ...result, peakRssMiB: peak })}\n`);
    return;
  }
  const result = mode === 'limit' ? await childLimit(url) : await childDuckdb(url);
  process.stdout.write(`${JSON.stringify({ mode, ...result, peakRssMiB: peakRssMiB() })}\n`);
}

// ---------------------------------------------------------------- orchestrator

/** `--pin`: the server runs on core 0 and each measured pipeline on core 1 (the production split). */
const SERVER_CORE = 0;
const CLIENT_CORE = 1;

function spawnChild(mode: Mode, url: string, pageRows: number | undefined, pin: boolean, rowGroupMB?: number, bundle?: string): Promise<ChildResult> {
  const args = [SELF, '--child', mode, '--url', url, ...(pageRows ? ['--page-rows', String(pageRows)] : []), ...(rowGroupMB ? ['--row-group-mb', String(rowGroupMB)] : []), ...(bundle && mode === 'export' ? ['--bundle', bundle] : [])];
  const [command, argv] = pin
    ? ['taskset', ['-c', String(CLIENT_CORE), process.execPath, ...LAMBDA_V8_FLAGS, ...args]]
    : [process.execPath, [...LAMBDA_V8_FLAGS, ...args]];
  return new Promise((resolve, reject) => {
    // Every pipeline runs as the Lambda functions do: glibc limited to two malloc arenas
    // (MALLOC_ARENA_MAX: with a worker thread, per-thread arenas otherwise fragment and peak RSS
    // creeps up with the number of pages) and V8's small young generation (NODE_OPTIONS).
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'inherit'], env: { MALLOC_ARENA_MAX, ...process.env } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bench child ${mode} exited with ${code}`));
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as ChildResult);
      } catch {
        reject(new Error(`bench child ${mode} printed no result: ${out}`));
      }
    });
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface Summary {
  readonly mode: Mode;
  readonly seconds: number;
  /** CPU-seconds of the pipeline's process (all threads) per 1M rows. */
  readonly cpuPerMillion: number;
  readonly files?: FileStats;
  /** Export only: median CPU-seconds per 1M rows by thread kind, and the most threads a run read. */
  readonly threads?: ThreadCpu;
  readonly threadsCounted?: number;
  readonly rowsPerSec: number;
  readonly peakRssMiB: number;
  readonly bytes: number;
  readonly runs: number[];
}

function summarize(mode: Mode, results: ChildResult[], rows: number): Summary {
  const mine = results.filter((r) => r.mode === mode);
  for (const r of mine) if (r.rows !== rows) throw new Error(`${mode}: ${r.rows} rows, expected ${rows}`);
  const seconds = median(mine.map((r) => r.seconds));
  const cpuPerMillion = median(mine.map((r) => r.cpuSeconds)) / (rows / 1e6);
  const kinds = [...new Set(mine.flatMap((r) => Object.keys(r.threads ?? {})))] as (keyof ThreadCpu)[];
  const threads = kinds.length ? Object.fromEntries(kinds.map((k) => [k, median(mine.map((r) => r.threads?.[k] ?? 0)) / (rows / 1e6)])) : undefined;
  const counted = mine.flatMap((r) => (r.threadsCounted === undefined ? [] : [r.threadsCounted]));
  return { mode, seconds, cpuPerMillion, files: mine.at(-1)?.files, threads, threadsCounted: counted.length ? Math.max(...counted) : undefined, rowsPerSec: rows / seconds, peakRssMiB: median(mine.map((r) => r.peakRssMiB)), bytes: median(mine.map((r) => r.bytes)), runs: mine.map((r) => r.seconds) };
}

const LABELS: Record<Mode, string> = {
  limit: '(1) binary COPY drain (limit)',
  export: '(2) pg-lake-export → Parquet',
  duckdb: '(3) COPY csv → DuckDB → Parquet',
};

const THREAD_LABELS: Record<keyof ThreadCpu, string> = { main: 'main', encoder: 'encoder', v8: "V8's helpers (GC, JIT)", other: 'other' };

function printTable(rows: number, runs: number, pin: boolean, source: boolean, summaries: Summary[], ratioToLimit: number, ratioToDuckdb: number): void {
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  const files = summaries.find((s) => s.mode === 'export')?.files;
  const threads = summaries.find((s) => s.mode === 'export')?.threads;
  const lines = [
    `orders: ${rows.toLocaleString('en-US')} rows, medians of ${runs} runs, ${os.cpus().length} cores, node ${process.version} ${LAMBDA_V8_FLAGS.join(' ')}${pin ? `, pinned: Postgres on core ${SERVER_CORE}, each pipeline on core ${CLIENT_CORE}` : ''}`,
    `exporter: ${source ? 'TypeScript source (--source)' : 'bundled as the Export function (esbuild, minified; encoder thread from encoder.js)'}`,
    `${'pipeline'.padEnd(34)}${'wall s'.padStart(8)}${'rows/s'.padStart(11)}${'CPU-s/1M'.padStart(10)}${'peak RSS'.padStart(12)}${'output'.padStart(12)}   runs (s)`,
    ...summaries.map((s) =>
      `${LABELS[s.mode].padEnd(34)}${s.seconds.toFixed(2).padStart(8)}${Math.round(s.rowsPerSec).toLocaleString('en-US').padStart(11)}${s.cpuPerMillion.toFixed(2).padStart(10)}${mib(s.peakRssMiB * 1048576).padStart(12)}${mib(s.bytes).padStart(12)}   ${s.runs.map((x) => x.toFixed(2)).join(' ')}`),
    `export ÷ limit: ${ratioToLimit.toFixed(2)}×   export ÷ duckdb: ${ratioToDuckdb.toFixed(2)}×  (throughput ratios)`,
    ...(files ? [`export files: ${files.count}, median ${mib(files.medianBytes)}, row groups per file ${files.medianRowGroups}, smallest full row group ${files.minRowGroupRows.toLocaleString('en-US')} rows`] : []),
    ...(threads ? [`export CPU-s/1M by thread: ${(['main', 'encoder', 'v8', 'other'] as const).filter((k) => threads[k] !== undefined).map((k) => `${THREAD_LABELS[k]} ${threads[k]!.toFixed(2)}`).join(', ')}`] : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Pin the server to SERVER_CORE: the postmaster (its later backends inherit the mask) and every
 * process it has forked already. The server must run on this machine (the embedded one does).
 */
async function pinServer(admin: pg.Client, log: (m: string) => void): Promise<void> {
  const [{ pid }] = (await admin.query('SELECT pg_backend_pid() AS pid')).rows as { pid: number }[];
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 4 (ppid), after the parenthesised command name.
  const postmaster = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  const children = readFileSync(`/proc/${postmaster}/task/${postmaster}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  for (const p of [postmaster, ...children]) {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('taskset', ['-a', '-p', '-c', String(SERVER_CORE), String(p)], { stdio: 'ignore' });
      child.on('error', reject);
      // A backend may have exited since it was listed: only the postmaster must succeed.
      child.on('close', (code) => (code === 0 || p !== postmaster ? resolve() : reject(new Error(`taskset could not pin the Postgres server (pid ${p}): exit ${code}`))));
    });
  }
  log(`pinned Postgres (postmaster ${postmaster}, ${children.length} children) to core ${SERVER_CORE}; pipelines run on core ${CLIENT_CORE}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '2000000' },
      runs: { type: 'string', default: '3' },
      'page-rows': { type: 'string' },
      'row-group-mb': { type: 'string' },
      json: { type: 'boolean', default: false },
      child: { type: 'string' },
      url: { type: 'string' },
      only: { type: 'string' },
      pin: { type: 'boolean', default: false },
      source: { type: 'boolean', default: false },
      bundle: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`npm run bench -- [--rows N] [--runs R] [--page-rows P] [--row-group-mb M] [--only limit,export,duckdb] [--url DB] [--pin] [--source] [--json]

Creates a deterministic orders table in an embedded PostgreSQL (or uses --url), then measures,
each in its own child process and as the median of R runs (default 3): (1) draining binary COPY
(the physical limit), (2) pg-lake-export into a local lake, bundled as the Export function is
(--source: its TypeScript source instead), (3) COPY CSV → DuckDB → Snappy Parquet.
Prints wall seconds, rows/s, CPU-seconds per 1M rows (every thread of the pipeline's process),
peak RSS, output bytes, the export's ratios to (1) and (3), and the export's files (count, median
size, row groups per file). --pin (Linux, taskset): the Postgres server on core 0 and each
pipeline on core 1, the production split where the database runs on its own machine.
`);
    return;
  }
  const pageRows = values['page-rows'] ? Number(values['page-rows']) : undefined;
  const rowGroupMB = values['row-group-mb'] ? Number(values['row-group-mb']) : undefined;
  if (values.child) return runChild(values.child as Mode, values.url!, pageRows, rowGroupMB, values.bundle);

  const rows = Number(values.rows);
  const runs = Math.max(Number(values.runs), 1);
  if (!Number.isInteger(rows) || rows < 1000) throw new Error('--rows must be an integer ≥ 1000');
  const modes = values.only ? (values.only.split(',') as Mode[]) : MODES;
  const log = (m: string) => { if (!values.json) process.stderr.write(`${m}\n`); };

  // --url: an existing scratch database (the table is rebuilt unless it already has --rows rows).
  const { startLocalPostgres } = await import('./embedded-postgres.ts');
  if (!values.url) log('starting embedded Postgres…');
  const server = values.url ? null : await startLocalPostgres();
  const bundle = values.source || !modes.includes('export') ? undefined : await bundleExporter();
  try {
    const url = values.url ?? await server!.createDatabase('bench');
    const admin = await connect(url);
    if (values.pin) await pinServer(admin, log);
    const existing = values.url
      ? (await admin.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname = '${TABLE}'`)).rows[0].n && (await admin.query(`SELECT count(*)::int AS n FROM ${TABLE}`)).rows[0].n
      : 0;
    let t = performance.now();
    if (existing !== rows) {
      log(`creating ${TABLE} with ${rows.toLocaleString('en-US')} rows…`);
      await admin.query(createTableSql(rows));
      await admin.query(`VACUUM ANALYZE ${TABLE}`);
      log(`  ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    await admin.end();
    // Warm the caches once (untimed), so every measured run reads the same way.
    t = performance.now();
    await spawnChild('limit', url, pageRows, values.pin);
    log(`warm-up drain ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const results: ChildResult[] = [];
    for (let run = 1; run <= runs; run++) {
      for (const mode of modes) {
        const r = await spawnChild(mode, url, pageRows, values.pin, rowGroupMB, bundle);
        log(`run ${run} ${mode.padEnd(6)} ${r.seconds.toFixed(2)} s  ${r.peakRssMiB.toFixed(0)} MiB`);
        results.push(r);
      }
    }
    const summaries = modes.map((m) => summarize(m, results, rows));
    const by = (m: Mode) => summaries.find((s) => s.mode === m);
    const ratioToLimit = (by('export') && by('limit')) ? by('limit')!.seconds / by('export')!.seconds : NaN;
    const ratioToDuckdb = (by('export') && by('duckdb')) ? by('duckdb')!.seconds / by('export')!.seconds : NaN;
    if (values.json) {
      const pick = (m: Mode) => { const s = by(m); return s ? { seconds: s.seconds, cpuSecondsPerMillion: s.cpuPerMillion, rowsPerSec: s.rowsPerSec, peakRssMiB: s.peakRssMiB, bytes: s.bytes, runs: s.runs } : null; };
      process.stdout.write(`${JSON.stringify({
        rows, runs,
        limitRowsPerSec: by('limit')?.rowsPerSec ?? null,
        exportRowsPerSec: by('export')?.rowsPerSec ?? null,
        duckdbRowsPerSec: by('duckdb')?.rowsPerSec ?? null,
        ratioToLimit, ratioToDuckdb,
        peakRssMiB: by('export')?.peakRssMiB ?? null,
        pinned: values.pin,
        exporter: values.source ? 'source' : 'bundle',
        cpuSecondsPerMillion: Object.fromEntries(summaries.map((s) => [s.mode, s.cpuPerMillion])),
        files: by('export')?.files ?? null,
        exportThreads: by('export')?.threads ?? null,
        exportThreadsCounted: by('export')?.threadsCounted ?? null,
        limit: pick('limit'), export: pick('export'), duckdb: pick('duckdb'),
      })}\n`);
    } else {
      printTable(rows, runs, values.pin, values.source, summaries, ratioToLimit, ratioToDuckdb);
    }
  } finally {
    await server?.stop();
    if (bundle) rmSync(bundle, { recursive: true, force: true });
  }
}

await main();
