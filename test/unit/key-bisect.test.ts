// The bisection against two in-memory key sets: thousands of seeded random cases (scattered
// deletes, deletes on range boundaries, ranges deleted wholesale, inserts on the source side,
// composite keys, an empty lake, everything deleted; integer keys at the smallint, integer and
// bigint bounds, negative and 0, hashed as the engines hash them), each checked against the
// plain set difference; and the query counts it promises.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { findMissingKeys, lineWidth, mergeRanges, type KeySide, type PositionRange, type RangeAggregate } from '../../lambdas/core/lake/key-bisect.ts';
import { int8KeyHashes } from './hashint8-reference.ts';
import { random } from '../fuzz/random.ts';

/** The key's two hashes, as key-hash.ts defines them for the engines: md5 slices of the canonical text, or an integer key's hashint8extended. */
function hashes(key: readonly string[], integer: boolean): [bigint, bigint] {
  if (integer) return int8KeyHashes(BigInt(key[0]));
  const digest = createHash('md5').update(key.join('\u0001'), 'utf8').digest();
  return [BigInt(digest.readUInt32BE(0)), BigInt(digest.readUInt32BE(4))];
}

/** Where keys sit: an integer key's value, or h1 (of an integer key's hash when `integer`). */
type Line = { kind: 'integer'; lowest: bigint } | { kind: 'hash'; integer?: boolean };

/** A side over an in-memory key set, answering as the SQL does. */
function memorySide(keys: readonly string[][], line: Line): KeySide & { queries: number } {
  const rows = keys.map((key) => {
    const [h1, h2] = hashes(key, line.kind === 'integer' || line.integer === true);
    return { key, h1, h2, pos: line.kind === 'integer' ? BigInt(key[0]) - line.lowest : h1 };
  });
  const within = (pos: bigint, ranges: readonly PositionRange[] | null) => ranges === null || ranges.some(([a, b]) => pos >= a && pos < b);
  const side = {
    queries: 0,
    async aggregate(width: bigint, ranges: readonly PositionRange[] | null) {
      side.queries++;
      const out = new Map<bigint, { count: number; s1: bigint; s2: bigint }>();
      for (const row of rows) {
        if (!within(row.pos, ranges)) continue;
        // Positions below 0 (integer keys under the lake's lowest) never fall in a range.
        const bucket = row.pos / width;
        const a = out.get(bucket) ?? { count: 0, s1: 0n, s2: 0n };
        out.set(bucket, { count: a.count + 1, s1: a.s1 + row.h1, s2: a.s2 + row.h2 });
      }
      return new Map<bigint, RangeAggregate>([...out].map(([b, a]) => [b, { count: a.count, sum1: a.s1.toString(), sum2: a.s2.toString() }]));
    },
    async keys(ranges: readonly PositionRange[]) {
      return rows.filter((r) => within(r.pos, ranges)).map((r) => [...r.key]);
    },
  };
  return side;
}

const show = (keys: readonly string[][]) => keys.map((k) => JSON.stringify(k)).sort();

interface Case {
  lake: string[][];
  source: string[][];
  line: Line;
  span: bigint;
}

/** One random case: a lake key set, then deletes (scattered, on bucket edges, a whole range), then source inserts. */
function randomCase(seed: number): Case {
  const next = random(seed);
  const int = (n: number) => Math.floor(next() * n);
  const composite = next() < 0.35;
  const n = [0, 1, 2, 17, 64, 300, 1500][int(7)];
  const lake: string[][] = [];
  const seen = new Set<string>();
  if (composite) {
    while (lake.length < n) {
      const key = [String(int(50)), ['a', 'b', 'é', 'x y', '', 'z\u0001'][int(6)] + String(int(40))];
      if (!seen.has(JSON.stringify(key))) { seen.add(JSON.stringify(key)); lake.push(key); }
    }
  } else {
    // Dense, sparse or negative integer keys, at smallint, integer and bigint bounds (either
    // side of them), or spread over all of bigint (the hash line).
    const edge = [0n, 1n, -1000n, 1n << 40n, -32768n, 32767n - BigInt(n), -(2n ** 31n) - 3n, 2n ** 31n - 5n, 2n ** 32n - 7n, -(2n ** 63n), 2n ** 63n - 1n - BigInt(n) * 1000n][int(11)];
    const stride = [1n, 1n, 3n, 1000n, 2n ** 52n][int(5)];
    for (let i = 0; i < n; i++) {
      const key = edge + BigInt(i) * stride;
      if (key < 2n ** 63n) lake.push([String(key)]);
    }
  }
  const deleted = new Set<number>();
  const mode = int(6);
  if (mode === 0) for (let i = 0; i < lake.length; i++) deleted.add(i); // everything deleted
  else if (mode === 1) { /* nothing deleted */ }
  else {
    for (let i = 0; i < lake.length; i++) if (next() < 0.02) deleted.add(i);
    if (lake.length > 0 && mode >= 3) {
      const start = int(lake.length);
      const length = int(Math.max(1, lake.length / 4));
      for (let i = start; i < Math.min(lake.length, start + length); i++) deleted.add(i);
    }
    // Deletes on the bucket edges of an integer line: the first and last key of each 16th and 256th.
    if (!composite && mode === 5) for (let i = 0; i < lake.length; i++) if (i % 16 === 0 || i % 16 === 15 || i % 256 === 255) deleted.add(i);
  }
  const source = lake.filter((_, i) => !deleted.has(i));
  // Some deleted keys inserted again: held by the source, so not missing.
  for (const i of deleted) if (next() < 0.1) source.push(lake[i]);
  // Inserts the lake does not have yet: below, inside and beyond the lake's keys (within bigint).
  const inserts = int(3) === 0 ? 0 : int(40);
  for (let i = 0; i < inserts; i++) {
    const key = composite ? [String(int(60)), `new${i}`] : [String((lake.length ? BigInt(lake[0][0]) : 0n) + BigInt(int(3 * Math.max(n, 10)) - n))];
    if (!composite && (BigInt(key[0]) < -(2n ** 63n) || BigInt(key[0]) >= 2n ** 63n)) continue;
    if (!seen.has(JSON.stringify(key))) { seen.add(JSON.stringify(key)); source.push(key); }
  }
  let line: Line = { kind: 'hash', integer: !composite };
  let span = 1n << 32n;
  if (!composite && lake.length > 0) {
    const values = lake.map((k) => BigInt(k[0]));
    const lowest = values.reduce((a, b) => (a < b ? a : b));
    const highest = values.reduce((a, b) => (a > b ? a : b));
    // As reconcile.ts: keys spread wider than 2^62 go on the hash line.
    if (highest - lowest + 1n <= 1n << 62n) {
      line = { kind: 'integer', lowest };
      span = highest - lowest + 1n;
    }
  }
  return { lake, source, line, span };
}

describe('findMissingKeys', () => {
  it('finds exactly the lake keys the source lacks, over 3,000 random cases', async () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const c = randomCase(seed);
      const next = random(seed * 7919);
      const options = { span: c.span, fanout: [2, 4, 16][Math.floor(next() * 3)], listBelow: [1, 3, 50][Math.floor(next() * 3)], rangesPerQuery: [1, 5, 256][Math.floor(next() * 3)], keysPerQuery: [1, 10, 50_000][Math.floor(next() * 3)] };
      const lake = memorySide(c.lake, c.line);
      // Half the cases hand over the lake's whole aggregate, as reconcile.ts does (one query fewer).
      const lakeWhole = seed % 2 === 0 ? (await lake.aggregate(1n << 80n, null)).get(0n) : undefined;
      const result = await findMissingKeys(lake, memorySide(c.source, c.line), { ...options, ...(lakeWhole ? { lakeWhole } : {}) });
      const held = new Set(c.source.map((k) => JSON.stringify(k)));
      const expected = c.lake.filter((k) => !held.has(JSON.stringify(k)));
      expect(show(result.missing), `seed ${seed}`).toEqual(show(expected));
    }
  });

  it('asks one aggregate per side when nothing was deleted, even with source inserts past the lake keys', async () => {
    const lake = Array.from({ length: 100_000 }, (_, i) => [String(i + 1)]);
    const source = [...lake, ...Array.from({ length: 5000 }, (_, i) => [String(100_001 + i)])];
    const line: Line = { kind: 'integer', lowest: 1n };
    const result = await findMissingKeys(memorySide(lake, line), memorySide(source, line), { span: 100_000n });
    expect(result).toEqual({ missing: [], aggregateQueries: { lake: 1, source: 1 }, keyQueries: { lake: 0, source: 0 }, levels: 0 });
  });

  it('finds one deleted key among 100,000 in one query per side and level', async () => {
    const lake = Array.from({ length: 100_000 }, (_, i) => [`k${i}`]);
    const source = lake.filter((k) => k[0] !== 'k4711');
    const result = await findMissingKeys(memorySide(lake, { kind: 'hash' }), memorySide(source, { kind: 'hash' }), { span: 1n << 32n, listBelow: 100 });
    expect(result.missing).toEqual([['k4711']]);
    // 100,000 keys over 16-way levels: lists at ≤ 100 keys, i.e. after 3 levels (100,000 / 16³ ≈ 24).
    expect(result.levels).toBe(3);
    expect(result.aggregateQueries).toEqual({ lake: 4, source: 4 });
    expect(result.keyQueries).toEqual({ lake: 1, source: 1 });
  });

  it('lists a range the source holds nothing of from the lake alone', async () => {
    const lake = Array.from({ length: 10_000 }, (_, i) => [String(i)]);
    const source = lake.filter((k) => Number(k[0]) < 4096 || Number(k[0]) >= 8192);
    const sourceSide = memorySide(source, { kind: 'integer', lowest: 0n });
    const result = await findMissingKeys(memorySide(lake, { kind: 'integer', lowest: 0n }), sourceSide, { span: 10_000n, listBelow: 10 });
    expect(result.missing.length).toBe(4096);
    expect(result.keyQueries).toEqual({ lake: 1, source: 0 });
  });

  it('merges adjacent ranges and sizes the line by powers of the fanout', () => {
    expect(mergeRanges([[5n, 6n], [0n, 2n], [2n, 4n]])).toEqual([[0n, 4n], [5n, 6n]]);
    expect(lineWidth(1n, 16)).toBe(1n);
    expect(lineWidth(17n, 16)).toBe(256n);
    expect(lineWidth(1n << 32n, 16)).toBe(1n << 32n);
  });
});
