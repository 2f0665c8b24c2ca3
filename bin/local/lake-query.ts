// The local stand-in for Athena: DuckDB over a directory lake, one view per configured table,
// named as the table and declaring exactly the Glue column list plus its partition columns (year,
// month, day; fewer for month or year partitions); and its `<table>_current` view, from the same
// SQL builder as the Glue view. Like Athena's projection template, a view reads one folder: the
// table's live generation (schema.json), so a compaction's switch is one write.
import { DuckDBInstance, DuckDBTypeId, type DuckDBConnection } from '@duckdb/node-api';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { selectTables } from '../../lambdas/core/config.ts';
import { currentViewClashes, currentViewName, currentViewSql } from '../../lambdas/core/lake/current-view.ts';
import { ConfigError } from '../../lambdas/core/errors.ts';
import { locationOf, partitionKeysOf, tableDataPrefix } from '../../lambdas/core/lake/keys.ts';
import type { LakeColumn, LakeSchema } from '../../lambdas/core/ports.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import type { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { DuckdbEngine } from '../../lambdas/adapters/duckdb-engine.ts';

const NUMERIC_TYPES: ReadonlySet<DuckDBTypeId> = new Set([
  DuckDBTypeId.TINYINT, DuckDBTypeId.SMALLINT, DuckDBTypeId.INTEGER, DuckDBTypeId.BIGINT, DuckDBTypeId.HUGEINT,
  DuckDBTypeId.UTINYINT, DuckDBTypeId.USMALLINT, DuckDBTypeId.UINTEGER, DuckDBTypeId.UBIGINT, DuckDBTypeId.UHUGEINT,
  DuckDBTypeId.FLOAT, DuckDBTypeId.DOUBLE, DuckDBTypeId.DECIMAL, DuckDBTypeId.BIGNUM,
]);

const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** Glue (Hive) type → DuckDB type, for typed empty views and casts. */
export function duckdbType(glueType: string): string {
  const array = /^array<(.+)>$/.exec(glueType);
  if (array) return `${duckdbType(array[1])}[]`;
  const simple: Record<string, string> = {
    smallint: 'SMALLINT', int: 'INTEGER', bigint: 'BIGINT', float: 'FLOAT', double: 'DOUBLE', boolean: 'BOOLEAN',
    string: 'VARCHAR', binary: 'BLOB', date: 'DATE', timestamp: 'TIMESTAMPTZ',
  };
  return simple[glueType] ?? glueType.toUpperCase();
}

/**
 * The columns the table's files hold, lower-cased (DuckDB binds names case-insensitively), over
 * all of them as the view reads them; null when the glob matches no file (read_parquet would fail).
 */
async function fileColumns(connection: DuckDBConnection, glob: string): Promise<Set<string> | null> {
  const files = await connection.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM glob(${literal(glob)})`);
  if (files.getRowObjectsJson()[0].n === 0) return null;
  const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${literal(glob)}, hive_partitioning = true, union_by_name = true)`);
  return new Set(described.getRowObjectsJson().map((row) => String(row.column_name).toLowerCase()));
}

export class LakeQuery {
  private readonly connection: DuckDBConnection;
  private constructor(connection: DuckDBConnection) {
    this.connection = connection;
  }

  static async open(config: LakeConfig, store: DirectoryStore): Promise<LakeQuery> {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    // Athena shows timestamps in UTC; so does this stand-in.
    await connection.run("SET TimeZone = 'UTC'");
    const tables = selectTables(config);
    const clashes = currentViewClashes(tables.map((t) => t.lakeName));
    if (clashes.length) throw new ConfigError(`tables: ${clashes.map((c) => c.message).join('; ')}`);
    for (const table of tables) {
      const state = new TableState(store, config.lake.prefix, table.lakeName);
      // Lakes committed before the current-state views recorded only the columns.
      const schema = await state.read<Partial<LakeSchema> & { columns: LakeColumn[] }>(state.schemaKey());
      if (!schema) continue; // never committed: no view, as Athena would have no table
      const columns = schema.value.columns;
      const location = locationOf(schema.value);
      const keys = partitionKeysOf(location.granularity);
      const dir = path.join(store.root, tableDataPrefix(config.lake.prefix, table.lakeName, location));
      const glob = path.join(dir, keys.map((k) => `${k.name}=*`).join('/'), '*.parquet');
      const partitions = keys.map((k) => `TRY_CAST(${k.name} AS INTEGER) AS ${k.name}`).join(', ');
      // Only the folders Athena's partition projection enumerates (glue-table.ts): each key an
      // integer in its range, written with exactly its digits. A file elsewhere (a year outside
      // the projection) is invisible to Athena, so it is here too: local runs see what Athena does.
      const years = schema.value.years ?? config.lake.partitionYears;
      const ranges = { year: [years.from, years.to], month: [1, 12], day: [1, 31] } as const;
      const projected = keys.map((k) => `regexp_full_match(${k.name}, '[0-9]{${k.digits}}') AND TRY_CAST(${k.name} AS INTEGER) BETWEEN ${ranges[k.name][0]} AND ${ranges[k.name][1]}`).join(' AND ');
      let body: string;
      const inFiles = existsSync(dir) ? await fileColumns(connection, glob) : null;
      if (inFiles) {
        // Athena reads a declared column no file has (a lake upgraded from a version without
        // `_lake_deleted`, before its first new file) as NULL; DuckDB would refuse to bind it.
        const select = columns.map((c) => inFiles.has(c.source.toLowerCase())
          ? `${quote(c.source)} AS ${quote(c.name)}`
          : `CAST(NULL AS ${duckdbType(c.type)}) AS ${quote(c.name)}`).join(', ');
        body = `SELECT ${select}, ${partitions} FROM read_parquet(${literal(glob)}, hive_partitioning = true, hive_types_autocast = false, union_by_name = true) WHERE ${projected}`;
      } else {
        const select = columns.map((c) => `CAST(NULL AS ${duckdbType(c.type)}) AS ${quote(c.name)}`).join(', ');
        body = `SELECT ${select}, ${keys.map((k) => `CAST(NULL AS INTEGER) AS ${k.name}`).join(', ')} WHERE false`;
      }
      await connection.run(`CREATE VIEW ${quote(table.lakeName)} AS ${body}`);
      const { key, cursor, softDelete } = schema.value;
      if (key === undefined || cursor === undefined) continue; // the next commit records them
      const sql = currentViewSql('duckdb', { lakeTable: table.lakeName, schema: { columns, key, cursor, softDelete } });
      await connection.run(`CREATE VIEW ${quote(currentViewName(table.lakeName))} AS ${sql}`);
    }
    return new LakeQuery(connection);
  }

  /** Rows as JSON-safe objects (bigints and decimals as strings, timestamps as ISO text). */
  async query(sql: string): Promise<Record<string, unknown>[]> {
    const reader = await this.connection.runAndReadAll(sql);
    return reader.getRowObjectsJson() as Record<string, unknown>[];
  }

  /** Rows as `query` gives them, and which columns hold numbers (to right-align them). */
  async queryWithTypes(sql: string): Promise<{ rows: Record<string, unknown>[]; numericColumns: Set<string> }> {
    const reader = await this.connection.runAndReadAll(sql);
    const types = reader.columnTypes();
    const numericColumns = new Set(reader.columnNames().filter((_, i) => NUMERIC_TYPES.has(types[i].typeId)));
    return { rows: reader.getRowObjectsJson() as Record<string, unknown>[], numericColumns };
  }

  /**
   * The same views as a QueryEngine (values as text, as Athena gives them): what `validate`
   * and the Athena stand-in query. Closing the engine closes this LakeQuery.
   */
  engine(): DuckdbEngine {
    return new DuckdbEngine(this.connection, { description: 'duckdb (local lake)', onClose: () => this.close() });
  }

  private closed = false;

  /** Repeatable: the engine and its owner may both close it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.connection.closeSync();
  }
}
