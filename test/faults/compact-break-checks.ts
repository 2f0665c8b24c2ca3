// Breaker (HG) checks through what readers get: the local views over the table's live
// generation (LakeQuery, the Athena stand-in), not every Parquet file under the table's folder
// (a replaced generation stays on disk for graceMinutes; checkLake would count it twice).
// Tables have columns id (int key), payload (text), updated_at (timestamptz cursor), and
// optionally a boolean soft-delete column.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { locationOf, tableDataPrefix, type DataLocation } from '../../lambdas/core/lake/keys.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import type { TestDatabase, TestLake } from '../support/local-stack.ts';

export interface ReaderView {
  /** Versions in the history, tombstones excluded. */
  readonly versions: number;
  /** `<table>_current`, as `id|payload|µs` sorted by id. */
  readonly current: string[];
}

/** What a reader sees now: the history's live versions (duplicates named) and the current view. */
export async function readerView(config: LakeConfig, lake: TestLake, table: string, lakeName = table): Promise<ReaderView & { duplicates: string[]; history: Set<string> }> {
  const query = await LakeQuery.open(config, lake.store);
  try {
    const names = new Set((await query.query(`SELECT column_name AS c FROM (DESCRIBE "${lakeName}")`)).map((r) => String(r.c)));
    const live = names.has('_lake_deleted') ? 'WHERE _lake_deleted IS DISTINCT FROM true' : '';
    const rows = await query.query(`SELECT CAST(id AS VARCHAR) || '@' || CAST(epoch_us(updated_at) AS VARCHAR) AS v, count(*) AS n FROM "${lakeName}" ${live} GROUP BY ALL`);
    const duplicates = rows.filter((r) => Number(r.n) > 1).map((r) => `${String(r.v)} ×${String(r.n)}`);
    const current = (await query.query(`SELECT CAST(id AS VARCHAR) || '|' || coalesce(payload, '∅') || '|' || CAST(epoch_us(updated_at) AS VARCHAR) AS r FROM "${lakeName}_current" ORDER BY id`)).map((r) => String(r.r));
    return { versions: rows.reduce((n, r) => n + Number(r.n), 0), current, duplicates, history: new Set(rows.map((r) => String(r.v))) };
  } finally {
    query.close();
  }
}

/** Postgres's rows as `<table>_current` should show them (soft-deleted ones left out). */
export async function postgresCurrent(db: TestDatabase, table: string, softDelete?: string): Promise<string[]> {
  const rows = await db.query(`SELECT id::text || '|' || coalesce(payload, '∅') || '|' || (extract(epoch FROM updated_at) * 1000000)::bigint::text AS r FROM ${table}
    ${softDelete ? `WHERE ${softDelete} IS DISTINCT FROM true` : ''} ORDER BY id`);
  return rows.map((r) => r.r!);
}

/**
 * Readers see every Postgres version up to the watermark once, none twice; `<table>_current`
 * equals Postgres; the live folder holds exactly the committed manifests' files; nothing pending,
 * no lease. Postgres versions past the watermark are the next run's. `seenVersions`: versions seen by earlier checks (a run reads only the committed version
 * of a row, so versions overwritten between runs are history the lake keeps and Postgres lost).
 */
export async function checkReaders(db: TestDatabase, lake: TestLake, config: LakeConfig, table: string, label: string, options: { softDelete?: string; lakeName?: string; seenVersions?: Set<string>; postgresAhead?: boolean; noOrphans?: boolean } = {}): Promise<ReaderView> {
  const lakeName = options.lakeName ?? table;
  const view = await readerView(config, lake, table, lakeName);
  expect(view.duplicates.slice(0, 10), `${label}: versions a reader sees twice (${view.duplicates.length})`).toEqual([]);
  const state = new TableState(lake.store, config.lake.prefix, lakeName);
  // The committed watermark (a fence-only watermark.json is no commit: its cursor would check nothing).
  const watermark = await state.watermark();
  expect(watermark, `${label}: a committed watermark`).not.toBeNull();
  if (!watermark) return { versions: view.versions, current: view.current };
  const inDb = await db.query(`SELECT id::text || '@' || (extract(epoch FROM updated_at) * 1000000)::bigint::text AS v FROM ${table} WHERE updated_at <= $1::timestamptz`, [watermark.cursor]);
  const missing = inDb.map((r) => r.v!).filter((v) => !view.history.has(v));
  expect(missing.slice(0, 10), `${label}: Postgres versions a reader misses (${missing.length})`).toEqual([]);
  const lost = [...(options.seenVersions ?? [])].filter((v) => !view.history.has(v));
  expect(lost.slice(0, 10), `${label}: versions readers saw before and miss now (${lost.length})`).toEqual([]);
  for (const v of view.history) options.seenVersions?.add(v);
  // postgresAhead: rows changed since the last commit (a run that failed): only the history is checked.
  if (!options.postgresAhead) expect(view.current, `${label}: ${lakeName}_current vs Postgres`).toEqual(await postgresCurrent(db, table, options.softDelete));
  // The live folder holds exactly the committed manifests' files.
  const location: DataLocation = locationOf((await state.read<DataLocation>(state.schemaKey()))!.value);
  const live = tableDataPrefix(config.lake.prefix, lakeName, location);
  const visible = (readdirSync(path.join(lake.dir, live), { recursive: true }) as string[])
    .filter((f) => f.endsWith('.parquet') && (location.generation !== undefined || !f.startsWith('generation=')))
    .map((f) => `${live}${f}`).sort();
  const manifests = await Promise.all((await lake.store.list(state.manifestPrefix())).map(async (k) => (await state.read<RunManifest>(k))!.value));
  const listed = manifests.flatMap((m) => m.pages.flatMap((p) => p.files.map((f) => f.key))).sort();
  expect(visible, `${label}: visible files = the committed manifests' files`).toEqual(listed);
  expect(await lake.store.list(state.pendingPrefix()), `${label}: pending state left behind`).toEqual([]);
  expect(await lake.store.get(state.leaseKey()), `${label}: lease left behind`).toBeNull();
  if (options.noOrphans) {
    // Every data file under the table's folder is live or listed for deletion (retired/): nothing is left for ever.
    const retired = (await Promise.all((await lake.store.list(state.retiredPrefix())).map(async (k) => (await state.read<{ files: string[] }>(k))!.value.files))).flat();
    const known = new Set([...listed, ...retired]);
    const root = `${config.lake.prefix}/${lakeName}`;
    const all = (readdirSync(path.join(lake.dir, root), { recursive: true }) as string[]).filter((f) => f.endsWith('.parquet')).map((f) => `${root}/${f}`);
    expect(all.filter((f) => !known.has(f)).sort().slice(0, 10), `${label}: data files nothing lists (never deleted)`).toEqual([]);
  }
  return { versions: view.versions, current: view.current };
}
