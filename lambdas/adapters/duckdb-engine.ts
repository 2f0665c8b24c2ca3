// The QueryEngine port over a DuckDB connection: locally, the connection of bin/local/lake-query.ts,
// whose views are the lake's tables as Athena declares them. Values come back as text, as
// Athena's GetQueryResults gives them, so the core reads both engines' answers the same way.
// Not bundled into any Lambda (DuckDB is a native module); Lambdas use the Athena adapter.
import { DuckDBTypeId, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import type { QueryColumn, QueryEngine, QueryResult } from '../core/ports.ts';
import { ExportError } from '../core/errors.ts';
import { availableParallelism } from 'node:os';

const KINDS: ReadonlyMap<DuckDBTypeId, QueryColumn['kind']> = new Map([
  ...[DuckDBTypeId.TINYINT, DuckDBTypeId.SMALLINT, DuckDBTypeId.INTEGER, DuckDBTypeId.BIGINT, DuckDBTypeId.HUGEINT,
    DuckDBTypeId.UTINYINT, DuckDBTypeId.USMALLINT, DuckDBTypeId.UINTEGER, DuckDBTypeId.UBIGINT, DuckDBTypeId.UHUGEINT].map((t) => [t, 'integer'] as const),
  [DuckDBTypeId.DECIMAL, 'decimal'],
  [DuckDBTypeId.FLOAT, 'float'],
  [DuckDBTypeId.DOUBLE, 'float'],
  [DuckDBTypeId.BOOLEAN, 'boolean'],
  [DuckDBTypeId.VARCHAR, 'text'],
  [DuckDBTypeId.DATE, 'date'],
  [DuckDBTypeId.TIMESTAMP, 'timestamp'],
  [DuckDBTypeId.TIMESTAMP_TZ, 'timestamp'],
  [DuckDBTypeId.TIMESTAMP_MS, 'timestamp'],
  [DuckDBTypeId.TIMESTAMP_S, 'timestamp'],
  [DuckDBTypeId.TIMESTAMP_NS, 'timestamp'],
  [DuckDBTypeId.BLOB, 'binary'],
]);

export function queryColumnOf(name: string, type: DuckDBType): QueryColumn {
  return { name, type: type.toString(), kind: KINDS.get(type.typeId) ?? 'other' };
}

/** A JSON value as DuckDB's JSON conversion gives it → the text Athena would print (lists as JSON). */
function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

export interface DuckdbEngineOptions {
  /** Run when the engine is closed (the owner of the connection closes it). */
  readonly onClose?: () => void | Promise<void>;
  /** For messages. @default 'duckdb' */
  readonly description?: string;
  /**
   * DuckDB's threads (a setting of the whole database the connection belongs to). The local
   * lake's engine shares the machine with Postgres, and delete detection runs both at once: with
   * a thread on every core they slowed each other (an unchanged 1M-key table on 2 cores:
   * reconciled in 298 ms with 2 threads, 161 ms with 1). @default one core fewer than the machine has, at least 1
   */
  readonly threads?: number;
}

export class DuckdbEngine implements QueryEngine {
  readonly description: string;
  private readonly connection: DuckDBConnection;
  private readonly onClose?: () => void | Promise<void>;

  private threads: number | null;

  constructor(connection: DuckDBConnection, options: DuckdbEngineOptions = {}) {
    this.connection = connection;
    this.description = options.description ?? 'duckdb';
    this.onClose = options.onClose;
    this.threads = options.threads ?? Math.max(1, availableParallelism() - 1);
  }

  async query(sql: string): Promise<QueryResult> {
    let reader;
    try {
      if (this.threads !== null) {
        await this.connection.run(`SET threads = ${this.threads}`);
        this.threads = null;
      }
      reader = await this.connection.runAndReadAll(sql);
    } catch (error) {
      throw new ExportError(`${this.description}: query failed: ${(error as Error).message}\n${sql}`, { cause: error });
    }
    const types = reader.columnTypes();
    const columns = reader.columnNames().map((name, i) => queryColumnOf(name, types[i]));
    const rows = reader.getRowsJson().map((row) => row.map(text));
    // Local files: nothing is billed by the byte.
    return { columns, rows, bytesScanned: 0 };
  }

  async close(): Promise<void> {
    await this.onClose?.();
  }
}
