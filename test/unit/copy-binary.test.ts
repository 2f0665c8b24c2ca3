// Binary COPY framing (lambdas/core/page/copy-binary.ts) over streams built byte by byte as
// PostgreSQL documents them: the 11-byte signature, int32 flags, int32 header-extension length
// and its bytes; per tuple an int16 field count and per field an int32 length (−1: NULL) and the
// bytes; an int16 −1 trailer.
import { describe, expect, it } from 'vitest';
import { FrameScratch, boundsFromMessages, fieldOffset, frameCopyBinary, scanCopyBinary, type CopyMessages } from '../../lambdas/core/page/copy-binary.ts';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };

/** A complete stream: `rows` of fields (null = NULL), after a header with `extension` bytes. */
function copyStream(rows: readonly (readonly (Buffer | null)[])[], extension = Buffer.alloc(0)): Buffer {
  const parts: Buffer[] = [SIGNATURE, int32(0), int32(extension.length), extension];
  for (const row of rows) {
    parts.push(int16(row.length));
    for (const field of row) parts.push(field === null ? int32(-1) : Buffer.concat([int32(field.length), field]));
  }
  parts.push(int16(-1));
  return Buffer.concat(parts);
}

const text = (s: string) => Buffer.from(s, 'utf8');
/** The bytes of field `f` of framed row `r`, or null. */
const fieldOf = (page: ReturnType<typeof frameCopyBinary>, r: number, f: number) => {
  const k = r * page.fieldCount + f;
  return page.fieldLen[k] < 0 ? null : page.buf.subarray(page.fieldPos[k], page.fieldPos[k] + page.fieldLen[k]).toString('utf8');
};

describe('frameCopyBinary', () => {
  const stream = copyStream([
    [text('1'), text('ä€😀'), null],
    [text('22'), text(''), text('x')],
    [null, null, null],
  ]);

  it('finds every tuple and field: offsets of the bytes, lengths, −1 for NULL and 0 for an empty value', () => {
    const page = frameCopyBinary(stream, 3);
    expect(page.rowCount).toBe(3);
    expect(page.fieldCount).toBe(3);
    expect([...page.fieldLen]).toEqual([1, 9, -1, 2, 0, 1, -1, -1, -1]);
    expect([0, 1, 2].map((r) => [0, 1, 2].map((f) => fieldOf(page, r, f)))).toEqual([['1', 'ä€😀', null], ['22', '', 'x'], [null, null, null]]);
    // A row starts after its field count: 19 header bytes, then 2.
    expect(page.rowStarts[0]).toBe(21);
    expect(page.rowStarts[1]).toBe(21 + (4 + 1) + (4 + 9) + 4 + 2);
  });

  it('skips the header extension by its length', () => {
    const page = frameCopyBinary(copyStream([[text('a')]], Buffer.from('extension bytes')), 1);
    expect(page.rowStarts[0]).toBe(19 + 15 + 2);
    expect(fieldOf(page, 0, 0)).toBe('a');
  });

  it('frames an empty stream as no rows', () => {
    expect(frameCopyBinary(copyStream([]), 4).rowCount).toBe(0);
  });

  it('grows past its first guess of the row count, and past the scratch it was given', () => {
    const many = copyStream(Array.from({ length: 70_000 }, (_, i) => [i % 7 === 0 ? null : text('')]));
    const scratch = new FrameScratch();
    const page = frameCopyBinary(many, 1, scratch);
    expect(page.rowCount).toBe(70_000);
    expect(page.fieldLen[0]).toBe(-1);
    expect(page.fieldLen[69_999]).toBe(69_999 % 7 === 0 ? -1 : 0);
    expect(scratch.starts.length).toBeGreaterThanOrEqual(70_000);
  });

  it('reuses a scratch: the next page overwrites the arrays of the one before', () => {
    const scratch = new FrameScratch();
    frameCopyBinary(copyStream([[text('first')], [text('page')]]), 1, scratch);
    const arrays = scratch.fieldLen;
    const second = frameCopyBinary(copyStream([[text('again')]]), 1, scratch);
    expect(scratch.fieldLen).toBe(arrays);
    expect(second.rowCount).toBe(1);
    expect(fieldOf(second, 0, 0)).toBe('again');
  });

  it.each([
    ['no signature', Buffer.from('COPY not binary'), 1, 'binary COPY stream has no PGCOPY signature'],
    ['a stream cut inside a value', copyStream([[text('abcdef')]]).subarray(0, 19 + 2 + 4 + 3), 1, 'binary COPY stream ended inside a tuple'],
    ['a stream cut inside a length word', copyStream([[text('a'), text('b')]]).subarray(0, 19 + 2 + 5 + 2), 2, 'binary COPY stream ended inside a tuple'],
    ['no trailer', copyStream([[text('a')]]).subarray(0, 19 + 2 + 5), 1, 'binary COPY stream ended without its trailer'],
    ['a tuple with another field count', copyStream([[text('a'), text('b')]]), 1, 'binary COPY tuple has 2 fields, expected 1'],
  ])('refuses %s, by name', (_, bytes, fields, message) => {
    expect(() => frameCopyBinary(bytes, fields)).toThrow(message);
    expect(() => scanCopyBinary(bytes, fields)).toThrow(message);
  });
});

describe('scanCopyBinary and fieldOffset', () => {
  it('count the rows and find the first and last tuple without framing every field', () => {
    const stream = copyStream([[text('k1'), null], [text('k2'), text('v')], [text('k3'), text('w')]]);
    const framed = frameCopyBinary(stream, 2);
    expect(scanCopyBinary(stream, 2)).toEqual({ rowCount: 3, firstRowStart: framed.rowStarts[0], lastRowStart: framed.rowStarts[2] });
    expect(scanCopyBinary(copyStream([]), 2)).toEqual({ rowCount: 0, firstRowStart: -1, lastRowStart: -1 });
  });

  it('fieldOffset points at a field\'s length word, past NULL and empty fields', () => {
    const stream = copyStream([[null, text(''), text('third')]]);
    const start = frameCopyBinary(stream, 3).rowStarts[0];
    expect(fieldOffset(stream, start, 0)).toBe(start);
    expect(fieldOffset(stream, start, 1)).toBe(start + 4);
    expect(fieldOffset(stream, start, 2)).toBe(start + 8);
    expect(stream.readInt32BE(fieldOffset(stream, start, 2))).toBe(5);
  });
});

describe('boundsFromMessages', () => {
  /** The CopyData messages a stream of `rows` arrives in: one per row, the trailer alone, the header alone or with the first row. */
  function messagesOf(stream: Buffer, rowStarts: readonly number[], headerAlone: boolean): CopyMessages {
    const starts = [0, ...(headerAlone ? rowStarts : rowStarts.slice(1)), stream.length - 2];
    return { count: starts.length, secondStart: starts[1] ?? -1, previousStart: starts.at(-2) ?? -1, lastStart: starts.at(-1)! };
  }
  const rows = [[text('a'), null, text('')], [text('bb'), text('x'), null], [null, null, text('ccc')]];

  it('reads the bounds off the message boundaries as a scan finds them, the header alone or with the first row', () => {
    for (const count of [1, 2, 3]) {
      const stream = copyStream(rows.slice(0, count));
      const starts = [...frameCopyBinary(stream, 3).rowStarts].map((s) => s - 2);
      for (const headerAlone of [false, true]) expect(boundsFromMessages(stream, 3, messagesOf(stream, starts, headerAlone)), `${count} rows`).toEqual(scanCopyBinary(stream, 3));
    }
    expect(boundsFromMessages(copyStream([]), 3, { count: 1, secondStart: -1, previousStart: -1, lastStart: 0 })).toEqual(scanCopyBinary(copyStream([]), 3));
  });

  it('gives no answer (the caller scans) when the boundaries do not fit the stream', () => {
    const stream = copyStream(rows);
    const starts = [...frameCopyBinary(stream, 3).rowStarts].map((s) => s - 2);
    const right = messagesOf(stream, starts, false);
    // Two rows in the last message: the row before the trailer does not start there.
    expect(boundsFromMessages(stream, 3, { ...right, count: right.count - 1, previousStart: starts[1] })).toBeNull();
    // The trailer not in a message of its own.
    expect(boundsFromMessages(stream, 3, { ...right, lastStart: starts[2] })).toBeNull();
    // The wrong number of fields.
    expect(boundsFromMessages(stream, 4, right)).toBeNull();
  });
});
