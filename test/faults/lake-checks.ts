// The three checks every fault scenario ends with (issue: exactly once under faults), done by
// an independent reader (DuckDB over the visible Parquet files) against Postgres:
//  1. no (pk, cursor) appears twice;
//  2. every row version in the database with cursor ≤ the watermark is in the lake;
//  3. the latest version per key in the lake equals the database row.
// Plus: every visible file belongs to a committed manifest, and nothing is left pending.
import { expect } from 'vitest';
import { TableState, type RunManifest, type Watermark } from '../../lambdas/core/protocol/table-state.ts';
import path from 'node:path';
import { duckdb, type TestDatabase, type TestLake } from '../support/local-stack.ts';

export interface CheckReport {
  readonly lakeRows: number;
  readonly versionsChecked: number;
  readonly keysChecked: number;
  readonly files: number;
  readonly watermark: string;
}

/** `table` has columns id (int), updated_at (timestamptz), payload (text). */
export async function checkLake(db: TestDatabase, lake: TestLake, table: string, label: string): Promise<CheckReport> {
  const state = new TableState(lake.store, 'raw', table);
  const watermark = (await state.watermark()) as Watermark;
  expect(watermark, `${label}: table has a watermark`).not.toBeNull();
  const files = (await lake.store.list(`raw/${table}/`)).filter((k) => k.endsWith('.parquet'));
  const lakeRows = files.length
    ? await duckdb<{ id: string; us: string; payload: string | null }>(
      // exactly the visible files (a snapshot table's live in its run's folder)
      `SELECT CAST(id AS VARCHAR) AS id, CAST(epoch_us(updated_at) AS VARCHAR) AS us, payload FROM read_parquet([${files.map((f) => `'${path.join(lake.dir, f).replaceAll("'", "''")}'`).join(', ')}])`,
    )
    : [];
  // 1. no version twice
  const seen = new Map<string, number>();
  for (const r of lakeRows) seen.set(`${r.id}@${r.us}`, (seen.get(`${r.id}@${r.us}`) ?? 0) + 1);
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
  expect(duplicates, `${label}: duplicate (pk, cursor) in the lake`).toEqual([]);
  // 2. every database version up to the watermark is present
  const dbRows = await db.query(
    `SELECT id::text AS id, (extract(epoch FROM updated_at) * 1000000)::bigint::text AS us, payload FROM ${table} WHERE updated_at <= $1::timestamptz`,
    [watermark.cursor],
  );
  const missing = dbRows.filter((r) => !seen.has(`${r.id}@${r.us}`)).map((r) => `${r.id}@${r.us}`);
  expect(missing.slice(0, 10), `${label}: database versions missing from the lake (${missing.length})`).toEqual([]);
  // 3. latest version per key equals the database row
  const latest = new Map<string, { us: string; payload: string | null }>();
  for (const r of lakeRows) {
    const current = latest.get(r.id);
    if (!current || BigInt(r.us) > BigInt(current.us)) latest.set(r.id, { us: r.us, payload: r.payload });
  }
  const wrong = dbRows.filter((r) => latest.get(r.id!)?.us !== r.us || latest.get(r.id!)?.payload !== r.payload).map((r) => r.id);
  expect(wrong.slice(0, 10), `${label}: keys whose latest lake version differs from the database`).toEqual([]);
  // no orphans: visible files are exactly the committed manifests' files; nothing pending or leased
  const manifests = await Promise.all((await lake.store.list(state.manifestPrefix())).map(async (k) => (await state.read<RunManifest>(k))!.value));
  const committed = new Set(manifests.flatMap((m) => m.pages.flatMap((p) => p.files.map((f) => f.key))));
  expect(files.filter((f) => !committed.has(f)), `${label}: visible files no committed manifest lists`).toEqual([]);
  expect([...committed].filter((f) => !files.includes(f)), `${label}: manifest files missing`).toEqual([]);
  expect(await lake.store.list(state.pendingPrefix()), `${label}: pending state left behind`).toEqual([]);
  expect(await lake.store.get(state.leaseKey()), `${label}: lease left behind`).toBeNull();
  const report = { lakeRows: lakeRows.length, versionsChecked: dbRows.length, keysChecked: latest.size, files: files.length, watermark: watermark.cursor };
  console.log(`[${label}] checked: ${report.lakeRows} lake rows, no duplicate (pk, cursor); ${report.versionsChecked} database versions ≤ watermark ${report.watermark} all present; latest version of ${report.keysChecked} keys equals the database; ${report.files} visible files all committed; nothing pending`);
  return report;
}
