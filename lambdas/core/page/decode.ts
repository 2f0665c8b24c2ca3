// Column decoders: binary COPY fields go straight into typed arrays laid out as Arrow buffers,
// one tight loop per column. No per-row JS objects, no Date, no BigInt on the hot path (64-bit
// values move as two words). Arrays are decoded by the same loops: a list column is its offsets
// plus the slots of its elements, which are then decoded as a column of their own.
import * as arrow from 'apache-arrow';
import type { LakeType } from '../source/type-map.ts';
import { decodeNumeric, numericToText } from './decimal.ts';
import { ValueError } from '../errors.ts';
import { fieldText } from './values.ts';

// Postgres epochs: 2000-01-01. Arrow/Parquet: 1970-01-01.
const PG_EPOCH_DAYS = 10957;
const PG_EPOCH_MICROS_HI = 220417; // 946684800000000 = 220417 · 2^32 + 993517568
const PG_EPOCH_MICROS_LO = 993517568;
const TWO_32 = 4294967296;

/** The Arrow type of a lake type: the one place that builds them (schema and data agree by construction). */
export function arrowTypeOf(type: LakeType): arrow.DataType {
  switch (type.kind) {
    case 'int16': return new arrow.Int16();
    case 'int32': return new arrow.Int32();
    case 'int64': return new arrow.Int64();
    case 'float32': return new arrow.Float32();
    case 'float64': return new arrow.Float64();
    case 'bool': return new arrow.Bool();
    case 'date': return new arrow.DateDay();
    case 'timestamp': return new arrow.TimestampMicrosecond(type.utc ? 'UTC' : null);
    case 'decimal': return new arrow.Decimal(type.scale, type.precision, 128);
    case 'string': return new arrow.Utf8();
    case 'binary': return new arrow.Binary();
    case 'list': return new arrow.List(new arrow.Field('element', arrowTypeOf(type.element), true));
  }
}

// ---------------------------------------------------------------- column-at-a-time decoding

/**
 * Scratch memory for one file's column buffers, reused file after file. Fresh multi-MB typed
 * arrays cost more in page faults than decoding into them (measured: ~4 ms per fresh MiB vs
 * ~0.1 ms warm on the benchmark machines), so column buffers come from here. What an arena
 * hands out is valid until its next reset(): callers must be done with the Arrow data by then.
 */
export class Arena {
  private chunk: ArrayBuffer;
  private used = 0;
  private spilled = 0;
  constructor(initialBytes = 1 << 20) {
    this.chunk = new ArrayBuffer(initialBytes);
  }
  /** Forget everything handed out; grow to fit what the last round needed in one chunk. */
  reset(): void {
    if (this.spilled > 0) this.chunk = new ArrayBuffer(Math.ceil((this.used + this.spilled) * 1.25));
    this.used = 0;
    this.spilled = 0;
  }
  /** `n` zeroed bytes, 64-byte aligned. */
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const size = (n + 63) & ~63;
    if (this.used + size > this.chunk.byteLength) {
      this.spilled += size;
      return new Uint8Array(n);
    }
    const out = new Uint8Array(this.chunk, this.used, n);
    this.used += size;
    out.fill(0);
    return out;
  }
  int32(n: number): Int32Array<ArrayBuffer> {
    const b = this.bytes(n * 4);
    return new Int32Array(b.buffer, b.byteOffset, n);
  }
}

/** An arena that never reuses: every buffer fresh (for callers that keep the data). */
const FRESH = { bytes: (n: number) => new Uint8Array(n), int32: (n: number) => new Int32Array(n) };
type Allocator = Pick<Arena, 'bytes' | 'int32'>;

/** Where a page's values are: per row and field (row · stride + field) offset and length. */
export interface FieldSlots {
  readonly buf: Buffer;
  readonly fieldPos: Int32Array;
  readonly fieldLen: Int32Array;
  readonly stride: number;
}

/** Where a column's value came from, for error messages: `table.column` and the row's key. */
export interface ColumnContext {
  readonly where: string;
  rowKey(row: number): string;
}

/** Validity bits for `n` values; kept only when some value is NULL. */
function validityOf(len: Int32Array, rows: Int32Array, n: number, stride: number, field: number, mem: Allocator): { bitmap: Uint8Array | undefined; nullCount: number } {
  let nulls = 0;
  for (let i = 0; i < n; i++) if (len[rows[i] * stride + field] < 0) nulls++;
  if (nulls === 0) return { bitmap: undefined, nullCount: 0 };
  const bitmap = mem.bytes((n + 7) >> 3);
  for (let i = 0; i < n; i++) if (len[rows[i] * stride + field] >= 0) bitmap[i >> 3] |= 1 << (i & 7);
  return { bitmap, nullCount: nulls };
}

export function readI32(buf: Buffer, p: number): number {
  return (buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3];
}

/** 8-byte big-endian values → little-endian word pairs (int8, float8 bit patterns). */
function swap64(s: FieldSlots, field: number, rows: Int32Array, n: number, out: Int32Array): void {
  const { buf, fieldPos, fieldLen, stride } = s;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] < 0) continue;
    const p = fieldPos[k];
    out[2 * i] = readI32(buf, p + 4);
    out[2 * i + 1] = readI32(buf, p);
  }
}

function swap32(s: FieldSlots, field: number, rows: Int32Array, n: number, out: Int32Array): void {
  const { buf, fieldPos, fieldLen, stride } = s;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] >= 0) out[i] = readI32(buf, fieldPos[k]);
  }
}

/** A value that cannot be stored exactly: the error names table.column, the value and the row's key. */
export function valueError(ctx: ColumnContext, row: number, value: string, why: string, column?: string): ValueError {
  return new ValueError(`${ctx.where}: value ${value} ${why} (${column ? `${column}; ` : ''}row ${ctx.rowKey(row)})`);
}

/**
 * A timestamp as Postgres sends it (µs since 2000: big-endian words `hi`, `lo` >>> 0) into
 * out[o], out[o + 1] as µs since 1970, little-endian words; ±infinity become DuckDB's own
 * ±infinity sentinels (±(2^63 − 1)), so nothing is clamped. False when it does not fit.
 */
export function timestampWords(hi: number, lo: number, out: Uint32Array, o: number): boolean {
  if (hi === 0x7fffffff && lo === 0xffffffff) { out[o] = 0xffffffff; out[o + 1] = 0x7fffffff; return true; }
  if (hi === -0x80000000 && lo === 0) { out[o] = 1; out[o + 1] = 0x80000000; return true; }
  // µs since 2000 → µs since 1970: a 64-bit add on two words.
  let sumLo = lo + PG_EPOCH_MICROS_LO;
  let carry = 0;
  if (sumLo >= TWO_32) { sumLo -= TWO_32; carry = 1; }
  const sumHi = hi + PG_EPOCH_MICROS_HI + carry;
  // 0x7fffffff:ffffffff is +infinity's sentinel, so the last storable µs is one before it.
  if (sumHi > 0x7fffffff || (sumHi === 0x7fffffff && sumLo === 0xffffffff)) return false;
  out[o] = sumLo;
  out[o + 1] = sumHi >>> 0;
  return true;
}

export const TIMESTAMP_RANGE = "does not fit Parquet's µs since 1970 (timestamps end at 294247-01-10 04:00:54.775806)";

function decodeTimestamps(type: LakeType, s: FieldSlots, field: number, rows: Int32Array, n: number, out: Uint32Array, ctx: ColumnContext): void {
  const { buf, fieldPos, fieldLen, stride } = s;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] < 0) continue;
    const p = fieldPos[k];
    if (!timestampWords(readI32(buf, p), readI32(buf, p + 4) >>> 0, out, 2 * i)) throw valueError(ctx, rows[i], fieldText(type, buf, p, 8), TIMESTAMP_RANGE);
  }
}

/** date: days since 2000 → days since 1970; ±infinity → DuckDB's ±(2^31 − 1). */
export function dateDays(v: number): number {
  if (v === 0x7fffffff) return 0x7fffffff;
  if (v === -0x80000000) return -0x7fffffff;
  // Postgres's last date (5874897-12-31) is day 2,145,042,906 since 1970: no overflow.
  return v + PG_EPOCH_DAYS;
}

function decodeDates(s: FieldSlots, field: number, rows: Int32Array, n: number, out: Int32Array): void {
  const { buf, fieldPos, fieldLen, stride } = s;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] >= 0) out[i] = dateDays(readI32(buf, fieldPos[k]));
  }
}

function decodeDecimals(precision: number, scale: number, s: FieldSlots, field: number, rows: Int32Array, n: number, out: Uint32Array, ctx: ColumnContext): void {
  const { buf, fieldPos, fieldLen, stride } = s;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] < 0) continue;
    const problem = decodeNumeric(buf, fieldPos[k], precision, scale, out, i);
    if (problem !== null) throw valueError(ctx, rows[i], numericToText(buf, fieldPos[k]), problem, `column is decimal(${precision},${scale})`);
  }
}

/** utf8/binary: the exact byte total is known from the lengths, so one allocation, one copy each. */
function decodeBytes(s: FieldSlots, field: number, rows: Int32Array, n: number, mem: Allocator): { offsets: Int32Array; data: Uint8Array } {
  const { buf, fieldPos, fieldLen, stride } = s;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const len = fieldLen[rows[i] * stride + field];
    if (len > 0) total += len;
  }
  const offsets = mem.int32(n + 1);
  const data = mem.bytes(total);
  let used = 0;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    const len = fieldLen[k];
    if (len > 0) {
      const p = fieldPos[k];
      if (len <= 16) for (let b = 0; b < len; b++) data[used + b] = buf[p + b];
      else buf.copy(data, used, p, p + len);
      used += len;
    }
    offsets[i + 1] = used;
  }
  return { offsets, data };
}

/**
 * One-dimensional arrays → List<element>: the list's offsets, and the position and length of
 * every element, so that the elements are decoded by decodeColumn like any column (stride 1).
 * Wire format: int32 ndim, int32 hasNull, uint32 element oid, per dimension (int32 size, int32
 * lower bound), then per element int32 length (−1 = NULL) and the bytes.
 */
function decodeList(type: LakeType & { kind: 'list' }, s: FieldSlots, field: number, rows: Int32Array, n: number, ctx: ColumnContext, mem: Allocator, base: ListBase): arrow.Data {
  const { buf, fieldPos, fieldLen, stride } = s;
  const offsets = mem.int32(n + 1);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] >= 0) {
      const p = fieldPos[k];
      const ndim = readI32(buf, p);
      if (ndim > 1) throw valueError(ctx, rows[i], arrayShape(buf, p, ndim), 'cannot be stored as array<…>; only one-dimensional arrays are supported');
      if (ndim === 1) {
        const count = readI32(buf, p + 12);
        // '[0:2]={…}' keeps its bounds in Postgres; a list has none, so it would read back shifted.
        const lower = readI32(buf, p + 16);
        if (lower !== 1) throw valueError(ctx, rows[i], `[${lower}:${lower + count - 1}]={…}`, `starts at index ${lower}; array<…> starts at 1, so it cannot be stored exactly`);
        total += count;
      }
    }
    offsets[i + 1] = total;
  }
  const elementPos = mem.int32(total);
  const elementLen = mem.int32(total);
  const elementRows = mem.int32(total);
  // The row each element belongs to, for error messages.
  const owner = mem.int32(total);
  let e = 0;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] < 0) continue;
    let p = fieldPos[k];
    const count = readI32(buf, p) === 1 ? readI32(buf, p + 12) : 0;
    p += 20;
    for (let c = 0; c < count; c++, e++) {
      const len = readI32(buf, p);
      p += 4;
      elementPos[e] = p;
      elementLen[e] = len;
      elementRows[e] = e;
      owner[e] = rows[i];
      if (len > 0) p += len;
    }
  }
  const elements = { buf, fieldPos: elementPos, fieldLen: elementLen, stride: 1 };
  const child = decodeColumn(type.element, elements, 0, elementRows, total, { where: `${ctx.where}[]`, rowKey: (element) => ctx.rowKey(owner[element]) }, mem);
  return arrow.makeData({ type: arrowTypeOf(type) as arrow.List, ...base, valueOffsets: offsets, child });
}

/** `a 2×3 array`: how a multi-dimensional array is named in its error (its elements can be many). */
function arrayShape(buf: Buffer, pos: number, ndim: number): string {
  const sizes: number[] = [];
  for (let d = 0; d < ndim; d++) sizes.push(readI32(buf, pos + 12 + 8 * d));
  return `a ${sizes.join('×')} array`;
}

interface ListBase { length: number; nullCount: number; nullBitmap: Uint8Array | undefined }

/** Decode one column of the rows `rows[0..n)` of a framed page into Arrow data. */
export function decodeColumn(type: LakeType, s: FieldSlots, field: number, rows: Int32Array, n: number, ctx: ColumnContext, mem: Allocator = FRESH): arrow.Data {
  const { bitmap, nullCount } = validityOf(s.fieldLen, rows, n, s.stride, field, mem);
  const base = { length: n, nullCount, nullBitmap: bitmap };
  switch (type.kind) {
    case 'int64': {
      const out = mem.int32(n * 2);
      swap64(s, field, rows, n, out);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Int64, data: new BigInt64Array(out.buffer, out.byteOffset, n), ...base });
    }
    case 'float64': {
      const out = mem.int32(n * 2);
      swap64(s, field, rows, n, out);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Float64, data: new Float64Array(out.buffer, out.byteOffset, n), ...base });
    }
    case 'int32': {
      const out = mem.int32(n);
      swap32(s, field, rows, n, out);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Int32, data: out, ...base });
    }
    case 'float32': {
      const out = mem.int32(n);
      swap32(s, field, rows, n, out);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Float32, data: new Float32Array(out.buffer, out.byteOffset, n), ...base });
    }
    case 'int16': {
      const raw = mem.bytes(n * 2);
      const out = new Int16Array(raw.buffer, raw.byteOffset, n);
      const { buf, fieldPos, fieldLen, stride } = s;
      for (let i = 0; i < n; i++) {
        const k = rows[i] * stride + field;
        if (fieldLen[k] >= 0) out[i] = (buf[fieldPos[k]] << 8) | buf[fieldPos[k] + 1];
      }
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Int16, data: out, ...base });
    }
    case 'bool': {
      const out = mem.bytes((n + 7) >> 3);
      const { buf, fieldPos, fieldLen, stride } = s;
      for (let i = 0; i < n; i++) {
        const k = rows[i] * stride + field;
        if (fieldLen[k] >= 0 && buf[fieldPos[k]] !== 0) out[i >> 3] |= 1 << (i & 7);
      }
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Bool, data: out, ...base });
    }
    case 'date': {
      const out = mem.int32(n);
      decodeDates(s, field, rows, n, out);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.DateDay, data: out, ...base });
    }
    case 'timestamp': {
      const raw = mem.int32(n * 2);
      const out = new Uint32Array(raw.buffer, raw.byteOffset, n * 2);
      decodeTimestamps(type, s, field, rows, n, out, ctx);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.TimestampMicrosecond, data: new BigInt64Array(out.buffer, out.byteOffset, n), ...base });
    }
    case 'decimal': {
      const raw = mem.int32(n * 4);
      const out = new Uint32Array(raw.buffer, raw.byteOffset, n * 4);
      decodeDecimals(type.precision, type.scale, s, field, rows, n, out, ctx);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Decimal, data: out, ...base });
    }
    case 'string': {
      const { offsets, data } = decodeBytes(s, field, rows, n, mem);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Utf8, ...base, valueOffsets: offsets, data });
    }
    case 'binary': {
      const { offsets, data } = decodeBytes(s, field, rows, n, mem);
      return arrow.makeData({ type: arrowTypeOf(type) as arrow.Binary, ...base, valueOffsets: offsets, data });
    }
    case 'list': return decodeList(type, s, field, rows, n, ctx, mem, base);
  }
}
