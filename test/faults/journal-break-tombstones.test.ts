// Breaker (HF): the last Export step delivered twice at once (Step Functions at-least-once) for a
// table with deletes.detect. Tombstone pages are journalled with a plain overwrite and staged at
// a key shared by both copies (stagedKey, not the copy's own folder), journal and file in two
// writes: a key deleted and another re-inserted between the two copies' detections shifts the
// second copy's pages by one key, and the interleaving below publishes a tombstone twice.
import { describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { createLake, duckdb, exportDeps, faultyStore, parquetGlob, testConfig } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const db = fileDatabase();

describe('the last Export step delivered twice, keys deleted and re-inserted between the copies\' detections', () => {
  it('publishes each tombstone once', async () => {
    const name = 'jb_tomb_twice';
    await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 1000) g`);
    const lake = createLake();
    const config = testConfig([{ name, deletes: { detect: true } }], { export: { pageRows: 100, safetyLagSeconds: 0 } });
    const first = exportDeps(db, lake.store, config);
    await runExport(first).finally(() => first.close());
    await db.query(`DELETE FROM ${name} WHERE id % 4 = 0`); // 250 keys: tombstone pages of 100, 100, 50

    // Copy 1 stops before staging its second tombstone file (its journal is written) until copy 2 is done.
    let reached!: () => void;
    const atGate = new Promise<void>((resolve) => { reached = resolve; });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => { open = resolve; });
    let tombstoneFiles = 0;
    const gated = faultyStore(lake.store, {
      put: async (key, body, options) => {
        // Tombstones are staged at the run's shared data folder; exported chunks under a writer's own.
        if (/\/pending\/[^/]+\/data\/(?![0-9a-f]{8}\/)/.test(key) && key.endsWith('.parquet') && ++tombstoneFiles === 2) {
          reached();
          await gate;
        }
        return lake.store.put(key, body, options);
      },
    });
    const query1 = await LakeQuery.open(config, lake.store);
    const query2 = await LakeQuery.open(config, lake.store);
    const copy1 = { ...exportDeps(db, gated, config), engine: query1.engine() };
    const copy2 = { ...exportDeps(db, lake.store, config), engine: query2.engine() };
    try {
      const [task] = (await planRun(copy1)).tables;
      const used = exportTable(copy1, task);
      await Promise.race([atGate, used]);
      // Between the detections: the first deleted key comes back, a later one goes.
      await db.query(`INSERT INTO ${name} VALUES (4, 'back', clock_timestamp())`);
      await db.query(`DELETE FROM ${name} WHERE id = 999`);
      const other = await exportTable(copy2, task);
      open();
      const usedTask = await used;
      console.log(`[${name}] copy 1: ${usedTask.rows} rows in ${usedTask.page} pages; copy 2: ${other.rows} rows in ${other.page} pages`);
      await commitTable(copy1, usedTask);
    } finally {
      open();
      await copy1.close();
      await copy2.close();
      await copy1.engine.close();
      await copy2.engine.close();
    }
    const tombstones = await duckdb<{ id: number; n: number }>(`SELECT id, CAST(count(*) AS INTEGER) AS n FROM read_parquet(${parquetGlob(lake, name)}, union_by_name = true) WHERE _lake_deleted GROUP BY id ORDER BY id`);
    console.log(`[${name}] ${tombstones.length} keys with tombstones, ${tombstones.reduce((n, t) => n + t.n, 0)} tombstones`);
    expect(tombstones.filter((t) => t.n !== 1), 'keys with more than one tombstone').toEqual([]);
    lake.remove();
  }, 300_000);
});
