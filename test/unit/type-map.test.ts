import { describe, expect, it } from 'vitest';
import { decodeNumeric, numericToText } from '../../lambdas/core/page/decimal.ts';
import { decimalOf, numericTypmod, planColumn, type CatalogColumn } from '../../lambdas/core/source/type-map.ts';
import { timestampText } from '../../lambdas/core/page/values.ts';

const column = (typeName: string, extra: Partial<CatalogColumn> = {}): CatalogColumn => ({
  name: 'c', typeName, typeKind: 'b', elementTypeName: null, elementTypeKind: null, typmod: -1, formatted: typeName, notNull: false, ...extra,
});
const options = { unconstrainedNumericScale: 9 };

describe('type map', () => {
  it.each([
    ['int2', 'smallint'], ['int4', 'int'], ['int8', 'bigint'], ['float4', 'float'], ['float8', 'double'], ['bool', 'boolean'],
    ['text', 'string'], ['varchar', 'string'], ['bpchar', 'string'], ['date', 'date'], ['timestamp', 'timestamp'], ['timestamptz', 'timestamp'],
    ['bytea', 'binary'], ['uuid', 'string'], ['jsonb', 'string'], ['interval', 'string'], ['time', 'string'], ['inet', 'string'],
  ])('%s → %s', (pgType, glue) => {
    expect(planColumn('t', column(pgType), options).glueType).toBe(glue);
  });

  it('reads text-form types with ::text and quotes the identifier', () => {
    expect(planColumn('t', column('uuid', { name: 'my"id' }), options).select).toBe('"my""id"::text');
    expect(planColumn('t', column('int4', { name: 'select' }), options).select).toBe('"select"');
  });

  it('maps numeric(p,s) exactly, unconstrained to decimal(38,9) with a warning, p > 38 to text', () => {
    expect(planColumn('t', column('numeric', { typmod: ((12 << 16) | 2) + 4 }), options).glueType).toBe('decimal(12,2)');
    const free = planColumn('public.t', column('numeric'), options);
    expect(free.glueType).toBe('decimal(38,9)');
    expect(free.warning).toBe('public.t.c: unconstrained numeric exported as decimal(38,9); a value with more integer or fractional digits fails the table');
    const wide = planColumn('public.t', column('numeric', { typmod: ((50 << 16) | 2) + 4 }), options);
    expect([wide.glueType, wide.select]).toEqual(['string', '"c"::text']);
  });

  it('maps a scale above the precision to decimal(s,s), a negative scale to decimal(p − s,0), beyond 38 digits to text', () => {
    const typmod = (p: number, s: number) => ((p << 16) | (s & 0x7ff)) + 4;
    expect(planColumn('t', column('numeric', { typmod: typmod(2, 5) }), options).glueType).toBe('decimal(5,5)');
    expect(planColumn('t', column('numeric', { typmod: typmod(3, -2) }), options).glueType).toBe('decimal(5,0)');
    expect(planColumn('t', column('numeric', { typmod: typmod(1, 0) }), options).glueType).toBe('decimal(1,0)');
    expect(planColumn('t', column('numeric', { typmod: typmod(38, -1) }), options).glueType).toBe('string');
    const deep = planColumn('public.t', column('numeric', { typmod: typmod(5, 40) }), options);
    expect([deep.glueType, deep.select, deep.warning]).toEqual(['string', '"c"::text', 'public.t.c: numeric(5,40) needs more than 38 digits as a decimal; exported as its exact text form']);
    // an array's typmod is its element's: numeric(2,5)[] → array<decimal(5,5)>
    expect(planColumn('t', column('_numeric', { typmod: typmod(2, 5), elementTypeName: 'numeric', elementTypeKind: 'b' }), options).glueType).toBe('array<decimal(5,5)>');
    expect(decimalOf(10, -28)).toEqual({ kind: 'decimal', precision: 38, scale: 0 });
    expect(decimalOf(10, -29)).toBeNull();
  });

  it('maps arrays to array<element>, text-form elements through ::text[]', () => {
    expect(planColumn('t', column('_int4', { elementTypeName: 'int4', elementTypeKind: 'b' }), options).glueType).toBe('array<int>');
    const uuids = planColumn('t', column('_uuid', { elementTypeName: 'uuid', elementTypeKind: 'b' }), options);
    expect([uuids.glueType, uuids.select]).toEqual(['array<string>', '"c"::text[]']);
  });

  it('exports an unknown type as text with a warning', () => {
    const plan = planColumn('public.t', column('point'), options);
    expect([plan.glueType, plan.warning]).toEqual(['string', 'public.t.c: type point has no lake type; exported as its text form']);
  });

  it('decodes numeric typmods, negative scale included', () => {
    expect(numericTypmod(-1)).toBeNull();
    expect(numericTypmod(((38 << 16) | 10) + 4)).toEqual({ precision: 38, scale: 10 });
    expect(numericTypmod(((5 << 16) | 0x7fe) + 4)).toEqual({ precision: 5, scale: -2 });
  });
});

/** Binary numeric for a decimal string, as Postgres sends it. */
function numericWire(text: string): Buffer {
  const negative = text.startsWith('-');
  const [intPart, frac = ''] = text.replace('-', '').split('.');
  const intDigits = intPart.replace(/^0+/, '');
  const padInt = intDigits.padStart(Math.ceil(intDigits.length / 4) * 4, '0');
  const padFrac = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  const groups = [...(padInt.match(/.{4}/g) ?? []), ...(padFrac.match(/.{4}/g) ?? [])].map(Number);
  const weight = padInt.length / 4 - 1;
  const buf = Buffer.alloc(8 + 2 * groups.length);
  buf.writeInt16BE(groups.length, 0);
  buf.writeInt16BE(weight, 2);
  buf.writeUInt16BE(negative ? 0x4000 : 0, 4);
  buf.writeInt16BE(frac.length, 6);
  groups.forEach((g, i) => buf.writeUInt16BE(g, 8 + 2 * i));
  return buf;
}

function unscaled(words: Uint32Array): bigint {
  let v = 0n;
  for (let i = 3; i >= 0; i--) v = (v << 32n) | BigInt(words[i]);
  return v >= 1n << 127n ? v - (1n << 128n) : v;
}

describe('numeric → decimal128', () => {
  it.each([
    ['0', 2, '0'], ['1.5', 2, '150'], ['-1.5', 2, '-150'], ['123456789012.34', 2, '12345678901234'],
    ['99999999999999999999999999999999999999', 0, '99999999999999999999999999999999999999'],
    ['-99999999999999999999999999999999999999', 0, '-99999999999999999999999999999999999999'],
    ['0.000000001', 9, '1'], ['-12345678901234567890123456789.123456789', 9, '-12345678901234567890123456789123456789'],
    ['4294967296', 0, '4294967296'], ['-4294967296', 0, '-4294967296'], ['-1', 0, '-1'],
  ])('%s at scale %i → %s', (text, scale, expected) => {
    const out = new Uint32Array(4);
    expect(decodeNumeric(numericWire(text), 0, 38, scale, out, 0)).toBeNull();
    expect(unscaled(out).toString()).toBe(expected);
    expect(numericToText(numericWire(text), 0)).toBe(text);
  });

  it('refuses what does not fit, saying why', () => {
    const out = new Uint32Array(4);
    expect(decodeNumeric(numericWire('1000'), 0, 5, 2, out, 0)).toBe('has more than 3 integer digits');
    expect(decodeNumeric(numericWire('0.001'), 0, 10, 2, out, 0)).toBe('has more than 2 fractional digits');
    expect(decodeNumeric(numericWire('1.500'), 0, 10, 2, out, 0)).toBeNull(); // trailing zeros are not digits lost
    const nan = Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0]);
    // the caller prints the value; the reason must not repeat it
    expect([numericToText(nan, 0), decodeNumeric(nan, 0, 10, 2, out, 0)]).toEqual(['NaN', 'has no decimal representation']);
  });
});

describe('timestamp text', () => {
  it('prints µs exactly, BC and infinity included', () => {
    expect(timestampText(0n, true)).toBe('2000-01-01 00:00:00.000000+00');
    expect(timestampText(-1n, false)).toBe('1999-12-31 23:59:59.999999');
    expect(timestampText(0x7fffffffffffffffn, true)).toBe('infinity');
    expect(timestampText(-63_113_904_000_000_000n - 86_400_000_000n * 366n, false)).toMatch(/ BC$/);
  });
});
