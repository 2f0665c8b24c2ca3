// Backfill at scale (issue 14): a 20-million-row table exported to a directory lake from embedded
// PostgreSQL, once as one sequence of pages (1 segment) and once as a 4-segment backfill whose
// segments run at once, each in its own process (as the Distributed Map's children run in their
// own Lambdas); DuckDB then counts each lake and looks for duplicates. Prints the wall times.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { validateConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { readSegments } from '../../lambdas/core/protocol/segments.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { V8_FLAGS } from '../../lib/runtime-options.ts';
import { startLocalPostgres } from '../../bin/local/embedded-postgres.ts';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'segment-child.ts');

export interface BackfillScaleResult {
  readonly rows: number;
  readonly loadSeconds: number;
  readonly runs: { segments: number; seconds: number; rows: number; files: number; lakeRows: number; distinctIds: number }[];
}

/** Count what a lake holds of `big`, with DuckDB: rows and distinct ids (each id has one version). */
async function countLake(dir: string): Promise<{ lakeRows: number; distinctIds: number }> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const glob = path.join(dir, 'raw', 'big', '**', '*.parquet').replaceAll("'", "''");
    const reader = await connection.runAndReadAll(`SELECT count(*)::VARCHAR AS n, count(DISTINCT id)::VARCHAR AS ids FROM read_parquet('${glob}')`);
    const [row] = reader.getRowObjectsJson() as { n: string; ids: string }[];
    return { lakeRows: Number(row.n), distinctIds: Number(row.ids) };
  } finally {
    connection.closeSync();
  }
}

/** One segment in a child process; resolves with its line of output. */
function runChild(jobFile: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // With the functions' V8 flags, as a segment's Lambda runs.
    const child = spawn(process.execPath, [...V8_FLAGS, CHILD, jobFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`segment child exited with ${code}`))));
  });
}

async function exportOnce(databaseUrl: string, segments: number): Promise<BackfillScaleResult['runs'][number]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `backfill-scale-${segments}-`));
  const lakeUrl = pathToFileURL(dir).href;
  const raw = { export: { safetyLagSeconds: 0 }, tables: [{ name: 'big', backfill: { segments } }] };
  const config: LakeConfig = validateConfig(raw, 'scale config');
  const source = new PostgresSource(databaseUrl);
  const store = new DirectoryStore(lakeUrl);
  const deps = { source, store, config };
  try {
    const started = Date.now();
    let [task] = (await planRun(deps)).tables;
    if (task.backfill) {
      const items = await readSegments(new TableState(store, config.lake.prefix, task.table), task);
      const lines = await Promise.all(items.map((segment, i) => {
        const jobFile = path.join(dir, `job-${i}.json`);
        writeFileSync(jobFile, JSON.stringify({ databaseUrl, lakeUrl, config: raw, item: { task, segment } }));
        return runChild(jobFile);
      }));
      for (const line of lines) console.log(`    segment ${line}`);
    }
    while (!task.done) task = await exportTable(deps, task);
    const result = await commitTable(deps, task);
    const seconds = (Date.now() - started) / 1000;
    return { segments, seconds, rows: result.rows, files: result.files, ...(await countLake(dir)) };
  } finally {
    await source.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runBackfillScale(rows: number): Promise<BackfillScaleResult> {
  const server = await startLocalPostgres();
  try {
    const url = await server.createDatabase('backfill_scale');
    const source = new PostgresSource(url);
    const loadStarted = Date.now();
    // The key after the load (faster), then ANALYZE: the planner's estimate and histogram as a real table has them.
    await source.queryText(`CREATE TABLE big (id bigint NOT NULL, updated_at timestamptz NOT NULL, amount numeric(12,2), note text)`);
    await source.queryText(`INSERT INTO big SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', (g % 100000) / 100.0, 'note ' || g FROM generate_series(1, ${rows}) g`);
    await source.queryText(`ALTER TABLE big ADD PRIMARY KEY (id)`);
    await source.queryText(`CREATE INDEX big_updated_at ON big (updated_at, id)`);
    await source.queryText(`ANALYZE big`);
    await source.close();
    const loadSeconds = (Date.now() - loadStarted) / 1000;
    const runs = [];
    for (const segments of [1, 4]) runs.push(await exportOnce(url, segments));
    return { rows, loadSeconds, runs };
  } finally {
    await server.stop();
  }
}
