// The row work of a compaction: lake files read back and written again as fewer, larger files,
// every row and value as it was (export metadata included: each row keeps the _lake_run_id and
// _lake_exported_at of the run that exported it). Files whose columns differ (a column added
// between runs) are not forced into one schema: each schema gets its own output file.
//
// Loaded only by compactions (apache-arrow and parquet-wasm cost ~40 MB of RSS).
import * as arrow from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import type { WriterSettings } from '../page/parquet.ts';
import { FILE } from '../page/parquet-chunks.ts';
import { readFooter, SplicedParquetFile } from '../page/parquet-splice.ts';
import { getInt } from '../page/thrift.ts';
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

/** The Arrow schema of a Parquet file, from its first row (cheap: nothing else is decoded). */
function schemaOf(body: Uint8Array): arrow.Schema {
  return arrow.tableFromIPC(readParquet(body, { limit: 1 }).intoIPCStream()).schema;
}

/**
 * One file per distinct schema among `files`, in the order each schema first appears. A group of
 * one file is returned as it was (no re-encoding). The others are streamed, file after file, into
 * one file written as the exporter writes (SplicedParquetFile: row groups of `settings`, the
 * encodings chosen from the group's first file), so memory holds one source file's rows and one
 * row group, not the whole merge: concatenated and encoded at once, a 119 MB page of 13 MB files
 * took 2.4 GiB of RSS.
 */
export async function mergeLakeFiles(files: readonly Uint8Array[], settings: WriterSettings): Promise<MergedFile[]> {
  const groups = new Map<string, Uint8Array[]>();
  for (const body of files) {
    const signature = schemaSignature(schemaOf(body));
    groups.set(signature, [...(groups.get(signature) ?? []), body]);
  }
  const merged: MergedFile[] = [];
  for (const bodies of groups.values()) {
    if (bodies.length === 1) {
      merged.push({ rows: Number(getInt(readFooter(bodies[0]), FILE.numRows) ?? 0n), parquet: bodies[0] });
      continue;
    }
    let file: SplicedParquetFile | null = null;
    const parts: Uint8Array[] = [];
    let rows = 0;
    try {
      for (const body of bodies) {
        const table = arrow.tableFromIPC(readParquet(body).intoIPCStream());
        file ??= new SplicedParquetFile(table, lakeTypesOf(table.schema), settings);
        await file.append(table);
        rows += table.numRows;
        parts.push(...file.take());
      }
      parts.push(...await file!.close());
    } catch (error) {
      await file?.abort();
      throw error;
    }
    merged.push({ rows, parquet: Buffer.concat(parts) });
  }
  return merged;
}
