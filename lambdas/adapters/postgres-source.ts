// The Postgres side: catalog, clock, and binary COPY. Every session is pinned to UTC/ISO so
// text forms (window bounds, keyset literals, `::text` columns) are the same everywhere.
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { ClientConfig } from 'pg';
import type { QualifiedName } from '../core/identifiers.ts';
import type { ClockReading, RowSource, TableCatalog } from '../core/ports.ts';
import type { CatalogColumn } from '../core/type-map.ts';

const SESSION_SETUP = [
  "SET TimeZone = 'UTC'",
  "SET DateStyle = 'ISO, YMD'",
  "SET IntervalStyle = 'postgres'",
  'SET extra_float_digits = 3',
  "SET application_name = 'pg-lake-export'",
].join('; ');

// Every value as the text Postgres sent: no lossy parsing into JS numbers or Dates.
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

const COLUMNS_SQL = `
SELECT a.attname AS name,
       bt.typname AS type_name,
       bt.typtype AS type_kind,
       et.typname AS element_type_name,
       et.typtype AS element_type_kind,
       (CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END)::text AS typmod,
       format_type(a.atttypid, a.atttypmod) AS formatted,
       a.attnotnull::text AS not_null
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  LEFT JOIN pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem
 WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`;

const PRIMARY_KEY_SQL = `
SELECT a.attname AS name
  FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
 WHERE i.indrelid = $1::oid AND i.indisprimary
 ORDER BY array_position(i.indkey::int2[], a.attnum)`;

// Open transactions in this database other than ours hold the window's upper bound back:
// a row they commit later may carry an updated_at from when they began.
const CLOCK_SQL = `
WITH oldest AS (
  SELECT pid, xact_start
    FROM pg_stat_activity
   WHERE pid <> pg_backend_pid()
     AND datid = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND backend_type = 'client backend'
     AND xact_start IS NOT NULL
     AND state <> 'idle'
   ORDER BY xact_start
   LIMIT 1)
SELECT now()::text AS now,
       least(now() - make_interval(secs => $1::int), (SELECT xact_start - interval '1 microsecond' FROM oldest))::text AS upper,
       (SELECT pid::text FROM oldest WHERE xact_start - interval '1 microsecond' < now() - make_interval(secs => $1::int)) AS held_pid,
       (SELECT xact_start::text FROM oldest) AS held_since`;

export class PostgresSource implements RowSource {
  private readonly client: pg.Client;
  private ready: Promise<void> | null = null;

  constructor(config: string | ClientConfig) {
    this.client = new pg.Client(config);
  }

  private connect(): Promise<void> {
    this.ready ??= (async () => {
      await this.client.connect();
      await this.client.query(SESSION_SETUP);
    })();
    return this.ready;
  }

  async queryText(sql: string, params: readonly string[] = []): Promise<Record<string, string | null>[]> {
    await this.connect();
    const result = await this.client.query({ text: sql, values: [...params], types: RAW_TEXT });
    return result.rows as Record<string, string | null>[];
  }

  async describeTable(table: QualifiedName): Promise<TableCatalog | null> {
    const found = await this.queryText(
      `SELECT c.oid::text AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
      [table.schema, table.name],
    );
    if (found.length === 0) return null;
    const oid = found[0].oid!;
    const columns: CatalogColumn[] = (await this.queryText(COLUMNS_SQL, [oid])).map((r) => ({
      name: r.name!,
      typeName: r.type_name!,
      typeKind: r.type_kind!,
      elementTypeName: r.element_type_name,
      elementTypeKind: r.element_type_kind,
      typmod: Number(r.typmod),
      formatted: r.formatted!,
      notNull: r.not_null === 'true',
    }));
    const primaryKey = (await this.queryText(PRIMARY_KEY_SQL, [oid])).map((r) => r.name!);
    return { columns, primaryKey };
  }

  async readClock(safetyLagSeconds: number): Promise<ClockReading> {
    const [row] = await this.queryText(CLOCK_SQL, [String(safetyLagSeconds)]);
    return {
      now: row.now!,
      upper: row.upper!,
      heldBackBy: row.held_pid ? { pid: Number(row.held_pid), xactStart: row.held_since! } : null,
    };
  }

  async copyBinary(select: string): Promise<Buffer> {
    await this.connect();
    const stream = this.client.query(copyTo(`COPY (${select}) TO STDOUT (FORMAT binary)`));
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return Buffer.concat(chunks, size);
  }

  async close(): Promise<void> {
    if (this.ready) await this.client.end().catch(() => undefined);
  }
}
