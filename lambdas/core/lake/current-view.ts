// The current-state view of a lake table, `<table>_current`: the latest exported version of each
// primary key, minus keys whose latest version the soft-delete column flags. One SQL builder
// serves Athena (a Glue VIRTUAL_VIEW in the Presto view encoding, created at commit next to its
// table) and the local DuckDB stand-in, so the two cannot drift.
//
// Tombstones (`_lake_deleted`, README "Deletes") end a key the same way: its latest version says
// it is gone, so the key is left out; a later version (the key inserted again) brings it back.
//
// The view exposes the table's Glue columns (export metadata included: `_lake_exported_at` says
// when the current version arrived) but not year/month/day: the partition is where a version
// was filed, not part of the row's state, and a filter on it would be applied after the ranking,
// so it would prune no files while reading as if it did. Filter on the partition column itself.
import { ExportError, SchemaMismatchError, UnsupportedTypeError } from '../errors.ts';
import { quoteIdent } from '../identifiers.ts';
import { META_DELETED, META_EXPORTED_AT } from '../page/page-layout.ts';
import type { LakeColumn, LakeSchema } from '../ports.ts';
import type { TableShape } from '../source/table-shape.ts';

export type ViewDialect = 'athena' | 'duckdb';

/** The Glue catalog as Athena names it in view definitions. */
export const ATHENA_CATALOG = 'awsdatacatalog';
const PRESTO_VIEW_PREFIX = '/* Presto View: ';
const PRESTO_VIEW_SUFFIX = ' */';

export function currentViewName(lakeTable: string): string {
  return `${lakeTable}_current`;
}

/** Configured lake tables named as another table's current-state view: neither may shadow the other. */
export function currentViewClashes(lakeTables: readonly string[]): { table: string; view: string; message: string }[] {
  const names = new Set(lakeTables);
  return lakeTables
    .filter((table) => names.has(currentViewName(table)))
    .map((table) => ({
      table,
      view: currentViewName(table),
      message: `lake table "${currentViewName(table)}" has the name of the current-state view of lake table "${table}"; set tables[].lakeName on one of them`,
    }));
}

/** What schema.json records at commit: the columns, and the engine names of key, cursor and soft-delete column. */
export function lakeSchema(shape: TableShape, columns: readonly LakeColumn[]): LakeSchema {
  const engineName = (source: string): string => {
    const column = columns.find((c) => c.source === source);
    if (!column) throw new SchemaMismatchError(`${shape.table.display}: column ${JSON.stringify(source)} is not among the lake columns`);
    return column.name;
  };
  const softDelete = shape.table.config.softDeleteColumn;
  return {
    columns,
    key: shape.keyColumns.map((c) => engineName(c.name)),
    // Snapshot tables hold one version per key per run: the latest export is the latest version.
    cursor: shape.cursor ? engineName(shape.cursor.name) : META_EXPORTED_AT,
    ...(softDelete === undefined ? {} : { softDelete: engineName(softDelete) }),
  };
}

export interface CurrentViewSource {
  /** The lake table (Glue table; DuckDB view) the versions are read from. */
  readonly lakeTable: string;
  readonly schema: LakeSchema;
  /** Glue database: Athena's SQL names the table with it. Not used by DuckDB. */
  readonly database?: string;
}

/**
 * The view's query. Rank the versions of each key newest first — by the cursor, then by export
 * time for versions that share a cursor value (a `date` cursor) — keep rank 1, then drop keys
 * whose latest version is soft-deleted. The filter comes after the ranking on purpose: a deleted
 * key must vanish, not fall back to its previous version. A NULL flag counts as not deleted.
 */
export function currentViewSql(dialect: ViewDialect, source: CurrentViewSource): string {
  const { schema } = source;
  if (schema.key.length === 0) throw new SchemaMismatchError(`${source.lakeTable}: a current-state view needs a primary key`);
  const names = new Set(schema.columns.map((c) => c.name));
  for (const name of [...schema.key, schema.cursor, META_EXPORTED_AT, ...(schema.softDelete === undefined ? [] : [schema.softDelete])]) {
    if (!names.has(name)) throw new SchemaMismatchError(`${source.lakeTable}: view column ${JSON.stringify(name)} is not among the table's columns`);
  }
  let table = quoteIdent(source.lakeTable);
  if (dialect === 'athena') {
    if (source.database === undefined) throw new ExportError(`${source.lakeTable}: the Athena view needs the Glue database name`);
    table = `${quoteIdent(source.database)}.${table}`;
  }
  // The helper column must not shadow a real one, whatever the table calls its columns.
  let rank = '_lake_rank';
  while (names.has(rank)) rank = `_${rank}`;
  const columns = schema.columns.map((c) => quoteIdent(c.name)).join(', ');
  const partition = schema.key.map(quoteIdent).join(', ');
  // Schemas committed before tombstones existed do not declare the column (and hold none).
  const tombstones = names.has(META_DELETED);
  // A tombstone's cursor is its run's window end; a version the same run exported with that
  // very cursor was read before the key was found gone: the tombstone is the later fact.
  const order = `${quoteIdent(schema.cursor)} DESC, ${quoteIdent(META_EXPORTED_AT)} DESC${tombstones ? `, ${quoteIdent(META_DELETED)} DESC NULLS LAST` : ''}`;
  const where = [`${quoteIdent(rank)} = 1`];
  if (tombstones) where.push(`${quoteIdent(META_DELETED)} IS DISTINCT FROM true`);
  if (schema.softDelete !== undefined) where.push(`${quoteIdent(schema.softDelete)} IS DISTINCT FROM true`);
  return [
    `SELECT ${columns}`,
    'FROM (',
    `  SELECT ${columns}, row_number() OVER (PARTITION BY ${partition} ORDER BY ${order}) AS ${quoteIdent(rank)}`,
    `  FROM ${table}`,
    ') AS "versions"',
    `WHERE ${where.join(' AND ')}`,
  ].join('\n');
}

const PRESTO_TYPES: Record<string, string> = {
  tinyint: 'tinyint', smallint: 'smallint', int: 'integer', integer: 'integer', bigint: 'bigint',
  float: 'real', double: 'double', boolean: 'boolean', string: 'varchar', binary: 'varbinary',
  date: 'date',
  // Athena (engine v3) reads Hive timestamps at millisecond precision.
  timestamp: 'timestamp(3)',
};

/** Glue (Hive) column type → the Presto/Trino type a view definition declares. */
export function prestoType(hiveType: string): string {
  const array = /^array<(.+)>$/.exec(hiveType);
  if (array) return `array(${prestoType(array[1])})`;
  const decimal = /^decimal\((\d+),(\d+)\)$/.exec(hiveType);
  if (decimal) return `decimal(${decimal[1]},${decimal[2]})`;
  const simple = PRESTO_TYPES[hiveType];
  if (simple === undefined) throw new UnsupportedTypeError(`Glue type ${JSON.stringify(hiveType)} has no Presto view type`);
  return simple;
}

/** The JSON that Athena keeps, base64-encoded, in a Presto view's ViewOriginalText. */
export interface PrestoViewJson {
  readonly originalSql: string;
  readonly catalog: string;
  readonly schema: string;
  readonly columns: { readonly name: string; readonly type: string }[];
}

export function encodePrestoView(view: PrestoViewJson): string {
  return `${PRESTO_VIEW_PREFIX}${Buffer.from(JSON.stringify(view), 'utf8').toString('base64')}${PRESTO_VIEW_SUFFIX}`;
}

export function decodePrestoView(text: string): PrestoViewJson {
  if (!text.startsWith(PRESTO_VIEW_PREFIX) || !text.endsWith(PRESTO_VIEW_SUFFIX)) throw new ExportError(`not a Presto view text: ${text.slice(0, 40)}…`);
  return JSON.parse(Buffer.from(text.slice(PRESTO_VIEW_PREFIX.length, -PRESTO_VIEW_SUFFIX.length), 'base64').toString('utf8')) as PrestoViewJson;
}

/** A Glue view as Athena itself stores one (plain data; the Glue adapter sends it as TableInput). */
export interface GlueViewDefinition {
  readonly Name: string;
  readonly Description: string;
  readonly TableType: 'VIRTUAL_VIEW';
  readonly Parameters: Record<string, string>;
  readonly PartitionKeys: { Name: string; Type: string }[];
  readonly ViewOriginalText: string;
  readonly ViewExpandedText: string;
  readonly StorageDescriptor: {
    /** Hive types here; Presto types in the encoded JSON. */
    readonly Columns: { Name: string; Type: string }[];
    /** Present though empty: Athena refuses a view whose storage descriptor has no SerDe info. */
    readonly SerdeInfo: Record<string, never>;
  };
}

export function glueViewDefinition(lakeTable: string, sourceTable: string, database: string, schema: LakeSchema): GlueViewDefinition {
  const view: PrestoViewJson = {
    originalSql: currentViewSql('athena', { lakeTable, schema, database }),
    catalog: ATHENA_CATALOG,
    schema: database,
    columns: schema.columns.map((c) => ({ name: c.name, type: prestoType(c.type) })),
  };
  const deleted = schema.softDelete === undefined ? '' : `, rows with ${schema.softDelete} = true left out`;
  return {
    Name: currentViewName(lakeTable),
    Description: `${sourceTable}: latest version per primary key (${schema.key.join(', ')})${deleted}, by pg-lake-export`,
    TableType: 'VIRTUAL_VIEW',
    Parameters: { presto_view: 'true', comment: 'Presto View' },
    PartitionKeys: [],
    ViewOriginalText: encodePrestoView(view),
    ViewExpandedText: '/* Presto View */',
    StorageDescriptor: {
      Columns: schema.columns.map((c) => ({ Name: c.name, Type: c.type })),
      SerdeInfo: {},
    },
  };
}
