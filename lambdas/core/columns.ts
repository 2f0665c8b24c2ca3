// Column builders: binary COPY fields go straight into typed arrays laid out as Arrow buffers.
// No per-row JS objects, no Date, no BigInt on the hot path (64-bit values move as two words).
import * as arrow from 'apache-arrow';
import type { LakeType } from './type-map.ts';
import { decodeNumeric, numericToText } from './decimal.ts';
import { ValueError } from './errors.ts';

// Postgres epochs: 2000-01-01. Arrow/Parquet: 1970-01-01.
const PG_EPOCH_DAYS = 10957;
const PG_EPOCH_MICROS_HI = 220417; // 946684800000000 = 220417 · 2^32 + 993517568
const PG_EPOCH_MICROS_LO = 993517568;
const TWO_32 = 4294967296;

/** Where a value came from, for error messages: `table.column` and the row's key. */
export interface FieldContext {
  readonly where: string;
  rowKey(): string;
}

export interface ColumnBuilder {
  readonly length: number;
  append(buf: Buffer, pos: number, len: number, ctx: FieldContext): void;
  appendNull(): void;
  finish(): arrow.Data;
}

class Validity {
  bitmap: Uint8Array | null = null;
  nullCount = 0;
  markNull(index: number, capacity: number): void {
    if (!this.bitmap) {
      this.bitmap = new Uint8Array((capacity + 7) >> 3);
      // everything before the first null was valid
      const full = index >> 3;
      this.bitmap.fill(0xff, 0, full);
      for (let i = full << 3; i < index; i++) this.bitmap[i >> 3] |= 1 << (i & 7);
    }
    this.nullCount++;
  }
  markValid(index: number): void {
    if (this.bitmap) this.bitmap[index >> 3] |= 1 << (index & 7);
  }
  resize(capacity: number): void {
    if (this.bitmap) this.bitmap = grow(this.bitmap, (capacity + 7) >> 3);
  }
}

function grow<T extends Uint8Array | Int16Array | Int32Array | Uint32Array | Float32Array | Float64Array>(array: T, length: number): T {
  const bigger = new (array.constructor as new (n: number) => T)(length);
  bigger.set(array);
  return bigger;
}

/** Sized for a page up front; grows (doubling) only for list elements, whose count is unknown. */
abstract class FixedBuilder implements ColumnBuilder {
  length = 0;
  protected readonly validity = new Validity();
  protected capacity: number;
  constructor(capacity: number) {
    this.capacity = Math.max(capacity, 1);
  }
  protected abstract resize(capacity: number): void;
  abstract append(buf: Buffer, pos: number, len: number, ctx: FieldContext): void;
  appendNull(): void {
    if (this.length === this.capacity) this.enlarge();
    this.validity.markNull(this.length, this.capacity);
    this.length++;
  }
  private enlarge(): void {
    this.capacity *= 2;
    this.validity.resize(this.capacity);
    this.resize(this.capacity);
  }
  protected next(): number {
    if (this.length === this.capacity) this.enlarge();
    const i = this.length++;
    this.validity.markValid(i);
    return i;
  }
  protected dataProps() {
    return { length: this.length, nullCount: this.validity.nullCount, nullBitmap: this.validity.bitmap ?? undefined };
  }
  abstract finish(): arrow.Data;
}

class Int16Builder extends FixedBuilder {
  private values = new Int16Array(this.capacity);
  protected resize(n: number) { this.values = grow(this.values, n); }
  append(buf: Buffer, pos: number): void { this.values[this.next()] = buf.readInt16BE(pos); }
  finish() { return arrow.makeData({ type: new arrow.Int16(), data: this.values.subarray(0, this.length), ...this.dataProps() }); }
}

class Int32Builder extends FixedBuilder {
  private values = new Int32Array(this.capacity);
  protected resize(n: number) { this.values = grow(this.values, n); }
  append(buf: Buffer, pos: number): void { this.values[this.next()] = buf.readInt32BE(pos); }
  finish() { return arrow.makeData({ type: new arrow.Int32(), data: this.values.subarray(0, this.length), ...this.dataProps() }); }
}

/** int8: the two big-endian words are stored little-endian, no BigInt per value. */
class Int64Builder extends FixedBuilder {
  private words = new Int32Array(this.capacity * 2);
  protected resize(n: number) { this.words = grow(this.words, n * 2); }
  append(buf: Buffer, pos: number): void {
    const i = this.next() * 2;
    this.words[i] = buf.readInt32BE(pos + 4);
    this.words[i + 1] = buf.readInt32BE(pos);
  }
  finish() {
    return arrow.makeData({ type: new arrow.Int64(), data: new BigInt64Array(this.words.buffer, 0, this.length), ...this.dataProps() });
  }
}

/**
 * timestamp / timestamptz: µs since 2000-01-01 → µs since 1970-01-01 by a 64-bit add on two
 * words. ±infinity become DuckDB's own ±infinity sentinels (±(2^63 − 1)), so nothing is clamped.
 */
class TimestampBuilder extends FixedBuilder {
  private words = new Uint32Array(this.capacity * 2);
  protected resize(n: number) { this.words = grow(this.words, n * 2); }
  private readonly utc: boolean;
  constructor(capacity: number, utc: boolean) {
    super(capacity);
    this.utc = utc;
  }
  append(buf: Buffer, pos: number, _len: number, ctx: FieldContext): void {
    const hi = buf.readInt32BE(pos);
    const lo = buf.readUInt32BE(pos + 4);
    const i = this.next() * 2;
    if (hi === 0x7fffffff && lo === 0xffffffff) { this.words[i] = 0xffffffff; this.words[i + 1] = 0x7fffffff; return; }
    if (hi === -0x80000000 && lo === 0) { this.words[i] = 1; this.words[i + 1] = 0x80000000; return; }
    let sumLo = lo + PG_EPOCH_MICROS_LO;
    let carry = 0;
    if (sumLo >= TWO_32) { sumLo -= TWO_32; carry = 1; }
    const sumHi = hi + PG_EPOCH_MICROS_HI + carry;
    if (sumHi > 0x7fffffff) throw new ValueError(`${ctx.where}: timestamp after 294247-01-10 04:00:54.775807 does not fit Parquet's µs since 1970 (row ${ctx.rowKey()})`);
    this.words[i] = sumLo;
    this.words[i + 1] = sumHi >>> 0;
  }
  finish() {
    return arrow.makeData({
      type: new arrow.TimestampMicrosecond(this.utc ? 'UTC' : null),
      data: new BigInt64Array(this.words.buffer, 0, this.length),
      ...this.dataProps(),
    });
  }
}

class Float32Builder extends FixedBuilder {
  private values = new Float32Array(this.capacity);
  protected resize(n: number) { this.values = grow(this.values, n); }
  append(buf: Buffer, pos: number): void { this.values[this.next()] = buf.readFloatBE(pos); }
  finish() { return arrow.makeData({ type: new arrow.Float32(), data: this.values.subarray(0, this.length), ...this.dataProps() }); }
}

class Float64Builder extends FixedBuilder {
  private values = new Float64Array(this.capacity);
  protected resize(n: number) { this.values = grow(this.values, n); }
  append(buf: Buffer, pos: number): void { this.values[this.next()] = buf.readDoubleBE(pos); }
  finish() { return arrow.makeData({ type: new arrow.Float64(), data: this.values.subarray(0, this.length), ...this.dataProps() }); }
}

class BoolBuilder extends FixedBuilder {
  private bits = new Uint8Array((this.capacity + 7) >> 3);
  protected resize(n: number) { this.bits = grow(this.bits, (n + 7) >> 3); }
  append(buf: Buffer, pos: number): void {
    const i = this.next();
    if (buf[pos] !== 0) this.bits[i >> 3] |= 1 << (i & 7);
  }
  finish() { return arrow.makeData({ type: new arrow.Bool(), data: this.bits, ...this.dataProps() }); }
}

/** date: days since 2000 → days since 1970; ±infinity → DuckDB's ±(2^31 − 1). */
class DateBuilder extends FixedBuilder {
  private values = new Int32Array(this.capacity);
  protected resize(n: number) { this.values = grow(this.values, n); }
  append(buf: Buffer, pos: number, _len: number, ctx: FieldContext): void {
    const v = buf.readInt32BE(pos);
    const i = this.next();
    if (v === 0x7fffffff) { this.values[i] = 0x7fffffff; return; }
    if (v === -0x80000000) { this.values[i] = -0x7fffffff; return; }
    const days = v + PG_EPOCH_DAYS;
    if (days >= 0x7fffffff) throw new ValueError(`${ctx.where}: date too far in the future to store (row ${ctx.rowKey()})`);
    this.values[i] = days;
  }
  finish() { return arrow.makeData({ type: new arrow.DateDay(), data: this.values.subarray(0, this.length), ...this.dataProps() }); }
}

class DecimalBuilder extends FixedBuilder {
  private words = new Uint32Array(this.capacity * 4);
  protected resize(n: number) { this.words = grow(this.words, n * 4); }
  private readonly precision: number;
  private readonly scale: number;
  constructor(capacity: number, precision: number, scale: number) {
    super(capacity);
    this.precision = precision;
    this.scale = scale;
  }
  append(buf: Buffer, pos: number, _len: number, ctx: FieldContext): void {
    const i = this.next();
    const problem = decodeNumeric(buf, pos, this.precision, this.scale, this.words, i);
    if (problem !== null) {
      throw new ValueError(`${ctx.where}: value ${numericToText(buf, pos)} ${problem} (column is decimal(${this.precision},${this.scale}); row ${ctx.rowKey()})`);
    }
  }
  finish() {
    return arrow.makeData({ type: new arrow.Decimal(this.scale, this.precision, 128), data: this.words.subarray(0, this.length * 4), ...this.dataProps() });
  }
}

/** utf8 and binary: offsets + one growing byte buffer; bytes are copied once, never decoded. */
class BytesBuilder implements ColumnBuilder {
  length = 0;
  private readonly validity = new Validity();
  private offsets: Int32Array;
  private data: Uint8Array;
  private used = 0;
  private capacity: number;
  private readonly binary: boolean;
  constructor(capacity: number, binary: boolean, initialBytes = 64) {
    this.capacity = Math.max(capacity, 1);
    this.binary = binary;
    this.offsets = new Int32Array(this.capacity + 1);
    this.data = new Uint8Array(Math.max(1024, capacity * initialBytes));
  }
  append(buf: Buffer, pos: number, len: number): void {
    this.appendBytes(buf, pos, len);
  }
  private enlarge(): void {
    this.capacity *= 2;
    this.offsets = grow(this.offsets, this.capacity + 1);
    this.validity.resize(this.capacity);
  }
  appendBytes(src: Uint8Array, pos: number, len: number): void {
    if (this.length === this.capacity) this.enlarge();
    const need = this.used + len;
    if (need > this.data.length) {
      let size = this.data.length * 2;
      while (size < need) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.data.subarray(0, this.used));
      this.data = grown;
    }
    if (len < 32) for (let k = 0; k < len; k++) this.data[this.used + k] = src[pos + k];
    else this.data.set(src.subarray(pos, pos + len), this.used);
    this.used = need;
    const i = this.length++;
    this.validity.markValid(i);
    this.offsets[i + 1] = need;
  }
  appendNull(): void {
    if (this.length === this.capacity) this.enlarge();
    this.validity.markNull(this.length, this.capacity);
    this.offsets[this.length + 1] = this.used;
    this.length++;
  }
  finish() {
    const props = {
      length: this.length,
      nullCount: this.validity.nullCount,
      nullBitmap: this.validity.bitmap ?? undefined,
      valueOffsets: this.offsets.subarray(0, this.length + 1),
      data: this.data.subarray(0, this.used),
    };
    return this.binary ? arrow.makeData({ type: new arrow.Binary(), ...props }) : arrow.makeData({ type: new arrow.Utf8(), ...props });
  }
}

/**
 * One-dimensional arrays → List<element>. Wire format: int32 ndim, int32 hasNull, uint32 element
 * oid, per dimension (int32 size, int32 lower bound), then per element int32 length + bytes.
 */
class ListBuilder implements ColumnBuilder {
  length = 0;
  private readonly validity = new Validity();
  private readonly offsets: Int32Array;
  private readonly child: ColumnBuilder;
  private readonly elementType: LakeType;
  private readonly capacity: number;
  constructor(capacity: number, elementType: LakeType) {
    this.capacity = capacity;
    this.elementType = elementType;
    this.offsets = new Int32Array(capacity + 1);
    // Elements per row are unknown up front; the child starts at one per row and grows.
    this.child = createBuilder(elementType, capacity);
  }
  append(buf: Buffer, pos: number, _len: number, ctx: FieldContext): void {
    const ndim = buf.readInt32BE(pos);
    let count = 0;
    let p = pos + 12;
    if (ndim > 1) throw new ValueError(`${ctx.where}: ${ndim}-dimensional array cannot be stored as array<…>; only one-dimensional arrays are supported (row ${ctx.rowKey()})`);
    if (ndim === 1) {
      count = buf.readInt32BE(p);
      p += 8;
    }
    for (let k = 0; k < count; k++) {
      const elen = buf.readInt32BE(p);
      p += 4;
      if (elen < 0) this.child.appendNull();
      else {
        this.child.append(buf, p, elen, ctx);
        p += elen;
      }
    }
    const i = this.length++;
    this.validity.markValid(i);
    this.offsets[i + 1] = this.child.length;
  }
  appendNull(): void {
    this.validity.markNull(this.length, this.capacity);
    this.offsets[this.length + 1] = this.child.length;
    this.length++;
  }
  finish() {
    const childData = this.child.finish();
    return arrow.makeData({
      type: new arrow.List(new arrow.Field('element', childData.type, true)),
      length: this.length,
      nullCount: this.validity.nullCount,
      nullBitmap: this.validity.bitmap ?? undefined,
      valueOffsets: this.offsets.subarray(0, this.length + 1),
      child: childData,
    });
  }
}

export function createBuilder(type: LakeType, capacity: number): ColumnBuilder {
  switch (type.kind) {
    case 'int16': return new Int16Builder(capacity);
    case 'int32': return new Int32Builder(capacity);
    case 'int64': return new Int64Builder(capacity);
    case 'float32': return new Float32Builder(capacity);
    case 'float64': return new Float64Builder(capacity);
    case 'bool': return new BoolBuilder(capacity);
    case 'date': return new DateBuilder(capacity);
    case 'timestamp': return new TimestampBuilder(capacity, type.utc);
    case 'decimal': return new DecimalBuilder(capacity, type.precision, type.scale);
    case 'string': return new BytesBuilder(capacity, false);
    case 'binary': return new BytesBuilder(capacity, true);
    case 'list': return new ListBuilder(capacity, type.element);
  }
}

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

function readI32(buf: Buffer, p: number): number {
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

function decodeTimestamps(s: FieldSlots, field: number, rows: Int32Array, n: number, out: Uint32Array, ctx: ColumnContext): void {
  const { buf, fieldPos, fieldLen, stride } = s;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] < 0) continue;
    const p = fieldPos[k];
    const hi = readI32(buf, p);
    const lo = readI32(buf, p + 4) >>> 0;
    const o = 2 * i;
    if (hi === 0x7fffffff && lo === 0xffffffff) { out[o] = 0xffffffff; out[o + 1] = 0x7fffffff; continue; }
    if (hi === -0x80000000 && lo === 0) { out[o] = 1; out[o + 1] = 0x80000000; continue; }
    let sumLo = lo + PG_EPOCH_MICROS_LO;
    let carry = 0;
    if (sumLo >= TWO_32) { sumLo -= TWO_32; carry = 1; }
    const sumHi = hi + PG_EPOCH_MICROS_HI + carry;
    if (sumHi > 0x7fffffff) throw new ValueError(`${ctx.where}: timestamp after 294247-01-10 04:00:54.775807 does not fit Parquet's µs since 1970 (row ${ctx.rowKey(rows[i])})`);
    out[o] = sumLo;
    out[o + 1] = sumHi >>> 0;
  }
}

function decodeDates(s: FieldSlots, field: number, rows: Int32Array, n: number, out: Int32Array, ctx: ColumnContext): void {
  const { buf, fieldPos, fieldLen, stride } = s;
  for (let i = 0; i < n; i++) {
    const k = rows[i] * stride + field;
    if (fieldLen[k] < 0) continue;
    const v = readI32(buf, fieldPos[k]);
    if (v === 0x7fffffff) { out[i] = 0x7fffffff; continue; }
    if (v === -0x80000000) { out[i] = -0x7fffffff; continue; }
    const days = v + PG_EPOCH_DAYS;
    if (days >= 0x7fffffff) throw new ValueError(`${ctx.where}: date too far in the future to store (row ${ctx.rowKey(rows[i])})`);
    out[i] = days;
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
 * Decode one column of the rows `rows[0..n)` of a framed page into Arrow data. Each type is one
 * tight loop over the column; only arrays (rare) go through the row builders.
 */
export function decodeColumn(type: LakeType, s: FieldSlots, field: number, rows: Int32Array, n: number, ctx: ColumnContext, mem: Allocator = FRESH): arrow.Data {
  const { bitmap, nullCount } = validityOf(s.fieldLen, rows, n, s.stride, field, mem);
  const base = { length: n, nullCount, nullBitmap: bitmap };
  switch (type.kind) {
    case 'int64': {
      const out = mem.int32(n * 2);
      swap64(s, field, rows, n, out);
      return arrow.makeData({ type: new arrow.Int64(), data: new BigInt64Array(out.buffer, out.byteOffset, n), ...base });
    }
    case 'float64': {
      const out = mem.int32(n * 2);
      swap64(s, field, rows, n, out);
      return arrow.makeData({ type: new arrow.Float64(), data: new Float64Array(out.buffer, out.byteOffset, n), ...base });
    }
    case 'int32': {
      const out = mem.int32(n);
      swap32(s, field, rows, n, out);
      return arrow.makeData({ type: new arrow.Int32(), data: out, ...base });
    }
    case 'float32': {
      const out = mem.int32(n);
      swap32(s, field, rows, n, out);
      return arrow.makeData({ type: new arrow.Float32(), data: new Float32Array(out.buffer, out.byteOffset, n), ...base });
    }
    case 'int16': {
      const raw = mem.bytes(n * 2);
      const out = new Int16Array(raw.buffer, raw.byteOffset, n);
      const { buf, fieldPos, fieldLen, stride } = s;
      for (let i = 0; i < n; i++) {
        const k = rows[i] * stride + field;
        if (fieldLen[k] >= 0) out[i] = (buf[fieldPos[k]] << 8) | buf[fieldPos[k] + 1];
      }
      return arrow.makeData({ type: new arrow.Int16(), data: out, ...base });
    }
    case 'bool': {
      const out = mem.bytes((n + 7) >> 3);
      const { buf, fieldPos, fieldLen, stride } = s;
      for (let i = 0; i < n; i++) {
        const k = rows[i] * stride + field;
        if (fieldLen[k] >= 0 && buf[fieldPos[k]] !== 0) out[i >> 3] |= 1 << (i & 7);
      }
      return arrow.makeData({ type: new arrow.Bool(), data: out, ...base });
    }
    case 'date': {
      const out = mem.int32(n);
      decodeDates(s, field, rows, n, out, ctx);
      return arrow.makeData({ type: new arrow.DateDay(), data: out, ...base });
    }
    case 'timestamp': {
      const raw = mem.int32(n * 2);
      const out = new Uint32Array(raw.buffer, raw.byteOffset, n * 2);
      decodeTimestamps(s, field, rows, n, out, ctx);
      return arrow.makeData({ type: new arrow.TimestampMicrosecond(type.utc ? 'UTC' : null), data: new BigInt64Array(out.buffer, out.byteOffset, n), ...base });
    }
    case 'decimal': {
      const raw = mem.int32(n * 4);
      const out = new Uint32Array(raw.buffer, raw.byteOffset, n * 4);
      const { buf, fieldPos, fieldLen, stride } = s;
      for (let i = 0; i < n; i++) {
        const k = rows[i] * stride + field;
        if (fieldLen[k] < 0) continue;
        const problem = decodeNumeric(buf, fieldPos[k], type.precision, type.scale, out, i);
        if (problem !== null) {
          throw new ValueError(`${ctx.where}: value ${numericToText(buf, fieldPos[k])} ${problem} (column is decimal(${type.precision},${type.scale}); row ${ctx.rowKey(rows[i])})`);
        }
      }
      return arrow.makeData({ type: new arrow.Decimal(type.scale, type.precision, 128), data: out, ...base });
    }
    case 'string':
    case 'binary': {
      const { offsets, data } = decodeBytes(s, field, rows, n, mem);
      const props = { ...base, valueOffsets: offsets, data };
      return type.kind === 'binary' ? arrow.makeData({ type: new arrow.Binary(), ...props }) : arrow.makeData({ type: new arrow.Utf8(), ...props });
    }
    case 'list': {
      const builder = createBuilder(type, n);
      const { buf, fieldPos, fieldLen, stride } = s;
      let current = 0;
      const fieldCtx: FieldContext = { where: ctx.where, rowKey: () => ctx.rowKey(current) };
      for (let i = 0; i < n; i++) {
        current = rows[i];
        const k = current * stride + field;
        if (fieldLen[k] < 0) builder.appendNull();
        else builder.append(buf, fieldPos[k], fieldLen[k], fieldCtx);
      }
      return builder.finish();
    }
  }
}
