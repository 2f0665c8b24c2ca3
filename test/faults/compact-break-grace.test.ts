// Breaker (HG; case 1 failed before a plan rolled a killed compaction forward as a compaction,
// case 2 before the grace period was measured on the store's clock): the grace period of a replaced generation. README "Partitions and compaction":
// "A query planned before the switch reads the old generation, which stays for
// compaction.graceMinutes and is deleted by a later compaction." Two ways around it:
//  1. a compaction killed just past its commit point (watermark written; schema.json, the
//     readers' pointer, not yet) and rolled forward by the next export run: does the old
//     generation stay for the grace period, or go at once under the readers that resolved it?
//  2. a later compaction whose machine clock runs ahead of the one that retired the generation:
//     is the grace period measured on the lake's time or on whichever clock compacts next?
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { validateConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const CHILD = path.resolve(import.meta.dirname, 'compact-crash-child.ts');
const execute = promisify(execFile);

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

describe('the replaced generation stays for compaction.graceMinutes', () => {
  it.each(['after-switch', 'after-schema'] as const)('a compaction killed %s and rolled forward by the next export run', async (point) => {
    const name = `grace_${point.replace('-', '_')}`;
    const lake = createLake();
    try {
      const config = configOf(name, 60);
      await createLakeTable(name, lake, config);
      const before = await liveFiles(name, lake);
      expect(before.length).toBeGreaterThan(2);
      const child = await execute(process.execPath, [CHILD, lake.url, JSON.stringify(rawConfig(name, 60)), name, point]).then(
        (r) => ({ killed: false, stdout: r.stdout }),
        (e: { signal?: string; stdout: string; stderr: string }) => ({ killed: e.signal === 'SIGKILL', stdout: `${e.stdout}${e.stderr}` }),
      );
      expect(child, `the child died at ${point}`).toEqual({ killed: true, stdout: '' });
      // A reader that resolved the location now (before the roll-forward) reads these files.
      expect(present(lake, before)).toEqual(before);
      // A reader resolves the table now (a long Athena query planned before the roll-forward).
      const reader = await LakeQuery.open(config, lake.store);
      const count = async () => reader.query(`SELECT count(*) AS n FROM ${name}`).then((r) => String(r[0].n), (e: Error) => `error: ${e.message.split('\n')[0]}`);
      const seenBefore = await count();
      // The next scheduled run (the dead compaction's lease taken over, as after it expired).
      await exportRun(name, lake, config, { takeOver: true });
      expect(await liveFiles(name, lake)).not.toEqual(before);
      const seenAfter = await count();
      reader.close();
      expect(seenAfter, 'what the reader that resolved the table before the roll-forward reads').toBe(seenBefore);
      expect(present(lake, before), 'the replaced generation, minutes after the switch, with graceMinutes 60').toEqual(before);
    } finally {
      lake.remove();
    }
  }, 120_000);

  it('measures the grace period on one clock: a compaction whose clock runs ahead does not delete a generation retired a minute ago', async () => {
    const name = 'grace_skew';
    const lake = createLake();
    try {
      const config = configOf(name, 60);
      await createLakeTable(name, lake, config);
      const before = await liveFiles(name, lake);
      expect((await compactTable({ store: lake.store, config }, name, { force: true })).status).toBe('compacted');
      // More runs, then a compaction from a machine whose clock is 2 hours ahead (a laptop
      // running `pg-lake-export compact`), one minute of real time after the switch.
      await db.query(`UPDATE ${name} SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 5 = 2`);
      await exportRun(name, lake, config);
      const ahead = () => new Date(Date.now() + 2 * 3_600_000);
      const second = await compactTable({ store: lake.store, config }, name, { force: true, now: ahead });
      expect(second.status).toBe('compacted');
      expect(present(lake, before), 'the first replaced generation, a minute after its switch, with graceMinutes 60').toEqual(before);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
