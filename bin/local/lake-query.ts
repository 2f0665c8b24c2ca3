// The local stand-in for Athena: DuckDB over a directory lake, one view per configured table,
// named as the table and declaring exactly the Glue column list plus year, month, day.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { selectTables } from '../../lambdas/core/config.ts';
import { PARTITION_KEYS, tableDataPrefix } from '../../lambdas/core/layout.ts';
import type { LakeColumn } from '../../lambdas/core/ports.ts';
import { TableState } from '../../lambdas/core/state.ts';
import type { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';

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
    for (const table of selectTables(config)) {
      const state = new TableState(store, config.lake.prefix, table.lakeName);
      const schema = await state.read<{ columns: LakeColumn[] }>(state.schemaKey());
      if (!schema) continue; // never committed: no view, as Athena would have no table
      const columns = schema.value.columns;
      const dir = path.join(store.root, tableDataPrefix(config.lake.prefix, table.lakeName));
      const glob = path.join(dir, PARTITION_KEYS.map((k) => `${k.name}=*`).join('/'), '*.parquet');
      const partitions = PARTITION_KEYS.map((k) => `CAST(${k.name} AS INTEGER) AS ${k.name}`).join(', ');
      let body: string;
      if (existsSync(dir)) {
        const select = columns.map((c) => `${quote(c.source)} AS ${quote(c.name)}`).join(', ');
        body = `SELECT ${select}, ${partitions} FROM read_parquet(${literal(glob)}, hive_partitioning = true, union_by_name = true)`;
      } else {
        const select = columns.map((c) => `CAST(NULL AS ${duckdbType(c.type)}) AS ${quote(c.name)}`).join(', ');
        body = `SELECT ${select}, ${PARTITION_KEYS.map((k) => `CAST(NULL AS INTEGER) AS ${k.name}`).join(', ')} WHERE false`;
      }
      await connection.run(`CREATE VIEW ${quote(table.lakeName)} AS ${body}`);
    }
    return new LakeQuery(connection);
  }

  /** Rows as JSON-safe objects (bigints and decimals as strings, timestamps as ISO text). */
  async query(sql: string): Promise<Record<string, unknown>[]> {
    const reader = await this.connection.runAndReadAll(sql);
    return reader.getRowObjectsJson() as Record<string, unknown>[];
  }

  close(): void {
    this.connection.closeSync();
  }
}
