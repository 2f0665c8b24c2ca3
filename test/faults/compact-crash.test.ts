// A compaction killed at each of its steps (compact-crash-child.ts), then recovered either by the
// next compaction or by the next export run (which knows nothing of compactions: the run
// protocol's recovery rolls a compaction back or forward). Either way the lake converges: read
// through the views users get, the history holds the same versions, none twice, none lost;
// `<table>_current` equals Postgres; the visible files are exactly the committed manifests'
// files; nothing pending, no lease left.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { validateConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { locationOf, tableDataPrefix, type DataLocation } from '../../lambdas/core/lake/keys.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { COMPACTION_CRASH_POINTS } from './compact-crash-child.ts';

const CHILD = path.resolve(import.meta.dirname, 'compact-crash-child.ts');
const execute = promisify(execFile);

const db = fileDatabase();

const configOf = (name: string): LakeConfig => validateConfig({
  export: { pageRows: 200, safetyLagSeconds: 0 },
  compaction: { minFiles: 2, graceMinutes: 60 },
  tables: [{ name }],
}, 'test config');

/** 3,000 rows over 5 days (200-row pages: several files a day), then a second run's changes. */
async function createLakeTable(name: string, lake: TestLake): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 600) * interval '1 day' + (g % 7) * interval '1 second'
    FROM generate_series(1, 3000) g`);
  await exportRun(name, lake);
  await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 10 = 0`);
  await exportRun(name, lake);
}

async function exportRun(name: string, lake: TestLake, request: object = {}): Promise<void> {
  const deps = exportDeps(db, lake.store, configOf(name));
  try {
    const outcome = await runExport(deps, request);
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

/** What users see: a digest of the history and of the current state, and the versions held twice. */
async function seen(name: string, lake: TestLake): Promise<Record<string, unknown>> {
  const query = await LakeQuery.open(configOf(name), lake.store);
  try {
    const [history] = await query.query(`SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions,
      md5(string_agg(id || '|' || payload || '|' || epoch_us(updated_at), ',' ORDER BY id, updated_at)) AS digest FROM ${name}`);
    const [current] = await query.query(`SELECT md5(string_agg(id || '|' || payload || '|' || epoch_us(updated_at), ',' ORDER BY id)) AS digest FROM ${name}_current`);
    return { history, current: current.digest };
  } finally {
    query.close();
  }
}

async function postgresCurrent(name: string): Promise<string | null> {
  const [row] = await db.query(`SELECT md5(string_agg(id || '|' || payload || '|' || (extract(epoch FROM updated_at) * 1000000)::bigint, ',' ORDER BY id)) AS digest FROM ${name}`);
  return row.digest;
}

/** Visible files (the live generation's folder) are exactly the manifests' files; nothing pending, no lease. */
async function expectTidy(name: string, lake: TestLake, label: string): Promise<void> {
  const state = new TableState(lake.store, 'raw', name);
  const location: DataLocation = locationOf((await state.read<DataLocation>(state.schemaKey()))!.value);
  const live = tableDataPrefix('raw', name, location);
  const root = path.join(lake.dir, live);
  const visible = (readdirSync(root, { recursive: true }) as string[])
    .map((f) => `${live}${f}`)
    // The table folder without a generation holds the generation folders too: those are not listed by its template.
    .filter((f) => f.endsWith('.parquet') && (location.generation !== undefined || !f.slice(live.length).startsWith('generation=')))
    .sort();
  const manifests = await Promise.all((await lake.store.list(state.manifestPrefix())).map(async (k) => (await state.read<RunManifest>(k))!.value));
  const listed = manifests.flatMap((m) => m.pages.flatMap((p) => p.files.map((f) => f.key))).sort();
  expect(visible, `${label}: visible files = the committed manifests' files`).toEqual(listed);
  expect(await lake.store.list(state.pendingPrefix()), `${label}: pending state left behind`).toEqual([]);
  expect(await lake.store.get(state.leaseKey()), `${label}: lease left behind`).toBeNull();
}

describe('a compaction killed at every step converges', () => {
  it.each(COMPACTION_CRASH_POINTS.flatMap((point) => [[point, 'compact'], [point, 'export']] as const))('killed %s, recovered by the next %s', async (point, recovery) => {
    const name = `compact_${point.replaceAll('-', '_')}_${recovery}`;
    const lake = createLake();
    try {
      await createLakeTable(name, lake);
      const before = await seen(name, lake);
      expect(before.current).toBe(await postgresCurrent(name));
      const child = await execute(process.execPath, [CHILD, lake.url, JSON.stringify({ export: { pageRows: 200, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 60 }, tables: [{ name }] }), name, point]).then(
        (r) => ({ killed: false, stdout: r.stdout }),
        (e: { signal?: string; stdout: string; stderr: string }) => ({ killed: e.signal === 'SIGKILL', stdout: `${e.stdout}${e.stderr}` }),
      );
      expect(child, `the child died at ${point}`).toEqual({ killed: true, stdout: '' });
      // Between the kill and the recovery, readers see the state before or after the switch, whole.
      expect(await seen(name, lake)).toEqual(before);
      if (recovery === 'compact') {
        const result = await compactTable({ store: lake.store, config: configOf(name) }, name, { takeOver: true });
        expect(result.status, JSON.stringify(result)).toMatch(/compacted|skipped/);
      } else {
        await exportRun(name, lake, { takeOver: true });
      }
      expect(await seen(name, lake), `${point}: after recovery by ${recovery}`).toEqual(before);
      await expectTidy(name, lake, `${point}, recovered by ${recovery}`);
      // And the table goes on: new versions, a compaction, an export, the same exact lake.
      await db.query(`UPDATE ${name} SET payload = 'v3-' || id, updated_at = clock_timestamp() WHERE id % 7 = 0`);
      await exportRun(name, lake);
      await compactTable({ store: lake.store, config: configOf(name) }, name, { force: true });
      const after = await seen(name, lake);
      expect(after.current).toBe(await postgresCurrent(name));
      expect((after.history as { n: string; versions: string }).n).toBe((after.history as { versions: string }).versions);
      expect(Number((after.history as { n: string }).n)).toBe(Number((before.history as { n: string }).n) + Math.floor(3000 / 7));
      await expectTidy(name, lake, `${point}: after the next export and compaction`);
    } finally {
      lake.remove();
    }
  }, 120_000);
});
