// The column chunk of a dictionary-encoded column, written here rather than by parquet-wasm's
// streaming writer (which interned every value in wasm after an IPC copy: ~0.26 CPU-s of the
// bench's 1M rows for its four dictionary columns). The chunk is what arrow-rs writes for such
// a column: a PLAIN dictionary page, then data pages v1 of RLE_DICTIONARY indices (RLE /
// bit-packed hybrid, the page's bit width from the dictionary's size so far) after the
// definition levels, every page Snappy-compressed; statistics of the chunk, none per page.
// Like arrow-rs, once the dictionary would pass 1 MiB the rest of the chunk is written PLAIN.
// Flat columns only: dates and small integers (INT32) and strings and binaries (BYTE_ARRAY).
// Spec: parquet-format's Encodings.md (RLE/bit-packing hybrid, dictionary) and parquet.thrift.
import * as arrow from 'apache-arrow';
import { isUtf8 } from 'node:buffer';
import { ExportError } from '../errors.ts';
import {
  BYTE_ARRAY, DATA_PAGE, DICTIONARY_PAGE, INT32, MAX_EXACT_STATISTIC, PLAIN, RLE, RLE_DICTIONARY, STATS, dataPageFields, dictionaryPageFields, page, writtenChunk,
} from './parquet-chunks.ts';
import { ByteBuffer as Bytes } from './byte-buffer.ts';
import { snappyCompress } from './snappy.ts';
import { T, i32, i64, listValue, structValue, type ThriftStruct, type ThriftValue } from './thrift.ts';

/** Rows per data page: arrow-rs's data_page_row_count_limit. */
const PAGE_ROWS = 20_000;
/** A PLAIN page's values are cut at this many bytes (arrow-rs's data_page_size_limit). */
const PAGE_BYTES = 1 << 20;
/** The dictionary's PLAIN size at which the chunk goes on PLAIN (arrow-rs's dictionary_page_size_limit). */
const DICTIONARY_BYTES = 1 << 20;

/** How a column of this Arrow type is written here: INT32 or BYTE_ARRAY values; null for any other type. */
export function dictionaryPhysical(type: arrow.DataType): typeof INT32 | typeof BYTE_ARRAY | null {
  if (arrow.DataType.isDate(type)) return type.unit === arrow.DateUnit.DAY ? INT32 : null;
  if (arrow.DataType.isInt(type)) return type.isSigned && type.bitWidth <= 32 ? INT32 : null;
  if (arrow.DataType.isUtf8(type) || arrow.DataType.isBinary(type)) return BYTE_ARRAY;
  return null;
}

/** Bits an index below `size` needs (0 for a dictionary of one value). */
function bitWidth(size: number): number {
  return size <= 1 ? 0 : 32 - Math.clz32(size - 1);
}

/** `values[from, to)` as bit-packed runs (≤ 63 groups of 8 each, the last group padded with 0). */
function bitPacked(out: Bytes, values: Int32Array | Uint8Array, from: number, to: number, width: number): void {
  for (let start = from; start < to; start += 63 * 8) {
    const end = Math.min(to, start + 63 * 8);
    const groups = Math.ceil((end - start) / 8);
    out.varint((groups << 1) | 1);
    out.reserve(groups * width);
    const b = out.buf;
    let at = out.length;
    let acc = 0;
    let bits = 0;
    for (let i = start; i < start + groups * 8; i++) {
      acc = (acc | ((i < end ? values[i] : 0) << bits)) >>> 0;
      bits += width;
      while (bits >= 8) {
        b[at++] = acc & 0xff;
        acc >>>= 8;
        bits -= 8;
      }
    }
    out.length = at;
  }
}

/** `count` repeats of `value` as one RLE run. */
function rleRun(out: Bytes, value: number, count: number, width: number): void {
  out.varint(count * 2);
  for (let b = 0; b < width; b += 8) out.byte((value >>> b) & 0xff);
}

/**
 * `values[0, n)` in the RLE / bit-packed hybrid of `width` bits: a run of 8 or more repeats is
 * one RLE run; the values between runs are bit-packed (a bit-packed run holds whole groups of 8,
 * so a run may lend it the values that complete its last group).
 */
function hybrid(out: Bytes, values: Int32Array | Uint8Array, n: number, width: number): void {
  if (n === 0) return;
  // Width 0: every value is 0.
  if (width === 0) return rleRun(out, 0, n, 0);
  let literal = 0;
  let i = 0;
  while (i < n) {
    const v = values[i];
    let j = i + 1;
    while (j < n && values[j] === v) j++;
    const pad = (8 - ((i - literal) & 7)) & 7;
    if (j - i >= pad + 8) {
      if (i + pad > literal) bitPacked(out, values, literal, i + pad, width);
      rleRun(out, v, j - i - pad, width);
      literal = j;
    }
    i = j;
  }
  if (literal < n) bitPacked(out, values, literal, n, width);
}

/** Whether a[ai, ai + n) and b[bi, bi + n) hold the same bytes (compared four at a time). */
function sameBytes(a: DataView, ai: number, b: DataView, bi: number, n: number): boolean {
  let k = 0;
  for (; k + 4 <= n; k += 4) if (a.getInt32(ai + k, true) !== b.getInt32(bi + k, true)) return false;
  for (; k < n; k++) if (a.getUint8(ai + k) !== b.getUint8(bi + k)) return false;
  return true;
}

/** Compare byte strings as unsigned bytes, lexicographically (BYTE_ARRAY's sort order). */
function compareBytes(a: Uint8Array, ai: number, al: number, b: Uint8Array, bi: number, bl: number): number {
  const n = Math.min(al, bl);
  for (let k = 0; k < n; k++) {
    const d = a[ai + k] - b[bi + k];
    if (d !== 0) return d;
  }
  return al - bl;
}

/** The code point of the UTF-8 character at `at` and its byte length (the bytes are valid UTF-8). */
function charAt(b: Uint8Array, at: number): [number, number] {
  const c = b[at];
  if (c < 0x80) return [c, 1];
  if (c < 0xe0) return [((c & 0x1f) << 6) | (b[at + 1] & 0x3f), 2];
  if (c < 0xf0) return [((c & 0x0f) << 12) | ((b[at + 1] & 0x3f) << 6) | (b[at + 2] & 0x3f), 3];
  return [((c & 0x07) << 18) | ((b[at + 1] & 0x3f) << 12) | ((b[at + 2] & 0x3f) << 6) | (b[at + 3] & 0x3f), 4];
}

/**
 * A BYTE_ARRAY statistics bound as arrow-rs writes it (parquet column writer, truncate_min_value
 * and truncate_max_value): a value over 64 bytes is cut, at a character boundary when the bytes
 * are UTF-8; a cut maximum has its last character (or byte) raised by one so it stays an upper
 * bound, and is written whole when no character can be raised. `exact`: not cut.
 */
function bound(value: Uint8Array, max: boolean): { value: Uint8Array; exact: boolean } {
  if (value.length <= MAX_EXACT_STATISTIC) return { value, exact: true };
  const utf8 = isUtf8(value);
  const boundary = (x: number) => x === value.length || (value[x] & 0xc0) !== 0x80;
  if (!max) {
    if (!utf8) return { value: value.slice(0, MAX_EXACT_STATISTIC), exact: false };
    let split = MAX_EXACT_STATISTIC;
    while (split >= 1 && !boundary(split)) split--;
    return split >= 1 ? { value: value.slice(0, split), exact: false } : { value, exact: true };
  }
  if (!utf8) {
    const cut = value.slice(0, MAX_EXACT_STATISTIC);
    for (let k = cut.length - 1; k >= 0; k--) {
      cut[k] = (cut[k] + 1) & 0xff;
      if (cut[k] !== 0) return { value: cut, exact: false };
    }
    return { value, exact: true };
  }
  let split = MAX_EXACT_STATISTIC;
  while (split >= MAX_EXACT_STATISTIC - 3 && !boundary(split)) split--;
  // The characters of value[0, split), last first: the first one whose successor is a character
  // of the same UTF-8 length is raised, and what follows it dropped.
  const starts: number[] = [];
  for (let at = 0; at < split; at += charAt(value, at)[1]) starts.push(at);
  for (let c = starts.length - 1; c >= 0; c--) {
    const [point, length] = charAt(value, starts[c]);
    const next = point + 1;
    if ((next >= 0xd800 && next <= 0xdfff) || next > 0x10ffff) continue;
    const encoded = Buffer.from(String.fromCodePoint(next), 'utf8');
    if (encoded.length !== length) continue;
    const cut = new Uint8Array(starts[c] + length);
    cut.set(value.subarray(0, starts[c]));
    cut.set(encoded, starts[c]);
    return { value: cut, exact: false };
  }
  return { value, exact: true };
}

/**
 * One row group's chunk of one dictionary column: values are added batch by batch (data pages
 * are encoded as they fill), then `finish` lays out the dictionary page and the data pages.
 */
export class DictionaryChunk {
  private readonly physical: typeof INT32 | typeof BYTE_ARRAY;
  /** OPTIONAL in the schema: pages carry definition levels. */
  private readonly optional: boolean;
  private readonly where: string;

  // The dictionary. INT32: values by index, and index by value. BYTE_ARRAY: the entries' bytes
  // laid end to end, each entry's start and hash, and an open-addressing table of entry + 1.
  private intValues = new Int32Array(256);
  private readonly entryBytes = new Bytes();
  private entryView = new DataView(this.entryBytes.buf.buffer);
  private entryStart = new Int32Array(257);
  private entryHash = new Int32Array(256);
  private slots = new Int32Array(1024);
  private size = 0;
  /** The dictionary page's PLAIN size. */
  private dictionaryBytes = 0;
  /** The dictionary is full: the rest of the chunk is PLAIN. */
  private plain = false;

  // The data page being filled: definition level and index (or PLAIN bytes) of each row.
  private readonly levels = new Uint8Array(PAGE_ROWS);
  private readonly indices = new Int32Array(PAGE_ROWS);
  private readonly plainValues = new Bytes();
  private pageRows = 0;
  private pageValues = 0;

  private readonly pages: Uint8Array[] = [];
  private readonly sizes = { uncompressed: 0, compressed: 0 };
  private dictionaryPages = 0;
  private plainPages = 0;
  private rows = 0;
  private nulls = 0;
  // Bounds of the values written PLAIN (the dictionary's are found at the end).
  private intMin = 0;
  private intMax = 0;
  private plainMin: Uint8Array | null = null;
  private plainMax: Uint8Array | null = null;
  private hasPlainValues = false;
  private readonly scratch = new Bytes();

  constructor(name: string, type: arrow.DataType, optional: boolean) {
    const physical = dictionaryPhysical(type);
    if (physical === null) throw new ExportError(`Parquet splice: column ${name} (${String(type)}) cannot be dictionary-encoded here`);
    this.physical = physical;
    this.optional = optional;
    this.where = name;
  }

  /** Encoded bytes of the data pages so far. */
  get bytes(): number {
    return this.sizes.compressed;
  }

  /** Add a batch's values (any Arrow data of the column's type). */
  add(data: arrow.Data): void {
    const bitmap = data.nullCount > 0 ? data.nullBitmap : null;
    if (bitmap && !this.optional) throw new ExportError(`Parquet splice: column ${this.where} is required but holds NULL`);
    if (this.physical === INT32) this.addInts(data.values as Int32Array | Int16Array | Int8Array, bitmap, data.offset, data.length);
    else this.addBytes(data.values as Uint8Array, data.valueOffsets as Int32Array, bitmap, data.offset, data.length);
  }

  /** Whether the data page being filled is full (flushed before the next row). */
  private pageFull(): boolean {
    return this.pageRows === PAGE_ROWS || (this.plain && this.plainValues.length >= PAGE_BYTES);
  }

  /** A NULL row, when the validity bitmap says so. */
  private addedNull(bitmap: Uint8Array | null, pos: number): boolean {
    if (!bitmap || (bitmap[pos >> 3] & (1 << (pos & 7))) !== 0) return false;
    this.levels[this.pageRows++] = 0;
    this.nulls++;
    return true;
  }

  private addInts(values: Int32Array | Int16Array | Int8Array, bitmap: Uint8Array | null, offset: number, n: number): void {
    for (let i = 0; i < n; i++) {
      if (this.pageFull()) this.flushPage();
      if (this.addedNull(bitmap, offset + i)) continue;
      const v = values[i];
      if (!this.plain) {
        const index = this.internInt(v);
        if (index >= 0) {
          this.indices[this.pageValues++] = index;
          this.levels[this.pageRows++] = 1;
          continue;
        }
        this.goPlain();
      }
      this.addPlainInt(v);
      this.levels[this.pageRows++] = 1;
    }
  }

  private addBytes(bytes: Uint8Array, offsets: Int32Array, bitmap: Uint8Array | null, offset: number, n: number): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) {
      if (this.pageFull()) this.flushPage();
      if (this.addedNull(bitmap, offset + i)) continue;
      const start = offsets[i];
      const end = offsets[i + 1];
      if (!this.plain) {
        const index = this.internBytes(bytes, view, start, end);
        if (index >= 0) {
          this.indices[this.pageValues++] = index;
          this.levels[this.pageRows++] = 1;
          continue;
        }
        this.goPlain();
      }
      this.addPlainBytes(bytes, start, end);
      this.levels[this.pageRows++] = 1;
    }
  }

  /** The dictionary index of `v`, added if new; −1 when the dictionary is full. */
  private internInt(v: number): number {
    let h = Math.imul(v ^ (v >>> 16), 0x45d9f3b);
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
    h ^= h >>> 16;
    const mask = this.slots.length - 1;
    let slot = h & mask;
    for (;;) {
      const e = this.slots[slot] - 1;
      if (e < 0) break;
      if (this.intValues[e] === v) return e;
      slot = (slot + 1) & mask;
    }
    if (this.dictionaryBytes + 4 > DICTIONARY_BYTES) return -1;
    if (this.size === this.intValues.length) {
      const next = new Int32Array(this.size * 2);
      next.set(this.intValues);
      this.intValues = next;
    }
    this.intValues[this.size] = v;
    return this.newEntry(slot, h, 4);
  }

  /** The dictionary index of bytes[start, end), added if new; −1 when the dictionary is full. */
  private internBytes(bytes: Uint8Array, view: DataView, start: number, end: number): number {
    const length = end - start;
    // MurmurHash3 (x86, 32-bit) of the bytes, four at a time.
    let h = length;
    let k = start;
    for (const stop = end - 3; k < stop; k += 4) {
      let w = view.getInt32(k, true);
      w = Math.imul(w, 0xcc9e2d51);
      w = Math.imul((w << 15) | (w >>> 17), 0x1b873593);
      h ^= w;
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
    if (k < end) {
      let w = 0;
      for (let shift = 0; k < end; k++, shift += 8) w |= bytes[k] << shift;
      w = Math.imul(w, 0xcc9e2d51);
      h ^= Math.imul((w << 15) | (w >>> 17), 0x1b873593);
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    const entries = this.entryView;
    const mask = this.slots.length - 1;
    let slot = h & mask;
    for (;;) {
      const e = this.slots[slot] - 1;
      if (e < 0) break;
      const at = this.entryStart[e];
      if (this.entryHash[e] === h && this.entryStart[e + 1] - at === length && sameBytes(entries, at, view, start, length)) return e;
      slot = (slot + 1) & mask;
    }
    if (this.dictionaryBytes + 4 + length > DICTIONARY_BYTES) return -1;
    this.entryBytes.append(bytes, start, end);
    if (this.entryView.buffer !== this.entryBytes.buf.buffer) this.entryView = new DataView(this.entryBytes.buf.buffer);
    const e = this.newEntry(slot, h, 4 + length);
    this.entryStart[e + 1] = this.entryBytes.length;
    return e;
  }

  /** A new dictionary entry in the empty `slot`, of hash `h` and PLAIN size `plainBytes`: its index. */
  private newEntry(slot: number, h: number, plainBytes: number): number {
    const e = this.size++;
    if (e + 2 > this.entryStart.length) {
      const starts = new Int32Array(this.entryStart.length * 2);
      starts.set(this.entryStart);
      this.entryStart = starts;
      const hashes = new Int32Array(this.entryHash.length * 2);
      hashes.set(this.entryHash);
      this.entryHash = hashes;
    }
    this.entryHash[e] = h;
    this.dictionaryBytes += plainBytes;
    this.slots[slot] = e + 1;
    // Kept at most half full.
    if (this.size * 2 > this.slots.length) {
      const slots = new Int32Array(this.slots.length * 2);
      const mask = slots.length - 1;
      for (let x = 0; x < this.size; x++) {
        let s = this.entryHash[x] & mask;
        while (slots[s] !== 0) s = (s + 1) & mask;
        slots[s] = x + 1;
      }
      this.slots = slots;
    }
    return e;
  }

  /** The dictionary is full: the page so far is written, and every value after is PLAIN. */
  private goPlain(): void {
    this.flushPage();
    this.plain = true;
  }

  private addPlainInt(v: number): void {
    this.plainValues.int32(v);
    this.pageValues++;
    if (!this.hasPlainValues || v < this.intMin) this.intMin = v;
    if (!this.hasPlainValues || v > this.intMax) this.intMax = v;
    this.hasPlainValues = true;
  }

  private addPlainBytes(bytes: Uint8Array, start: number, end: number): void {
    this.plainValues.int32(end - start);
    this.plainValues.append(bytes, start, end);
    this.pageValues++;
    const min = this.plainMin;
    const max = this.plainMax;
    if (!min || compareBytes(bytes, start, end - start, min, 0, min.length) < 0) this.plainMin = bytes.slice(start, end);
    if (!max || compareBytes(bytes, start, end - start, max, 0, max.length) > 0) this.plainMax = bytes.slice(start, end);
    this.hasPlainValues = true;
  }

  /** Encode the data page being filled. */
  private flushPage(): void {
    if (this.pageRows === 0) return;
    const body = this.scratch;
    body.length = 0;
    if (this.optional) {
      // Definition levels (max level 1: bit width 1), after their byte length.
      body.int32(0);
      const from = body.length;
      hybrid(body, this.levels, this.pageRows, 1);
      new DataView(body.buf.buffer, body.buf.byteOffset).setInt32(from - 4, body.length - from, true);
    }
    if (this.plain) {
      body.append(this.plainValues.buf, 0, this.plainValues.length);
      this.plainValues.length = 0;
      this.plainPages++;
    } else {
      const width = bitWidth(this.size);
      body.byte(width);
      hybrid(body, this.indices, this.pageValues, width);
      this.dictionaryPages++;
    }
    this.pages.push(...page(dataPageFields(this.pageRows, this.plain ? PLAIN : RLE_DICTIONARY), body.view(), this.sizes, snappyCompress));
    this.rows += this.pageRows;
    this.pageRows = 0;
    this.pageValues = 0;
  }

  /** The dictionary page's PLAIN values. */
  private dictionaryValues(): Uint8Array {
    const out = new Bytes();
    if (this.physical === INT32) for (let e = 0; e < this.size; e++) out.int32(this.intValues[e]);
    else {
      for (let e = 0; e < this.size; e++) {
        out.int32(this.entryStart[e + 1] - this.entryStart[e]);
        out.append(this.entryBytes.buf, this.entryStart[e], this.entryStart[e + 1]);
      }
    }
    return out.view().slice();
  }

  /** The chunk's statistics: NULL count, and the least and greatest value in the column's order. */
  private statistics(): ThriftStruct {
    const stats: ThriftStruct = new Map([[STATS.nullCount, i64(this.nulls)]]);
    if (this.size === 0 && !this.hasPlainValues) return stats;
    if (this.physical === INT32) {
      let min = this.hasPlainValues ? this.intMin : this.intValues[0];
      let max = this.hasPlainValues ? this.intMax : this.intValues[0];
      for (let e = 0; e < this.size; e++) {
        const v = this.intValues[e];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const le = (v: number) => new Uint8Array(new Int32Array([v]).buffer);
      // Signed order: the deprecated min/max too, as arrow-rs writes them.
      for (const [id, v] of [[STATS.max, max], [STATS.min, min], [STATS.maxValue, max], [STATS.minValue, min]] as const) stats.set(id, { type: T.BINARY, value: le(v) });
      stats.set(STATS.maxExact, { type: T.TRUE });
      stats.set(STATS.minExact, { type: T.TRUE });
      return stats;
    }
    const all = this.entryBytes.buf;
    let min = this.plainMin ?? all.subarray(this.entryStart[0], this.entryStart[1]);
    let max = this.plainMax ?? min;
    for (let e = 0; e < this.size; e++) {
      const at = this.entryStart[e];
      const length = this.entryStart[e + 1] - at;
      if (compareBytes(all, at, length, min, 0, min.length) < 0) min = all.subarray(at, at + length);
      if (compareBytes(all, at, length, max, 0, max.length) > 0) max = all.subarray(at, at + length);
    }
    const low = bound(min.slice(), false);
    const high = bound(max.slice(), true);
    stats.set(STATS.maxValue, { type: T.BINARY, value: high.value });
    stats.set(STATS.minValue, { type: T.BINARY, value: low.value });
    stats.set(STATS.maxExact, { type: high.exact ? T.TRUE : T.FALSE });
    stats.set(STATS.minExact, { type: low.exact ? T.TRUE : T.FALSE });
    return stats;
  }

  /** The chunk, its bytes starting at `offset` of the file: dictionary page first. `template`: the column's metadata in a file of the same schema. */
  finish(template: ThriftStruct, offset: number): { bytes: Uint8Array[]; chunk: ThriftValue; rows: number; uncompressed: number } {
    this.flushPage();
    const dataPages = this.pages.splice(0);
    const dataCompressed = this.sizes.compressed;
    const dictionary = page(dictionaryPageFields(this.size), this.dictionaryValues(), this.sizes, snappyCompress);
    const pageStats = (pageType: number, encoding: number, count: number) => structValue(new Map<number, ThriftValue>([[1, i32(pageType)], [2, i32(encoding)], [3, i32(count)]]));
    const chunk = writtenChunk(template, {
      encodings: [PLAIN, ...(this.optional ? [RLE] : []), RLE_DICTIONARY],
      rows: this.rows,
      sizes: this.sizes,
      offset,
      dataPageOffset: offset + this.sizes.compressed - dataCompressed,
      statistics: this.statistics(),
      encodingStats: listValue(T.STRUCT, [
        ...(this.dictionaryPages > 0 ? [pageStats(DATA_PAGE, RLE_DICTIONARY, this.dictionaryPages)] : []),
        ...(this.plainPages > 0 ? [pageStats(DATA_PAGE, PLAIN, this.plainPages)] : []),
        pageStats(DICTIONARY_PAGE, PLAIN, 1),
      ]),
    });
    return { bytes: [...dictionary, ...dataPages], rows: this.rows, uncompressed: this.sizes.uncompressed, chunk };
  }
}
