// Arrow → Snappy Parquet with parquet-wasm. Writer properties are built fresh for every file:
// writeParquet consumes them, and reusing one silently writes the next file uncompressed.
import * as arrow from 'apache-arrow';
import { Compression, EnabledStatistics, Table as WasmTable, WriterPropertiesBuilder, WriterVersion, writeParquet } from 'parquet-wasm/node';
import type { LakeType } from './type-map.ts';

export const CREATED_BY = 'pg-lake-export';

/**
 * Dictionary encoding pays off for repeated values and costs ~40% of encode time for unique
 * ones (DESIGN.md, measured facts); keys, timestamps, decimals and floats are nearly unique.
 */
function wantsDictionary(type: LakeType): boolean {
  return type.kind === 'string' || type.kind === 'bool' || type.kind === 'int16' || type.kind === 'date' || type.kind === 'list';
}

export function encodeParquet(table: arrow.Table, types: ReadonlyMap<string, LakeType>): Uint8Array {
  let builder = new WriterPropertiesBuilder()
    .setCompression(Compression.SNAPPY)
    // Data page v1: what every Athena engine version reads.
    .setWriterVersion(WriterVersion.V1)
    .setCreatedBy(CREATED_BY)
    .setStatisticsEnabled(EnabledStatistics.Chunk)
    .setMaxRowGroupSize(Math.max(table.numRows, 1))
    .setDictionaryEnabled(false);
  for (const [name, type] of types) if (wantsDictionary(type)) builder = builder.setColumnDictionaryEnabled(name, true);
  const properties = builder.build();
  const wasmTable = WasmTable.fromIPCStream(arrow.tableToIPC(table, 'stream'));
  return writeParquet(wasmTable, properties);
}
