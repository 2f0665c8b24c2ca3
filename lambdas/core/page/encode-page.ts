// Keyset pages → one Arrow table per partition day → appended to that day's growing Parquet
// file. A chunk is the run of pages whose files are written together: it ends when its caller
// says so (the window or the invocation ends), when a file reaches its target size, or when the
// rows its open files still hold in memory would exceed a row group.
import * as arrow from 'apache-arrow';
import { Arena, arrowTypeOf, decodeColumn, type FieldSlots } from './decode.ts';
import { PageScratch, decodableWhole, decodeWholePage, sliceColumns, type DecodedPage } from './decode-page.ts';
import { META_DELETED } from './page-layout.ts';
import { FrameScratch, frameCopyBinary, type FramedPage } from './copy-binary.ts';
import { ConfigError, ValueError } from '../errors.ts';
import { hashColumn } from './pii-hash.ts';
import { dayFromEpochDays, partitionStartDay, type PartitionDay } from '../lake/keys.ts';
import { SplicedParquetFile } from './parquet-splice.ts';
import type { LakeType } from '../source/type-map.ts';
import { epochDayOf, fieldText } from './values.ts';
import { META_EXPORTED_AT, META_RUN_ID, columnWhere, describeKey, rowKeyText, type AppendedPage, type ChunkFile, type ChunkSettings, type FilePart, type PageLayout, type RunStamp } from './page-layout.ts';

/** Days from 1970-01-01 to Postgres's epoch, 2000-01-01; µs in a day. */
const PG_EPOCH_DAYS = 10957;
const MICROS_PER_DAY = 86_400_000_000;
/** A timestamp's high word below 2^21 in magnitude: its µs (below 2^53) are exact in a double. */
const EXACT_HI = 0x200000;

/** A page's rows as framed (FramedPage) or decoded whole (DecodedPage): where each tuple starts. */
interface PageRows {
  readonly buf: Buffer;
  readonly rowCount: number;
  readonly rowStarts: Int32Array;
}

/**
 * Partition day of every row, grouped: rows of one day keep their keyset order. Pages are read
 * in cursor order, so runs of one day are long: a row on the same day as the one before costs
 * one comparison. `partition`: where row r's partition value is (slot r · stride + `field`);
 * `decoded`: the page decoded whole, when it was.
 */
function groupByDay(layout: PageLayout, page: PageRows, partition: FieldSlots, field: number, runDay: number, decoded: DecodedPage | null): [number, Int32Array][] {
  const { buf, rowCount } = page;
  const { fieldPos, fieldLen, stride: fieldCount } = partition;
  if (layout.partitionField < 0) return [[runDay, identity(rowCount)]];
  const type = layout.columns[layout.partitionField].lakeType;
  // The usual page, decoded whole: one day of a timestamp (the cursor partitions, and a day holds
  // many pages). Every row is still checked, over the decoded column (contiguous, where the page's
  // own bytes would cost a cache miss a row); anything else is grouped below.
  if (decoded && type.kind === 'timestamp') {
    const day = partitionOf(layout, oneTimestampDay(decoded.scratch.words[layout.partitionField], decoded.nullCounts[layout.partitionField], rowCount));
    if (day !== null && withinYears(layout, dayFromEpochDays(day).year)) return [[day, identity(rowCount)]];
  }
  const where = columnWhere(layout.table, layout.columns[layout.partitionField].name);
  const days = new Int32Array(rowCount);
  const counts = new Map<number, number>();
  let lastDay = Number.NaN;
  let run = 0;
  // A timestamp inside the last computed day's µs range (since 2000, as Postgres sends it; exact
  // in a double below 2^53) is on that day without a division: ~0.1 CPU-s per 1M rows.
  const timestamps = type.kind === 'timestamp';
  let rangeStart = 1;
  let rangeEnd = 0;
  let rangeDay: number | null = null;
  for (let r = 0; r < rowCount; r++) {
    const k = r * fieldCount + field;
    const len = fieldLen[k];
    if (len < 0) throw new ValueError(`${where}: partition column is NULL (row ${describeKey(layout, rowKeyText(layout, buf, page.rowStarts[r]))}); partitionBy must name a column without NULLs`);
    const p = fieldPos[k];
    let day: number | null;
    const hi = timestamps ? (buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3] : 0;
    const exact = timestamps && hi > -EXACT_HI && hi < EXACT_HI;
    const micros = exact ? hi * 4294967296 + (((buf[p + 4] << 24) | (buf[p + 5] << 16) | (buf[p + 6] << 8) | buf[p + 7]) >>> 0) : 0;
    if (exact && micros >= rangeStart && micros < rangeEnd) day = rangeDay;
    else {
      const dayOf = epochDayOf(type, buf, p);
      day = partitionOf(layout, dayOf);
      if (exact && dayOf !== null) {
        rangeStart = (dayOf - PG_EPOCH_DAYS) * MICROS_PER_DAY;
        rangeEnd = rangeStart + MICROS_PER_DAY;
        rangeDay = day;
      }
    }
    if (day !== lastDay) {
      const year = day === null ? null : dayFromEpochDays(day).year;
      if (day === null || !withinYears(layout, year)) {
        const value = fieldText(type, buf, fieldPos[k], len);
        // ±infinity, BC and years past 9999 have no year= folder (four digits) any setting allows.
        const remedy = year !== null && year >= 1 && year <= 9999 ? 'widen lake.partitionYears' : 'no partition holds it (years 1–9999): correct the value, or partition by another column (tables[].partitionBy)';
        throw new ValueError(`${where}: value ${value} falls outside the partition years ${layout.years.from}–${layout.years.to} (row ${describeKey(layout, rowKeyText(layout, buf, page.rowStarts[r]))}); ${remedy}`);
      }
      if (run > 0) counts.set(lastDay, (counts.get(lastDay) ?? 0) + run);
      lastDay = day;
      run = 0;
    }
    run++;
    days[r] = day;
  }
  if (run > 0) counts.set(lastDay, (counts.get(lastDay) ?? 0) + run);
  if (counts.size === 1) return [[lastDay, identity(rowCount)]];
  const groups = new Map<number, Int32Array>();
  const filled = new Map<number, number>();
  for (const [day, n] of counts) { groups.set(day, new Int32Array(n)); filled.set(day, 0); }
  for (let r = 0; r < rowCount; r++) {
    const d = days[r];
    const i = filled.get(d)!;
    groups.get(d)![i] = r;
    filled.set(d, i + 1);
  }
  return [...groups].sort((a, b) => a[0] - b[0]);
}

/** The partition of epoch day `day`: month and year partitions hold all their days in one file, under their first. */
function partitionOf(layout: PageLayout, day: number | null): number | null {
  return day === null || !layout.granularity ? day : partitionStartDay(day, layout.granularity);
}

/** Whether a partition's year has a year= folder the layout's partition years allow. */
function withinYears(layout: PageLayout, year: number | null): boolean {
  return year !== null && year >= layout.years.from && year <= layout.years.to;
}

/**
 * The epoch day of every row of a decoded timestamp column (µs since 1970, two little-endian
 * words a row) when none is NULL and all fall on the first row's day, as groupByDay's per-row
 * test computes it (exact in a double); null otherwise.
 */
function oneTimestampDay(words: Uint32Array, nulls: number, rowCount: number): number | null {
  if (rowCount === 0 || nulls > 0) return null;
  const firstHi = words[1] | 0;
  if (firstHi <= -EXACT_HI || firstHi >= EXACT_HI) return null;
  const day = Math.floor((firstHi * 4294967296 + words[0]) / MICROS_PER_DAY);
  const start = day * MICROS_PER_DAY;
  const end = start + MICROS_PER_DAY;
  for (let r = 0; r < rowCount; r++) {
    const hi = words[2 * r + 1] | 0;
    if (hi <= -EXACT_HI || hi >= EXACT_HI) return null;
    const micros = hi * 4294967296 + words[2 * r];
    if (micros < start || micros >= end) return null;
  }
  return day;
}

let identityRows = new Int32Array(0);
/** 0, 1, …, n − 1 (shared, read-only). */
function identity(n: number): Int32Array {
  if (identityRows.length < n) {
    identityRows = new Int32Array(Math.max(n, identityRows.length * 2));
    for (let i = 0; i < identityRows.length; i++) identityRows[i] = i;
  }
  return identityRows.subarray(0, n);
}

// Column buffers of the page being encoded; reused page after page (the Arrow data is dead once
// the file's append has encoded it).
const arena = new Arena(8 << 20);

// Framing arrays, and the buffers of a page decoded whole; reused page after page likewise.
const frameScratch = new FrameScratch();
const pageScratch = new PageScratch();

/** Where column `field`'s values come from, for the error a value that cannot be stored raises. */
function columnContext(layout: PageLayout, field: number, buf: Buffer, rowStarts: Int32Array) {
  return {
    where: columnWhere(layout.table, layout.columns[field].name),
    rowKey: (row: number) => describeKey(layout, rowKeyText(layout, buf, rowStarts[row])),
  };
}

/** The columns of `rows` (any of the page's rows, in any order) gathered from a framed page. */
function decodeRows(layout: PageLayout, page: FramedPage, rows: Int32Array): arrow.Data[] {
  arena.reset();
  const slots = { buf: page.buf, fieldPos: page.fieldPos, fieldLen: page.fieldLen, stride: page.fieldCount };
  return layout.columns.map((c, f) => decodeColumn(c.lakeType, slots, f, rows, rows.length, columnContext(layout, f, page.buf, page.rowStarts), arena));
}

/** columns.hash: the hashed columns' values replaced by their salted hashes. */
function hashColumns(layout: PageLayout, columns: arrow.Data[], hashSalt: string | undefined): arrow.Data[] {
  return columns.map((data, f) => {
    const c = layout.columns[f];
    if (!c.hashed) return data;
    if (!hashSalt) throw new ConfigError(`${columnWhere(layout.table, c.name)}: columns.hash needs a salt (LAKE_HASH_SALT, or source.hashSaltSecretArn when deployed)`);
    return hashColumn(data, hashSalt);
  });
}

/** Whether rows are one run (r, r + 1, …): a range of a page decoded whole. */
function contiguous(rows: Int32Array): boolean {
  return rows.length === 0 || rows[rows.length - 1] - rows[0] === rows.length - 1;
}

/**
 * Whether the layout's pages are decoded whole (decode-page.ts) rather than framed and gathered:
 * its rows of one partition are then one run of the page, because the partition column is the
 * cursor (pages come in cursor order) or there is none. Arrays are gathered.
 */
function decodesWhole(layout: PageLayout): boolean {
  const partitionIsCursor = layout.partitionField < 0 || (layout.cursorFirst && layout.keyFields[0] === layout.partitionField);
  return partitionIsCursor && decodableWhole(layout.columns.map((c) => c.lakeType));
}

let metaCache: { key: string; at: BigInt64Array; offsets: Int32Array; data: Uint8Array } | null = null;

/** All-false bits for `_lake_deleted` (exported rows are live); shared, read-only. */
let liveBits = new Uint8Array(0);

/** The run's constant columns; the buffers are shared between files of the run (read-only). */
function metaColumns(stamp: RunStamp, rows: number): arrow.Data[] {
  if (liveBits.length * 8 < rows) liveBits = new Uint8Array(Math.ceil(rows / 8) * 2);
  const key = `${stamp.exportedAtMicros}/${stamp.runId}`;
  if (!metaCache || metaCache.key !== key || metaCache.at.length < rows) {
    const capacity = Math.max(rows, metaCache?.key === key ? metaCache.at.length * 2 : 0);
    const id = Buffer.from(stamp.runId, 'utf8');
    const data = new Uint8Array(id.length * capacity);
    const offsets = new Int32Array(capacity + 1);
    for (let r = 0; r < capacity; r++) {
      data.set(id, r * id.length);
      offsets[r + 1] = (r + 1) * id.length;
    }
    metaCache = { key, at: new BigInt64Array(capacity).fill(BigInt(stamp.exportedAtMicros)), offsets, data };
  }
  const width = metaCache.data.length / Math.max(metaCache.at.length, 1);
  return [
    arrow.makeData({ type: new arrow.TimestampMicrosecond('UTC'), length: rows, nullCount: 0, data: metaCache.at.subarray(0, rows) }),
    arrow.makeData({ type: new arrow.Utf8(), length: rows, nullCount: 0, valueOffsets: metaCache.offsets.subarray(0, rows + 1), data: metaCache.data.subarray(0, rows * width) }),
    arrow.makeData({ type: new arrow.Bool(), length: rows, nullCount: 0, data: liveBits.subarray(0, Math.ceil(rows / 8)) }),
  ];
}

export function lakeTypes(layout: PageLayout): Map<string, LakeType> {
  const types = new Map<string, LakeType>(layout.columns.map((c) => [c.name, c.lakeType]));
  types.set(META_EXPORTED_AT, { kind: 'timestamp', utc: true });
  types.set(META_RUN_ID, { kind: 'string' });
  types.set(META_DELETED, { kind: 'bool' });
  return types;
}

export function arrowSchema(layout: PageLayout): arrow.Schema {
  const fields = layout.columns.map((c) => new arrow.Field(c.name, arrowTypeOf(c.lakeType), true));
  fields.push(new arrow.Field(META_EXPORTED_AT, new arrow.TimestampMicrosecond('UTC'), false));
  fields.push(new arrow.Field(META_RUN_ID, new arrow.Utf8(), false));
  fields.push(new arrow.Field(META_DELETED, new arrow.Bool(), true));
  return new arrow.Schema(fields);
}

/** Open files at most in one chunk: each holds its open row group (and a dictionary writer in wasm memory). */
const MAX_OPEN_FILES = 32;

interface OpenFile {
  readonly file: number;
  readonly day: PartitionDay;
  readonly stream: SplicedParquetFile;
  rows: number;
  /** Rows appended when the file last grew (a row group was flushed): the rest are in memory. */
  rowsFlushed: number;
  bytesSeen: number;
}

/**
 * The files of one chunk, one per partition day, grown page by page. Pages are appended one at
 * a time, in keyset order; the chunk's files are complete once an append returns `closed`.
 */
export class ChunkWriter {
  /** Open files by epoch day. */
  private readonly files = new Map<number, OpenFile>();
  /** Files of this chunk already finished (a page went by without rows for their day). */
  private readonly finished: ChunkFile[] = [];
  /** Files begun in this chunk, open or finished: the next file's number. */
  private begun = 0;
  private readonly layout: PageLayout;
  private readonly stamp: RunStamp;
  private readonly settings: ChunkSettings;
  /** Salt of columns.hash, given once per session; never logged. */
  private readonly hashSalt: string | undefined;
  /** Whether pages are decoded whole rather than framed and gathered (decodesWhole). */
  private readonly wholePages: boolean;

  constructor(layout: PageLayout, stamp: RunStamp, settings: ChunkSettings, hashSalt?: string) {
    this.layout = layout;
    this.wholePages = decodesWhole(layout);
    this.stamp = stamp;
    this.settings = settings;
    this.hashSalt = hashSalt;
  }

  /** Decode one page (a complete binary COPY stream) into the chunk's files; `close`: the chunk ends with this page. */
  async append(copy: Buffer, close: boolean): Promise<AppendedPage> {
    const layout = this.layout;
    const whole = this.wholePages
      ? decodeWholePage(copy, layout.columns.map((c) => c.lakeType), layout.partitionField, (f, rowStarts) => columnContext(layout, f, copy, rowStarts), pageScratch)
      : null;
    let framed = whole ? null : frameCopyBinary(copy, layout.columns.length, frameScratch);
    const page: PageRows = whole ?? framed!;
    if (page.rowCount === 0) {
      const parts: FilePart[] = [];
      const closed = close ? await this.close(parts) : null;
      return { rows: 0, parts, finished: closed?.map((f) => f.file) ?? [], closed, firstKey: [], lastKey: [] };
    }
    const schema = arrowSchema(layout);
    const types = lakeTypes(layout);
    const runDay = Number(BigInt(this.stamp.exportedAtMicros) / 86_400_000_000n);
    const partition: FieldSlots = whole
      ? { buf: copy, fieldPos: whole.partitionPos, fieldLen: whole.partitionLen, stride: 1 }
      : { buf: copy, fieldPos: framed!.fieldPos, fieldLen: framed!.fieldLen, stride: framed!.fieldCount };
    const groups = groupByDay(layout, page, partition, whole ? 0 : layout.partitionField, runDay, whole);
    // A day's rows not in one run of the page (should the partition not follow the page order): gathered.
    if (whole && !groups.every(([, rows]) => contiguous(rows))) framed = frameCopyBinary(copy, layout.columns.length, frameScratch);
    const parts: FilePart[] = [];
    // A day this page has no rows for is usually done (pages come in cursor order, and the cursor
    // partitions by default): its file is finished now rather than held open, with its row group
    // in memory, until the chunk ends. Should the day come back, it gets another file.
    const touched = new Set(groups.map(([day]) => day));
    const finished: number[] = [];
    for (const day of [...this.files.keys()]) if (!touched.has(day)) finished.push(await this.finishEarly(day, parts));
    for (const [day, rows] of groups) {
      const columns = framed ? decodeRows(layout, framed, rows) : sliceColumns(whole as DecodedPage, rows[0], rows[0] + rows.length);
      const children = [...hashColumns(layout, columns, this.hashSalt), ...metaColumns(this.stamp, rows.length)];
      const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length: rows.length, nullCount: 0, children });
      const table = new arrow.Table(schema, new arrow.RecordBatch(schema, struct));
      let open = this.files.get(day);
      if (!open && this.files.size >= MAX_OPEN_FILES) {
        // A page whose rows span many partitions (partitionBy other than the cursor) must not
        // open a writer per partition at once: each holds buffers in wasm memory, and wasm32
        // stops at 4 GiB with a trap. The oldest open file is finished; its day gets another
        // file should it come back.
        const [oldestDay] = this.files.keys();
        finished.push(await this.finishEarly(oldestDay, parts));
      }
      if (!open) {
        open = { file: this.begun++, day: dayFromEpochDays(day), stream: new SplicedParquetFile(table, types, this.settings, [META_EXPORTED_AT, META_RUN_ID]), rows: 0, rowsFlushed: 0, bytesSeen: 0 };
        this.files.set(day, open);
      }
      // The Arrow data lives in the shared arena: append copies it into wasm before returning.
      const before = open.rows;
      await open.stream.append(table);
      open.rows += rows.length;
      if (open.stream.bytes > open.bytesSeen) {
        open.bytesSeen = open.stream.bytes;
        open.rowsFlushed = before;
      }
    }
    for (const f of this.files.values()) for (const bytes of f.stream.take()) parts.push({ file: f.file, day: f.day, bytes });
    const ends = close || this.full();
    const closed = ends ? await this.close(parts) : null;
    return {
      rows: page.rowCount,
      parts,
      finished: closed ? closed.map((f) => f.file) : finished,
      closed,
      firstKey: rowKeyText(layout, page.buf, page.rowStarts[0]),
      lastKey: rowKeyText(layout, page.buf, page.rowStarts[page.rowCount - 1]),
    };
  }

  /** Whether the chunk should end here: a file reached its target, or too much is held unflushed. */
  private full(): boolean {
    if (this.files.size >= MAX_OPEN_FILES) return true;
    let unflushed = 0;
    for (const f of this.files.values()) {
      if (f.stream.bytes >= this.settings.targetFileBytes) return true;
      unflushed += f.rows - f.rowsFlushed;
    }
    // One file flushes its own row groups; several open ones each hold theirs.
    return this.files.size > 1 && unflushed > this.settings.rowGroupRows;
  }

  /** Finish a day's open file before the chunk ends (kept for the chunk's list); its number. */
  private async finishEarly(day: number, parts: FilePart[]): Promise<number> {
    const f = this.files.get(day)!;
    this.files.delete(day);
    this.finished.push(await this.finish(f, parts));
    return f.file;
  }

  /** Write a file's last row group and footer; its remaining bytes go to `parts`. */
  private async finish(f: OpenFile, parts: FilePart[]): Promise<ChunkFile> {
    for (const bytes of await f.stream.close()) parts.push({ file: f.file, day: f.day, bytes });
    return { file: f.file, day: f.day, rows: f.rows, bytes: f.stream.bytes };
  }

  /** Finish every open file; the chunk's files, in file order. */
  private async close(parts: FilePart[]): Promise<ChunkFile[]> {
    const files = this.finished.splice(0);
    for (const f of [...this.files.values()].sort((a, b) => a.file - b.file)) files.push(await this.finish(f, parts));
    this.files.clear();
    this.begun = 0;
    return files.sort((a, b) => a.file - b.file);
  }

  /** Drop the chunk's files (the caller discards what it wrote of them). */
  async abort(): Promise<void> {
    const open = [...this.files.values()];
    this.files.clear();
    this.finished.length = 0;
    this.begun = 0;
    await Promise.all(open.map((f) => f.stream.abort()));
  }
}
