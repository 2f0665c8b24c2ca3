// One keyset page → one Arrow table per partition day → one Parquet file each.
import * as arrow from 'apache-arrow';
import { Arena, arrowTypeOf, decodeColumn } from './decode.ts';
import { META_DELETED } from './page-layout.ts';
import type { FramedPage } from './copy-binary.ts';
import { ConfigError, ValueError } from '../errors.ts';
import { hashColumn } from './pii-hash.ts';
import { dayFromEpochDays } from '../lake/keys.ts';
import { encodeParquet } from './parquet.ts';
import type { LakeType } from '../source/type-map.ts';
import { epochDayOf, fieldText } from './values.ts';
import { META_EXPORTED_AT, META_RUN_ID, columnWhere, describeKey, rowKeyText, type EncodedFile, type EncodedPage, type PageLayout, type RunStamp } from './page-layout.ts';

/**
 * Partition day of every row, grouped: rows of one day keep their keyset order. Pages are read
 * in cursor order, so runs of one day are long: a row on the same day as the one before costs
 * one comparison.
 */
function groupByDay(layout: PageLayout, page: FramedPage, runDay: number): [number, Int32Array][] {
  const { buf, rowCount, fieldPos, fieldLen, fieldCount } = page;
  const field = layout.partitionField;
  if (field < 0) return [[runDay, identity(rowCount)]];
  const type = layout.columns[field].lakeType;
  const where = columnWhere(layout.table, layout.columns[field].name);
  const days = new Int32Array(rowCount);
  const counts = new Map<number, number>();
  let lastDay = Number.NaN;
  let run = 0;
  for (let r = 0; r < rowCount; r++) {
    const k = r * fieldCount + field;
    const len = fieldLen[k];
    if (len < 0) throw new ValueError(`${where}: partition column is NULL (row ${describeKey(layout, rowKeyText(layout, buf, page.rowStarts[r]))}); partitionBy must name a column without NULLs`);
    const day = epochDayOf(type, buf, fieldPos[k]);
    if (day !== lastDay) {
      const year = day === null ? null : dayFromEpochDays(day).year;
      if (day === null || year === null || year < layout.years.from || year > layout.years.to) {
        const value = fieldText(type, buf, fieldPos[k], len);
        throw new ValueError(`${where}: value ${value} falls outside the partition years ${layout.years.from}–${layout.years.to} (row ${describeKey(layout, rowKeyText(layout, buf, page.rowStarts[r]))}); widen lake.partitionYears`);
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

let identityRows = new Int32Array(0);
/** 0, 1, …, n − 1 (shared, read-only). */
function identity(n: number): Int32Array {
  if (identityRows.length < n) {
    identityRows = new Int32Array(Math.max(n, identityRows.length * 2));
    for (let i = 0; i < identityRows.length; i++) identityRows[i] = i;
  }
  return identityRows.subarray(0, n);
}

// Column buffers of the file being encoded; reused file after file (encodePage is synchronous
// and the Arrow data is dead once encodeParquet returns).
const arena = new Arena(8 << 20);

function decodeRows(layout: PageLayout, page: FramedPage, rows: Int32Array): arrow.Data[] {
  arena.reset();
  const slots = { buf: page.buf, fieldPos: page.fieldPos, fieldLen: page.fieldLen, stride: page.fieldCount };
  return layout.columns.map((c, f) => {
    const data = decodeColumn(c.lakeType, slots, f, rows, rows.length, {
      where: columnWhere(layout.table, c.name),
      rowKey: (row) => describeKey(layout, rowKeyText(layout, page.buf, page.rowStarts[row])),
    }, arena);
    if (!c.hashed) return data;
    if (!layout.hashSalt) throw new ConfigError(`${columnWhere(layout.table, c.name)}: columns.hash needs a salt (LAKE_HASH_SALT, or source.hashSaltSecretArn when deployed)`);
    return hashColumn(data, layout.hashSalt);
  });
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

/** Decode and encode one page; files come out in day order. */
export function encodePage(layout: PageLayout, page: FramedPage, stamp: RunStamp): EncodedPage {
  if (page.rowCount === 0) return { rows: 0, files: [], firstKey: [], lastKey: [] };
  const schema = arrowSchema(layout);
  const types = lakeTypes(layout);
  const runDay = Number(BigInt(stamp.exportedAtMicros) / 86_400_000_000n);
  const groups = groupByDay(layout, page, runDay);
  const files: EncodedFile[] = [];
  for (const [day, rows] of groups) {
    const children = [...decodeRows(layout, page, rows), ...metaColumns(stamp, rows.length)];
    const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length: rows.length, nullCount: 0, children });
    const table = new arrow.Table(schema, new arrow.RecordBatch(schema, struct));
    files.push({ day: dayFromEpochDays(day), rows: rows.length, parquet: encodeParquet(table, types) });
  }
  return {
    rows: page.rowCount,
    files,
    firstKey: rowKeyText(layout, page.buf, page.rowStarts[0]),
    lastKey: rowKeyText(layout, page.buf, page.rowStarts[page.rowCount - 1]),
  };
}

