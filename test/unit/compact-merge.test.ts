// Merging lake files (protocol/compact-merge.ts): every row and value kept, export metadata
// included; files whose columns differ (a column added between runs) are not forced together.
import * as arrow from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import { describe, expect, it } from 'vitest';
import { encodeParquet } from '../../lambdas/core/page/parquet.ts';
import { mergeLakeFiles } from '../../lambdas/core/protocol/compact-merge.ts';

function lakeFile(columns: Record<string, arrow.Vector>): Uint8Array {
  return encodeParquet(new arrow.Table(columns), new Map());
}
const rowsOf = (parquet: Uint8Array) => arrow.tableFromIPC(readParquet(parquet).intoIPCStream()).toArray().map((r) => JSON.stringify(r.toJSON(), (_, v) => (typeof v === 'bigint' ? v.toString() : v)));

describe('merging lake files', () => {
  it('concatenates files of one schema into one, every row as it was', () => {
    const a = lakeFile({ id: arrow.vectorFromArray([1n, 2n], new arrow.Int64()), note: arrow.vectorFromArray(['x', null]), _lake_run_id: arrow.vectorFromArray(['r1', 'r1']) });
    const b = lakeFile({ id: arrow.vectorFromArray([3n], new arrow.Int64()), note: arrow.vectorFromArray(['z']), _lake_run_id: arrow.vectorFromArray(['r2']) });
    const merged = mergeLakeFiles([a, b]);
    expect(merged).toHaveLength(1);
    expect(merged[0].rows).toBe(3);
    expect(rowsOf(merged[0].parquet)).toEqual([...rowsOf(a), ...rowsOf(b)]);
  });

  it('keeps a file with other columns apart, and a lone file byte for byte', () => {
    const before = lakeFile({ id: arrow.vectorFromArray([1n], new arrow.Int64()) });
    const after = lakeFile({ id: arrow.vectorFromArray([2n], new arrow.Int64()), added: arrow.vectorFromArray(['new']) });
    const again = lakeFile({ id: arrow.vectorFromArray([3n], new arrow.Int64()) });
    const merged = mergeLakeFiles([before, after, again]);
    expect(merged.map((m) => m.rows)).toEqual([2, 1]);
    expect(merged[1].parquet).toBe(after);
    expect(rowsOf(merged[0].parquet)).toEqual([...rowsOf(before), ...rowsOf(again)]);
  });
});
