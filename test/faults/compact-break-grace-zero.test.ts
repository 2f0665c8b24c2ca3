// Breaker (HG): graceMinutes 0 — each compaction deletes the generation the previous one
// replaced (never the one it replaces itself, which readers may still be reading), and the lake
// read through the views stays exact across three compactions and a run between.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { validateConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkReaders } from './compact-break-checks.ts';

const db = fileDatabase();

const rawConfig = (name: string, graceMinutes: number) => ({
  export: { pageRows: 100, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes }, tables: [{ name }],
});
const configOf = (name: string, graceMinutes: number): LakeConfig => validateConfig(rawConfig(name, graceMinutes), 'test config');

async function exportRun(name: string, lake: TestLake, config: LakeConfig, request: object = {}): Promise<void> {
  const deps = exportDeps(db, lake.store, config);
  try {
    const outcome = await runExport(deps, request);
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

/** 600 rows over 3 days, then two runs of updates: several files in today's partition. */
async function createLakeTable(name: string, lake: TestLake, config: LakeConfig): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 200) * interval '1 day' FROM generate_series(1, 600) g`);
  await exportRun(name, lake, config);
  for (const slice of [0, 1]) {
    await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 5 = ${slice}`);
    await exportRun(name, lake, config);
  }
}

/** The data files the committed manifests list now (the generation readers resolve). */
async function liveFiles(name: string, lake: TestLake): Promise<string[]> {
  const state = new TableState(lake.store, 'raw', name);
  return (await state.manifests()).flatMap((m: RunManifest) => m.pages.flatMap((p) => p.files.map((f) => f.key))).sort();
}

const present = (lake: TestLake, keys: readonly string[]) => keys.filter((k) => existsSync(path.join(lake.dir, k)));

describe('the replaced generation with compaction.graceMinutes 0', () => {
  it('graceMinutes 0: the next compaction deletes the old generation, and the lake stays exact', async () => {
    const name = 'grace_zero';
    const lake = createLake();
    try {
      const config = configOf(name, 0);
      await createLakeTable(name, lake, config);
      const before = await liveFiles(name, lake);
      expect((await compactTable({ store: lake.store, config }, name, { force: true })).status).toBe('compacted');
      const middle = await liveFiles(name, lake);
      await db.query(`UPDATE ${name} SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 5 = 2`);
      await exportRun(name, lake, config);
      const second = await compactTable({ store: lake.store, config }, name, { force: true });
      expect([second.status, second.retiredFilesDeleted]).toEqual(['compacted', before.length]);
      expect(present(lake, before)).toEqual([]);
      expect(present(lake, middle), 'the generation retired by this very compaction stays until the next').toEqual(middle);
      await compactTable({ store: lake.store, config }, name, { force: true });
      await checkReaders(db, lake, config, name, 'graceMinutes 0 after three compactions');
    } finally {
      lake.remove();
    }
  }, 120_000);
});
