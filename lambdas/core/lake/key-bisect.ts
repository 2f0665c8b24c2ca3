// Which keys the lake holds live that the source no longer has, found without dumping either
// side's keys (the data-diff / reladiff method): compare count and hash sums of the keys over
// ranges of a line both sides place keys on alike (lake/key-hash.ts), and split only the ranges
// that differ. Each level splits every differing range into FANOUT equal parts, all of a level's
// ranges asked in one grouped query per side, so equal tables cost one query per side and a
// difference costs a query per side and level (log16 of the key span: 8 at most for hashes).
// Once a differing range is small, both sides list its keys and the lists are compared.
//
// Pure: the two sides are functions (SQL against Postgres and the query engine in production,
// in-memory key sets in the unit tests).

/** Count and hash sums of the keys in one range (sums as decimal text: they exceed 2^53). */
export interface RangeAggregate {
  readonly count: number;
  readonly sum1: string;
  readonly sum2: string;
}

/** Position ranges [start, end) (bigint) of the line, the ones a query is limited to. */
export type PositionRange = readonly [bigint, bigint];

export interface KeySide {
  /**
   * The aggregates of the keys within `ranges` (all keys when null), grouped by
   * floor(position / width): a map from that bucket number to its aggregate (empty buckets absent).
   */
  aggregate(width: bigint, ranges: readonly PositionRange[] | null): Promise<Map<bigint, RangeAggregate>>;
  /** The keys within `ranges`, each as its columns' canonical texts. */
  keys(ranges: readonly PositionRange[]): Promise<string[][]>;
}

export interface BisectOptions {
  /** Positions run from 0 to `span` − 1. */
  readonly span: bigint;
  /** Ranges split into this many parts per level. @default 16 */
  readonly fanout?: number;
  /** A differing range with at most this many lake keys is listed rather than split. @default 2000 */
  readonly listBelow?: number;
  /**
   * Ranges a query is limited to, at most (longer lists are asked in several queries). A range's
   * test is at most ~200 bytes (a 63-byte key name twice): 512 keep a query far under Athena's
   * 262,144-byte query string limit. @default 512
   */
  readonly rangesPerQuery?: number;
  /**
   * Keys a listing query returns, about at most: every lake query reads the table's keys (and
   * ranks those with a dead version), so scattered deletes (every range differs) are listed in
   * few large queries.
   * @default 500000
   */
  readonly keysPerQuery?: number;
  /** The lake side's aggregate over the whole line, when the caller already has it (one query fewer). */
  readonly lakeWhole?: RangeAggregate;
}

export interface BisectResult {
  /** Keys the lake side holds and the source side does not, in no particular order. */
  readonly missing: string[][];
  /** Aggregate queries asked of each side. */
  readonly aggregateQueries: { readonly lake: number; readonly source: number };
  /** Key listings asked of each side. */
  readonly keyQueries: { readonly lake: number; readonly source: number };
  /** Levels descended below the whole line (0: the two sides agreed at once). */
  readonly levels: number;
}

const same = (a: RangeAggregate | undefined, b: RangeAggregate | undefined): boolean =>
  (a?.count ?? 0) === (b?.count ?? 0) && BigInt(a?.sum1 ?? 0) === BigInt(b?.sum1 ?? 0) && BigInt(a?.sum2 ?? 0) === BigInt(b?.sum2 ?? 0);

/** Adjacent ranges merged: fewer, shorter predicates. */
export function mergeRanges(ranges: readonly PositionRange[]): PositionRange[] {
  const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [a, b] of sorted) {
    const last = out.at(-1);
    if (last && last[1] >= a) last[1] = last[1] > b ? last[1] : b;
    else out.push([a, b]);
  }
  return out;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The smallest power of `fanout` that is ≥ `span` (the whole line's width). */
export function lineWidth(span: bigint, fanout: number): bigint {
  let width = 1n;
  while (width < span) width *= BigInt(fanout);
  return width;
}

/** Keys of `lake` that `source` does not hold (see the file's comment). */
export async function findMissingKeys(lake: KeySide, source: KeySide, options: BisectOptions): Promise<BisectResult> {
  const fanout = BigInt(options.fanout ?? 16);
  const listBelow = options.listBelow ?? 2000;
  const rangesPerQuery = options.rangesPerQuery ?? 512;
  const keysPerQuery = options.keysPerQuery ?? 500_000;
  const counts = { lake: 0, source: 0, lakeKeys: 0, sourceKeys: 0 };

  // Ranges are buckets of one width per level: bucket b covers [b·width, (b + 1)·width).
  let width = lineWidth(options.span, Number(fanout));
  // Every range is cut at the span: keys past it (a source's newer integer keys) are not compared.
  const clip = (start: bigint, end: bigint): PositionRange => [start, end < options.span ? end : options.span];
  const whole = clip(0n, width);
  const [lakeAll, sourceAll] = await Promise.all([
    options.lakeWhole ? new Map([[0n, options.lakeWhole]]) : lake.aggregate(width, [whole]).finally(() => counts.lake++),
    source.aggregate(width, [whole]).finally(() => counts.source++),
  ]);
  let differing: { bucket: bigint; lake: RangeAggregate; source: RangeAggregate | undefined }[] = [];
  const lakeRoot = lakeAll.get(0n);
  if (lakeRoot && lakeRoot.count > 0 && !same(lakeRoot, sourceAll.get(0n))) differing.push({ bucket: 0n, lake: lakeRoot, source: sourceAll.get(0n) });

  // Ranges to list: small ones (both sides listed), and ones the source holds nothing of (the lake's keys are all missing).
  const toList: { range: PositionRange; lakeCount: number; sourceEmpty: boolean }[] = [];
  let levels = 0;
  while (differing.length > 0) {
    const split: typeof differing = [];
    for (const d of differing) {
      const range = clip(d.bucket * width, (d.bucket + 1n) * width);
      const sourceEmpty = (d.source?.count ?? 0) === 0;
      if (sourceEmpty || d.lake.count <= listBelow || width === 1n) toList.push({ range, lakeCount: d.lake.count, sourceEmpty });
      else split.push(d);
    }
    if (split.length === 0) break;
    levels++;
    const parentWidth = width;
    width /= fanout;
    const next: typeof differing = [];
    // Adjacent ranges merged first: a level where most ranges differ is one query, not many.
    for (const ranges of chunks(mergeRanges(split.map((d) => clip(d.bucket * parentWidth, (d.bucket + 1n) * parentWidth))), rangesPerQuery)) {
      const [lakeBuckets, sourceBuckets] = await Promise.all([
        lake.aggregate(width, ranges).finally(() => counts.lake++),
        source.aggregate(width, ranges).finally(() => counts.source++),
      ]);
      for (const [bucket, aggregate] of lakeBuckets) {
        if (aggregate.count > 0 && !same(aggregate, sourceBuckets.get(bucket))) next.push({ bucket, lake: aggregate, source: sourceBuckets.get(bucket) });
      }
    }
    differing = next;
  }

  const missing: string[][] = [];
  // Listings grouped to about keysPerQuery lake keys each; the source lists only where it holds keys.
  let batch: typeof toList = [];
  let batchKeys = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const held = new Set<string>();
    for (const ranges of chunks(mergeRanges(batch.filter((b) => !b.sourceEmpty).map((b) => b.range)), rangesPerQuery)) {
      for (const key of await source.keys(ranges).finally(() => counts.sourceKeys++)) held.add(JSON.stringify(key));
    }
    for (const ranges of chunks(mergeRanges(batch.map((b) => b.range)), rangesPerQuery)) {
      for (const key of await lake.keys(ranges).finally(() => counts.lakeKeys++)) if (!held.has(JSON.stringify(key))) missing.push(key);
    }
    batch = [];
    batchKeys = 0;
  };
  for (const item of toList) {
    if (batchKeys > 0 && batchKeys + item.lakeCount > keysPerQuery) await flush();
    batch.push(item);
    batchKeys += item.lakeCount;
  }
  await flush();
  return {
    missing,
    aggregateQueries: { lake: counts.lake, source: counts.source },
    keyQueries: { lake: counts.lakeKeys, source: counts.sourceKeys },
    levels,
  };
}
