// Compaction over a lake written by the real exporter from the demo's media store (smaller):
// several runs, then `pg-lake-export compact` as a user runs it. Every demo question answers the
// same before and after, every version of the history is still there once, and each partition of
// the live generation holds one file. Then a granularity change (day → month) by compaction, a
// finer one refused by path, and the old generations deleted once their grace period passed.
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoStore, DEMO_TABLES } from '../../bin/local/demo-data.ts';
import { DEMO_QUESTIONS } from '../../bin/local/demo.ts';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { parseConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import type { LakeColumn } from '../../lambdas/core/ports.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { validateRun } from '../../lambdas/core/lake/validate.ts';
import { cli } from '../support/cli.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const SIZE = { artists: 40, albums: 80, tracks: 200, customers: 60, invoices: 300, invoiceLines: 900 };

function configText(granularity: 'day' | 'month' | 'year', graceMinutes: number): string {
  return [
    'lake: { prefix: raw }',
    'export: { pageRows: 700, safetyLagSeconds: 0 }',
    // Three files in a partition with a median under 32 MB call for a compaction.
    `compaction: { minFiles: 2, graceMinutes: ${graceMinutes} }`,
    'tables:',
    ...DEMO_TABLES.map((t) => `  - name: store.${t}\n    partition: { granularity: ${granularity} }`),
  ].join('\n');
}

/** Every data file of a table, relative to the table's folder. */
function dataFiles(lake: TestLake, table: string): string[] {
  const root = path.join(lake.dir, 'raw', table);
  return (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.parquet')).sort();
}

describe('compaction of a demo-like lake', () => {
  let db: TestDatabase;
  let client: pg.Client;
  let lake: TestLake;
  let configFile: string;
  let config: LakeConfig;

  const useConfig = (granularity: 'day' | 'month' | 'year', graceMinutes = 60) => {
    const text = configText(granularity, graceMinutes);
    writeFileSync(configFile, text);
    config = parseConfig(text, configFile);
  };
  const exportOnce = async () => {
    const deps = exportDeps(db, lake.store, config);
    try {
      const outcome = await runExport(deps);
      expect(outcome.tables.filter((t) => t.status !== 'succeeded')).toEqual([]);
    } finally {
      await deps.close();
    }
  };
  /** What a user sees: the demo's answers, and a digest of every table's history and current state, through the views users get. */
  const answers = async (): Promise<Record<string, unknown>> => {
    const query = await LakeQuery.open(config, lake.store);
    try {
      const out: Record<string, unknown> = {};
      // Ties broken by the first two columns: this small store has equal totals a full one would not.
      for (const q of DEMO_QUESTIONS) out[q.title] = await query.query(q.sql.replace(/(ORDER BY [^\n]*?)( LIMIT \d+)?$/, '$1, 1, 2$2'));
      for (const table of DEMO_TABLES) {
        const state = new TableState(lake.store, 'raw', table);
        const columns = (await state.read<{ columns: LakeColumn[] }>(state.schemaKey()))!.value.columns.map((c) => `"${c.name}"`).join(', ');
        const digest = (from: string) => `SELECT count(*) AS n, count(DISTINCT CAST(row(${columns}) AS VARCHAR)) AS distinct_rows,
          md5(string_agg(CAST(row(${columns}) AS VARCHAR), '|' ORDER BY CAST(row(${columns}) AS VARCHAR))) AS digest FROM "${from}"`;
        out[`${table} history`] = await query.query(digest(table));
        out[`${table}_current`] = await query.query(digest(`${table}_current`));
      }
      return out;
    } finally {
      query.close();
    }
  };
  /** Files per partition folder of the live generation. */
  const filesPerPartition = async (table: string): Promise<Map<string, number>> => {
    const state = new TableState(lake.store, 'raw', table);
    const generation = (await state.read<{ generation?: string }>(state.schemaKey()))!.value.generation;
    const counts = new Map<string, number>();
    for (const file of dataFiles(lake, table)) {
      if (!file.startsWith(`generation=${generation}/`)) continue;
      const folder = path.dirname(file);
      counts.set(folder, (counts.get(folder) ?? 0) + 1);
    }
    return counts;
  };

  beforeAll(async () => {
    db = await createDatabase();
    client = await db.connect();
    await createDemoStore(client, SIZE);
    lake = createLake();
    configFile = path.join(lake.dir, 'lake.config.yaml');
    useConfig('day');
    await exportOnce();
    // Changes between runs land in today's partition: each run adds files there.
    for (let round = 0; round < 3; round++) {
      // The demo's own change (store.changeDemoStore), sized for this store: invoices updated, lines added.
      await client.query(`UPDATE store.invoices SET total = total + 1.00 WHERE invoice_id % 250 = ${round}`);
      await client.query(`INSERT INTO store.invoice_lines (invoice_line_id, invoice_id, track_id, unit_price, quantity)
        SELECT 10000000 + ${round * 1000} + g, 1 + (g * 97) % ${SIZE.invoices}, 1 + (g * 13) % ${SIZE.tracks}, 0.99, 1 FROM generate_series(1, 50) g`);
      await client.query(`UPDATE store.tracks SET unit_price = unit_price + 0.01 WHERE track_id % 97 = ${round}`);
      await exportOnce();
    }
  }, 240_000);

  afterAll(async () => {
    await client?.end();
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('leaves one file per partition and every answer the same', async () => {
    const before = await answers();
    const todayFiles = (table: string) => dataFiles(lake, table).filter((f) => f.includes(`year=${new Date().getUTCFullYear()}/`)).length;
    expect(todayFiles('invoices')).toBeGreaterThan(2);
    const result = await cli(['compact', '--config', configFile, '--lake', lake.url]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^invoices: compacted into generation \S+ \(day partitions\): \d+ files, .* → \d+ files, .*; because raw\/invoices\/year=\d{4}\/month=\d{2}\/day=\d{2}\/ holds \d+ files under 128000000 bytes \(more than 2\)/m);
    for (const table of ['invoices', 'invoice_lines', 'tracks']) {
      const counts = await filesPerPartition(table);
      expect(counts.size).toBeGreaterThan(0);
      expect([...counts.values()].every((n) => n === 1), `${table}: ${JSON.stringify([...counts].filter(([, n]) => n > 1))}`).toBe(true);
    }
    expect(await answers()).toEqual(before);
    // The engine's view of the compaction run: its pages hold other runs' rows, counted for none.
    const query = await LakeQuery.open(config, lake.store);
    const engine = query.engine();
    try {
      const validation = await validateRun(engine, new TableState(lake.store, 'raw', 'invoices'));
      expect(validation).toMatchObject({ ok: true, duplicates: { versions: 0 } });
    } finally {
      await engine.close();
    }
  }, 240_000);

  it('rewrites the table into month partitions when the granularity changes, and refuses a finer one by path', async () => {
    const before = await answers();
    useConfig('month');
    const result = await cli(['compact', '--config', configFile, '--lake', lake.url, '--tables', 'artists,invoices']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('(month partitions)');
    expect(result.stdout).toContain('because partition granularity changes from day to month');
    const counts = await filesPerPartition('invoices');
    expect([...counts.keys()].every((folder) => /^generation=[^/]+\/year=\d{4}\/month=\d{2}$/.test(folder))).toBe(true);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(await answers()).toEqual(before);
    // The view declares the month granularity's partition columns only, as the Glue table does.
    const query = await LakeQuery.open(config, lake.store);
    try {
      expect(await query.query('SELECT count(DISTINCT month) AS months FROM invoices WHERE year = 2024')).toEqual([{ months: '12' }]);
      await expect(query.query('SELECT day FROM invoices LIMIT 1')).rejects.toThrow(/day/);
    } finally {
      query.close();
    }
    useConfig('day');
    const finer = await cli(['compact', '--config', configFile, '--lake', lake.url, '--tables', 'invoices']);
    expect(finer.code).toBe(1);
    expect(finer.stdout).toContain('invoices: failed: ConfigError: tables[5].partition.granularity: store.invoices is partitioned by month in the lake; day is finer, and a compaction only merges partitions: set it back to month, or export the table anew under another lakeName');
    useConfig('month');
  }, 240_000);

  it('deletes an old generation only once its grace period has passed', async () => {
    const before = await answers();
    const state = new TableState(lake.store, 'raw', 'invoices');
    const live = async () => (await state.read<{ generation?: string }>(state.schemaKey()))!.value.generation;
    const forced = await cli(['compact', '--config', configFile, '--lake', lake.url, '--tables', 'invoices', '--force']);
    expect(forced.stdout).toMatch(/^invoices: compacted into generation \S+ \(month partitions\): .*; because forced$/m);
    const generation = await live();
    // Within the grace period (60 minutes) the generation a query may still be reading stays.
    const again = await cli(['compact', '--config', configFile, '--lake', lake.url, '--tables', 'invoices']);
    expect(again.stdout).toBe('invoices: nothing to do: no partition holds more than 2 files with a median under 32000000 bytes\n');
    const old = dataFiles(lake, 'invoices').filter((f) => !f.startsWith(`generation=${generation}/`));
    expect(old.length).toBeGreaterThan(0);
    expect((await lake.store.list(state.retiredPrefix())).length).toBeGreaterThan(0);
    expect(await answers()).toEqual(before);
    useConfig('month', 0);
    const after = await cli(['compact', '--config', configFile, '--lake', lake.url, '--tables', 'invoices']);
    expect(after.code).toBe(0);
    expect(after.stdout).toBe(`invoices: nothing to do: no partition holds more than 2 files with a median under 32000000 bytes (deleted ${old.length} files of an earlier generation)\n`);
    expect(dataFiles(lake, 'invoices').every((f) => f.startsWith(`generation=${generation}/`))).toBe(true);
    expect(await lake.store.list(state.retiredPrefix())).toEqual([]);
    expect(await answers()).toEqual(before);
  }, 240_000);
});
