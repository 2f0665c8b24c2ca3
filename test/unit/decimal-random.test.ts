// decodeNumeric against an independent reference on seeded random values: the wire form built
// the way Postgres sends it (base-10000 groups, leading and trailing zero groups dropped), the
// expected decimal128 computed from the value's text with BigInt. Magnitudes are drawn around
// every boundary the decoder's fast paths turn on (2^31, 2^32, 2^53, 10^15, 10^precision).
import { describe, expect, it } from 'vitest';
import { decodeNumeric } from '../../lambdas/core/page/decimal.ts';
import { random } from '../fuzz/random.ts';

/** Postgres's binary numeric of `digits` · 10^−dscale (digits: the decimal digits of |value|). */
function wire(negative: boolean, digits: string, dscale: number): Buffer {
  const intPart = digits.length > dscale ? digits.slice(0, digits.length - dscale) : '';
  const frac = digits.length > dscale ? digits.slice(digits.length - dscale) : digits.padStart(dscale, '0');
  const padInt = intPart.padStart(Math.ceil(intPart.length / 4) * 4, '0');
  const padFrac = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  let groups = [...(padInt.match(/.{4}/g) ?? []), ...(padFrac.match(/.{4}/g) ?? [])].map(Number);
  let weight = padInt.length / 4 - 1;
  while (groups.length > 0 && groups[0] === 0) { groups = groups.slice(1); weight--; }
  while (groups.length > 0 && groups[groups.length - 1] === 0) groups = groups.slice(0, -1);
  if (groups.length === 0) weight = 0;
  const buf = Buffer.alloc(8 + 2 * groups.length);
  buf.writeInt16BE(groups.length, 0);
  buf.writeInt16BE(weight, 2);
  buf.writeUInt16BE(negative && groups.length > 0 ? 0x4000 : 0, 4);
  buf.writeInt16BE(dscale, 6);
  groups.forEach((g, i) => buf.writeUInt16BE(g, 8 + 2 * i));
  return buf;
}

/** What decimal(precision, scale) holds for the value, or why it cannot: from the text alone. */
function reference(negative: boolean, digits: string, dscale: number, precision: number, scale: number): bigint | string {
  const magnitude = BigInt(digits);
  // value = magnitude · 10^−dscale; unscaled at `scale` = magnitude · 10^(scale − dscale).
  let unscaled: bigint;
  if (scale >= dscale) unscaled = magnitude * 10n ** BigInt(scale - dscale);
  else {
    const div = 10n ** BigInt(dscale - scale);
    if (magnitude % div !== 0n) return `has more than ${scale} fractional digits`;
    unscaled = magnitude / div;
  }
  if (unscaled >= 10n ** BigInt(precision)) return `has more than ${precision - scale} integer digits`;
  return negative ? -unscaled : unscaled;
}

function unscaledOf(words: Uint32Array): bigint {
  let v = 0n;
  for (let i = 3; i >= 0; i--) v = (v << 32n) | BigInt(words[i]);
  return v >= 1n << 127n ? v - (1n << 128n) : v;
}

const BOUNDARIES = [2n ** 31n, 2n ** 32n, 2n ** 53n, 10n ** 15n, 10n ** 16n, 2n ** 64n, 10n ** 38n];

/** A magnitude near a boundary, or of random width (up to 38 digits). */
function magnitude(next: () => number): bigint {
  const pick = next();
  if (pick < 0.4) {
    const b = BOUNDARIES[Math.floor(next() * BOUNDARIES.length)];
    const near = b + BigInt(Math.floor(next() * 2001) - 1000);
    return near < 0n ? 0n : near;
  }
  if (pick < 0.45) return 0n;
  const width = 1 + Math.floor(next() * 38);
  let s = '';
  for (let i = 0; i < width; i++) s += String(Math.floor(next() * 10));
  return BigInt(s);
}

describe('numeric → decimal128, seeded random against a BigInt reference', () => {
  it('agrees on 200,000 values and refusals around every fast-path boundary', () => {
    const next = random(20261130);
    const out = new Uint32Array(8);
    let checked = 0;
    let refused = 0;
    for (let n = 0; n < 200_000; n++) {
      const negative = next() < 0.5;
      const m = magnitude(next);
      const digits = m.toString();
      const scale = [0, 1, 2, 3, 4, 5, 6, 9, 12, 18, -2][Math.floor(next() * 11)];
      // The text's own scale: the column's, or more digits (zero or not), or fewer.
      const dscale = Math.max(0, scale + Math.floor(next() * 7) - 2);
      // Precision around the value's digit count, so both sides of 10^precision come up.
      const intDigits = Math.max(1, digits.length - dscale);
      const precision = Math.min(38, Math.max(1, Math.max(scale, 0) + intDigits + Math.floor(next() * 5) - 2));
      const buf = wire(negative, digits, dscale);
      const at = Math.floor(next() * 2);
      const expected = reference(negative, digits, dscale, precision, scale);
      const problem = decodeNumeric(buf, 0, precision, scale, out, at);
      const label = `${negative ? '-' : ''}${digits}e-${dscale} as decimal(${precision},${scale})`;
      if (typeof expected === 'string') {
        expect(problem, label).toBe(expected);
        refused++;
      } else {
        expect(problem, label).toBeNull();
        expect(unscaledOf(out.subarray(at * 4, at * 4 + 4)), label).toBe(expected);
      }
      checked++;
    }
    expect(checked).toBe(200_000);
    // Both outcomes are exercised in bulk.
    expect(refused).toBeGreaterThan(20_000);
    expect(checked - refused).toBeGreaterThan(20_000);
  });
});
