// A tombstone page's Parquet file: one row per deleted key, with the table's columns as every
// other file of the table has them (same Arrow schema, same Parquet types), the key columns
// set, the cursor set to the detection time, every other column NULL, `_lake_deleted` true.
//
// Built here rather than read through COPY like exported rows: there is no row to read, only
// key values (as text, from the lake) and one cursor value. Loaded only when a run found
// deletes (apache-arrow and parquet-wasm are heavy on the main thread).
import * as arrow from 'apache-arrow';
import { ValueError } from '../errors.ts';
import { arrowSchema, lakeTypes } from '../page/encode-page.ts';
import { META_DELETED, META_EXPORTED_AT, META_RUN_ID, columnWhere, type PageLayout, type RunStamp } from '../page/page-layout.ts';
import { encodeParquet } from '../page/parquet.ts';
import type { LakeType } from '../source/type-map.ts';

export interface TombstoneRows {
  /** Layout field index of each key column, in key order. */
  readonly keyFields: readonly number[];
  /** The deleted keys: per key, its columns' text, in key order. */
  readonly keys: readonly (readonly string[])[];
  /** Layout field index of the cursor column. */
  readonly cursorField: number;
  /** The cursor value: µs since 1970 (timestamp cursors) or days since 1970 (date cursors), decimal text. */
  readonly cursorValue: string;
}

const allSet = (n: number) => new Uint8Array(Math.ceil(n / 8)).fill(0xff);

/** A key column from its values' text, as the exported files type it. */
function keyColumn(layout: PageLayout, field: number, values: readonly string[]): arrow.Data {
  const column = layout.columns[field];
  const type = column.lakeType;
  const n = values.length;
  const integers = (arrowType: arrow.Int16 | arrow.Int32 | arrow.Int64) => {
    for (const v of values) {
      if (!/^-?\d+$/.test(v)) throw new ValueError(`${columnWhere(layout.table, column.name)}: key value ${JSON.stringify(v)} from the lake is not an integer`);
    }
    if (arrowType instanceof arrow.Int64) return arrow.makeData({ type: arrowType, length: n, nullCount: 0, data: BigInt64Array.from(values, (v) => BigInt(v)) });
    if (arrowType instanceof arrow.Int16) return arrow.makeData({ type: arrowType, length: n, nullCount: 0, data: Int16Array.from(values, Number) });
    return arrow.makeData({ type: arrowType, length: n, nullCount: 0, data: Int32Array.from(values, Number) });
  };
  switch (type.kind) {
    case 'int16': return integers(new arrow.Int16());
    case 'int32': return integers(new arrow.Int32());
    case 'int64': return integers(new arrow.Int64());
    case 'string': return arrow.vectorFromArray([...values], new arrow.Utf8()).data[0];
    default:
      throw new ValueError(`${columnWhere(layout.table, column.name)}: a tombstone cannot hold a key of lake type ${type.kind}`);
  }
}

/** The cursor column: `value` in every row. */
function cursorColumn(type: LakeType, value: string, n: number, arrowType: arrow.DataType): arrow.Data {
  if (type.kind === 'timestamp') return arrow.makeData({ type: arrowType as arrow.TimestampMicrosecond, length: n, nullCount: 0, data: new BigInt64Array(n).fill(BigInt(value)) });
  return arrow.makeData({ type: arrowType as arrow.DateDay, length: n, nullCount: 0, data: new Int32Array(n).fill(Number(value)) });
}

/** The tombstones of `rows.keys` as one Parquet file (all share the cursor value, hence one day). */
export function encodeTombstones(layout: PageLayout, rows: TombstoneRows, stamp: RunStamp): Uint8Array {
  const schema = arrowSchema(layout);
  const n = rows.keys.length;
  const children = schema.fields.map((field, f): arrow.Data => {
    const keyIndex = rows.keyFields.indexOf(f);
    if (keyIndex >= 0) return keyColumn(layout, f, rows.keys.map((k) => k[keyIndex]));
    if (f === rows.cursorField) return cursorColumn(layout.columns[f].lakeType, rows.cursorValue, n, field.type);
    switch (field.name) {
      case META_EXPORTED_AT: return cursorColumn({ kind: 'timestamp', utc: true }, stamp.exportedAtMicros, n, field.type);
      case META_RUN_ID: return arrow.vectorFromArray(new Array<string>(n).fill(stamp.runId), new arrow.Utf8()).data[0];
      case META_DELETED: return arrow.makeData({ type: new arrow.Bool(), length: n, nullCount: 0, data: allSet(n) });
      // Every other column: NULL, built by Arrow's own builder for its type (lists, decimals …).
      default: return arrow.vectorFromArray(new Array(n).fill(null), field.type).data[0];
    }
  });
  const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length: n, nullCount: 0, children });
  return encodeParquet(new arrow.Table(schema, new arrow.RecordBatch(schema, struct)), lakeTypes(layout));
}
