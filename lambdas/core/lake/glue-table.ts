// The Glue table definition of a lake table: columns from the type map, partition projection
// from the layout code. Plain data (no SDK types): the Glue adapter sends it as TableInput.
import { partitionKeysOf, partitionProjection, tableDataPrefix, type DataLocation } from './keys.ts';
import type { LakeColumn } from '../ports.ts';

export interface GlueTableDefinition {
  readonly Name: string;
  readonly Description: string;
  readonly TableType: 'EXTERNAL_TABLE';
  readonly Parameters: Record<string, string>;
  readonly PartitionKeys: { Name: string; Type: string }[];
  readonly StorageDescriptor: {
    readonly Columns: { Name: string; Type: string }[];
    readonly Location: string;
    readonly InputFormat: string;
    readonly OutputFormat: string;
    readonly SerdeInfo: { SerializationLibrary: string; Parameters: Record<string, string> };
  };
}

export function glueTableDefinition(
  lakeTable: string,
  sourceTable: string,
  columns: readonly LakeColumn[],
  lake: { readonly bucket: string; readonly prefix: string; readonly years: { readonly from: number; readonly to: number }; readonly location?: DataLocation },
): GlueTableDefinition {
  const location = lake.location ?? {};
  return {
    Name: lakeTable,
    Description: `${sourceTable}, exported by pg-lake-export`,
    TableType: 'EXTERNAL_TABLE',
    Parameters: {
      EXTERNAL: 'TRUE',
      classification: 'parquet',
      'parquet.compression': 'SNAPPY',
      ...partitionProjection(lake.bucket, lake.prefix, lakeTable, lake.years, location),
    },
    // A month or year partitioned table has no day (or month) column: a filter on it could not prune.
    PartitionKeys: partitionKeysOf(location.granularity).map((k) => ({ Name: k.name, Type: 'int' })),
    StorageDescriptor: {
      Columns: columns.map((c) => ({ Name: c.name, Type: c.type })),
      Location: `s3://${lake.bucket}/${tableDataPrefix(lake.prefix, lakeTable, location)}`,
      InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
      OutputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
      SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe', Parameters: { 'serialization.format': '1' } },
    },
  };
}
