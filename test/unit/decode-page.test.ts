// The whole-page decoder (lambdas/core/page/decode-page.ts) against the column decoders
// (decode.ts) it replaces on the hot path: seeded random pages of every scalar type, with NULLs,
// ±infinity, extreme and long values, decoded both ways and compared value by value, over the
// whole page and over ranges that start and end anywhere (mid-byte of the validity bits). Pages
// are decoded one after another into the same scratch, larger and smaller, so reuse and growth
// are crossed. A value that does not fit fails with the same message both ways; a truncated
// stream fails by name.
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { frameCopyBinary } from '../../lambdas/core/page/copy-binary.ts';
import { decodeColumn, type ColumnContext } from '../../lambdas/core/page/decode.ts';
import { PageScratch, decodeWholePage, sliceColumns } from '../../lambdas/core/page/decode-page.ts';
import type { LakeType } from '../../lambdas/core/source/type-map.ts';
import { random } from '../fuzz/random.ts';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const i16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const i32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const i64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return b; };

const TYPES: LakeType[] = [
  { kind: 'int16' }, { kind: 'int32' }, { kind: 'int64' }, { kind: 'float32' }, { kind: 'float64' }, { kind: 'bool' },
  { kind: 'date' }, { kind: 'timestamp', utc: true }, { kind: 'timestamp', utc: false },
  { kind: 'decimal', precision: 12, scale: 2 }, { kind: 'decimal', precision: 38, scale: 10 },
  { kind: 'string' }, { kind: 'binary' },
];

/** numeric_send of an integer number of units at `scale` (value = units / 10^scale). */
function numeric(units: bigint, scale: number): Buffer {
  const negative = units < 0n;
  let digits = (negative ? -units : units).toString().padStart(scale + 1, '0');
  let intPart = digits.slice(0, digits.length - scale);
  let frac = digits.slice(digits.length - scale);
  intPart = intPart.padStart(Math.ceil(intPart.length / 4) * 4, '0');
  frac = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  digits = intPart + frac;
  const groups: number[] = [];
  for (let i = 0; i < digits.length; i += 4) groups.push(Number(digits.slice(i, i + 4)));
  let weight = intPart.length / 4 - 1;
  while (groups.length && groups[0] === 0) { groups.shift(); weight--; }
  while (groups.length && groups[groups.length - 1] === 0) groups.pop();
  if (!groups.length) weight = 0;
  return Buffer.concat([i16(groups.length), i16(weight), Buffer.from([negative ? 0x40 : 0, 0]), i16(scale), ...groups.map(i16)]);
}

function value(type: LakeType, next: () => number): Buffer {
  const int = (bits: number) => BigInt.asIntN(bits, BigInt(Math.floor(next() * 2 ** 32)) << 32n | BigInt(Math.floor(next() * 2 ** 32)));
  const pick = <T>(xs: T[]) => xs[Math.floor(next() * xs.length)];
  switch (type.kind) {
    case 'int16': return i16(Number(int(16)));
    case 'int32': return i32(Number(int(32)));
    case 'int64': return i64(pick([int(64), -(2n ** 63n), 2n ** 63n - 1n, 0n]));
    case 'float32': { const b = Buffer.alloc(4); b.writeFloatBE(pick([next() * 1e6 - 5e5, -0, Number.NaN, Number.POSITIVE_INFINITY])); return b; }
    case 'float64': { const b = Buffer.alloc(8); b.writeDoubleBE(pick([next() * 1e300, -0, Number.NaN, Number.NEGATIVE_INFINITY, 5e-324])); return b; }
    case 'bool': return Buffer.from([next() < 0.5 ? 0 : 1]);
    case 'date': return i32(pick([Math.floor(next() * 2_000_000) - 1_000_000, 0x7fffffff, -0x80000000, -2451545]));
    // µs since 2000 up to ±200,000 years; ±infinity.
    case 'timestamp': return i64(pick([BigInt(Math.floor((next() - 0.5) * 2 ** 52)) * 1400n, 2n ** 63n - 1n, -(2n ** 63n), 0n]));
    case 'decimal': {
      const limit = 10n ** BigInt(type.precision);
      const units = BigInt(Math.floor(next() * 2 ** 53)) * BigInt(Math.floor(next() * 2 ** 53)) % limit;
      return numeric(next() < 0.3 ? -units : units, type.scale);
    }
    case 'string': case 'binary': {
      const length = pick([0, 1, 5, 16, 17, 60, 300]);
      const text = Array.from({ length }, () => pick(['a', 'Z', '0', ' ', 'é', '東', '😀', '"', '\\'])).join('');
      return Buffer.from(text, 'utf8');
    }
    case 'list': throw new Error('not generated');
  }
}

/** A complete binary COPY stream of `rows` random rows of TYPES (a header extension on odd seeds). */
function page(seed: number, rows: number): Buffer {
  const next = random(seed);
  const extension = seed % 2 ? Buffer.from('ext!') : Buffer.alloc(0);
  const parts: Buffer[] = [SIGNATURE, i32(0), i32(extension.length), extension];
  const nullRate = [0, 0.2, 0.9][seed % 3];
  for (let r = 0; r < rows; r++) {
    parts.push(i16(TYPES.length));
    for (const type of TYPES) {
      if (next() < nullRate) parts.push(i32(-1));
      else { const v = value(type, next); parts.push(i32(v.length), v); }
    }
  }
  parts.push(i16(-1));
  return Buffer.concat(parts);
}

const ctx: ColumnContext = { where: 't.c', rowKey: (row) => `row ${row}` };

/** Every value of `data` as its bytes in hex (NULL for NULL): exact, whatever the type (-0, NaN, ±infinity sentinels). */
function dump(data: arrow.Data): string[] {
  const out: string[] = [];
  const values = data.values as ArrayBufferView;
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const width = arrow.DataType.isBool(data.type) ? 0 : values instanceof Uint8Array && data.valueOffsets ? -1 : values.byteLength / Math.max(data.length, 1) || 0;
  for (let i = 0; i < data.length; i++) {
    if (!data.getValid(i)) { out.push('NULL'); continue; }
    if (arrow.DataType.isBool(data.type)) out.push(String((bytes[(data.offset + i) >> 3] >> ((data.offset + i) & 7)) & 1));
    else if (data.valueOffsets) out.push(Buffer.from(bytes.subarray(data.valueOffsets[i], data.valueOffsets[i + 1])).toString('hex'));
    else out.push(Buffer.from(bytes.subarray(i * width, (i + 1) * width)).toString('hex'));
  }
  return out;
}

describe('decodeWholePage', () => {
  it('gives every value decodeColumn gives, for whole pages and any range of their rows', () => {
    const scratch = new PageScratch();
    // Sizes around the scratch's first capacity (1024 rows) and its doublings, smaller after larger.
    for (const [seed, rows] of [[1, 1], [2, 1023], [3, 1024], [4, 3000], [5, 7], [6, 0], [7, 5000], [8, 100], [9, 2049]]) {
      const copy = page(seed, rows);
      const whole = decodeWholePage(copy, TYPES, -1, () => ctx, scratch);
      const framed = frameCopyBinary(copy, TYPES.length);
      expect(whole.rowCount, `seed ${seed}`).toBe(rows);
      expect([...whole.rowStarts], `seed ${seed}`).toEqual([...framed.rowStarts]);
      const slots = { buf: copy, fieldPos: framed.fieldPos, fieldLen: framed.fieldLen, stride: framed.fieldCount };
      const next = random(seed * 31);
      const ranges: [number, number][] = [[0, rows]];
      for (let i = 0; i < 6 && rows > 0; i++) {
        const a = Math.floor(next() * rows);
        ranges.push([a, a + Math.floor(next() * (rows - a + 1))]);
      }
      for (const [from, to] of ranges) {
        const sliced = sliceColumns(whole, from, to);
        const rowsOf = Int32Array.from({ length: to - from }, (_, i) => from + i);
        TYPES.forEach((type, f) => {
          const expected = decodeColumn(type, slots, f, rowsOf, rowsOf.length, ctx);
          const label = `seed ${seed}, rows ${from}–${to}, ${JSON.stringify(type)}`;
          expect(sliced[f].length, label).toBe(to - from);
          expect(sliced[f].nullCount, label).toBe(expected.nullCount);
          expect(dump(sliced[f]), label).toEqual(dump(expected));
        });
      }
    }
  });

  it('keeps the partition value of each row where the framing has it', () => {
    const copy = page(11, 500);
    const whole = decodeWholePage(copy, TYPES, 7, () => ctx, new PageScratch());
    const framed = frameCopyBinary(copy, TYPES.length);
    expect([...whole.partitionPos]).toEqual(Array.from({ length: 500 }, (_, r) => framed.fieldPos[r * TYPES.length + 7]));
    expect([...whole.partitionLen]).toEqual(Array.from({ length: 500 }, (_, r) => framed.fieldLen[r * TYPES.length + 7]));
  });

  it('fails on a value that does not fit with the message decodeColumn gives, naming the row', () => {
    const types: LakeType[] = [{ kind: 'int32' }, { kind: 'decimal', precision: 5, scale: 2 }, { kind: 'timestamp', utc: true }];
    const stream = (fields: Buffer[]) => Buffer.concat([SIGNATURE, i32(0), i32(0), i16(3), ...fields.flatMap((f) => [i32(f.length), f]), i16(3), ...fields.flatMap((f) => [i32(f.length), f]), i16(-1)]);
    const rowKey = (field: number, starts: Int32Array): ColumnContext => ({ where: `t.c${field}`, rowKey: (row) => `start ${starts[row]}` });
    const errorOf = (copy: Buffer, field: number) => {
      const framed = frameCopyBinary(copy, 3);
      const slots = { buf: copy, fieldPos: framed.fieldPos, fieldLen: framed.fieldLen, stride: 3 };
      try {
        decodeColumn(types[field], slots, field, Int32Array.from([0, 1]), 2, rowKey(field, framed.rowStarts));
      } catch (error) {
        return (error as Error).message;
      }
      return null;
    };
    const tooBig = stream([i32(1), numeric(123456n, 2), i64(0n)]);
    expect(() => decodeWholePage(tooBig, types, -1, rowKey, new PageScratch())).toThrow(errorOf(tooBig, 1)!);
    expect(errorOf(tooBig, 1)).toMatch(/^t\.c1: value 1234\.56 has more than 3 integer digits \(column is decimal\(5,2\); row start 21\)$/);
    const pastEnd = stream([i32(1), numeric(1n, 2), i64(2n ** 63n - 2n)]);
    expect(() => decodeWholePage(pastEnd, types, -1, rowKey, new PageScratch())).toThrow(errorOf(pastEnd, 2)!);
  });

  it('fails by name on a stream cut short or with the wrong field count', () => {
    const copy = page(12, 20);
    expect(() => decodeWholePage(copy.subarray(0, copy.length - 40), TYPES, -1, () => ctx, new PageScratch())).toThrow(/^binary COPY stream ended (inside a tuple|without its trailer)$/);
    expect(() => decodeWholePage(copy, TYPES.slice(1), -1, () => ctx, new PageScratch())).toThrow(`binary COPY tuple has ${TYPES.length} fields, expected ${TYPES.length - 1}`);
    expect(() => decodeWholePage(Buffer.from('not a copy stream at all'), TYPES, -1, () => ctx, new PageScratch())).toThrow('binary COPY stream has no PGCOPY signature');
  });
});
