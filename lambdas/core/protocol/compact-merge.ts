// The row work of a compaction: lake files read back and written again as fewer, larger files,
// every row and value as it was (export metadata included: each row keeps the _lake_run_id and
// _lake_exported_at of the run that exported it). Files whose columns differ (a column added
// between runs) are not forced into one schema: each schema gets its own output file.
//
// Loaded only by compactions (apache-arrow and parquet-wasm cost ~40 MB of RSS).
import * as arrow from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import { encodeParquet } from '../page/parquet.ts';
import type { LakeType } from '../source/type-map.ts';

export interface MergedFile {
  readonly rows: number;
  readonly parquet: Uint8Array;
}

/** Name, type and nullability of every column: files merge only when these are equal. */
function schemaSignature(schema: arrow.Schema): string {
  return schema.fields.map((f) => `${JSON.stringify(f.name)}:${String(f.type)}:${f.nullable}`).join('|');
}

/**
 * The lake types the writer chooses each column's encoding by (page/parquet.ts chooseEncodings),
 * read from the Arrow types: dictionaries for strings and binaries by their sampled values, and
 * for booleans, smallints, dates and lists; DELTA_BINARY_PACKED for the other integer-backed
 * columns (int32, int64, timestamps); PLAIN for the rest. Without them the merged files lose
 * the exporter's encodings and grow: without dictionaries the demo's invoice_lines grew 7.3 →
 * 9.5 MiB; without delta, the bench table's 104.6 MB of exported files became 139.7 MB.
 */
function lakeTypesOf(schema: arrow.Schema): Map<string, LakeType> {
  const types = new Map<string, LakeType>();
  for (const field of schema.fields) {
    const type = field.type;
    if (arrow.DataType.isUtf8(type) || arrow.DataType.isLargeUtf8(type)) types.set(field.name, { kind: 'string' });
    else if (arrow.DataType.isBinary(type) || arrow.DataType.isLargeBinary(type)) types.set(field.name, { kind: 'binary' });
    else if (arrow.DataType.isBool(type)) types.set(field.name, { kind: 'bool' });
    else if (arrow.DataType.isInt(type) && type.bitWidth === 16) types.set(field.name, { kind: 'int16' });
    else if (arrow.DataType.isInt(type) && type.bitWidth === 32) types.set(field.name, { kind: 'int32' });
    else if (arrow.DataType.isInt(type) && type.bitWidth === 64) types.set(field.name, { kind: 'int64' });
    else if (arrow.DataType.isDate(type)) types.set(field.name, { kind: 'date' });
    else if (arrow.DataType.isTimestamp(type)) types.set(field.name, { kind: 'timestamp', utc: Boolean(type.timezone) });
    else if (arrow.DataType.isList(type)) types.set(field.name, { kind: 'list', element: { kind: 'string' } });
  }
  return types;
}

/**
 * One file per distinct schema among `files`, in the order each schema first appears. A group of
 * one file is returned as it was (no re-encoding); the others are read, concatenated and encoded.
 */
export function mergeLakeFiles(files: readonly Uint8Array[]): MergedFile[] {
  const groups = new Map<string, { tables: arrow.Table[]; bodies: Uint8Array[] }>();
  for (const body of files) {
    const table = arrow.tableFromIPC(readParquet(body).intoIPCStream());
    const signature = schemaSignature(table.schema);
    const group = groups.get(signature) ?? { tables: [], bodies: [] };
    group.tables.push(table);
    group.bodies.push(body);
    groups.set(signature, group);
  }
  return [...groups.values()].map(({ tables, bodies }) => {
    const rows = tables.reduce((n, t) => n + t.numRows, 0);
    if (tables.length === 1) return { rows, parquet: bodies[0] };
    const merged = new arrow.Table(tables[0].schema, tables.flatMap((t) => t.batches));
    return { rows, parquet: encodeParquet(merged, lakeTypesOf(merged.schema)) };
  });
}
