// The two ports the core talks to the world through. Adapters implement them (Postgres,
// S3, a local directory); tests implement them only to inject faults.
import type { CatalogColumn } from './source/type-map.ts';
import type { QualifiedName } from './identifiers.ts';
import type { Granularity } from './lake/keys.ts';

export interface StoredObject {
  readonly body: Buffer;
  readonly etag: string;
  /** When the store last wrote it, by the store's own clock (S3 LastModified, a file's mtime). */
  readonly modifiedAt?: Date;
}

export interface PutOptions {
  /** Create only if absent; put returns false when the key exists. */
  readonly ifNoneMatch?: boolean;
  /** Replace only if the current version has this etag; put returns false otherwise. */
  readonly ifMatch?: string;
}

/** An object written in parts as they are produced; nothing is visible under its key before complete(). */
export interface StreamedWrite {
  /**
   * Append bytes (in order; one call at a time). The store is done with `bytes` when this
   * resolves, and copies what it keeps: the exporter frees them then (encode-worker.ts releaseParts).
   */
  write(bytes: Uint8Array): Promise<void>;
  /** Make the object visible, whole, under its key. */
  complete(): Promise<void>;
  /** Drop what was written (the object never appears); safe to call after a failure or twice. */
  abort(): Promise<void>;
}

export interface ObjectStore {
  /** `file:///…` or `s3://bucket/` — for messages only. */
  readonly url: string;
  /** Write whole; returns false only when a precondition fails. */
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<boolean>;
  /**
   * Write an object as its bytes are produced, holding little of it in memory (S3: a multipart
   * upload; a directory: a temporary file renamed into place). A writer killed before complete()
   * leaves nothing under the key. Absent: the caller collects the bytes and puts them whole.
   */
  openWrite?(key: string): StreamedWrite;
  get(key: string): Promise<StoredObject | null>;
  /** Every key under `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Deleting a missing key is not an error. */
  delete(keys: readonly string[]): Promise<void>;
  /**
   * Delete `key` only while its etag is `etag` (S3: DeleteObject with If-Match); false, deleting
   * nothing, when the object changed since it was read or is gone.
   */
  deleteIf(key: string, etag: string): Promise<boolean>;
  /**
   * Move an object (S3: copy then delete). Repeatable: when `from` is gone and `to` exists the
   * move already happened and this returns false; when both are gone it throws.
   */
  move(from: string, to: string): Promise<boolean>;
  /**
   * Remove what writers that died left under `prefix` and listings never show (a directory
   * lake's `*.tmp` files). Absent where a write is atomic (S3).
   */
  sweepAbandonedWrites?(prefix: string): Promise<void>;
}

export interface TableCatalog {
  readonly columns: readonly CatalogColumn[];
  /** Primary key columns in key order; empty when the table has none. */
  readonly primaryKey: readonly string[];
  /** pg_class.relkind: r table, p partitioned table, v view, m materialized view, f foreign table. */
  readonly relkind?: string;
}

export interface ClockReading {
  /** Upper bound of the window as text (timestamptz, UTC, µs). */
  readonly upper: string;
  /** The database's now(), for messages and staleness. */
  readonly now: string;
  /** Set when an open transaction held the bound back: its pid and start. */
  readonly heldBackBy: { readonly pid: number; readonly xactStart: string } | null;
  /**
   * The oldest writer of this database that hides when it began — a prepared (two-phase)
   * transaction, or a session with track_activities off holding a transaction id — and every
   * relation such writers hold a lock on. One may have begun at any time, so no upper bound is
   * safe for a table it wrote: its rows can carry a cursor just past the last watermark.
   */
  readonly hiddenWriter: {
    /** `prepared transaction "gid"` or `session pid N (track_activities off)`. */
    readonly who: string;
    /** When it was prepared, or when the session started. */
    readonly since: string;
    readonly relations: readonly { readonly schema: string; readonly name: string }[];
  } | null;
  /** False when the user cannot see other users' sessions (no pg_read_all_stats): the hold-back is blind. */
  readonly seesAllSessions: boolean;
}

export interface RowSource {
  /** Columns and key of a table, or null when it does not exist. */
  describeTable(table: QualifiedName): Promise<TableCatalog | null>;
  /** min(now() − lag, start of the oldest other transaction still open). */
  readClock(safetyLagSeconds: number): Promise<ClockReading>;
  /**
   * Run `COPY (<select>) TO STDOUT (FORMAT binary)` and return the whole stream. `reuse`: memory
   * the stream may be written into (the result is then a view of it, or of a larger replacement).
   */
  copyBinary(select: string, reuse?: Buffer): Promise<Buffer>;
  /** Run a query returning rows of text (small results only: counts, NULL-cursor keys). */
  queryText(sql: string, params?: readonly string[]): Promise<Record<string, string | null>[]>;
  close(): Promise<void>;
}

/** A column as the query engine sees it: Parquet name, engine name (lower case), engine type. */
export interface LakeColumn {
  readonly source: string;
  readonly name: string;
  readonly type: string;
}

/**
 * A lake table's schema as of its last commit (`_state/<table>/schema.json`): the columns the
 * engine declares, and the engine names of the key, cursor and soft-delete columns that its
 * `<table>_current` view ranks and filters by.
 */
export interface LakeSchema {
  readonly columns: readonly LakeColumn[];
  readonly key: readonly string[];
  readonly cursor: string;
  readonly softDelete?: string;
  /** Snapshot tables: the run whose snapshot the table shows (its data folder). */
  readonly snapshotRunId?: string;
  /**
   * Years the partition projection covers: from the earliest partition written to next year (or
   * a later year written). Absent in schemas written before it existed: lake.partitionYears.
   */
  readonly years?: { readonly from: number; readonly to: number };
  /** Partition granularity of the table's files (DataLocation); absent: day. */
  readonly granularity?: Granularity;
  /** The generation folder the last compaction wrote (DataLocation); absent: none yet. */
  readonly generation?: string;
  /** When the last compaction switched readers to its generation (ISO time; compaction.everyHours). */
  readonly compactedAt?: string;
}

/** The query engine's catalog (Glue when deployed); told each table's schema at commit. */
export interface TableRegistry {
  register(lakeTable: string, schema: LakeSchema): Promise<void>;
}

/**
 * A column of a query result: its name, the engine's own type name (`varchar`, `bigint`,
 * `decimal(10,2)`, `TIMESTAMP WITH TIME ZONE` …) and the kind the core reads it as.
 */
export interface QueryColumn {
  readonly name: string;
  readonly type: string;
  readonly kind: 'integer' | 'decimal' | 'float' | 'boolean' | 'text' | 'date' | 'timestamp' | 'binary' | 'other';
}

export interface QueryResult {
  readonly columns: readonly QueryColumn[];
  /** One array per row, in column order; each value as the engine prints it, NULL as null. */
  readonly rows: readonly (readonly (string | null)[])[];
  /** What the engine read to answer (Athena bills by it; DuckDB over local files: 0). */
  readonly bytesScanned: number;
  /** The engine's id of the query (Athena's QueryExecutionId), for messages. */
  readonly queryId?: string;
}

/**
 * SQL over the lake's tables as the query engine sees them (Athena when deployed, DuckDB
 * locally): one view or Glue table per lake table, named as it, with year, month, day as
 * integer partition columns. Identifiers are double-quoted in both engines' SQL.
 */
export interface QueryEngine {
  /** `athena (workgroup w, database d)` / `duckdb` — for messages. */
  readonly description: string;
  query(sql: string): Promise<QueryResult>;
  close(): Promise<void>;
}
