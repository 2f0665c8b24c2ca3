// Arrow → Snappy Parquet with parquet-wasm: a whole file at once (encodeParquet, encodeTable: for
// history a re-run carries, and each page's piece of a spliced file, parquet-splice.ts) or a
// file that grows batch by batch (ParquetStream: a spliced file's list dictionary columns). Writer
// properties are built fresh for every file: the writer consumes them, and reusing one silently
// writes the next file uncompressed.
import * as arrow from 'apache-arrow';
import {
  Compression, EnabledStatistics, Encoding, Table as WasmTable, WriterPropertiesBuilder, WriterVersion, transformParquetStream, writeParquet,
  type RecordBatch as WasmRecordBatch, type WriterProperties,
} from 'parquet-wasm/node';
import type { LakeType } from '../source/type-map.ts';

export const CREATED_BY = 'pg-lake-export';

/**
 * Dictionary encoding pays off for repeated values and costs ~40% of encode time for unique
 * ones (DESIGN.md, measured facts); keys, timestamps, decimals and floats are nearly unique.
 * Strings and binaries are decided by the file's own values (see repetitive()).
 */
function wantsDictionary(type: LakeType): boolean | 'sample' {
  if (type.kind === 'string' || type.kind === 'binary') return 'sample';
  // Not bool: arrow-rs writes no dictionary for booleans (they are bit-packed PLAIN either way).
  return type.kind === 'int16' || type.kind === 'date' || type.kind === 'list';
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

/** How a streamed file is written: its row group limits. */
export interface WriterSettings {
  /** A row group is flushed at this many rows… */
  readonly rowGroupRows: number;
  /** …or once its encoded column chunks reach this many bytes, whichever comes first. */
  readonly rowGroupBytes: number;
}

/** Lake types whose Parquet physical type is INT32 or INT64, the ones DELTA_BINARY_PACKED takes. */
function integerBacked(type: LakeType): boolean {
  return type.kind === 'int32' || type.kind === 'int64' || type.kind === 'date' || type.kind === 'timestamp';
}

/** How one column is encoded: a dictionary, DELTA_BINARY_PACKED, or PLAIN. */
export type ColumnEncoding = 'dictionary' | 'delta' | 'plain';

/**
 * Dictionary where the values repeat (decided per column: wantsDictionary, repetitive); every
 * other integer-backed column (int32/int64, timestamp: keys, cursors, timestamps, counters) is
 * written DELTA_BINARY_PACKED instead of PLAIN. Measured on the bench table (README
 * "Performance"): delta on the key and cursor alone cuts the file 6.5 %, on every such column
 * 22 %, and encodes no slower.
 */
export function chooseEncodings(table: arrow.Table, types: ReadonlyMap<string, LakeType>): Map<string, ColumnEncoding> {
  const choices = new Map<string, ColumnEncoding>();
  for (const [name, type] of types) {
    const want = wantsDictionary(type);
    const column = want === 'sample' ? table.getChild(name)?.data[0] : undefined;
    if (want === true || (want === 'sample' && (!column || repetitive(column)))) choices.set(name, 'dictionary');
    else choices.set(name, integerBacked(type) ? 'delta' : 'plain');
  }
  return choices;
}

/** Writer properties for `choices`. Chunk statistics stay on: Athena prunes row groups with them. */
function writerProperties(choices: ReadonlyMap<string, ColumnEncoding>, rowGroupRows: number, rowGroupBytes?: number): WriterProperties {
  let builder = new WriterPropertiesBuilder()
    .setCompression(Compression.SNAPPY)
    // Data page v1: what every Athena engine version reads.
    .setWriterVersion(WriterVersion.V1)
    .setCreatedBy(CREATED_BY)
    .setStatisticsEnabled(EnabledStatistics.Chunk)
    .setMaxRowGroupSize(Math.max(rowGroupRows, 1))
    .setDictionaryEnabled(false);
  if (rowGroupBytes !== undefined) builder = builder.setMaxRowGroupBytes(rowGroupBytes);
  for (const [name, choice] of choices) {
    if (choice === 'dictionary') builder = builder.setColumnDictionaryEnabled(name, true);
    else if (choice === 'delta') builder = builder.setColumnEncoding(name, Encoding.DELTA_BINARY_PACKED);
  }
  return builder.build();
}

export function encodeParquet(table: arrow.Table, types: ReadonlyMap<string, LakeType>): Uint8Array {
  return encodeTable(table, chooseEncodings(table, types));
}

/** `table` as one Parquet file of one row group, each column encoded as `choices` says. */
export function encodeTable(table: arrow.Table, choices: ReadonlyMap<string, ColumnEncoding>): Uint8Array {
  const properties = writerProperties(choices, table.numRows);
  const wasmTable = WasmTable.fromIPCStream(toIpc(table));
  return writeParquet(wasmTable, properties);
}

/**
 * One Parquet file written as its rows arrive: each append goes into parquet-wasm's streaming
 * writer, which keeps the row group being filled (encoded) in wasm memory and hands a row
 * group's bytes out when it is flushed; `take()` collects them. Its writer properties
 * (dictionary choices) are decided by the first table appended, unless given.
 */
export class ParquetStream {
  private readonly batches: WasmRecordBatch[] = [];
  private readonly output: Uint8Array[] = [];
  private outputBytes = 0;
  private closed = false;
  private failure: unknown = null;
  /** Resolved when the writer asks for its next batch, i.e. has written the ones before. */
  private wantsMore: (() => void) | null = null;
  /** Resolved when a batch is appended or the file is closed (the writer is waiting for one). */
  private hasMore: (() => void) | null = null;
  private readonly done: Promise<void>;

  /** `choices`: each column's encoding (default: chosen from `first`'s values). */
  constructor(first: arrow.Table, types: ReadonlyMap<string, LakeType>, settings: WriterSettings, choices?: ReadonlyMap<string, ColumnEncoding>) {
    const properties = writerProperties(choices ?? chooseEncodings(first, types), settings.rowGroupRows, settings.rowGroupBytes);
    const input = new ReadableStream<WasmRecordBatch>({
      pull: async (controller) => {
        this.wantsMore?.();
        this.wantsMore = null;
        while (this.batches.length === 0 && !this.closed) await new Promise<void>((resolve) => { this.hasMore = resolve; });
        const next = this.batches.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    }, { highWaterMark: 0 });
    // The writer reads the first batch (for its schema) before it returns the output stream.
    this.done = transformParquetStream(input, properties).then(async (stream: ReadableStream<Uint8Array>) => {
      const reader = stream.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        this.output.push(value);
        this.outputBytes += value.byteLength;
      }
    }).catch((error: unknown) => {
      this.failure = error;
      this.wantsMore?.();
    });
  }

  /** Bytes the file has so far (flushed row groups), taken or not. */
  get bytes(): number {
    return this.outputBytes;
  }

  /** Append a table; resolves once the writer has taken it in (its row group may still be open). */
  async append(table: arrow.Table): Promise<void> {
    this.check();
    const wasm = WasmTable.fromIPCStream(toIpc(table));
    const batches = wasm.recordBatches();
    // The batches hold their own references to the data: the table's are released now.
    wasm.free();
    const taken = new Promise<void>((resolve) => { this.wantsMore = resolve; });
    this.batches.push(...batches);
    this.hasMore?.();
    this.hasMore = null;
    await taken;
    // Taking in the first batches only starts the writer; later ones are written when it asks again.
    this.check();
  }

  /** The file's bytes produced since the last take, in order. */
  take(): Uint8Array[] {
    return this.output.splice(0);
  }

  /** Write the footer; resolves with the bytes not yet taken (the last row group and the footer). */
  async close(): Promise<Uint8Array[]> {
    this.closed = true;
    this.hasMore?.();
    this.hasMore = null;
    await this.done;
    this.check();
    return this.take();
  }

  private check(): void {
    if (this.failure) throw this.failure instanceof Error ? this.failure : new Error(String(this.failure));
  }
}
