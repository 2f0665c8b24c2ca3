// Column chunks of the spliced Parquet file (parquet-splice.ts): the metadata of pages from
// several small files laid end to end (sizes and counts summed, offsets rebased, statistics
// merged in the column's sort order), and the whole chunk of a column that holds one value.
import * as arrow from 'apache-arrow';
import { ExportError } from '../errors.ts';
import { ByteBuffer } from './byte-buffer.ts';
import { snappyLiteral } from './snappy.ts';
import { T, getBinary, getBool, getInt, getList, getStruct, i32, i64, listValue, structValue, writeStruct, type ThriftStruct, type ThriftValue } from './thrift.ts';

/** Bytes laid end to end in memory of their own. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// Field ids of parquet-format's parquet.thrift.
export const FILE = { version: 1, schema: 2, numRows: 3, rowGroups: 4, keyValues: 5, createdBy: 6, columnOrders: 7 } as const;
export const ROW_GROUP = { columns: 1, totalByteSize: 2, numRows: 3, fileOffset: 5, totalCompressedSize: 6, ordinal: 7 } as const;
export const CHUNK = { fileOffset: 2, metaData: 3, offsetIndexOffset: 4, offsetIndexLength: 5, columnIndexOffset: 6, columnIndexLength: 7 } as const;
export const META = {
  type: 1, encodings: 2, path: 3, codec: 4, numValues: 5, uncompressed: 6, compressed: 7, dataPageOffset: 9, indexPageOffset: 10,
  dictionaryPageOffset: 11, statistics: 12, encodingStats: 13, bloomOffset: 14, bloomLength: 15, sizeStatistics: 16,
} as const;
export const STATS = { max: 1, min: 2, nullCount: 3, distinctCount: 4, maxValue: 5, minValue: 6, maxExact: 7, minExact: 8, nanCount: 9 } as const;
// Physical types.
export const BOOLEAN = 0;
export const INT32 = 1;
export const INT64 = 2;
export const FLOAT = 4;
export const DOUBLE = 5;
export const BYTE_ARRAY = 6;
export const FIXED_LEN_BYTE_ARRAY = 7;

/** A column chunk of a small file: its bytes and its metadata. */
export interface ChunkPiece {
  readonly bytes: Uint8Array;
  readonly meta: ThriftStruct;
}

export function pathOf(meta: ThriftStruct): string {
  // NUL never occurs in a Postgres identifier, so nested and dotted names cannot collide.
  return getList(meta, META.path).map((p) => (p.type === T.BINARY ? Buffer.from(p.value.buffer, p.value.byteOffset, p.value.length).toString('utf8') : '')).join('\0');
}

/** Where a column chunk begins: its dictionary page, if any, else its first data page. */
export function chunkStart(meta: ThriftStruct): number {
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
export function spliceColumn(pieces: readonly ChunkPiece[], offset: number): ThriftValue {
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

// ---------------------------------------------------------------- constant columns

/** The longest string arrow-rs keeps whole in statistics (its default truncation length). */
export const MAX_EXACT_STATISTIC = 64;

/** Values per data page of a constant column (arrow-rs writes ~20,000 too). */
const CONSTANT_PAGE_VALUES = 20_000;

/** A column every row of the file holds the same non-NULL value of: its PLAIN bytes. */
export interface Constant {
  readonly name: string;
  /** The value as a PLAIN statistic: the bytes of a string, 8 little-endian bytes of an int64/timestamp. */
  readonly value: Uint8Array;
  readonly physical: typeof BYTE_ARRAY | typeof INT64;
}

/** The constant value of a non-NULL utf8 or int64/timestamp column, read from its first row. */
export function constantOf(table: arrow.Table, name: string): Constant | null {
  const field = table.schema.fields.find((f) => f.name === name);
  const data = table.getChild(name)?.data[0];
  if (!field || field.nullable || !data || data.length === 0 || data.nullCount > 0) return null;
  if (arrow.DataType.isUtf8(field.type)) {
    const offsets = data.valueOffsets as Int32Array;
    // Longer values get truncated statistics from arrow-rs (64 bytes): those are encoded as usual.
    if (offsets[1] - offsets[0] > MAX_EXACT_STATISTIC) return null;
    return { name, value: (data.values as Uint8Array).slice(offsets[0], offsets[1]), physical: BYTE_ARRAY };
  }
  if (arrow.DataType.isTimestamp(field.type) || (arrow.DataType.isInt(field.type) && field.type.bitWidth === 64)) {
    const values = data.values as BigInt64Array;
    return { name, value: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + 8)), physical: INT64 };
  }
  return null;
}

/** Whether every row of `table` holds the constant (its first and last rows are compared: the caller builds these columns from one value). */
export function holdsConstant(table: arrow.Table, constant: Constant): boolean {
  const data = table.getChild(constant.name)?.data;
  if (!data) return false;
  return data.every((d) => {
    if (d.length === 0) return true;
    if (d.nullCount > 0) return false;
    const at = (i: number): Uint8Array => {
      if (constant.physical === INT64) return new Uint8Array((d.values as BigInt64Array).buffer, (d.values as BigInt64Array).byteOffset + 8 * i, 8);
      const offsets = d.valueOffsets as Int32Array;
      return (d.values as Uint8Array).subarray(offsets[i], offsets[i + 1]);
    };
    return Buffer.compare(at(0), constant.value) === 0 && Buffer.compare(at(d.length - 1), constant.value) === 0;
  });
}

// Encodings and page types (parquet.thrift).
export const PLAIN = 0;
export const RLE = 3;
export const RLE_DICTIONARY = 8;
export const DATA_PAGE = 0;
export const DICTIONARY_PAGE = 2;

/** A dictionary page header's fields: `values` entries, PLAIN. */
export function dictionaryPageFields(values: number): [number, ThriftValue][] {
  return [[1, i32(DICTIONARY_PAGE)], [7, structValue(new Map<number, ThriftValue>([[1, i32(values)], [2, i32(PLAIN)], [3, { type: T.FALSE }]]))]];
}

/** A data page v1 header's fields: `rows` values in `encoding`, levels RLE. */
export function dataPageFields(rows: number, encoding: number): [number, ThriftValue][] {
  return [[1, i32(DATA_PAGE)], [5, structValue(new Map<number, ThriftValue>([[1, i32(rows)], [2, i32(encoding)], [3, i32(RLE)], [4, i32(RLE)]]))]];
}

/** Bytes of a column chunk's pages, headers included: what its metadata states. */
export interface PageSizes {
  uncompressed: number;
  compressed: number;
}

/** A page: its header (sizes of `raw` and of its compressed form) and the compressed bytes, counted in `sizes`. */
export function page(fields: [number, ThriftValue][], raw: Uint8Array, sizes: PageSizes, compress: (raw: Uint8Array) => Uint8Array): Uint8Array[] {
  const compressed = compress(raw);
  const header = writeStruct(new Map([[2, i32(raw.length)], [3, i32(compressed.length)], ...fields]));
  sizes.uncompressed += header.length + raw.length;
  sizes.compressed += header.length + compressed.length;
  return [header, compressed];
}

/**
 * The metadata of a column chunk written here (a dictionary page at `offset`, then data pages
 * from `dataPageOffset`), on `template`'s (the column's in a file of the same schema): the
 * chunk has no page index, bloom filter or size statistics.
 */
export function writtenChunk(template: ThriftStruct, chunk: {
  readonly encodings: readonly number[];
  readonly rows: number;
  readonly sizes: PageSizes;
  readonly offset: number;
  readonly dataPageOffset: number;
  readonly statistics: ThriftStruct;
  readonly encodingStats?: ThriftValue;
}): ThriftValue {
  const meta: ThriftStruct = new Map(template);
  meta.set(META.encodings, listValue(T.I32, chunk.encodings.map((value) => i32(value))));
  meta.set(META.numValues, i64(chunk.rows));
  meta.set(META.uncompressed, i64(chunk.sizes.uncompressed));
  meta.set(META.compressed, i64(chunk.sizes.compressed));
  meta.set(META.dataPageOffset, i64(chunk.dataPageOffset));
  meta.set(META.dictionaryPageOffset, i64(chunk.offset));
  meta.set(META.statistics, structValue(chunk.statistics));
  if (chunk.encodingStats) meta.set(META.encodingStats, chunk.encodingStats);
  else meta.delete(META.encodingStats);
  for (const id of [META.indexPageOffset, META.bloomOffset, META.bloomLength, META.sizeStatistics]) meta.delete(id);
  return structValue(new Map<number, ThriftValue>([[CHUNK.fileOffset, i64(0)], [CHUNK.metaData, structValue(meta)]]));
}

/**
 * The column chunk of a constant column, written here rather than encoded: a dictionary of one
 * value and data pages of RLE_DICTIONARY indices of bit width 0 (what arrow-rs writes for such a
 * column). A 36-byte run id on 1M rows cost ~0.2 CPU-s to dictionary-encode.
 */
export function constantChunk(template: ThriftStruct, constant: Constant, rows: number, offset: number): { bytes: Uint8Array[]; chunk: ThriftValue } {
  const plain = constant.physical === BYTE_ARRAY ? concat([new Uint8Array(new Uint32Array([constant.value.length]).buffer), constant.value]) : constant.value;
  const sizes = { uncompressed: 0, compressed: 0 };
  const parts = page(dictionaryPageFields(1), plain, sizes, snappyLiteral);
  const dataPageOffset = offset + sizes.compressed;
  const body = new ByteBuffer();
  for (let at = 0; at < rows; at += CONSTANT_PAGE_VALUES) {
    const n = Math.min(CONSTANT_PAGE_VALUES, rows - at);
    // Bit width 0, then one RLE run of n: the varint n << 1 (no value bytes at width 0).
    body.length = 0;
    body.byte(0);
    body.varint(n * 2);
    parts.push(...page(dataPageFields(n, RLE_DICTIONARY), body.view(), sizes, snappyLiteral));
  }
  const stats: ThriftStruct = new Map<number, ThriftValue>([
    [STATS.nullCount, i64(0)], [STATS.maxValue, { type: T.BINARY, value: constant.value }], [STATS.minValue, { type: T.BINARY, value: constant.value }],
    [STATS.maxExact, { type: T.TRUE }], [STATS.minExact, { type: T.TRUE }],
  ]);
  // Signed-order types also carry the deprecated min/max, as arrow-rs writes them.
  if (constant.physical === INT64) { stats.set(STATS.max, { type: T.BINARY, value: constant.value }); stats.set(STATS.min, { type: T.BINARY, value: constant.value }); }
  const chunk = writtenChunk(template, { encodings: [PLAIN, RLE, RLE_DICTIONARY], rows, sizes, offset, dataPageOffset, statistics: stats });
  return { bytes: [concat(parts)], chunk };
}
