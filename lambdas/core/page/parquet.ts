// Arrow → Snappy Parquet with parquet-wasm. Writer properties are built fresh for every file:
// writeParquet consumes them, and reusing one silently writes the next file uncompressed.
import * as arrow from 'apache-arrow';
import { Compression, EnabledStatistics, Table as WasmTable, WriterPropertiesBuilder, WriterVersion, writeParquet } from 'parquet-wasm/node';
import type { LakeType } from '../source/type-map.ts';

export const CREATED_BY = 'pg-lake-export';

/**
 * Dictionary encoding pays off for repeated values and costs ~40% of encode time for unique
 * ones (DESIGN.md, measured facts); keys, timestamps, decimals and floats are nearly unique.
 * Strings and binaries are decided by the file's own values (see repetitive()).
 */
function wantsDictionary(type: LakeType): boolean | 'sample' {
  if (type.kind === 'string' || type.kind === 'binary') return 'sample';
  return type.kind === 'bool' || type.kind === 'int16' || type.kind === 'date' || type.kind === 'list';
}

const SAMPLE = 512;

/**
 * Whether a variable-width column repeats its values enough for a dictionary: distinct values
 * among up to 512 evenly spaced rows. A dictionary changes only the encoding, never the values.
 */
function repetitive(data: arrow.Data): boolean {
  const n = data.length;
  if (n <= 1) return true;
  const offsets = data.valueOffsets as Int32Array;
  const bytes = data.values as Uint8Array;
  const nulls = data.nullBitmap;
  const step = Math.max(1, Math.floor(n / SAMPLE));
  const seen = new Set<string>();
  let sampled = 0;
  for (let i = 0; i < n; i += step) {
    if (nulls && data.nullCount > 0 && (nulls[i >> 3] & (1 << (i & 7))) === 0) continue;
    const start = offsets[i];
    const end = offsets[i + 1];
    // latin1 maps bytes 1:1, so equal strings ⇔ equal bytes (no UTF-8 decoding needed).
    seen.add(end - start > 64 ? Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1') : latin1(bytes, start, end));
    sampled++;
  }
  return sampled === 0 || seen.size <= sampled / 4;
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

// The IPC stream of the file being encoded, reused file after file (see columns.ts Arena).
let ipcScratch = new Uint8Array(0);

/** Arrow IPC stream of `table` in a reused buffer, valid until the next call. */
function toIpc(table: arrow.Table): Uint8Array {
  const writer = new arrow.RecordBatchStreamWriter();
  writer.writeAll(table);
  // The writer's queued chunks (apache-arrow 21 internals); joined into warm memory rather
  // than the fresh buffer toUint8Array() would allocate. Falls back if the internals move.
  const chunks = (writer as unknown as { _sink?: { _values?: unknown } })._sink?._values;
  if (!Array.isArray(chunks) || !chunks.every((c) => c instanceof Uint8Array)) return writer.toUint8Array(true);
  let total = 0;
  for (const c of chunks as Uint8Array[]) total += c.byteLength;
  if (ipcScratch.length < total) ipcScratch = new Uint8Array(Math.ceil(total * 1.25));
  let at = 0;
  for (const c of chunks as Uint8Array[]) {
    ipcScratch.set(c, at);
    at += c.byteLength;
  }
  return ipcScratch.subarray(0, total);
}

export function encodeParquet(table: arrow.Table, types: ReadonlyMap<string, LakeType>): Uint8Array {
  let builder = new WriterPropertiesBuilder()
    .setCompression(Compression.SNAPPY)
    // Data page v1: what every Athena engine version reads.
    .setWriterVersion(WriterVersion.V1)
    .setCreatedBy(CREATED_BY)
    .setStatisticsEnabled(EnabledStatistics.Chunk)
    .setMaxRowGroupSize(Math.max(table.numRows, 1))
    .setDictionaryEnabled(false);
  for (const [name, type] of types) {
    const want = wantsDictionary(type);
    const column = want === 'sample' ? table.getChild(name)?.data[0] : undefined;
    if (want === true || (want === 'sample' && (!column || repetitive(column)))) builder = builder.setColumnDictionaryEnabled(name, true);
  }
  const properties = builder.build();
  const wasmTable = WasmTable.fromIPCStream(toIpc(table));
  return writeParquet(wasmTable, properties);
}
