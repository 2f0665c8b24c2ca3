// Row-level surgery on lake files for re-runs: a window or full re-run re-exports the versions
// Postgres holds, and every other version of the pages it replaces is history that must stay.
// A version is identified by its (cursor, pk…) values, read here from the Parquet files
// themselves, so the old file and the re-run's new one are compared in one representation
// whatever text forms or type widenings (int → bigint) lie between them.
//
// Loaded only by re-runs (apache-arrow and parquet-wasm cost ~40 MB of RSS on a thread).
import * as arrow from 'apache-arrow';
import { readParquet, readSchema } from 'parquet-wasm/node';
import { encodeParquet } from './parquet.ts';

function readTable(parquet: Uint8Array): arrow.Table {
  return arrow.tableFromIPC(readParquet(parquet).intoIPCStream());
}

/** One value of a key column as text: the raw fixed-width slot, or the value for variable width. */
function slotText(data: arrow.Data, row: number): string {
  if (data.nullCount > 0 && !data.getValid(row)) return '\u0000null';
  const values = data.values as ArrayLike<number | bigint> | undefined;
  const stride = (data as unknown as { stride?: number }).stride ?? 1;
  switch (data.typeId) {
    case arrow.Type.Utf8:
    case arrow.Type.LargeUtf8:
    case arrow.Type.Bool:
      return String(arrow.makeVector(data).get(row));
    case arrow.Type.Binary:
    case arrow.Type.LargeBinary:
      return Buffer.from(arrow.makeVector(data).get(row) as Uint8Array).toString('hex');
    default: {
      if (!values) return String(arrow.makeVector(data).get(row));
      // Integers of any width, dates, timestamps (µs as BigInt64), decimals (four 32-bit words).
      const parts: string[] = [];
      for (let j = 0; j < stride; j++) parts.push(String(values[(data.offset + row) * stride + j]));
      return parts.join(',');
    }
  }
}

/** Key text of every row of a record batch, over `columns` (absent columns read as NULL). */
function batchKeys(batch: arrow.RecordBatch, columns: readonly string[]): string[] {
  const datas = columns.map((c) => batch.getChild(c)?.data[0] ?? null);
  const keys: string[] = new Array(batch.numRows);
  for (let r = 0; r < batch.numRows; r++) {
    keys[r] = datas.map((d) => (d === null ? '\u0000absent' : slotText(d, r))).join('\u0001');
  }
  return keys;
}

/**
 * The (cursor, pk…) key of every row of a lake file. Only the key columns the file has are read:
 * a run's file may hold a whole chunk (up to lake.targetFileMB), and its other columns are not
 * needed here.
 */
export function versionKeys(parquet: Uint8Array, keyColumns: readonly string[]): string[] {
  const present = new Set(arrow.tableFromIPC(readSchema(parquet).intoIPCStream()).schema.fields.map((f) => f.name));
  const columns = keyColumns.filter((c) => present.has(c));
  const table = columns.length ? arrow.tableFromIPC(readParquet(parquet, { columns }).intoIPCStream()) : readTable(parquet);
  return table.batches.flatMap((b) => batchKeys(b, keyColumns));
}

/**
 * The rows of `parquet` whose version is not in `replaced`, as a new file with the same columns
 * and values (null when none is left), and how many rows it keeps.
 */
export function keepHistory(parquet: Uint8Array, keyColumns: readonly string[], replaced: ReadonlySet<string>): { rows: number; parquet: Uint8Array | null } {
  const table = readTable(parquet);
  const kept: arrow.RecordBatch[] = [];
  let rows = 0;
  for (const batch of table.batches) {
    const keys = batchKeys(batch, keyColumns);
    // Kept rows as runs of consecutive rows: slices share the batch's memory.
    let start = -1;
    for (let r = 0; r <= keys.length; r++) {
      const keep = r < keys.length && !replaced.has(keys[r]);
      if (keep && start < 0) start = r;
      if (!keep && start >= 0) {
        kept.push(batch.slice(start, r));
        rows += r - start;
        start = -1;
      }
    }
  }
  if (rows === 0) return { rows: 0, parquet: null };
  if (rows === table.numRows) return { rows, parquet };
  return { rows, parquet: encodeParquet(new arrow.Table(table.schema, kept), new Map()) };
}
