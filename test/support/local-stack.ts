// Real parts for integration tests: an embedded PostgreSQL server, a lake directory, and (when
// asked) an S3 API server (fauxqs) on loopback with the production S3 client pointed at it.
import { DuckDBInstance } from '@duckdb/node-api';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { startLocalPostgres, type LocalPostgres } from '../../bin/local/embedded-postgres.ts';
import { validateConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import type { ExportDeps } from '../../lambdas/core/protocol/run-model.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';

export interface TestDatabase {
  readonly url: string;
  /** Run SQL; values come back as Postgres text (no JS parsing). */
  query(sql: string, params?: unknown[]): Promise<Record<string, string | null>[]>;
  /** A second session, for transactions held open across an export. */
  connect(): Promise<pg.Client>;
  close(): Promise<void>;
}

let server: LocalPostgres | null = null;
let databases = 0;

export async function startPostgres(): Promise<LocalPostgres> {
  // Prepared transactions enabled: the protocol tests hold a two-phase commit across runs.
  server ??= await startLocalPostgres({ settings: ['max_prepared_transactions=10'] });
  return server;
}

export async function stopPostgres(): Promise<void> {
  await server?.stop();
  server = null;
}

const RAW = { getTypeParser: () => (value: string) => value };

export async function createDatabase(): Promise<TestDatabase> {
  const pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`t${process.pid}_${++databases}`);
  const client = new pg.Client(url);
  await client.connect();
  await client.query("SET TimeZone = 'UTC'");
  return {
    url,
    async query(sql, params = []) {
      return (await client.query({ text: sql, values: params, types: RAW })).rows;
    },
    async connect() {
      const other = new pg.Client(url);
      await other.connect();
      return other;
    },
    async close() {
      await client.end();
    },
  };
}

export interface TestLake {
  readonly dir: string;
  readonly url: string;
  readonly store: DirectoryStore;
  remove(): void;
}

export function createLake(): TestLake {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lake-'));
  const url = pathToFileURL(dir).href;
  return { dir, url, store: new DirectoryStore(url), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `inner` with some operations replaced, to inject a fault or observe calls; the rest pass through. */
export function faultyStore(inner: ObjectStore, overrides: Partial<Omit<ObjectStore, 'url'>>): ObjectStore {
  return {
    url: inner.url,
    put: (key, body, options) => inner.put(key, body, options),
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
    delete: (keys) => inner.delete(keys),
    deleteIf: (key, etag) => inner.deleteIf(key, etag),
    move: (from, to) => inner.move(from, to),
    ...overrides,
  };
}

export function testConfig(tables: unknown[], extra: Record<string, unknown> = {}): LakeConfig {
  return validateConfig({ export: { pageRows: 1000, safetyLagSeconds: 0, ...(extra.export as object) }, tables, ...extra }, 'test config');
}

export function exportDeps(db: TestDatabase, store: ObjectStore, config: LakeConfig): ExportDeps & { close(): Promise<void> } {
  const source = new PostgresSource(db.url);
  return { source, store, config, close: () => source.close() };
}

/** Read Parquet files with DuckDB, the independent reader. */
export async function duckdb<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone = 'UTC'");
    const reader = await connection.runAndReadAll(sql);
    return reader.getRowObjectsJson() as T[];
  } finally {
    connection.closeSync();
  }
}

export function parquetGlob(lake: TestLake, table: string, prefix = 'raw'): string {
  return `'${path.join(lake.dir, prefix, table, 'year=*', 'month=*', 'day=*', '*.parquet').replaceAll("'", "''")}'`;
}
