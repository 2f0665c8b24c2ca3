// Binary COPY framing: header, then per tuple an int16 field count and per field an int32
// length (−1 = NULL) and the bytes; a field count of −1 ends the stream. The page's bytes are
// kept whole so rows can be decoded in any grouping (one file per partition day) without copies.
import { ExportError } from '../errors.ts';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

export interface FramedPage {
  readonly buf: Buffer;
  /** Byte offset of each tuple's first field length (just after its int16 field count). */
  readonly rowStarts: Int32Array;
  readonly rowCount: number;
  readonly fieldCount: number;
  /** Per tuple and field (index row · fieldCount + field): offset of the value's bytes. */
  readonly fieldPos: Int32Array;
  /** Per tuple and field: the value's length, −1 for NULL. */
  readonly fieldLen: Int32Array;
}

/** Offset of the first tuple, after the signature, flags and header extension. */
export function firstTuple(buf: Buffer): number {
  if (buf.length < 19 || !buf.subarray(0, 11).equals(SIGNATURE)) throw new ExportError('binary COPY stream has no PGCOPY signature');
  return 19 + buf.readInt32BE(15);
}

/** The tuple's field count at `pos`: −1 for the trailer; anything but `expected` is an error. */
export function fieldCount(buf: Buffer, pos: number, end: number, expected: number): number {
  if (pos + 2 > end) throw new ExportError('binary COPY stream ended without its trailer');
  const fields = (buf[pos] << 24 >> 16) | buf[pos + 1];
  if (fields !== -1 && fields !== expected) throw new ExportError(`binary COPY tuple has ${fields} fields, expected ${expected}`);
  return fields;
}

/**
 * Find every tuple and every field in a complete binary COPY stream, in one pass: the decoders
 * then read a column at a time (one monomorphic loop per column) instead of a row at a time.
 */
export function frameCopyBinary(buf: Buffer, expectedFields: number, scratch?: FrameScratch): FramedPage {
  let pos = firstTuple(buf);
  const end = buf.length;
  // A tuple takes at least 2 + 4·fields bytes: never more rows than that allows.
  let capacity = Math.max(16, Math.min(Math.ceil((end - pos) / (2 + 4 * Math.max(expectedFields, 1))), 1 << 16));
  if (scratch && scratch.starts.length > capacity && scratch.fieldPos.length >= scratch.starts.length * expectedFields) capacity = scratch.starts.length;
  let starts = scratch && scratch.starts.length >= capacity ? scratch.starts : new Int32Array(capacity);
  let fieldPos = scratch && scratch.fieldPos.length >= capacity * expectedFields ? scratch.fieldPos : new Int32Array(capacity * expectedFields);
  let fieldLen = scratch && scratch.fieldLen.length >= capacity * expectedFields ? scratch.fieldLen : new Int32Array(capacity * expectedFields);
  let count = 0;
  let k = 0;
  for (;;) {
    if (fieldCount(buf, pos, end, expectedFields) === -1) break;
    pos += 2;
    if (count === capacity) {
      capacity *= 2;
      starts = growInt32(starts, capacity);
      fieldPos = growInt32(fieldPos, capacity * expectedFields);
      fieldLen = growInt32(fieldLen, capacity * expectedFields);
    }
    starts[count++] = pos;
    for (let f = 0; f < expectedFields; f++) {
      if (pos + 4 > end) throw new ExportError('binary COPY stream ended inside a tuple');
      const len = (buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3];
      pos += 4;
      fieldPos[k] = pos;
      fieldLen[k++] = len;
      if (len > 0) pos += len;
    }
    if (pos > end) throw new ExportError('binary COPY stream ended inside a tuple');
  }
  if (scratch) {
    scratch.starts = starts;
    scratch.fieldPos = fieldPos;
    scratch.fieldLen = fieldLen;
  }
  return {
    buf, rowStarts: starts.subarray(0, count), rowCount: count, fieldCount: expectedFields,
    fieldPos: fieldPos.subarray(0, k), fieldLen: fieldLen.subarray(0, k),
  };
}

/**
 * Reusable framing arrays: a page framed with a scratch is valid only until the scratch frames
 * the next page (the arrays are overwritten, which saves ~10 MB of fresh memory per page).
 */
export class FrameScratch {
  starts = new Int32Array(0);
  fieldPos = new Int32Array(0);
  fieldLen = new Int32Array(0);
}

/**
 * Rows of a binary COPY stream and where its first and last tuple start, without recording
 * every field: enough to issue the next keyset page before this one is decoded.
 */
export function scanCopyBinary(buf: Buffer, expectedFields: number): { rowCount: number; firstRowStart: number; lastRowStart: number } {
  let pos = firstTuple(buf);
  const end = buf.length;
  let count = 0;
  let first = -1;
  let last = -1;
  for (;;) {
    if (fieldCount(buf, pos, end, expectedFields) === -1) break;
    pos += 2;
    if (first < 0) first = pos;
    last = pos;
    count++;
    for (let f = 0; f < expectedFields; f++) {
      if (pos + 4 > end) throw new ExportError('binary COPY stream ended inside a tuple');
      const len = (buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3];
      pos += 4 + (len > 0 ? len : 0);
    }
    if (pos > end) throw new ExportError('binary COPY stream ended inside a tuple');
  }
  return { rowCount: count, firstRowStart: first, lastRowStart: last };
}

/**
 * Where the CopyData messages of a page's stream began, as its receiver saw them (the source
 * adapter records them, lambdas/adapters/copy-out.ts): how many, and where the second, the
 * next-to-last and the last one's bytes start in the page. The server sends one message per row
 * (protocol-flow.html: "messages sent from the backend will always correspond to single data
 * rows"), the trailer in a message of its own, and the header alone or with the first row.
 */
export interface CopyMessages {
  readonly count: number;
  readonly secondStart: number;
  readonly previousStart: number;
  readonly lastStart: number;
}

/** The message boundaries of pages that have them (a hint: pageBounds checks it and falls back to scanning). */
export const copyMessages = new WeakMap<Uint8Array, CopyMessages>();

/**
 * scanCopyBinary's answer read off the message boundaries instead of every field of every row:
 * null unless they fit the stream (the last message is the trailer; the one before it holds
 * exactly one tuple of `expectedFields` that ends where the trailer begins). The row count rests
 * on one row per message; the page pipeline checks it against the encoder's own count.
 */
export function boundsFromMessages(buf: Buffer, expectedFields: number, m: CopyMessages): { rowCount: number; firstRowStart: number; lastRowStart: number } | null {
  const end = buf.length;
  if (end < 21 || buf.readInt16BE(end - 2) !== -1) return null;
  const header = firstTuple(buf);
  // Nothing between the header and the trailer (one message or two): no rows.
  if (header === end - 2) return { rowCount: 0, firstRowStart: -1, lastRowStart: -1 };
  if (m.count < 2 || m.lastStart !== end - 2) return null;
  // The header alone in the first message, or with the first row (as PostgreSQL 17 sends it).
  const headerAlone = m.secondStart === header;
  const rowCount = m.count - 1 - (headerAlone ? 1 : 0);
  if (rowCount < 1) return null;
  const lastTuple = m.previousStart === 0 ? header : m.previousStart;
  if (lastTuple < header || lastTuple + 2 > end || buf.readInt16BE(lastTuple) !== expectedFields) return null;
  let pos = lastTuple + 2;
  for (let f = 0; f < expectedFields; f++) {
    if (pos + 4 > end) return null;
    const len = buf.readInt32BE(pos);
    pos += 4 + (len > 0 ? len : 0);
  }
  if (pos !== end - 2) return null;
  return { rowCount, firstRowStart: header + 2, lastRowStart: lastTuple + 2 };
}

function growInt32(array: Int32Array<ArrayBuffer>, length: number): Int32Array<ArrayBuffer> {
  if (array.length >= length) return array;
  const bigger = new Int32Array(length);
  bigger.set(array);
  return bigger;
}

/** Offset of field `field` of the tuple starting at `rowStart` (its int32 length word). */
export function fieldOffset(buf: Buffer, rowStart: number, field: number): number {
  let pos = rowStart;
  for (let f = 0; f < field; f++) {
    const len = buf.readInt32BE(pos);
    pos += 4 + (len > 0 ? len : 0);
  }
  return pos;
}
