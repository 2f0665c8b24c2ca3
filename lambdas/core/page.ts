// One keyset page → one Arrow table per partition day → one Parquet file each.
import * as arrow from 'apache-arrow';
import { arrowTypeOf, createBuilder, type ColumnBuilder, type FieldContext } from './columns.ts';
import { type FramedPage, fieldOffset } from './copy-binary.ts';
import { ValueError } from './errors.ts';
import { dayFromEpochDays, type PartitionDay } from './layout.ts';
import { encodeParquet } from './parquet.ts';
import type { ColumnPlan, LakeType } from './type-map.ts';
import { cursorText, epochDayOf, fieldText } from './values.ts';

/** Export metadata columns added to every file (DESIGN.md "Types"). */
export const META_EXPORTED_AT = '_lake_exported_at';
export const META_RUN_ID = '_lake_run_id';
export const META_COLUMNS: readonly { name: string; glueType: string }[] = [
  { name: META_EXPORTED_AT, glueType: 'timestamp' },
  { name: META_RUN_ID, glueType: 'string' },
];

/** Everything about a table's shape that decoding needs; derived once per invocation. */
export interface PageLayout {
  readonly table: string;
  readonly columns: readonly ColumnPlan[];
  /** Field indexes of the cursor, then the primary key columns. */
  readonly keyFields: readonly number[];
  readonly partitionField: number;
  readonly years: { readonly from: number; readonly to: number };
}

export interface EncodedFile {
  readonly day: PartitionDay;
  readonly rows: number;
  readonly parquet: Uint8Array;
}

export interface EncodedPage {
  readonly rows: number;
  readonly files: EncodedFile[];
  /** Text of the first and last row's (cursor, pk…), for the manifest and the next page. */
  readonly firstKey: string[];
  readonly lastKey: string[];
}

export interface RunStamp {
  readonly runId: string;
  /** µs since 1970 of the run's start, as decimal text (the same in every file of the run). */
  readonly exportedAtMicros: string;
}

/** (cursor, pk…) of a row as text; the cursor in its canonical form. */
export function rowKeyText(layout: PageLayout, buf: Buffer, rowStart: number): string[] {
  return layout.keyFields.map((f, i) => {
    const pos = fieldOffset(buf, rowStart, f);
    const len = buf.readInt32BE(pos);
    if (len < 0) return 'NULL';
    const type = layout.columns[f].lakeType;
    return i === 0 ? cursorText(type, buf, pos + 4) : fieldText(type, buf, pos + 4, len);
  });
}

function describeKey(layout: PageLayout, key: string[]): string {
  return layout.keyFields.map((f, i) => `${layout.columns[f].name}=${key[i]}`).join(', ');
}

/** Partition day of every row, grouped: rows of one day keep their keyset order. */
function groupByDay(layout: PageLayout, page: FramedPage): Map<number, Int32Array> {
  const { buf, rowStarts, rowCount } = page;
  const type = layout.columns[layout.partitionField].lakeType;
  const days = new Int32Array(rowCount);
  const counts = new Map<number, number>();
  for (let r = 0; r < rowCount; r++) {
    const pos = fieldOffset(buf, rowStarts[r], layout.partitionField);
    const len = buf.readInt32BE(pos);
    const where = `${layout.table}.${layout.columns[layout.partitionField].name}`;
    if (len < 0) throw new ValueError(`${where}: partition column is NULL (row ${describeKey(layout, rowKeyText(layout, buf, rowStarts[r]))}); partitionBy must name a column without NULLs`);
    const day = epochDayOf(type, buf, pos + 4);
    const year = day === null ? null : dayFromEpochDays(day).year;
    if (day === null || year === null || year < layout.years.from || year > layout.years.to) {
      const value = fieldText(type, buf, pos + 4, len);
      throw new ValueError(`${where}: value ${value} falls outside the partition years ${layout.years.from}–${layout.years.to} (row ${describeKey(layout, rowKeyText(layout, buf, rowStarts[r]))}); widen lake.partitionYears`);
    }
    days[r] = day;
    counts.set(day, (counts.get(day) ?? 0) + 1);
  }
  const groups = new Map<number, Int32Array>();
  const filled = new Map<number, number>();
  for (const [day, n] of counts) { groups.set(day, new Int32Array(n)); filled.set(day, 0); }
  for (let r = 0; r < rowCount; r++) {
    const d = days[r];
    const i = filled.get(d)!;
    groups.get(d)![i] = r;
    filled.set(d, i + 1);
  }
  return groups;
}

function decodeRows(layout: PageLayout, page: FramedPage, rows: Int32Array): ColumnBuilder[] {
  const { buf, rowStarts } = page;
  const builders = layout.columns.map((c) => createBuilder(c.lakeType, rows.length));
  let currentRow = 0;
  const contexts: FieldContext[] = layout.columns.map((c) => ({
    where: `${layout.table}.${c.name}`,
    rowKey: () => describeKey(layout, rowKeyText(layout, buf, currentRow)),
  }));
  const fields = layout.columns.length;
  for (let i = 0; i < rows.length; i++) {
    let pos = rowStarts[rows[i]];
    currentRow = pos;
    for (let f = 0; f < fields; f++) {
      const len = buf.readInt32BE(pos);
      pos += 4;
      if (len < 0) builders[f].appendNull();
      else {
        builders[f].append(buf, pos, len, contexts[f]);
        pos += len;
      }
    }
  }
  return builders;
}

function metaColumns(stamp: RunStamp, rows: number): arrow.Data[] {
  const at = new BigInt64Array(rows).fill(BigInt(stamp.exportedAtMicros));
  const id = Buffer.from(stamp.runId, 'utf8');
  const data = new Uint8Array(id.length * rows);
  const offsets = new Int32Array(rows + 1);
  for (let r = 0; r < rows; r++) {
    data.set(id, r * id.length);
    offsets[r + 1] = (r + 1) * id.length;
  }
  return [
    arrow.makeData({ type: new arrow.TimestampMicrosecond('UTC'), length: rows, nullCount: 0, data: at }),
    arrow.makeData({ type: new arrow.Utf8(), length: rows, nullCount: 0, valueOffsets: offsets, data }),
  ];
}

export function lakeTypes(layout: PageLayout): Map<string, LakeType> {
  const types = new Map<string, LakeType>(layout.columns.map((c) => [c.name, c.lakeType]));
  types.set(META_EXPORTED_AT, { kind: 'timestamp', utc: true });
  types.set(META_RUN_ID, { kind: 'string' });
  return types;
}

export function arrowSchema(layout: PageLayout): arrow.Schema {
  const fields = layout.columns.map((c) => new arrow.Field(c.name, arrowTypeOf(c.lakeType), true));
  fields.push(new arrow.Field(META_EXPORTED_AT, new arrow.TimestampMicrosecond('UTC'), false));
  fields.push(new arrow.Field(META_RUN_ID, new arrow.Utf8(), false));
  return new arrow.Schema(fields);
}

/** Decode and encode one page; files come out in day order. */
export function encodePage(layout: PageLayout, page: FramedPage, stamp: RunStamp): EncodedPage {
  if (page.rowCount === 0) return { rows: 0, files: [], firstKey: [], lastKey: [] };
  const schema = arrowSchema(layout);
  const types = lakeTypes(layout);
  const groups = [...groupByDay(layout, page)].sort((a, b) => a[0] - b[0]);
  const files: EncodedFile[] = [];
  for (const [day, rows] of groups) {
    const builders = decodeRows(layout, page, rows);
    const children = [...builders.map((b) => b.finish()), ...metaColumns(stamp, rows.length)];
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

