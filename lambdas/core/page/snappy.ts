// Snappy compression (the raw block format Parquet's SNAPPY codec holds), for the pages written
// here rather than by parquet-wasm: dictionary chunks (dictionary-chunk.ts) and the one-literal
// pages of constant columns (parquet-chunks.ts). The algorithm of the reference compressor
// (google/snappy, snappy.cc CompressFragment): input in 64 KiB fragments, a hash table of 4-byte
// sequences per fragment, literals and copies of 2-byte offsets. Format:
// snappy/format_description.txt.

const FRAGMENT = 1 << 16;
const MAX_TABLE_BITS = 14;
/** Bytes at a fragment's end never searched for a match (every 4-byte load stays inside). */
const INPUT_MARGIN = 15;

const tables: Uint16Array[] = [];

function load32(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
}

function emitLiteral(input: Uint8Array, from: number, length: number, out: Uint8Array, op: number): number {
  const n = length - 1;
  if (n < 60) out[op++] = n << 2;
  else if (n < 0x100) {
    out[op++] = 60 << 2;
    out[op++] = n;
  } else {
    // A fragment is at most 64 KiB: two length bytes always do.
    out[op++] = 61 << 2;
    out[op++] = n & 0xff;
    out[op++] = n >>> 8;
  }
  out.set(input.subarray(from, from + length), op);
  return op + length;
}

/** One copy of 4–64 bytes from `offset` (< 65536) back. */
function emitCopyUpTo64(out: Uint8Array, op: number, offset: number, length: number): number {
  if (length < 12 && offset < 2048) {
    out[op++] = 1 | ((length - 4) << 2) | ((offset >>> 8) << 5);
    out[op++] = offset & 0xff;
  } else {
    out[op++] = 2 | ((length - 1) << 2);
    out[op++] = offset & 0xff;
    out[op++] = offset >>> 8;
  }
  return op;
}

function emitCopy(out: Uint8Array, op: number, offset: number, length: number): number {
  let n = length;
  while (n >= 68) {
    op = emitCopyUpTo64(out, op, offset, 64);
    n -= 64;
  }
  if (n > 64) {
    op = emitCopyUpTo64(out, op, offset, 60);
    n -= 60;
  }
  return emitCopyUpTo64(out, op, offset, n);
}

function compressFragment(input: Uint8Array, start: number, size: number, out: Uint8Array, op: number): number {
  let bits = 1;
  while (1 << bits <= size && bits <= MAX_TABLE_BITS) bits++;
  bits--;
  const shift = 32 - bits;
  const table = (tables[bits] ??= new Uint16Array(1 << bits));
  table.fill(0);
  const hash = (v: number) => Math.imul(v, 0x1e35a7bd) >>> shift;
  const end = start + size;
  let next = start;
  if (size >= INPUT_MARGIN) {
    const limit = end - INPUT_MARGIN;
    let ip = start + 1;
    let nextHash = hash(load32(input, ip));
    search: for (;;) {
      // Look for a 4-byte match, stepping faster the longer none is found (incompressible data).
      let skip = 32;
      let nextIp = ip;
      let candidate: number;
      do {
        ip = nextIp;
        const h = nextHash;
        nextIp = ip + (skip++ >>> 5);
        if (nextIp > limit) break search;
        nextHash = hash(load32(input, nextIp));
        candidate = start + table[h];
        table[h] = ip - start;
      } while (load32(input, ip) !== load32(input, candidate));
      op = emitLiteral(input, next, ip - next, out, op);
      // Copies, as long as the bytes after one copy match again at once.
      do {
        const base = ip;
        let matched = 4;
        while (ip + matched < end && input[ip + matched] === input[candidate + matched]) matched++;
        ip += matched;
        op = emitCopy(out, op, base - candidate, matched);
        next = ip;
        if (ip >= limit) break search;
        table[hash(load32(input, ip - 1))] = ip - 1 - start;
        const h = hash(load32(input, ip));
        candidate = start + table[h];
        table[h] = ip - start;
      } while (load32(input, ip) === load32(input, candidate));
      ip++;
      nextHash = hash(load32(input, ip));
    }
  }
  if (next < end) op = emitLiteral(input, next, end - next, out, op);
  return op;
}

/** The stream's preamble, the uncompressed length as a little-endian base-128 varint, at `op`; where it ends. */
function preamble(length: number, out: Uint8Array, op: number): number {
  let n = length;
  while (n >= 0x80) {
    out[op++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[op++] = n;
  return op;
}

/** `input` compressed as one Snappy block. */
export function snappyCompress(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(32 + input.length + Math.ceil(input.length / 6));
  let op = preamble(input.length, out, 0);
  for (let at = 0; at < input.length; at += FRAGMENT) op = compressFragment(input, at, Math.min(FRAGMENT, input.length - at), out, op);
  return out.subarray(0, op);
}

/**
 * `bytes` as a Snappy stream of one literal: valid Snappy that any reader decompresses, for
 * the few bytes of a constant column's pages (every column of the file stays SNAPPY).
 */
export function snappyLiteral(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(10 + bytes.length);
  let op = preamble(bytes.length, out, 0);
  const n = bytes.length - 1;
  if (n >= 0) {
    if (n < 60) out[op++] = n << 2;
    else {
      const width = n < 0x100 ? 1 : n < 0x10000 ? 2 : n < 0x1000000 ? 3 : 4;
      out[op++] = (59 + width) << 2;
      for (let i = 0; i < width; i++) out[op++] = Math.floor(n / 2 ** (8 * i)) & 0xff;
    }
    out.set(bytes, op);
    op += bytes.length;
  }
  return out.subarray(0, op);
}
