// Post-commit validation of a run that wrote tombstones, on real parts. A tombstone's cursor is
// its run's window end U; a version the same run exported with that very cursor (read before the
// key was deleted) is a different fact about the key, not a second copy of a version: validate
// must not report it as a duplicate (a false ValidationMismatch alarm), and must still report a
// tombstone held twice.
import { copyFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { describeValidation, validateRun } from '../../lambdas/core/lake/validate.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { createDatabase, createLake, duckdb, exportDeps, faultyStore, parquetGlob, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

let db: TestDatabase;
let lake: TestLake;
let holder: pg.Client | null = null;
const config = testConfig([{ name: 'public.orders', deletes: { detect: true } }], { export: { pageRows: 100, safetyLagSeconds: 0 } });

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE orders (id int PRIMARY KEY, note text, updated_at timestamptz NOT NULL);
    INSERT INTO orders SELECT i, 'n' || i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' FROM generate_series(1, 300) i`);
  const first = exportDeps(db, lake.store, config);
  await runExport(first).finally(() => first.close());
}, 120_000);

afterAll(async () => {
  await holder?.end();
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

async function validate() {
  const query = await LakeQuery.open(config, lake.store);
  const engine = query.engine();
  try {
    return await validateRun(engine, new TableState(lake.store, 'raw', 'orders'));
  } finally {
    await engine.close();
  }
}

describe('validate: tombstones', () => {
  it('a tombstone and a live version of one key with the same cursor in one run are not duplicates; a copied tombstone is', async () => {
    // An open transaction holds the next window's end U back to its start − 1 µs: a row updated
    // to exactly U is in the window, so the run exports it, and then it is deleted before the run
    // compares keys: the tombstone gets the same cursor U.
    holder = await db.connect();
    await holder.query('BEGIN');
    const [{ u }] = (await holder.query(`SELECT (now() - interval '1 microsecond')::text AS u`)).rows as { u: string }[];
    await db.query(`UPDATE orders SET note = 'last words', updated_at = $1::timestamptz WHERE id = 7`, [u]);
    await db.query('DELETE FROM orders WHERE id = 9'); // an ordinary delete beside it

    const query = await LakeQuery.open(config, lake.store);
    const engine = query.engine();
    let deleted = false;
    // Once the run's first exported page is journalled (its rows read), key 7 goes.
    const store = faultyStore(lake.store, {
      put: async (key, body, options) => {
        const done = await lake.store.put(key, body, options);
        if (!deleted && /\/pending\/[^/]+\/p000001\.json$/.test(key)) {
          deleted = true;
          await db.query('DELETE FROM orders WHERE id = 7');
        }
        return done;
      },
    });
    const deps = { ...exportDeps(db, store, config), engine };
    try {
      const plan = await planRun(deps);
      const [task] = plan.tables;
      const exported = await exportTable(deps, task);
      expect(exported).toMatchObject({ done: true });
      await commitTable(deps, exported);
    } finally {
      await deps.close();
      await engine.close();
      await holder.query('ROLLBACK');
    }
    expect(deleted).toBe(true);

    // The lake holds both facts about key 7 at cursor U: the version and the tombstone.
    const versions = await duckdb<{ id: number; deleted: boolean; u: string }>(`SELECT id, _lake_deleted AS deleted, CAST(updated_at AS VARCHAR) AS u
      FROM read_parquet(${parquetGlob(lake, 'orders')}, union_by_name = true) WHERE id IN (7, 9) AND updated_at >= TIMESTAMPTZ '2025-01-01' ORDER BY id, _lake_deleted`);
    expect(versions.map((v) => [v.id, v.deleted])).toEqual([[7, false], [7, true], [9, true]]);
    expect(versions[0].u).toBe(versions[1].u);

    const clean = await validate();
    expect(clean.duplicates).toEqual({ versions: 0, extraRows: 0, sample: [] });
    expect(clean.mismatches).toEqual([]);
    expect(clean.ok).toBe(true);

    // A tombstone file copied under a second name: each of its tombstones is held twice.
    const state = new TableState(lake.store, 'raw', 'orders');
    const manifest = (await state.read<RunManifest>(state.manifestKey(clean.runId)))!.value;
    const page = manifest.pages.find((p) => 'tombstones' in p)!;
    const [file] = page.files;
    const lakeFile = path.join(lake.dir, file.key);
    copyFileSync(lakeFile, path.join(path.dirname(lakeFile), `copy-${path.basename(lakeFile)}`));
    expect(readdirSync(path.dirname(lakeFile)).filter((f) => f.startsWith('copy-'))).toHaveLength(1);
    const tampered = await validate();
    expect(tampered.ok).toBe(false);
    expect(tampered.duplicates).toMatchObject({ versions: 2, extraRows: 2 });
    expect(tampered.duplicates.sample).toEqual([
      { key: { id: '7' }, cursor: expect.any(String), copies: 2, tombstone: true },
      { key: { id: '9' }, cursor: expect.any(String), copies: 2, tombstone: true },
    ]);
    expect(describeValidation(tampered)).toContain(`    id=7, updated_at ${tampered.duplicates.sample[0].cursor} ×2 (tombstone)`);
  }, 120_000);
});
