// Merging lake files (protocol/compact-merge.ts): every row and value kept, export metadata
// included; files whose columns differ (a column added between runs) are not forced together.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeParquet } from '../../lambdas/core/page/parquet.ts';
import { mergeLakeFiles } from '../../lambdas/core/protocol/compact-merge.ts';
import type { LakeType } from '../../lambdas/core/source/type-map.ts';
import { duckdb } from '../support/local-stack.ts';

function lakeFile(columns: Record<string, arrow.Vector>): Uint8Array {
  return encodeParquet(new arrow.Table(columns), new Map());
}
const rowsOf = (parquet: Uint8Array) => arrow.tableFromIPC(readParquet(parquet).intoIPCStream()).toArray().map((r) => JSON.stringify(r.toJSON(), (_, v) => (typeof v === 'bigint' ? v.toString() : v)));

const dir = mkdtempSync(join(tmpdir(), 'compact-merge-'));
/** The exporter's defaults: row groups of 1M rows or 64 MiB. */
const SETTINGS = { rowGroupRows: 1_000_000, rowGroupBytes: 64 * 1048576 };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('merging lake files', () => {
  it('concatenates files of one schema into one, every row as it was', async () => {
    const a = lakeFile({ id: arrow.vectorFromArray([1n, 2n], new arrow.Int64()), note: arrow.vectorFromArray(['x', null]), _lake_run_id: arrow.vectorFromArray(['r1', 'r1']) });
    const b = lakeFile({ id: arrow.vectorFromArray([3n], new arrow.Int64()), note: arrow.vectorFromArray(['z']), _lake_run_id: arrow.vectorFromArray(['r2']) });
    const merged = await mergeLakeFiles([a, b], SETTINGS);
    expect(merged).toHaveLength(1);
    expect(merged[0].rows).toBe(3);
    expect(rowsOf(merged[0].parquet)).toEqual([...rowsOf(a), ...rowsOf(b)]);
  });

  it('keeps a file with other columns apart, and a lone file byte for byte', async () => {
    const before = lakeFile({ id: arrow.vectorFromArray([1n], new arrow.Int64()) });
    const after = lakeFile({ id: arrow.vectorFromArray([2n], new arrow.Int64()), added: arrow.vectorFromArray(['new']) });
    const again = lakeFile({ id: arrow.vectorFromArray([3n], new arrow.Int64()) });
    const merged = await mergeLakeFiles([before, after, again], SETTINGS);
    expect(merged.map((m) => m.rows)).toEqual([2, 1]);
    expect(merged[1].parquet).toBe(after);
    expect(rowsOf(merged[0].parquet)).toEqual([...rowsOf(before), ...rowsOf(again)]);
  });

  it('keeps the exporter\'s encodings: delta for integers and timestamps, dictionaries for repeated values (an independent reader sees them)', async () => {
    // As the exporter writes them: encodings chosen from the columns' lake types.
    const types = new Map<string, LakeType>([
      ['id', { kind: 'int64' }], ['qty', { kind: 'int32' }], ['updated_at', { kind: 'timestamp', utc: true }], ['status', { kind: 'string' }], ['amount', { kind: 'float64' }],
    ]);
    const exported = (from: number) => {
      const ids = Array.from({ length: 5000 }, (_, i) => BigInt(from + i));
      return encodeParquet(new arrow.Table({
        id: arrow.vectorFromArray(ids, new arrow.Int64()),
        qty: arrow.vectorFromArray(ids.map((i) => Number(i % 7n)), new arrow.Int32()),
        // µs from BigInt64Array (apache-arrow's timestamp builders take milliseconds).
        updated_at: arrow.makeVector(arrow.makeData({ type: new arrow.TimestampMicrosecond('UTC'), length: ids.length, data: BigInt64Array.from(ids, (i) => 1_709_251_200_000_000n + i * 1_000_000n) })),
        status: arrow.vectorFromArray(ids.map((i) => ['new', 'paid', 'shipped'][Number(i % 3n)]), new arrow.Utf8()),
        amount: arrow.vectorFromArray(ids.map((i) => Number(i) / 4), new arrow.Float64()),
      }), types);
    };
    const files = [exported(0), exported(5000)];
    const [merged] = await mergeLakeFiles(files, SETTINGS);
    const path = join(dir, 'merged.parquet');
    writeFileSync(path, merged.parquet);
    const encodings = await duckdb<{ column: string; encodings: string }>(`SELECT path_in_schema AS column, encodings FROM parquet_metadata('${path}') ORDER BY column_id`);
    expect(Object.fromEntries(encodings.map((e) => [e.column, e.encodings]))).toEqual({
      id: expect.stringContaining('DELTA_BINARY_PACKED'),
      qty: expect.stringContaining('DELTA_BINARY_PACKED'),
      updated_at: expect.stringContaining('DELTA_BINARY_PACKED'),
      status: expect.stringMatching(/DICTIONARY/),
      amount: expect.not.stringMatching(/DELTA|DICTIONARY/),
    });
    // No bigger than the files it replaces.
    expect(merged.parquet.length).toBeLessThanOrEqual(files[0].length + files[1].length);
  });

  it('writes row groups as the exporter does (lake.rowGroupRows), every row once and in order', async () => {
    const file = (from: number, n: number) => lakeFile({ id: arrow.vectorFromArray(Array.from({ length: n }, (_, i) => BigInt(from + i)), new arrow.Int64()), note: arrow.vectorFromArray(Array.from({ length: n }, (_, i) => `n${from + i}`), new arrow.Utf8()) });
    const files = [file(0, 2500), file(2500, 2500), file(5000, 2500), file(7500, 2500)];
    const [merged] = await mergeLakeFiles(files, { rowGroupRows: 3000, rowGroupBytes: 64 * 1048576 });
    expect(merged.rows).toBe(10_000);
    const path = join(dir, 'row-groups.parquet');
    writeFileSync(path, merged.parquet);
    const groups = await duckdb<{ rows: string }>(`SELECT DISTINCT row_group_id, row_group_num_rows::TEXT AS rows FROM parquet_metadata('${path}') ORDER BY row_group_id`);
    expect(groups.map((g) => Number(g.rows))).toEqual([3000, 3000, 3000, 1000]);
    const [check] = await duckdb<{ n: string; ordered: boolean }>(`SELECT count(*)::TEXT AS n, bool_and(id = rn - 1) AS ordered FROM (SELECT id, row_number() OVER () AS rn FROM read_parquet('${path}'))`);
    expect(check).toEqual({ n: '10000', ordered: true });
  });
});
