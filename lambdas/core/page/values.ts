// Text forms of binary COPY values, for keyset literals and error messages (once per page or
// per error, never per row). They match Postgres's own output so literals round-trip exactly.
import type { LakeType } from '../source/type-map.ts';
import { dayFromEpochDays } from '../lake/keys.ts';
import { numericToText } from './decimal.ts';

const DAY_US = 86_400_000_000n;

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function dateText(epochDays2000: number): string {
  const { year, month, day } = dayFromEpochDays(epochDays2000 + 10957);
  const body = `${pad(year > 0 ? year : 1 - year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
  return year > 0 ? body : `${body} BC`;
}

/** µs since 2000-01-01 → `YYYY-MM-DD HH:MM:SS.ffffff[+00][ BC]`, exact. */
export function timestampText(micros: bigint, utc: boolean): string {
  if (micros === 0x7fffffffffffffffn) return 'infinity';
  if (micros === -0x8000000000000000n) return '-infinity';
  let days = micros / DAY_US;
  let rem = micros % DAY_US;
  if (rem < 0n) { rem += DAY_US; days -= 1n; }
  const date = dateText(Number(days));
  const bc = date.endsWith(' BC');
  const r = Number(rem);
  const secs = Math.floor(r / 1_000_000);
  const time = `${pad(Math.floor(secs / 3600), 2)}:${pad(Math.floor(secs / 60) % 60, 2)}:${pad(secs % 60, 2)}.${pad(r % 1_000_000, 6)}`;
  return `${bc ? date.slice(0, -3) : date} ${time}${utc ? '+00' : ''}${bc ? ' BC' : ''}`;
}

export function fieldText(type: LakeType, buf: Buffer, pos: number, len: number): string {
  switch (type.kind) {
    case 'int16': return String(buf.readInt16BE(pos));
    case 'int32': return String(buf.readInt32BE(pos));
    case 'int64': return String(buf.readBigInt64BE(pos));
    case 'float32': return String(buf.readFloatBE(pos));
    case 'float64': return String(buf.readDoubleBE(pos));
    case 'bool': return buf[pos] ? 'true' : 'false';
    case 'string': return buf.toString('utf8', pos, pos + len);
    case 'binary': return `\\x${buf.toString('hex', pos, pos + len)}`;
    case 'decimal': return numericToText(buf, pos);
    case 'date': {
      const v = buf.readInt32BE(pos);
      if (v === 0x7fffffff) return 'infinity';
      if (v === -0x80000000) return '-infinity';
      return dateText(v);
    }
    case 'timestamp': return timestampText(buf.readBigInt64BE(pos), type.utc);
    case 'list': return `{…${len} bytes}`;
  }
}

/** Days since 1970-01-01 (UTC) of a date/timestamp field, or null for ±infinity. */
export function epochDayOf(type: LakeType, buf: Buffer, pos: number): number | null {
  if (type.kind === 'date') {
    const v = buf.readInt32BE(pos);
    if (v === 0x7fffffff || v === -0x80000000) return null;
    return v + 10957;
  }
  const hi = buf.readInt32BE(pos);
  const lo = buf.readUInt32BE(pos + 4);
  if ((hi === 0x7fffffff && lo === 0xffffffff) || (hi === -0x80000000 && lo === 0)) return null;
  if (hi > -0x200000 && hi < 0x200000) {
    // |µs| < 2^53: exact in a double
    return Math.floor((hi * 4294967296 + lo) / 86_400_000_000) + 10957;
  }
  const micros = buf.readBigInt64BE(pos);
  let days = micros / DAY_US;
  if (micros % DAY_US < 0n) days -= 1n;
  return Number(days) + 10957;
}

/** A cursor value in the canonical form every window bound and manifest key uses. */
export function cursorText(type: LakeType, buf: Buffer, pos: number): string {
  if (type.kind === 'date') {
    const v = buf.readInt32BE(pos);
    if (v === 0x7fffffff) return 'infinity';
    if (v === -0x80000000) return '-infinity';
    return timestampText(BigInt(v) * DAY_US, true);
  }
  return timestampText(buf.readBigInt64BE(pos), true);
}
