// Postgres's hashint8extended in plain TypeScript, from its C source (src/backend/access/hash/
// hashfunc.c, src/common/hashfn.c: Bob Jenkins' lookup3), for the tests: an oracle independent
// of the SQL that key-hash.ts spells out for DuckDB and Athena, and checked against Postgres
// itself in test/integration/deletes-fingerprint.test.ts.

const rot = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

function mix(s: [number, number, number]): void {
  let [a, b, c] = s;
  a = (a - c) >>> 0; a = (a ^ rot(c, 4)) >>> 0; c = (c + b) >>> 0;
  b = (b - a) >>> 0; b = (b ^ rot(a, 6)) >>> 0; a = (a + c) >>> 0;
  c = (c - b) >>> 0; c = (c ^ rot(b, 8)) >>> 0; b = (b + a) >>> 0;
  a = (a - c) >>> 0; a = (a ^ rot(c, 16)) >>> 0; c = (c + b) >>> 0;
  b = (b - a) >>> 0; b = (b ^ rot(a, 19)) >>> 0; a = (a + c) >>> 0;
  c = (c - b) >>> 0; c = (c ^ rot(b, 4)) >>> 0; b = (b + a) >>> 0;
  s[0] = a; s[1] = b; s[2] = c;
}

function final(s: [number, number, number]): void {
  let [a, b, c] = s;
  c = (c ^ b) >>> 0; c = (c - rot(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 24)) >>> 0;
  s[0] = a; s[1] = b; s[2] = c;
}

/** hash_bytes_uint32_extended(k, seed): the 64-bit result as an unsigned bigint. */
function hashUint32Extended(k: number, seed: bigint): bigint {
  const init = (0x9e3779b9 + 4 + 3923095) >>> 0;
  const s: [number, number, number] = [init, init, init];
  if (seed !== 0n) {
    s[0] = (s[0] + Number((seed >> 32n) & 0xffffffffn)) >>> 0;
    s[1] = (s[1] + Number(seed & 0xffffffffn)) >>> 0;
    mix(s);
  }
  s[0] = (s[0] + k) >>> 0;
  final(s);
  return (BigInt(s[1]) << 32n) | BigInt(s[2]);
}

/** hashint8extended(value, seed) as Postgres returns it (an int8: signed). */
export function hashint8extended(value: bigint, seed: bigint): bigint {
  const lo = Number(value & 0xffffffffn);
  const hi = Number((value >> 32n) & 0xffffffffn);
  const folded = (lo ^ (value >= 0n ? hi : ~hi >>> 0)) >>> 0;
  return BigInt.asIntN(64, hashUint32Extended(folded, BigInt.asUintN(64, seed)));
}

/** h1 and h2 of an integer key (lake/key-hash.ts): hashint8extended(k, k >> 32), low and high word. */
export function int8KeyHashes(key: bigint): [bigint, bigint] {
  const h = BigInt.asUintN(64, hashint8extended(key, key >> 32n));
  return [h & 0xffffffffn, h >> 32n];
}
