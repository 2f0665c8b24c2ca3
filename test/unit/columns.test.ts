// Column decoders on hand-built binary COPY fields: lists go through the same decoders as
// top-level columns, so a page whose arrays hold many more elements than it has rows reads back
// exact (it read zeros where the element builder grew: issue 11).
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { Arena, decodeColumn, type ColumnContext, type FieldSlots } from '../../lambdas/core/page/decode.ts';
import { ValueError } from '../../lambdas/core/errors.ts';
import type { LakeType } from '../../lambdas/core/source/type-map.ts';
import { fieldText, timestampText } from '../../lambdas/core/page/values.ts';

/** One field per row; `null` is SQL NULL. */
function slots(fields: (Buffer | null)[]): FieldSlots {
  const parts: Buffer[] = [];
  const fieldPos = new Int32Array(fields.length);
  const fieldLen = new Int32Array(fields.length);
  let at = 0;
  fields.forEach((f, i) => {
    fieldPos[i] = at;
    fieldLen[i] = f === null ? -1 : f.length;
    if (f) { parts.push(f); at += f.length; }
  });
  return { buf: Buffer.concat(parts), fieldPos, fieldLen, stride: 1 };
}

function int4(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
}

/** A one-dimensional array as Postgres sends it (lower bound 1). */
function array(oid: number, elements: (Buffer | null)[]): Buffer {
  if (elements.length === 0) return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, oid]);
  const head = Buffer.alloc(20);
  head.writeInt32BE(1, 0);
  head.writeInt32BE(elements.some((e) => e === null) ? 1 : 0, 4);
  head.writeUInt32BE(oid, 8);
  head.writeInt32BE(elements.length, 12);
  head.writeInt32BE(1, 16);
  return Buffer.concat([head, ...elements.flatMap((e) => (e === null ? [int4(-1)] : [int4(e.length), e]))]);
}

const ctx = (keys: string[]): ColumnContext => ({ where: 'public.t.c', rowKey: (row) => `id=${keys[row]}` });
const identity = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
const INT4_LIST: LakeType = { kind: 'list', element: { kind: 'int32' } };

function decode(type: LakeType, fields: (Buffer | null)[], mem?: Arena): unknown[] {
  const data = decodeColumn(type, slots(fields), 0, identity(fields.length), fields.length, ctx(fields.map((_, i) => String(i + 1))), mem);
  return [...arrow.makeVector(data)].map((v) => (v === null ? null : [...(v as arrow.Vector)]));
}

describe('list columns', () => {
  it('reads back every element of a page whose arrays hold more elements than it has rows', () => {
    // 3 rows, 1 + 2 + 300 elements: every growth point of a one-element-per-row child is crossed.
    const long = Array.from({ length: 300 }, (_, i) => 10_000 + i);
    const rows = [[7], [10302, 10303], long];
    expect(decode(INT4_LIST, rows.map((r) => array(23, r.map(int4))))).toEqual(rows);
  });

  it('keeps NULL arrays, NULL elements and empty arrays apart', () => {
    const fields = [array(23, [int4(1), null, int4(3)]), null, array(23, []), array(23, [null])];
    expect(decode(INT4_LIST, fields)).toEqual([[1, null, 3], null, [], [null]]);
  });

  it('decodes elements of every width with the column decoders, arena memory included', () => {
    const arena = new Arena(64);
    const text: LakeType = { kind: 'list', element: { kind: 'string' } };
    const words = Array.from({ length: 50 }, (_, i) => `w${i}ü`);
    expect(decode(text, [array(25, words.map((w) => Buffer.from(w))), array(25, [Buffer.from('')])], arena)).toEqual([words, ['']]);
    const int8: LakeType = { kind: 'list', element: { kind: 'int64' } };
    const big = Buffer.alloc(8);
    big.writeBigInt64BE(-9223372036854775808n);
    expect(decode(int8, [array(20, [big, big, big])])).toEqual([[-9223372036854775808n, -9223372036854775808n, -9223372036854775808n]]);
    const dates: LakeType = { kind: 'list', element: { kind: 'date' } };
    // day 0 of Postgres (2000-01-01) is day 10,957 of Arrow
    expect(decode(dates, [array(1082, [int4(0), int4(1), int4(-1)])])).toEqual([[946684800000, 946771200000, 946598400000]]);
  });

  it('names table, column, value and the owning row key for a bad element', () => {
    const nan = Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0]);
    const one = Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    const decimal: LakeType = { kind: 'list', element: { kind: 'decimal', precision: 10, scale: 2 } };
    const fields = [array(1700, [one]), array(1700, [one, one, nan])];
    expect(() => decode(decimal, fields)).toThrow(new ValueError('public.t.c[]: value NaN has no decimal representation (column is decimal(10,2); row id=2)'));
  });

  it('refuses a two-dimensional array by name', () => {
    const head = Buffer.alloc(28);
    head.writeInt32BE(2, 0);
    head.writeUInt32BE(23, 8);
    head.writeInt32BE(2, 12); head.writeInt32BE(1, 16);
    head.writeInt32BE(3, 20); head.writeInt32BE(1, 24);
    expect(() => decode(INT4_LIST, [array(23, []), head])).toThrow(new ValueError('public.t.c: value a 2×3 array cannot be stored as array<…>; only one-dimensional arrays are supported (row id=2)'));
  });
});

describe('timestamps', () => {
  it('names the value of a timestamp past Parquet\'s µs range', () => {
    // 294248-01-01 00:00:00 (µs since 2000): past 2^63 − 1 µs since 1970
    const field = Buffer.alloc(8);
    field.writeBigInt64BE(9_222_456_096_000_000_000n);
    const type: LakeType = { kind: 'timestamp', utc: true };
    expect(() => decode({ kind: 'list', element: type }, [array(1184, [field])])).toThrow(/^public\.t\.c\[\]: value 294248-01-01 00:00:00\.000000\+00 does not fit Parquet's µs since 1970 .*\(row id=1\)$/);
  });
});

describe('value text', () => {
  it('prints dates and timestamps beyond JavaScript Date\'s ±275,760 years', () => {
    expect(timestampText(9_222_456_096_000_000_000n, true)).toBe('294248-01-01 00:00:00.000000+00');
    const lastDate = Buffer.alloc(4);
    lastDate.writeInt32BE(2_145_031_948); // Postgres's last date, days since 2000
    expect(fieldText({ kind: 'date' }, lastDate, 0, 4)).toBe('5874897-12-31');
    lastDate.writeInt32BE(-2_451_545); // Postgres's first date
    expect(fieldText({ kind: 'date' }, lastDate, 0, 4)).toBe('4714-11-24 BC');
  });
});

describe('array bounds', () => {
  it('refuses an array whose lower bound is not 1, naming its bounds', () => {
    const shifted = array(23, [int4(1), int4(2)]);
    shifted.writeInt32BE(0, 16); // '[0:1]={1,2}'
    expect(() => decode(INT4_LIST, [shifted])).toThrow(new ValueError('public.t.c: value [0:1]={…} starts at index 0; array<…> starts at 1, so it cannot be stored exactly (row id=1)'));
  });
});
