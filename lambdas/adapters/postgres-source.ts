// The Postgres side: catalog, clock, and binary COPY. Every session is pinned to UTC/ISO so
// text forms (window bounds, keyset literals, `::text` columns) are the same everywhere.
import pg from 'pg';
import type { ClientConfig } from 'pg';
import { quoteIdent, quoteQualified, type QualifiedName } from '../core/identifiers.ts';
import type { ClockReading, RowSource, TableCatalog } from '../core/ports.ts';
import type { CatalogColumn } from '../core/source/type-map.ts';
import type { DatabaseSurvey, IndexInfo, ListedTable, NumericDigits } from '../core/source/discover.ts';
import { ExportError, ThrottlingError } from '../core/errors.ts';
import { CopyOut } from './copy-out.ts';

const SESSION_SETUP = [
  "SET TimeZone = 'UTC'",
  "SET DateStyle = 'ISO, YMD'",
  "SET IntervalStyle = 'postgres'",
  'SET extra_float_digits = 3',
  "SET application_name = 'pg-lake-export'",
  // Literals are quoted by doubling quotes only (identifiers.ts): a backslash must stay a
  // backslash whatever the database's default, or a key like 'a\1' pages forever.
  'SET standard_conforming_strings = on',
].join('; ');

// Every value as the text Postgres sent: no lossy parsing into JS numbers or Dates.
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

const COLUMNS_SQL = `
SELECT a.attname AS name,
       bt.typname AS type_name,
       bt.typtype AS type_kind,
       ebt.typname AS element_type_name,
       ebt.typtype AS element_type_kind,
       (CASE WHEN t.typtype = 'd' THEN t.typtypmod WHEN et.typtype = 'd' THEN et.typtypmod ELSE a.atttypmod END)::text AS typmod,
       format_type(a.atttypid, a.atttypmod) AS formatted,
       a.attnotnull::text AS not_null
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  LEFT JOIN pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem
  -- An array of a domain: its elements are the domain's base type (and typmod), as a column of it is.
  LEFT JOIN pg_type ebt ON ebt.oid = CASE WHEN et.typtype = 'd' THEN et.typbasetype ELSE et.oid END
 WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`;

const PRIMARY_KEY_SQL = `
SELECT a.attname AS name
  FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
 WHERE i.indrelid = $1::oid AND i.indisprimary
 ORDER BY array_position(i.indkey::int2[], a.attnum)`;

// Open transactions in this database other than ours hold the window's upper bound back:
// a row they commit later may carry an updated_at from when they began. Two kinds of writer hide
// when they began: a prepared transaction (two-phase commit), which has left its session, and a
// session with track_activities off, which shows no xact_start but still holds a transaction id.
// Their start is unknown, so the exporter holds the tables they hold locks on at their
// watermark; every relation they lock is listed (with the tables it inherits from).
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
   LIMIT 1),
hidden AS (
  SELECT format('prepared transaction %s', to_json(gid)::text) AS who, prepared AS since, NULL::int AS pid
    FROM pg_prepared_xacts WHERE database = current_database()
  UNION ALL
  SELECT format('session pid %s (track_activities off)', pid), backend_start, pid
    FROM pg_stat_activity
   WHERE pid <> pg_backend_pid()
     AND datid = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND backend_xid IS NOT NULL AND xact_start IS NULL),
locked AS (
  -- pid is NULL only for a prepared transaction's locks, which it keeps until resolved.
  SELECT l.relation AS oid FROM pg_locks l
   WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND (l.pid IS NULL OR l.pid IN (SELECT pid FROM hidden WHERE pid IS NOT NULL))),
parents AS (
  WITH RECURSIVE up AS (SELECT oid FROM locked UNION SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.oid)
  SELECT oid FROM up)
SELECT now()::text AS now,
       least(now() - make_interval(secs => $1::int), (SELECT xact_start - interval '1 microsecond' FROM oldest))::text AS upper,
       (SELECT pid::text FROM oldest WHERE xact_start - interval '1 microsecond' < now() - make_interval(secs => $1::int)) AS held_pid,
       (SELECT xact_start::text FROM oldest) AS held_since,
       (SELECT json_build_object('who', who, 'since', since::text, 'relations',
                 (SELECT coalesce(json_agg(jsonb_build_object('schema', n.nspname, 'name', c.relname)), '[]')
                    FROM parents JOIN pg_class c ON c.oid = parents.oid JOIN pg_namespace n ON n.oid = c.relnamespace))::text
          FROM hidden ORDER BY since LIMIT 1) AS hidden_writer,
       (pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')
        OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))::text AS sees_all`;

// Errors worth a new connection and another try: the connection or server went away.
const TRANSIENT_SQLSTATES = new Set(['57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '40001', '40P01']);
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT']);

function isTransient(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return TRANSIENT_SQLSTATES.has(e.code ?? '') || TRANSIENT_CODES.has(e.code ?? '') || /Connection terminated|connection closed|Client has encountered a connection error/i.test(e.message ?? '');
}

/** A connection string with its password replaced by `***` (everything up to the last `@` of the authority). */
function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):.*@/i, '$1:***@').replace(/([?&]password=)[^&]*/i, '$1***');
}

const ENCODE_HINT = 'characters such as # / ? @ : % in the user or password must be percent-encoded in the URL (# → %23, / → %2F, ? → %3F, @ → %40, : → %3A, % → %25), e.g. node -p \'encodeURIComponent(process.argv[1])\' \'<password>\'';

/**
 * A connection failure in words a person can act on: where it tried to connect, which setting
 * that came from (DATABASE_URL, never its password) and the likely fix. The driver's `code`
 * is kept, so a transient failure is still retried.
 */
function connectionFailure(error: unknown, config: string | ClientConfig, client: pg.Client | null): ExportError {
  const e = error as { code?: string; message?: string };
  const raw = e.message ?? String(error);
  const origin = typeof config === 'string' ? `DATABASE_URL=${redactUrl(config)}` : 'the database secret';
  const host = client?.host ?? (typeof config === 'string' ? undefined : config.host);
  const port = client?.port ?? (typeof config === 'string' ? undefined : config.port);
  const user = client?.user ?? (typeof config === 'string' ? undefined : config.user);
  const where = host ? `${host}:${port ?? 5432}` : 'the database';
  let hint: string;
  if (client === null) hint = `not a valid connection URL (postgres://user:password@host:5432/db): ${ENCODE_HINT}`;
  else if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') hint = `the host name ${JSON.stringify(host)} does not resolve: check the host in ${origin}; if part of the password shows up as the host, the password holds a character that ends it early: ${ENCODE_HINT}`;
  else if (e.code === 'ECONNREFUSED') hint = `nothing accepts connections at ${where}: is the server running and listening on that address and port (listen_addresses, port)?`;
  else if (e.code === 'ETIMEDOUT' || /timeout/i.test(raw)) hint = `no answer from ${where}: a firewall or security group may drop the traffic, or the host is wrong`;
  else if (e.code === '28P01') hint = `the server refused the password of user ${JSON.stringify(user)}: check user and password in ${origin} (${ENCODE_HINT})`;
  else if (e.code === '28000') hint = `the server does not admit user ${JSON.stringify(user)} from here (pg_hba.conf), or needs TLS: add ?sslmode=require to the URL`;
  else if (e.code === '3D000') hint = `the database named in ${origin} does not exist on ${where}`;
  else if (/does not support SSL/i.test(raw)) hint = `the server has no TLS: add ?sslmode=disable to ${origin} for a local server`;
  else hint = `check ${origin}`;
  const failure = new ExportError(`cannot connect to PostgreSQL${host ? ` at ${where}` : ''} (${origin}): ${raw}; ${hint}`, { cause: error });
  return Object.assign(failure, { code: e.code });
}

// discover's catalog survey (lambdas/core/source/discover.ts holds its rules).
const SYSTEM_SCHEMA_FILTER = `n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

// Ordinary and partitioned tables; partitions are exported through their parent, extension
// members (e.g. spatial_ref_sys) and temporary tables are not the user's data.
const SURVEY_TABLES_SQL = `
SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       has_table_privilege(c.oid, 'SELECT')::text AS readable,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT CASE WHEN bool_or(l.reltuples >= 0) THEN sum(greatest(l.reltuples, 0))::bigint END
                    FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid WHERE t.isleaf)
            WHEN c.reltuples >= 0 THEN c.reltuples::bigint END::text AS estimated_rows,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t WHERE t.isleaf)
            ELSE pg_total_relation_size(c.oid) END::text AS size_bytes
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
   AND ${SYSTEM_SCHEMA_FILTER}
   AND (json_array_length($1::json) = 0 OR n.nspname = ANY (ARRAY(SELECT json_array_elements_text($1::json))))
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`;

// Valid, non-partial btree indexes with their key columns (an expression key has no name: null).
const SURVEY_INDEXES_SQL = `
SELECT ic.relname AS name, i.indisunique::text AS is_unique,
       (SELECT json_agg(a.attname ORDER BY k.ord)
          FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, ord)
          LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)::text AS columns
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE i.indrelid = $1::oid AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'
 ORDER BY ic.relname COLLATE "C"`;

/** Per numeric column: non-NULL values, most integer and fractional digits of finite ones, NaN/±Infinity count. */
function measureNumericsSql(table: QualifiedName, columns: readonly string[], read: { readonly samplePercent: number | null; readonly limit: number }): string {
  const from = `${quoteQualified(table)}${read.samplePercent === null ? '' : ` TABLESAMPLE SYSTEM (${read.samplePercent})`}`;
  const select = columns.map((c, i) => {
    const q = quoteIdent(c);
    // scale() is NULL for NaN and ±Infinity: those are counted apart, as no decimal holds them.
    return [
      `count(${q})::text AS n${i}`,
      `max(CASE WHEN trunc(abs(${q})) = 0 THEN 0 ELSE length(trunc(abs(${q}))::text) END) FILTER (WHERE scale(${q}) IS NOT NULL)::text AS i${i}`,
      `max(scale(${q}))::text AS s${i}`,
      `count(${q}) FILTER (WHERE scale(${q}) IS NULL)::text AS x${i}`,
    ].join(', ');
  });
  return `SELECT count(*)::text AS rows, ${select.join(', ')} FROM (SELECT ${columns.map(quoteIdent).join(', ')} FROM ${from} LIMIT ${read.limit}) s`;
}

export interface RetryPolicy {
  readonly attempts: number;
  readonly baseDelayMillis: number;
}

// How many days a cursor column's values span, from the planner's statistics alone (no table
// scan): the histogram's bounds and the most common values, as ANALYZE sampled them. The whole
// inheritance tree's row (a partitioned table's parent) comes first. Every cursor type (date,
// timestamp, timestamptz) prints as text timestamptz reads; ±infinity is left out. No row (never
// analyzed, or the user may not read the column) gives NULL: no proposal.
const CURSOR_SPAN_SQL = `
SELECT (extract(epoch FROM max(v) - min(v)) / 86400)::text AS days
  FROM (SELECT s.histogram_bounds::text::timestamptz[] || s.most_common_vals::text::timestamptz[] AS b
          FROM pg_stats s
         WHERE s.schemaname = $1 AND s.tablename = $2 AND s.attname = $3
         ORDER BY s.inherited DESC
         LIMIT 1) stats,
       unnest(stats.b) AS v
 WHERE isfinite(v)`;

export class PostgresSource implements RowSource, DatabaseSurvey {
  private readonly config: string | ClientConfig;
  private readonly retry: RetryPolicy;
  private client: pg.Client | null = null;
  private ready: Promise<pg.Client> | null = null;

  constructor(config: string | ClientConfig, retry: RetryPolicy = { attempts: 4, baseDelayMillis: 250 }) {
    this.config = config;
    this.retry = retry;
  }

  private connect(): Promise<pg.Client> {
    this.ready ??= (async () => {
      let client: pg.Client | null = null;
      try {
        client = new pg.Client(this.config);
        const created = client;
        // A dropped connection must not crash the process; the next call reconnects.
        client.on('error', () => { this.discard(created); });
        await client.connect();
      } catch (error) {
        throw connectionFailure(error, this.config, client);
      }
      await client.query(SESSION_SETUP);
      this.client = client;
      return client;
    })();
    this.ready.catch(() => { this.ready = null; });
    return this.ready;
  }

  private discard(client: pg.Client): void {
    if (this.client === client) {
      this.client = null;
      this.ready = null;
    }
    client.end().catch(() => undefined);
  }

  /** Run `work`, reconnecting with jittered exponential backoff when the connection drops. */
  private async withRetry<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.connect();
      try {
        return await work(client);
      } catch (error) {
        if (!isTransient(error)) throw error;
        this.discard(client);
        if (attempt >= this.retry.attempts) {
          // The workflow retries ThrottlingError later, with backoff; the page is read again then.
          throw new ThrottlingError(`database connection failed ${attempt} times: ${(error as Error).message}`, { cause: error });
        }
        const delay = this.retry.baseDelayMillis * 2 ** (attempt - 1);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * delay));
      }
    }
  }

  async queryText(sql: string, params: readonly string[] = []): Promise<Record<string, string | null>[]> {
    return this.withRetry(async (client) => {
      const result = await client.query({ text: sql, values: [...params], types: RAW_TEXT });
      return result.rows as Record<string, string | null>[];
    });
  }

  async describeTable(table: QualifiedName): Promise<TableCatalog | null> {
    const found = await this.queryText(
      `SELECT c.oid::text AS oid, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
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
    return { columns, primaryKey, relkind: found[0].relkind! };
  }

  async readClock(safetyLagSeconds: number): Promise<ClockReading> {
    const [row] = await this.queryText(CLOCK_SQL, [String(safetyLagSeconds)]);
    return {
      now: row.now!,
      upper: row.upper!,
      heldBackBy: row.held_pid ? { pid: Number(row.held_pid), xactStart: row.held_since! } : null,
      hiddenWriter: row.hidden_writer ? (JSON.parse(row.hidden_writer) as NonNullable<ClockReading['hiddenWriter']>) : null,
      seesAllSessions: row.sees_all === 'true',
    };
  }

  async copyBinary(select: string, reuse?: Buffer): Promise<Buffer> {
    try {
      return await this.withRetry((client) => client.query(new CopyOut(`COPY (${select}) TO STDOUT (FORMAT binary)`, reuse)).done);
    } catch (error) {
      if ((error as { code?: string }).code === '57014') {
        throw new ExportError(`page query cancelled (${(error as Error).message}); lower export.pageRows or raise statement_timeout for the exporter's role`, { cause: error });
      }
      throw error;
    }
  }

  async listSchemas(): Promise<string[]> {
    return (await this.queryText(`SELECT nspname FROM pg_namespace n WHERE ${SYSTEM_SCHEMA_FILTER}`)).map((r) => r.nspname!);
  }

  async listTables(schemas: readonly string[] | null): Promise<ListedTable[]> {
    return (await this.queryText(SURVEY_TABLES_SQL, [JSON.stringify(schemas ?? [])])).map((r) => ({
      oid: r.oid!,
      qualified: { schema: r.schema!, name: r.name! },
      partitioned: r.kind === 'p',
      readable: r.readable === 'true',
      estimatedRows: r.estimated_rows === null ? null : Number(r.estimated_rows),
      sizeBytes: Number(r.size_bytes),
    }));
  }

  async listIndexes(table: ListedTable): Promise<IndexInfo[]> {
    return (await this.queryText(SURVEY_INDEXES_SQL, [table.oid])).map((r) => ({
      name: r.name!,
      unique: r.is_unique === 'true',
      columns: JSON.parse(r.columns ?? '[]') as (string | null)[],
    }));
  }

  async cursorSpanDays(table: QualifiedName, cursor: string): Promise<number | null> {
    const [row] = await this.queryText(CURSOR_SPAN_SQL, [table.schema, table.name, cursor]);
    return row?.days == null ? null : Number(row.days);
  }

  async measureNumerics(table: QualifiedName, columns: readonly string[], read: { readonly samplePercent: number | null; readonly limit: number }): Promise<{ rows: number; byColumn: Map<string, NumericDigits> }> {
    const [row] = await this.queryText(measureNumericsSql(table, columns, read));
    const num = (value: string | null) => (value === null ? null : Number(value));
    return {
      rows: Number(row.rows),
      byColumn: new Map(columns.map((c, i): [string, NumericDigits] => [c, {
        nonNull: Number(row[`n${i}`]),
        integerDigits: num(row[`i${i}`]),
        scale: num(row[`s${i}`]),
        special: Number(row[`x${i}`]),
      }])),
    };
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.ready = null;
    if (client) await client.end().catch(() => undefined);
  }
}
