// Postgres binary numeric → 128-bit two's complement unscaled integer at a fixed scale, exactly.
// Wire format: int16 ndigits, int16 weight, uint16 sign, int16 dscale, then ndigits base-10000
// digits, most significant first; value = Σ digit[i] · 10000^(weight − i).

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;

const TWO_32 = 4294967296;
const SAFE = Number.MAX_SAFE_INTEGER;
const POW10: number[] = Array.from({ length: 16 }, (_, i) => 10 ** i);
const POW10N: bigint[] = Array.from({ length: 80 }, (_, i) => 10n ** BigInt(i));

/**
 * Why a numeric cannot become decimal(precision, scale), as a phrase that follows the value
 * ("has more than 2 fractional digits"); null when it can (result in `out`).
 */
export function decodeNumeric(
  buf: Buffer, pos: number, precision: number, scale: number, out: Uint32Array, outIndex: number,
): string | null {
  // Bytes read inline rather than through Buffer#readInt16BE (once per row of a decimal column:
  // this function took ~60 ns a value on the benchmark's numeric(12,2), ~30 ns now).
  const ndigits = (buf[pos] << 24 >> 16) | buf[pos + 1];
  const weight = (buf[pos + 2] << 24 >> 16) | buf[pos + 3];
  const sign = (buf[pos + 4] << 8) | buf[pos + 5];
  // The caller's message names the value (numericToText prints NaN and ±Infinity).
  if (sign === NUMERIC_NAN || sign === NUMERIC_PINF || sign === NUMERIC_NINF) return 'has no decimal representation';
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) return `unknown numeric sign 0x${sign.toString(16)}`;
  // Exponent (base 10) of the last digit group, then shifted by the target scale.
  const shift = 4 * (weight - ndigits + 1) + scale;
  let digits = pos + 8;
  // Fast path: the digit groups fit a double exactly.
  let acc = 0;
  let i = 0;
  for (; i < ndigits && acc <= (SAFE - 9999) / 10000; i++) acc = acc * 10000 + ((buf[digits + 2 * i] << 8) | buf[digits + 2 * i + 1]);
  let big: bigint | null = null;
  if (i < ndigits) {
    big = BigInt(acc);
    for (; i < ndigits; i++) big = big * 10000n + BigInt(buf.readUInt16BE(digits + 2 * i));
  }
  if (big === null && shift >= 0 && shift < 16 && acc * POW10[shift] <= SAFE) {
    acc *= POW10[shift];
  } else if (big === null && shift < 0 && shift > -16) {
    const div = POW10[-shift];
    // Below 2^31 an integer remainder (a double's is a call into the C library).
    if ((acc <= 0x7fffffff ? (acc | 0) % div : acc % div) !== 0) return `has more than ${scale} fractional digits`;
    acc /= div;
  } else {
    big ??= BigInt(acc);
    if (shift >= 0) big *= POW10N[shift] ?? 10n ** BigInt(shift);
    else {
      const div = POW10N[-shift] ?? 10n ** BigInt(-shift);
      if (big % div !== 0n) return `has more than ${scale} fractional digits`;
      big /= div;
    }
  }
  const negative = sign === NUMERIC_NEG;
  const o = outIndex * 4;
  if (big === null) {
    if (acc >= POW10[Math.min(precision, 15)] && precision <= 15) return `has more than ${precision - scale} integer digits`;
    // acc < 2^53: the words without a double remainder.
    let hi = acc < TWO_32 ? 0 : Math.floor(acc / TWO_32);
    let lo = acc - hi * TWO_32;
    if (negative && acc !== 0) {
      // two's complement of (hi, lo) across 128 bits
      lo = (~lo >>> 0) + 1;
      hi = ~hi >>> 0;
      if (lo === TWO_32) { lo = 0; hi = (hi + 1) >>> 0; }
      out[o] = lo; out[o + 1] = hi; out[o + 2] = 0xffffffff; out[o + 3] = 0xffffffff;
    } else {
      out[o] = lo; out[o + 1] = hi; out[o + 2] = 0; out[o + 3] = 0;
    }
    return null;
  }
  if (big >= POW10N[precision]) return `has more than ${precision - scale} integer digits`;
  let v = negative ? (1n << 128n) - big : big;
  if (negative && big === 0n) v = 0n;
  out[o] = Number(v & 0xffffffffn);
  out[o + 1] = Number((v >> 32n) & 0xffffffffn);
  out[o + 2] = Number((v >> 64n) & 0xffffffffn);
  out[o + 3] = Number((v >> 96n) & 0xffffffffn);
  return null;
}

/** Text of a binary numeric exactly as Postgres prints it (used for keyset literals and messages). */
export function numericToText(buf: Buffer, pos: number): string {
  const ndigits = buf.readInt16BE(pos);
  const weight = buf.readInt16BE(pos + 2);
  const sign = buf.readUInt16BE(pos + 4);
  const dscale = buf.readInt16BE(pos + 6);
  if (sign === NUMERIC_NAN) return 'NaN';
  if (sign === NUMERIC_PINF) return 'Infinity';
  if (sign === NUMERIC_NINF) return '-Infinity';
  let intPart = '';
  for (let w = weight, i = 0; w >= 0; w--, i++) {
    const d = i < ndigits ? buf.readUInt16BE(pos + 8 + 2 * i) : 0;
    intPart += i === 0 ? String(d) : String(d).padStart(4, '0');
  }
  if (intPart === '') intPart = '0';
  let frac = '';
  for (let w = -1; frac.length < dscale; w--) {
    const i = weight - w;
    const d = i >= 0 && i < ndigits ? buf.readUInt16BE(pos + 8 + 2 * i) : 0;
    frac += String(d).padStart(4, '0');
  }
  frac = frac.slice(0, dscale);
  const body = frac ? `${intPart}.${frac}` : intPart;
  return sign === NUMERIC_NEG ? `-${body}` : body;
}
