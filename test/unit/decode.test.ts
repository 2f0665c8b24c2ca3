// The column decoders (lambdas/core/page/decode.ts) over binary COPY field bytes written as
// PostgreSQL's send functions write them: big-endian integers and floats, days and µs since
// 2000-01-01 (±infinity as the extreme int32/int64), numeric as base-10000 digit groups, arrays
// with their dimensions. Values are read back through apache-arrow.
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { Arena, decodeColumn, type ColumnContext, type FieldSlots } from '../../lambdas/core/page/decode.ts';
import type { LakeType } from '../../lambdas/core/source/type-map.ts';
import { ValueError } from '../../lambdas/core/errors.ts';

const be = {
  i16: (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; },
  i32: (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; },
  i64: (n: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return b; },
  f32: (n: number) => { const b = Buffer.alloc(4); b.writeFloatBE(n); return b; },
  f64: (n: number) => { const b = Buffer.alloc(8); b.writeDoubleBE(n); return b; },
};

/** numeric_send: ndigits, weight, sign, dscale, then the base-10000 digit groups. */
function numeric(groups: number[], weight: number, dscale: number, sign = 0): Buffer {
  return Buffer.concat([be.i16(groups.length), be.i16(weight), Buffer.from([sign >> 8, sign & 0xff]), be.i16(dscale), ...groups.map(be.i16)]);
}

/** array_send of a one-dimensional array (element oid 23 = int4; the decoder does not read it). */
function array(elements: (Buffer | null)[], lowerBound = 1, dims?: number[]): Buffer {
  const sizes = dims ?? [elements.length];
  return Buffer.concat([
    be.i32(sizes.length), be.i32(elements.some((e) => e === null) ? 1 : 0), be.i32(23),
    ...sizes.flatMap((size) => [be.i32(size), be.i32(lowerBound)]),
    ...elements.map((e) => (e === null ? be.i32(-1) : Buffer.concat([be.i32(e.length), e]))),
  ]);
}

/** One column of fields laid out as a framed page lays them out (stride 1), `null` for NULL. */
function slots(fields: (Buffer | null)[]): FieldSlots {
  const buf = Buffer.concat(fields.map((f) => f ?? Buffer.alloc(0)));
  const fieldPos = new Int32Array(fields.length);
  const fieldLen = new Int32Array(fields.length);
  let pos = 0;
  fields.forEach((f, i) => {
    fieldPos[i] = pos;
    fieldLen[i] = f === null ? -1 : f.length;
    pos += f?.length ?? 0;
  });
  return { buf, fieldPos, fieldLen, stride: 1 };
}

const ctx: ColumnContext = { where: 'public.orders.amount', rowKey: (row) => `id=${row + 1}` };

function decode(type: LakeType, fields: (Buffer | null)[], rows?: number[]): unknown[] {
  const order = Int32Array.from(rows ?? fields.map((_, i) => i));
  return [...arrow.makeVector(decodeColumn(type, slots(fields), 0, order, order.length, ctx))] as unknown[];
}
const values = (type: LakeType, fields: (Buffer | null)[], rows?: number[]) => [...decode(type, fields, rows)].map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));

describe('decodeColumn', () => {
  it('reads integers of each width, negatives and NULLs', () => {
    expect(values({ kind: 'int16' }, [be.i16(-32768), null, be.i16(32767)])).toEqual([-32768, null, 32767]);
    expect(values({ kind: 'int32' }, [be.i32(-2147483648), be.i32(7), null])).toEqual([-2147483648, 7, null]);
    expect(values({ kind: 'int64' }, [be.i64(-9223372036854775808n), be.i64(9007199254740993n), null])).toEqual([-9223372036854775808n, 9007199254740993n, null]);
  });

  it('keeps float bit patterns: NaN, ±Infinity, −0', () => {
    const doubles = values({ kind: 'float64' }, [be.f64(Number.NaN), be.f64(-Infinity), be.f64(-0), be.f64(0.1)]);
    expect(doubles[0]).toBeNaN();
    expect(doubles.slice(1)).toEqual([-Infinity, -0, 0.1]);
    expect(Object.is(doubles[2], -0)).toBe(true);
    expect(values({ kind: 'float32' }, [be.f32(1.5), null, be.f32(Infinity)])).toEqual([1.5, null, Infinity]);
  });

  it('reads booleans from their one byte', () => {
    expect(values({ kind: 'bool' }, [Buffer.from([1]), Buffer.from([0]), null])).toEqual([true, false, null]);
  });

  it('moves dates from 2000-01-01 to 1970-01-01, ±infinity to DuckDB\'s ±(2^31 − 1)', () => {
    const data = decodeColumn({ kind: 'date' }, slots([be.i32(0), be.i32(-10957), be.i32(2147483647), be.i32(-2147483648)]), 0, Int32Array.from([0, 1, 2, 3]), 4, ctx);
    expect([...(data.values as Int32Array)]).toEqual([10957, 0, 2147483647, -2147483647]);
  });

  it('moves timestamps from µs since 2000 to µs since 1970, ±infinity to ±(2^63 − 1), for UTC and local ones', () => {
    for (const utc of [true, false]) {
      const data = decodeColumn({ kind: 'timestamp', utc }, slots([be.i64(0n), be.i64(-946684800000001n), be.i64(9223372036854775807n), be.i64(-9223372036854775808n), null]), 0, Int32Array.from([0, 1, 2, 3, 4]), 5, ctx);
      expect([...(data.values as BigInt64Array)].slice(0, 4)).toEqual([946684800000000n, -1n, 9223372036854775807n, -9223372036854775807n]);
      expect((data.type as arrow.TimestampMicrosecond).timezone).toBe(utc ? 'UTC' : null);
      expect(data.nullCount).toBe(1);
    }
  });

  it('refuses a timestamp past Parquet\'s µs since 1970, naming column, value and row', () => {
    const late = be.i64(9223372036854775806n - 946684800000000n + 1n);
    expect(() => decode({ kind: 'timestamp', utc: true }, [be.i64(0n), late])).toThrow(ValueError);
    expect(() => decode({ kind: 'timestamp', utc: true }, [be.i64(0n), late])).toThrow(/^public\.orders\.amount: value .+ does not fit Parquet's µs since 1970 .*\(row id=2\)$/);
  });

  it('writes numeric as the unscaled 128-bit integer at the column\'s scale, negatives in two\'s complement', () => {
    const type: LakeType = { kind: 'decimal', precision: 12, scale: 2 };
    // 123.45 = 123 · 10000^0 + 4500 · 10000^−1; −0.5; 0; 10^9 − 0.01 (four groups).
    const data = decodeColumn(type, slots([numeric([123, 4500], 0, 2), numeric([5000], -1, 1, 0x4000), numeric([], 0, 0), numeric([9, 9999, 9999, 9900], 2, 2)]), 0, Int32Array.from([0, 1, 2, 3]), 4, ctx);
    const words = data.values as Uint32Array;
    const unscaled = (i: number) => BigInt.asIntN(128, [0, 1, 2, 3].reduce((v, w) => v | (BigInt(words[4 * i + w]) << BigInt(32 * w)), 0n));
    expect([0, 1, 2, 3].map(unscaled)).toEqual([12345n, -50n, 0n, 99999999999n]);
    expect((data.type as arrow.Decimal).scale).toBe(2);
    expect((data.type as arrow.Decimal).precision).toBe(12);
  });

  it('refuses a numeric its decimal cannot hold exactly, naming value, column type and row', () => {
    const type: LakeType = { kind: 'decimal', precision: 4, scale: 2 };
    expect(() => decode(type, [numeric([123, 4500], 0, 2)])).toThrow('public.orders.amount: value 123.45 has more than 2 integer digits (column is decimal(4,2); row id=1)');
    expect(() => decode(type, [numeric([1, 2345], 0, 4)])).toThrow('public.orders.amount: value 1.2345 has more than 2 fractional digits (column is decimal(4,2); row id=1)');
    expect(() => decode(type, [numeric([], 0, 0), numeric([], 0, 0, 0xc000)])).toThrow('public.orders.amount: value NaN has no decimal representation (column is decimal(4,2); row id=2)');
  });

  it('copies text and bytes into one buffer with offsets, in the order of the rows asked for', () => {
    const fields = [Buffer.from('ä€😀'), null, Buffer.from(''), Buffer.from('x'.repeat(40))];
    expect(values({ kind: 'string' }, fields)).toEqual(['ä€😀', null, '', 'x'.repeat(40)]);
    expect(values({ kind: 'string' }, fields, [3, 0])).toEqual(['x'.repeat(40), 'ä€😀']);
    expect(values({ kind: 'binary' }, [Buffer.from([0, 255, 10]), null])).toEqual(['00ff0a', null]);
  });

  it('decodes one-dimensional arrays as lists, NULL elements and NULL and empty arrays kept', () => {
    const type: LakeType = { kind: 'list', element: { kind: 'int32' } };
    const lists = decode(type, [array([be.i32(1), null, be.i32(3)]), null, array([]), array([be.i32(-4)])]);
    expect(lists.map((l) => (l === null ? null : [...(l as arrow.Vector)]))).toEqual([[1, null, 3], null, [], [-4]]);
  });

  it('refuses arrays a list would change: several dimensions, or a lower bound other than 1', () => {
    const type: LakeType = { kind: 'list', element: { kind: 'int32' } };
    expect(() => decode(type, [array([be.i32(1), be.i32(2), be.i32(3), be.i32(4), be.i32(5), be.i32(6)], 1, [2, 3])]))
      .toThrow('public.orders.amount: value a 2×3 array cannot be stored as array<…>; only one-dimensional arrays are supported (row id=1)');
    expect(() => decode(type, [array([be.i32(1), be.i32(2), be.i32(3)], 0)]))
      .toThrow('public.orders.amount: value [0:2]={…} starts at index 0; array<…> starts at 1, so it cannot be stored exactly (row id=1)');
  });

  it('names the array and its row when an element does not fit', () => {
    const type: LakeType = { kind: 'list', element: { kind: 'decimal', precision: 3, scale: 0 } };
    expect(() => decode(type, [array([numeric([1], 0, 0)]), array([numeric([7], 0, 0), numeric([1234], 0, 0)])]))
      .toThrow('public.orders.amount[]: value 1234 has more than 3 integer digits (column is decimal(3,0); row id=2)');
  });

  it('gives the same values from an arena, reused between files, as from fresh memory', () => {
    const arena = new Arena(64);
    const fields = slots([be.i64(5n), null, be.i64(-6n)]);
    const rows = Int32Array.from([0, 1, 2]);
    for (let round = 0; round < 3; round++) {
      arena.reset();
      const data = decodeColumn({ kind: 'int64' }, fields, 0, rows, 3, ctx, arena);
      expect([...arrow.makeVector(data)]).toEqual([5n, null, -6n]);
      // Something else in the arena between columns must not leak into the next one.
      arena.bytes(100).fill(0xab);
    }
  });
});
