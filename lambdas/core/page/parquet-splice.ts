// One growing Parquet file whose big row groups are spliced from small encodes. parquet-wasm's
// streaming writer keeps the open row group encoded in wasm memory, copies it twice when it is
// flushed (a 50 MiB row group took 182 MiB of wasm memory, which never shrinks), and is slower
// per row than one writeParquet call. Here each page's rows are encoded by one writeParquet call
// into a small file of their own, and the row group is assembled from those files' column
// chunks: a column chunk may hold any number of data pages, so the pages of many small files,
// laid end to end, are one column chunk. Only the footer is written here (Thrift, thrift.ts):
// offsets rebased, sizes and value counts summed, statistics merged by the column's sort order.
//
// A column chunk has at most one dictionary page, so pages of dictionary-encoded columns cannot
// be laid end to end: those columns (few, and small: their values repeat) go through one
// streaming writer per row group, whose file gives their whole column chunks.
import type * as arrow from 'apache-arrow';
import { ExportError } from '../errors.ts';
import type { LakeType } from '../source/type-map.ts';
import { ParquetStream, chooseEncodings, encodeTable, type ColumnEncoding, type WriterSettings } from './parquet.ts';
import { T, getBinary, getBool, getInt, getList, getStruct, i64, listValue, readStruct, structValue, writeStruct, type ThriftStruct, type ThriftValue } from './thrift.ts';

const MAGIC = 'PAR1';

/** PAR1 in memory of its own (never Node's shared pool: output buffers may move to another thread). */
function magic(): Uint8Array {
  return new Uint8Array([0x50, 0x41, 0x52, 0x31]);
}

/** Bytes laid end to end in memory of their own. */
function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// Field ids of parquet-format's parquet.thrift.
const FILE = { version: 1, schema: 2, numRows: 3, rowGroups: 4, keyValues: 5, createdBy: 6, columnOrders: 7 } as const;
const ROW_GROUP = { columns: 1, totalByteSize: 2, numRows: 3, fileOffset: 5, totalCompressedSize: 6, ordinal: 7 } as const;
const CHUNK = { fileOffset: 2, metaData: 3, offsetIndexOffset: 4, offsetIndexLength: 5, columnIndexOffset: 6, columnIndexLength: 7 } as const;
const META = {
  type: 1, encodings: 2, path: 3, numValues: 5, uncompressed: 6, compressed: 7, dataPageOffset: 9, indexPageOffset: 10,
  dictionaryPageOffset: 11, statistics: 12, encodingStats: 13, bloomOffset: 14, bloomLength: 15, sizeStatistics: 16,
} as const;
const STATS = { max: 1, min: 2, nullCount: 3, distinctCount: 4, maxValue: 5, minValue: 6, maxExact: 7, minExact: 8, nanCount: 9 } as const;
// Physical types.
const BOOLEAN = 0;
const INT32 = 1;
const INT64 = 2;
const FLOAT = 4;
const DOUBLE = 5;
const BYTE_ARRAY = 6;
const FIXED_LEN_BYTE_ARRAY = 7;

/** The footer of a complete Parquet file. */
export function readFooter(bytes: Uint8Array): ThriftStruct {
  const n = bytes.length;
  if (n < 12 || Buffer.from(bytes.buffer, bytes.byteOffset + n - 4, 4).toString('latin1') !== MAGIC) throw new ExportError('Parquet file has no PAR1 trailer');
  const length = new DataView(bytes.buffer, bytes.byteOffset + n - 8, 4).getInt32(0, true);
  return readStruct(bytes, n - 8 - length).struct;
}

/** A column chunk of a small file: its bytes and its metadata. */
interface ChunkPiece {
  readonly bytes: Uint8Array;
  readonly meta: ThriftStruct;
}

/** Column chunks of a file's row groups, by column path. */
function chunksOf(bytes: Uint8Array, footer: ThriftStruct): Map<string, ChunkPiece[]> {
  const out = new Map<string, ChunkPiece[]>();
  for (const group of getList(footer, FILE.rowGroups)) {
    if (group.type !== T.STRUCT) continue;
    for (const chunk of getList(group.fields, ROW_GROUP.columns)) {
      const meta = chunk.type === T.STRUCT ? getStruct(chunk.fields, CHUNK.metaData) : undefined;
      if (!meta) throw new ExportError('Parquet footer: a column chunk has no metadata');
      const key = pathOf(meta);
      const start = chunkStart(meta);
      const length = Number(getInt(meta, META.compressed) ?? 0n);
      const list = out.get(key) ?? [];
      list.push({ bytes: bytes.subarray(start, start + length), meta });
      out.set(key, list);
    }
  }
  return out;
}

function pathOf(meta: ThriftStruct): string {
  // NUL never occurs in a Postgres identifier, so nested and dotted names cannot collide.
  return getList(meta, META.path).map((p) => (p.type === T.BINARY ? Buffer.from(p.value.buffer, p.value.byteOffset, p.value.length).toString('utf8') : '')).join('\0');
}

/** Where a column chunk begins: its dictionary page, if any, else its first data page. */
function chunkStart(meta: ThriftStruct): number {
  const data = getInt(meta, META.dataPageOffset);
  const dictionary = getInt(meta, META.dictionaryPageOffset);
  if (data === undefined) throw new ExportError('Parquet footer: a column chunk has no data page offset');
  return Number(dictionary !== undefined && dictionary < data ? dictionary : data);
}

// ---------------------------------------------------------------- statistics

/** −1, 0, 1: how two statistics values of one column compare in its sort order. */
function compareStat(type: number, a: Uint8Array, b: Uint8Array): number {
  const view = (x: Uint8Array) => new DataView(x.buffer, x.byteOffset, x.byteLength);
  switch (type) {
    case BOOLEAN: return Math.sign(a[0] - b[0]);
    case INT32: return Math.sign(view(a).getInt32(0, true) - view(b).getInt32(0, true));
    case INT64: { const x = view(a).getBigInt64(0, true); const y = view(b).getBigInt64(0, true); return x < y ? -1 : x > y ? 1 : 0; }
    case FLOAT: return compareFloat(view(a).getFloat32(0, true), view(b).getFloat32(0, true));
    case DOUBLE: return compareFloat(view(a).getFloat64(0, true), view(b).getFloat64(0, true));
    // Decimals: big-endian two's complement of equal width.
    case FIXED_LEN_BYTE_ARRAY: {
      if (a.length && b.length && (a[0] & 0x80) !== (b[0] & 0x80)) return a[0] & 0x80 ? -1 : 1;
      return Buffer.compare(a, b);
    }
    // Strings, binary, JSON: unsigned bytes, lexicographically.
    case BYTE_ARRAY: return Buffer.compare(a, b);
    default: throw new ExportError(`Parquet footer: statistics of physical type ${type} cannot be merged`);
  }
}

/** −0 sorts before +0 (a minimum of zero is written −0, a maximum +0). */
function compareFloat(x: number, y: number): number {
  if (x !== y) return x < y ? -1 : 1;
  if (x === 0) return Object.is(x, -0) === Object.is(y, -0) ? 0 : Object.is(x, -0) ? -1 : 1;
  return 0;
}

/**
 * Statistics of the pieces laid end to end: null counts summed, the least minimum and greatest
 * maximum (with their exactness). A piece without statistics leaves the chunk without them.
 */
function mergeStatistics(type: number, pieces: readonly ThriftStruct[]): ThriftStruct | undefined {
  const all = pieces.map((m) => getStruct(m, META.statistics));
  if (all.some((s) => s === undefined)) return undefined;
  const stats = all as ThriftStruct[];
  const out: ThriftStruct = new Map();
  if (stats.every((s) => getInt(s, STATS.nullCount) !== undefined)) out.set(STATS.nullCount, i64(stats.reduce((n, s) => n + getInt(s, STATS.nullCount)!, 0n)));
  if (stats.every((s) => getInt(s, STATS.nanCount) !== undefined)) out.set(STATS.nanCount, i64(stats.reduce((n, s) => n + getInt(s, STATS.nanCount)!, 0n)));
  // A piece whose values are all NULL has no bounds; it does not widen the others'.
  const bounded = stats.filter((s) => getBinary(s, STATS.minValue) && getBinary(s, STATS.maxValue));
  if (bounded.length > 0) {
    const pick = (id: number, exactId: number, sign: 1 | -1) => {
      let best = getBinary(bounded[0], id)!;
      let exact = getBool(bounded[0], exactId) ?? false;
      for (const s of bounded.slice(1)) {
        const v = getBinary(s, id)!;
        const order = compareStat(type, v, best) * sign;
        if (order < 0) { best = v; exact = getBool(s, exactId) ?? false; }
        else if (order === 0) exact ||= getBool(s, exactId) ?? false;
      }
      return { best, exact };
    };
    const min = pick(STATS.minValue, STATS.minExact, 1);
    const max = pick(STATS.maxValue, STATS.maxExact, -1);
    out.set(STATS.minValue, { type: T.BINARY, value: min.best });
    out.set(STATS.maxValue, { type: T.BINARY, value: max.best });
    // Only with every piece's bounds: otherwise the chunk's exactness is unknown.
    if (bounded.every((s) => getBool(s, STATS.minExact) !== undefined)) out.set(STATS.minExact, { type: min.exact ? T.TRUE : T.FALSE });
    if (bounded.every((s) => getBool(s, STATS.maxExact) !== undefined)) out.set(STATS.maxExact, { type: max.exact ? T.TRUE : T.FALSE });
    // The deprecated min/max (signed-order types, for old readers), when the pieces wrote them.
    if (bounded.every((s) => getBinary(s, STATS.min) && getBinary(s, STATS.max))) {
      out.set(STATS.min, { type: T.BINARY, value: min.best });
      out.set(STATS.max, { type: T.BINARY, value: max.best });
    }
  }
  return out;
}

/** encoding_stats of pieces laid end to end: page counts summed per (page type, encoding). */
function mergeEncodingStats(pieces: readonly ThriftStruct[]): ThriftValue | undefined {
  const counts = new Map<string, number>();
  for (const m of pieces) {
    const list = m.get(META.encodingStats);
    if (!list) return undefined;
    for (const e of getList(m, META.encodingStats)) {
      if (e.type !== T.STRUCT) return undefined;
      const key = `${getInt(e.fields, 1)}:${getInt(e.fields, 2)}`;
      counts.set(key, (counts.get(key) ?? 0) + Number(getInt(e.fields, 3) ?? 0n));
    }
  }
  return listValue(T.STRUCT, [...counts].map(([key, count]) => {
    const [pageType, encoding] = key.split(':').map(Number);
    return structValue(new Map<number, ThriftValue>([[1, { type: T.I32, value: pageType }], [2, { type: T.I32, value: encoding }], [3, { type: T.I32, value: count }]]));
  }));
}

/** One column chunk of the new row group from `pieces` (in order), its bytes starting at `offset`. */
function spliceColumn(pieces: readonly ChunkPiece[], offset: number): ThriftValue {
  const first = pieces[0].meta;
  const meta: ThriftStruct = new Map(first);
  const sum = (id: number) => i64(pieces.reduce((n, p) => n + (getInt(p.meta, id) ?? 0n), 0n));
  const type = Number(getInt(first, META.type));
  const encodings = new Set<number>();
  for (const p of pieces) for (const e of getList(p.meta, META.encodings)) if (e.type === T.I32) encodings.add(e.value);
  meta.set(META.encodings, listValue(T.I32, [...encodings].sort((a, b) => a - b).map((value) => ({ type: T.I32, value }))));
  meta.set(META.numValues, sum(META.numValues));
  meta.set(META.uncompressed, sum(META.uncompressed));
  meta.set(META.compressed, sum(META.compressed));
  // The first piece's pages open the chunk: its data (and dictionary) page move with it.
  const shift = BigInt(offset - chunkStart(first));
  meta.set(META.dataPageOffset, i64(getInt(first, META.dataPageOffset)! + shift));
  const dictionary = getInt(first, META.dictionaryPageOffset);
  if (dictionary !== undefined) meta.set(META.dictionaryPageOffset, i64(dictionary + shift));
  if (pieces.length > 1) {
    if (pieces.some((p) => getInt(p.meta, META.dictionaryPageOffset) !== undefined)) throw new ExportError(`Parquet splice: column ${pathOf(first)} has dictionary pages in more than one piece`);
    const stats = mergeStatistics(type, pieces.map((p) => p.meta));
    if (stats) meta.set(META.statistics, structValue(stats));
    else meta.delete(META.statistics);
    const encodingStats = mergeEncodingStats(pieces.map((p) => p.meta));
    if (encodingStats) meta.set(META.encodingStats, encodingStats);
    else meta.delete(META.encodingStats);
    // Level histograms and byte counts per chunk: optional, and not worth merging.
    meta.delete(META.sizeStatistics);
  }
  // Page indexes and bloom filters stay in the small files; the chunk has none.
  for (const id of [META.indexPageOffset, META.bloomOffset, META.bloomLength]) meta.delete(id);
  return structValue(new Map<number, ThriftValue>([[CHUNK.fileOffset, i64(0)], [CHUNK.metaData, structValue(meta)]]));
}

// ---------------------------------------------------------------- the file

/**
 * A Parquet file grown table by table, its row groups flushed as they fill (`rowGroupRows`
 * rows, or `rowGroupBytes` of encoded column chunks, checked after each table): the same
 * interface as ParquetStream, with memory bounded by one row group's encoded bytes.
 */
export class SplicedParquetFile {
  private readonly settings: WriterSettings;
  private readonly types: ReadonlyMap<string, LakeType>;
  private readonly choices: ReadonlyMap<string, ColumnEncoding>;
  /** Columns encoded page by page (no dictionary), and the dictionary ones, in schema order. */
  private readonly pageColumns: string[];
  private readonly dictionaryColumns: string[];
  /** The footer of the first row, encoded with every column: schema, key-values, column order. */
  private readonly template: ThriftStruct;
  /** Leaf column paths in file order. */
  private readonly leaves: string[];
  /** The open row group: its page files' chunks, rows and encoded bytes, and the dictionary columns' writer. */
  private pieces: Map<string, ChunkPiece[]> = new Map();
  private openRows = 0;
  private openBytes = 0;
  private dictionary: ParquetStream | null = null;
  private readonly rowGroups: ThriftValue[] = [];
  private readonly output: Uint8Array[] = [];
  private written = 0;
  private rows = 0;

  constructor(first: arrow.Table, types: ReadonlyMap<string, LakeType>, settings: WriterSettings) {
    this.settings = settings;
    this.types = types;
    this.choices = chooseEncodings(first, types);
    const names = first.schema.fields.map((f) => f.name);
    this.pageColumns = names.filter((n) => this.choices.get(n) !== 'dictionary');
    this.dictionaryColumns = names.filter((n) => this.choices.get(n) === 'dictionary');
    this.template = readFooter(encodeTable(first.slice(0, 1), this.choices));
    const [group] = getList(this.template, FILE.rowGroups);
    this.leaves = group?.type === T.STRUCT ? getList(group.fields, ROW_GROUP.columns).map((c) => (c.type === T.STRUCT ? pathOf(getStruct(c.fields, CHUNK.metaData)!) : '')) : [];
  }

  /** Bytes of the file so far (flushed row groups), taken or not. */
  get bytes(): number {
    return this.written;
  }

  /** Append a table's rows; a row group that reaches its limit is flushed. */
  async append(table: arrow.Table): Promise<void> {
    let at = 0;
    while (at < table.numRows) {
      const n = Math.min(table.numRows - at, this.settings.rowGroupRows - this.openRows);
      const part = at === 0 && n === table.numRows ? table : table.slice(at, at + n);
      await this.appendToRowGroup(part);
      at += n;
      if (this.openRows >= this.settings.rowGroupRows || this.openBytes >= this.settings.rowGroupBytes) await this.flushRowGroup();
    }
  }

  private async appendToRowGroup(table: arrow.Table): Promise<void> {
    if (this.pageColumns.length > 0) {
      const bytes = encodeTable(table.select(this.pageColumns), this.choices);
      for (const [path, chunks] of chunksOf(bytes, readFooter(bytes))) {
        const list = this.pieces.get(path) ?? [];
        list.push(...chunks);
        this.pieces.set(path, list);
        for (const c of chunks) this.openBytes += c.bytes.length;
      }
    }
    if (this.dictionaryColumns.length > 0) {
      const columns = table.select(this.dictionaryColumns);
      // One row group per file: the writer never flushes on its own.
      this.dictionary ??= new ParquetStream(columns, this.types, { rowGroupRows: this.settings.rowGroupRows, rowGroupBytes: Number.MAX_SAFE_INTEGER }, this.choices);
      await this.dictionary.append(columns);
    }
    this.openRows += table.numRows;
  }

  private async flushRowGroup(): Promise<void> {
    if (this.openRows === 0) return;
    if (this.dictionary) {
      const parts = await this.dictionary.close();
      this.dictionary = null;
      const bytes = concat(parts);
      for (const [path, chunks] of chunksOf(bytes, readFooter(bytes))) this.pieces.set(path, chunks);
    }
    if (this.written === 0) this.emit(magic());
    const start = this.written;
    const columns: ThriftValue[] = [];
    let uncompressed = 0n;
    for (const leaf of this.leaves) {
      const pieces = this.pieces.get(leaf);
      if (!pieces?.length) throw new ExportError(`Parquet splice: column ${leaf} has no data in row group ${this.rowGroups.length}`);
      columns.push(spliceColumn(pieces, this.written));
      for (const p of pieces) {
        this.emit(p.bytes);
        uncompressed += getInt(p.meta, META.uncompressed) ?? 0n;
      }
    }
    this.rowGroups.push(structValue(new Map<number, ThriftValue>([
      [ROW_GROUP.columns, listValue(T.STRUCT, columns)],
      [ROW_GROUP.totalByteSize, i64(uncompressed)],
      [ROW_GROUP.numRows, i64(this.openRows)],
      [ROW_GROUP.fileOffset, i64(start)],
      [ROW_GROUP.totalCompressedSize, i64(this.written - start)],
      [ROW_GROUP.ordinal, { type: T.I16, value: this.rowGroups.length }],
    ])));
    this.rows += this.openRows;
    this.pieces = new Map();
    this.openRows = 0;
    this.openBytes = 0;
  }

  private emit(bytes: Uint8Array): void {
    this.output.push(bytes);
    this.written += bytes.length;
  }

  /** The file's bytes produced since the last take, in order. */
  take(): Uint8Array[] {
    return this.output.splice(0);
  }

  /** Flush the open row group and write the footer; resolves with the bytes not yet taken. */
  async close(): Promise<Uint8Array[]> {
    await this.flushRowGroup();
    const footer: ThriftStruct = new Map(this.template);
    footer.set(FILE.numRows, i64(this.rows));
    footer.set(FILE.rowGroups, listValue(T.STRUCT, this.rowGroups));
    const encoded = writeStruct(footer);
    const tail = new Uint8Array(encoded.length + 8);
    tail.set(encoded);
    new DataView(tail.buffer).setInt32(encoded.length, encoded.length, true);
    tail.set(magic(), encoded.length + 4);
    this.emit(tail);
    return this.take();
  }

  /** Drop the file (its open row group's writer included). */
  async abort(): Promise<void> {
    const open = this.dictionary;
    this.dictionary = null;
    this.pieces = new Map();
    await open?.close().catch(() => undefined);
  }
}
