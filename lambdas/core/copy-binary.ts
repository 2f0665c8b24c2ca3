// Binary COPY framing: header, then per tuple an int16 field count and per field an int32
// length (−1 = NULL) and the bytes; a field count of −1 ends the stream. The page's bytes are
// kept whole so rows can be decoded in any grouping (one file per partition day) without copies.
import { ExportError } from './errors.ts';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

export interface FramedPage {
  readonly buf: Buffer;
  /** Byte offset of each tuple's first field length (just after its int16 field count). */
  readonly rowStarts: Int32Array;
  readonly rowCount: number;
  readonly fieldCount: number;
}

/** Find every tuple in a complete binary COPY stream. */
export function frameCopyBinary(buf: Buffer, expectedFields: number): FramedPage {
  if (buf.length < 19 || !buf.subarray(0, 11).equals(SIGNATURE)) throw new ExportError('binary COPY stream has no PGCOPY signature');
  const extension = buf.readInt32BE(15);
  let pos = 19 + extension;
  let starts = new Int32Array(1024);
  let count = 0;
  for (;;) {
    if (pos + 2 > buf.length) throw new ExportError('binary COPY stream ended without its trailer');
    const fields = buf.readInt16BE(pos);
    pos += 2;
    if (fields === -1) break;
    if (fields !== expectedFields) throw new ExportError(`binary COPY tuple has ${fields} fields, expected ${expectedFields}`);
    if (count === starts.length) {
      const grown = new Int32Array(starts.length * 2);
      grown.set(starts);
      starts = grown;
    }
    starts[count++] = pos;
    for (let f = 0; f < fields; f++) {
      const len = buf.readInt32BE(pos);
      pos += 4 + (len > 0 ? len : 0);
    }
  }
  return { buf, rowStarts: starts.subarray(0, count), rowCount: count, fieldCount: expectedFields };
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
