// Breaker (HG): compaction of tables with hostile names — spaces, a double quote, letters with
// accents and with no ASCII spelling — and of tables whose lake folders share a prefix (`a` and
// `a_b`; `a` and `a_b` are also `raw/_state/a/` and `raw/_state/a_b/`). Compacting one table
// must touch only its own files and state; each table's readers see every version once and
// `<table>_current` equals Postgres, before and after.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { checkReaders } from './compact-break-checks.ts';

let db: TestDatabase;
let lake: TestLake;
beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
}, 120_000);
afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

/** Postgres name (as SQL), config name, lake name. */
const TABLES = [
  { sql: '"Order Items"', name: 'public."Order Items"', lake: 'order_items' },
  { sql: '"we""ird name"', name: 'public."we""ird name"', lake: 'we_ird_name' },
  { sql: '"Ärger"', name: 'public."Ärger"', lake: 'arger' },
  { sql: '"订单"', name: 'public."订单"', lake: 'u8ba2_u5355' },
  { sql: 'a', name: 'public.a', lake: 'a' },
  { sql: 'a_b', name: 'public.a_b', lake: 'a_b' },
] as const;

const config: LakeConfig = testConfig(TABLES.map((t) => ({ name: t.name })), {
  export: { pageRows: 50, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 },
});

async function exportRun(): Promise<void> {
  const deps = exportDeps(db, lake.store, config);
  try {
    const outcome = await runExport(deps, {});
    expect(outcome.tables.map((t) => [t.table, t.error ?? t.status])).toEqual(TABLES.map((t) => [t.lake, 'succeeded']));
  } finally {
    await deps.close();
  }
}

/** Every file under a lake folder, relative to the lake. */
function filesUnder(folder: string): string[] {
  return (readdirSync(path.join(lake.dir, folder), { recursive: true }) as string[]).map((f) => `${folder}/${f}`).sort();
}

describe('compaction of tables with hostile names and shared folder prefixes', () => {
  it('compacts each table alone and keeps every reader exact', async () => {
    for (const [i, t] of TABLES.entries()) {
      await db.query(`CREATE TABLE ${t.sql} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${t.sql} SELECT g, 't${i}-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 50) * interval '1 day' FROM generate_series(1, 150) g`);
    }
    await exportRun();
    for (const slice of [0, 1, 2]) {
      for (const t of TABLES) await db.query(`UPDATE ${t.sql} SET payload = 'u${slice}-' || id, updated_at = clock_timestamp() WHERE id % 4 = ${slice}`);
      await exportRun();
    }
    const seen = new Map<string, Set<string>>(TABLES.map((t) => [t.lake, new Set<string>()]));
    for (const t of TABLES) await checkReaders(db, lake, config, t.sql, `${t.lake} before`, { lakeName: t.lake, seenVersions: seen.get(t.lake) });

    // `a` alone: `a_b`'s data and state untouched.
    const aB = [...filesUnder('raw/a_b'), ...filesUnder('raw/_state/a_b')];
    const a = await compactTable({ store: lake.store, config }, 'a');
    expect(a.status, a.reason).toBe('compacted');
    expect([...filesUnder('raw/a_b'), ...filesUnder('raw/_state/a_b')]).toEqual(aB);
    expect(a.filesBefore).toBe(3 + 3); // its own: 3 day files of the first run, 3 update files (one a run, today)
    // Then every other table (by its lake name, as `compact --tables` takes it).
    for (const t of TABLES.filter((x) => x.lake !== 'a')) {
      const result = await compactTable({ store: lake.store, config }, t.lake);
      expect([t.lake, result.status], result.reason).toEqual([t.lake, 'compacted']);
    }
    for (const t of TABLES) await checkReaders(db, lake, config, t.sql, `${t.lake} after compaction`, { lakeName: t.lake, seenVersions: seen.get(t.lake) });
    for (const t of TABLES) await db.query(`UPDATE ${t.sql} SET payload = 'w-' || id, updated_at = clock_timestamp() WHERE id % 5 = 0`);
    await exportRun();
    for (const t of TABLES) await checkReaders(db, lake, config, t.sql, `${t.lake} after the next run`, { lakeName: t.lake, seenVersions: seen.get(t.lake) });
  }, 180_000);
});
