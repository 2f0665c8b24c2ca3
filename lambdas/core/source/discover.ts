// `discover`'s rules: from a database's catalog, a lake.config.yaml entry per table to start
// from — a cursor candidate (or, without one, `mode: snapshot`), its key, the catalog's size
// estimates and the warnings an operator should read before the first export (missing index on
// the cursor, no key, unconstrained numeric with the digits actually seen, columns that become
// strings). The catalog is read through the DatabaseSurvey port (the Postgres adapter holds the
// SQL); discover-config.ts renders the result.
import { validateConfig, resolveTable, type TableConfig } from '../config.ts';
import { ConfigError, UnsupportedTypeError } from '../errors.ts';
import { displayName, quoteIdent, quoteQualified, type QualifiedName } from '../identifiers.ts';
import { lakeTableName } from '../lake/keys.ts';
import type { TableCatalog } from '../ports.ts';
import { shapeTable } from './table-shape.ts';
import { CURSOR_TYPES, MAX_DECIMAL_PRECISION, planColumn, type CatalogColumn } from './type-map.ts';

/** A table the survey lists: ordinary or partitioned (not a partition, an extension's or a temporary one). */
export interface ListedTable {
  /** pg_class oid, as text. */
  readonly oid: string;
  readonly qualified: QualifiedName;
  readonly partitioned: boolean;
  /** The database user may SELECT it. */
  readonly readable: boolean;
  /** pg_class.reltuples (summed over partitions); null when the table was never analyzed. */
  readonly estimatedRows: number | null;
  /** pg_total_relation_size (summed over partitions): heap, indexes and TOAST. */
  readonly sizeBytes: number;
}

/** A valid, non-partial btree index; an expression key column has no name (null). */
export interface IndexInfo {
  readonly name: string;
  readonly unique: boolean;
  readonly columns: readonly (string | null)[];
}

/** What was seen of an unconstrained numeric column's values. */
export interface NumericDigits {
  readonly nonNull: number;
  /** Most integer digits of a finite value; null when there was none. */
  readonly integerDigits: number | null;
  /** Most fractional digits of a finite value; null when there was none. */
  readonly scale: number | null;
  /** NaN and ±Infinity values. */
  readonly special: number;
}

/** What discover asks of the database; the Postgres adapter implements it. */
export interface DatabaseSurvey {
  describeTable(table: QualifiedName): Promise<TableCatalog | null>;
  /** The schemas other than the system ones. */
  listSchemas(): Promise<string[]>;
  /** The tables of these schemas (null: every non-system schema), in name order. */
  listTables(schemas: readonly string[] | null): Promise<ListedTable[]>;
  listIndexes(table: ListedTable): Promise<IndexInfo[]>;
  /**
   * Days between the cursor's lowest and highest value by the catalog's statistics (pg_stats
   * histogram bounds: no table scan), or null when unknown (never analyzed). Optional: without it
   * discover proposes no partition granularity.
   */
  cursorSpanDays?(table: QualifiedName, cursor: string): Promise<number | null>;
  /** Digits of numeric columns over at most `limit` rows, of a TABLESAMPLE SYSTEM (`samplePercent`) when set. */
  measureNumerics(table: QualifiedName, columns: readonly string[], read: { readonly samplePercent: number | null; readonly limit: number }): Promise<{ rows: number; byColumn: Map<string, NumericDigits> }>;
}

/** Column names tried as the cursor, in this order. */
export const CURSOR_CANDIDATES = ['updated_at', 'modified_at', 'last_update', 'last_modified'] as const;

export interface DiscoveredTable {
  /** schema.table as the config names it, quoted where needed. */
  readonly name: string;
  readonly qualified: QualifiedName;
  /** `snapshot` when the table has no cursor column: the whole table is copied every run. */
  readonly mode: 'incremental' | 'snapshot';
  /** The cursor column, or null when the table has none (it is then proposed as a snapshot). */
  readonly cursor: string | null;
  /** The primary key, or the columns of a unique index on NOT NULL columns; empty when neither exists. */
  readonly primaryKey: readonly string[];
  readonly estimatedRows: number | null;
  readonly sizeBytes: number;
  /** Set only when the default lake name would collide with another table's. */
  readonly lakeName?: string;
  /** Columns the export cannot represent; written to columns.exclude. */
  readonly exclude: readonly string[];
  readonly warnings: readonly string[];
}

export interface DiscoverOptions {
  /** Only these schemas. @default every schema except the system ones */
  readonly schemas?: readonly string[];
  /** Rows read at most to observe unconstrained numeric digits; bigger tables are sampled. @default 100000 */
  readonly sampleRows?: number;
}

// The export's own default, so the fit check speaks about what a run would do.
const DEFAULT_CONFIG = validateConfig({ tables: [{ name: 'x' }] });
const NUMERIC_SCALE = DEFAULT_CONFIG.export.unconstrainedNumericScale;
const DEFAULT_SAMPLE_ROWS = 100_000;

function quoteList(names: readonly string[]): string {
  return names.map(quoteIdent).join(', ');
}

function pickCursor(columns: readonly CatalogColumn[]): { cursor: CatalogColumn } | { reason: string } {
  const wrongType: string[] = [];
  for (const candidate of CURSOR_CANDIDATES) {
    const column = columns.find((c) => c.name === candidate) ?? columns.find((c) => c.name.toLowerCase() === candidate);
    if (!column) continue;
    if (CURSOR_TYPES.has(column.typeName) && column.elementTypeName === null) return { cursor: column };
    wrongType.push(`${JSON.stringify(column.name)} is ${column.formatted}`);
  }
  const wanted = 'a cursor must be timestamptz, timestamp or date';
  const snapshot = 'proposed as mode: snapshot, which copies the whole table every run; to export only new and changed rows, add an updated_at timestamptz column that every write sets (a BEFORE UPDATE trigger, see the README), then drop the mode line';
  if (wrongType.length) return { reason: `no usable cursor column: ${wrongType.join(', ')}; ${wanted}: ${snapshot}` };
  return { reason: `no cursor column (${CURSOR_CANDIDATES.join(', ')}): ${snapshot}` };
}

/** A unique index whose key columns are all plain NOT NULL columns can stand in for a primary key. */
function pickUniqueKey(indexes: readonly IndexInfo[], columns: readonly CatalogColumn[]): IndexInfo | undefined {
  const notNull = new Set(columns.filter((c) => c.notNull).map((c) => c.name));
  return indexes
    .filter((i) => i.unique && i.columns.every((c) => c !== null && notNull.has(c)))
    .sort((a, b) => a.columns.length - b.columns.length)[0];
}

/** Digits of unconstrained numeric columns, over the whole table when small, else a sample; `scope` says which. */
async function observeNumerics(
  survey: DatabaseSurvey, table: ListedTable, columns: readonly string[], sampleRows: number,
): Promise<{ scope: string; byColumn: Map<string, NumericDigits> }> {
  const estimatedRows = table.estimatedRows;
  const samplePercent = estimatedRows !== null && estimatedRows > sampleRows
    ? Number(Math.max(0.0001, (100 * sampleRows) / estimatedRows).toPrecision(2))
    : null;
  const { rows, byColumn } = await survey.measureNumerics(table.qualified, columns, { samplePercent, limit: sampleRows });
  let scope: string;
  if (samplePercent !== null) scope = `in a TABLESAMPLE SYSTEM (${samplePercent}%) sample of ${rows} rows (of ~${estimatedRows} rows)`;
  else if (rows < sampleRows) scope = `over all ${rows} rows`;
  else scope = `in the first ${rows} rows read (LIMIT ${sampleRows}; the table has no row estimate, run ANALYZE)`;
  return { scope, byColumn };
}

function numericWarning(column: string, scope: string, seen: NumericDigits): string {
  const head = `${column}: unconstrained numeric exported as decimal(${MAX_DECIMAL_PRECISION},${NUMERIC_SCALE})`;
  const specials = seen.special ? `; ${seen.special} NaN/Infinity value${seen.special === 1 ? '' : 's'} (no decimal holds them: the export fails on them)` : '';
  if (seen.integerDigits === null || seen.scale === null) {
    return `${head}; no finite values ${scope}${specials}`;
  }
  const int = seen.integerDigits;
  const scale = seen.scale;
  const observed = `${head}; ${scope}: up to ${int} integer and ${scale} fractional digits`;
  if (scale <= NUMERIC_SCALE && int <= MAX_DECIMAL_PRECISION - NUMERIC_SCALE) {
    return `${observed}, which fits${specials}; a larger value fails the table`;
  }
  const precision = int + scale;
  const fixes: string[] = [];
  if (precision <= MAX_DECIMAL_PRECISION) {
    fixes.push(`declare the column numeric(${Math.max(precision, 1)},${scale})`);
    if (scale > NUMERIC_SCALE) fixes.push(`set export.unconstrainedNumericScale: ${scale}`);
  } else {
    fixes.push(`declare it numeric(${precision},${scale}) (exported as exact text) or add it to columns.exclude`);
  }
  return `${observed}, which does not fit (the export fails on such values)${specials}: ${fixes.join(' or ')}`;
}

/** Columns that reach the lake as strings through their text form, and columns that cannot be exported. */
function typeWarnings(display: string, columns: readonly CatalogColumn[], numericColumns: ReadonlySet<string>): { warnings: string[]; exclude: string[] } {
  const warnings: string[] = [];
  const exclude: string[] = [];
  const prefix = `${display}.`;
  for (const column of columns) {
    if (numericColumns.has(column.name)) continue;
    try {
      const plan = planColumn(display, column, { unconstrainedNumericScale: NUMERIC_SCALE });
      if (plan.warning) warnings.push(plan.warning.startsWith(prefix) ? plan.warning.slice(prefix.length) : plan.warning);
      else if (plan.select.endsWith('::text')) warnings.push(`${column.name}: ${column.formatted} exported as string (its text form)`);
      else if (plan.select.endsWith('::text[]')) warnings.push(`${column.name}: ${column.formatted} exported as ${plan.glueType} (elements in their text form)`);
    } catch (error) {
      if (!(error instanceof UnsupportedTypeError)) throw error;
      exclude.push(column.name);
      const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
      warnings.push(`${message}; listed in columns.exclude`);
    }
  }
  return { warnings, exclude };
}

/** The key: the primary key, else a unique index on NOT NULL columns; with what an operator must know. */
function pickKey(catalog: TableCatalog, indexes: readonly IndexInfo[]): { primaryKey: readonly string[]; warnings: string[] } {
  if (catalog.primaryKey.length) return { primaryKey: catalog.primaryKey, warnings: [] };
  const unique = pickUniqueKey(indexes, catalog.columns);
  if (unique) {
    return {
      primaryKey: unique.columns as string[],
      warnings: [`no primary key: primaryKey set from unique index ${quoteIdent(unique.name)} (${unique.columns.join(', ')}) on NOT NULL columns`],
    };
  }
  return { primaryKey: [], warnings: ['no primary key: set primaryKey: [column, …] to NOT NULL columns that identify a row (or add a primary key); the export refuses the table until then'] };
}

/** What the cursor's nullability, type and indexes mean for the export. */
function cursorWarnings(table: ListedTable, cursor: CatalogColumn, primaryKey: readonly string[], indexes: readonly IndexInfo[]): string[] {
  const warnings: string[] = [];
  if (!cursor.notNull) warnings.push(`${cursor.name} allows NULL: rows where it is NULL are counted and reported by each run, never exported`);
  if (cursor.typeName === 'timestamp') {
    warnings.push(`${cursor.name} is ${cursor.formatted}: its values are read as UTC wall-clock times; if the writers' sessions use another TimeZone, set cursorTimeZone to it, or a late commit can be missed`);
  } else if (cursor.typeName === 'date') {
    warnings.push(`${cursor.name} is date: a day is exported once it has ended in UTC; if the writers' dates follow another time zone, set cursorTimeZone to it, or rows written late in a day can be missed`);
  }
  if (!indexes.some((i) => i.columns[0] === cursor.name)) {
    // CONCURRENTLY keeps a production table writable while the index builds; partitioned
    // tables do not support it (create it on each partition, then on the parent).
    const concurrently = table.partitioned ? '' : ' CONCURRENTLY';
    warnings.push(`no index starts with ${cursor.name}: every page query scans the table; CREATE INDEX${concurrently} ON ${quoteQualified(table.qualified)} (${quoteList([cursor.name, ...primaryKey])})`);
  }
  return warnings;
}

// Rules that read only the catalog's estimates of a table (rows, bytes) — e.g. a coarser
// partition granularity for a table whose days would hold tiny files — belong beside the
// cursor and key rules below, as one more function called from discoverOne.

/** A Parquet file under this many bytes costs Athena more to plan and open than to read (AWS advises 128 MB or more). */
export const SMALL_FILE_BYTES = 4_000_000;
/**
 * Parquet bytes per byte of the table's catalog size (heap, indexes, TOAST): an assumption, on
 * the low side of what Snappy Parquet without indexes takes, so the advice errs toward coarser.
 */
const PARQUET_PER_CATALOG_BYTE = 0.25;

/**
 * A coarser partition granularity when the table's rows per day (rows over the days its cursor
 * spans) would give day partitions files under SMALL_FILE_BYTES, or null. The coarsest needed:
 * month when a month's rows fill such a file, else year.
 */
export function granularityAdvice(estimatedRows: number | null, sizeBytes: number, spanDays: number | null): { granularity: 'month' | 'year'; warning: string } | null {
  if (!estimatedRows || estimatedRows <= 0 || spanDays === null || spanDays < 1) return null;
  const rowsPerDay = estimatedRows / spanDays;
  const bytesPerDay = (sizeBytes / estimatedRows) * PARQUET_PER_CATALOG_BYTE * rowsPerDay;
  if (bytesPerDay >= SMALL_FILE_BYTES) return null;
  const granularity = bytesPerDay * 30.4 >= SMALL_FILE_BYTES || spanDays < 366 ? 'month' : 'year';
  const per = granularity === 'month' ? bytesPerDay * 30.4 : bytesPerDay * 365;
  const mb = (n: number) => `${(n / 1e6).toPrecision(2)} MB`;
  const count = (n: number, unit: string) => `${Math.round(n).toLocaleString('en-US')} ${unit}${Math.round(n) === 1 ? '' : 's'}`;
  return {
    granularity,
    warning: `about ${count(rowsPerDay, 'row')} a day over ${count(spanDays, 'day')} (~${mb(bytesPerDay)} of Parquet a day): day partitions would hold files of a few KB to MB, which Athena pays for per file; add partition: { granularity: ${granularity} } (~${mb(per)} a ${granularity} per run's file)`,
  };
}

async function discoverOne(survey: DatabaseSurvey, listed: ListedTable, sampleRows: number): Promise<DiscoveredTable> {
  const { qualified, estimatedRows, sizeBytes } = listed;
  const name = displayName(qualified);
  const catalog = await survey.describeTable(qualified);
  if (!catalog) throw new ConfigError(`${name}: dropped while discovering; run discover again`);
  const picked = pickCursor(catalog.columns);
  const cursor = 'cursor' in picked ? picked.cursor : null;
  const indexes = await survey.listIndexes(listed);
  const key = pickKey(catalog, indexes);
  const primaryKey = key.primaryKey;
  const warnings: string[] = ['reason' in picked ? [picked.reason] : [], key.warnings, cursor ? cursorWarnings(listed, cursor, primaryKey, indexes) : []].flat();
  if (cursor && survey.cursorSpanDays) {
    const advice = granularityAdvice(estimatedRows, sizeBytes, await survey.cursorSpanDays(qualified, cursor.name));
    if (advice) warnings.push(advice.warning);
  }

  const numericColumns = catalog.columns.filter((c) => c.typeName === 'numeric' && c.elementTypeName === null && c.typmod < 0).map((c) => c.name);
  const types = typeWarnings(name, catalog.columns, new Set(numericColumns));
  if (!listed.readable) {
    warnings.push(`the database user cannot SELECT this table: GRANT SELECT ON ${quoteQualified(qualified)} TO the export's user`);
    for (const column of numericColumns) warnings.push(`${column}: unconstrained numeric exported as decimal(${MAX_DECIMAL_PRECISION},${NUMERIC_SCALE}); values not observed (no SELECT privilege)`);
  } else if (numericColumns.length) {
    const { scope, byColumn } = await observeNumerics(survey, listed, numericColumns, sampleRows);
    for (const column of numericColumns) warnings.push(numericWarning(column, scope, byColumn.get(column)!));
  }
  warnings.push(...types.warnings);

  const table: DiscoveredTable = { name, qualified, estimatedRows, sizeBytes, mode: cursor ? 'incremental' : 'snapshot', cursor: cursor?.name ?? null, primaryKey, exclude: types.exclude, warnings };
  // The export's own checks on the entry as written (case-only column twins, metadata column
  // names, key types…), so the config this prints does not fail at its first run.
  if (primaryKey.length) {
    try {
      shapeTable(resolveTable({ ...tableConfig(table), lakeName: 'discover_check' }), catalog, DEFAULT_CONFIG);
    } catch (error) {
      const message = (error as Error).message.split(`${name}: `).join('');
      warnings.push(`the export refuses this entry: ${message}`);
    }
  }
  return table;
}

export function tableConfig(table: DiscoveredTable): TableConfig {
  return {
    name: table.name,
    mode: table.mode,
    cursor: table.cursor ?? 'updated_at',
    cursorTimeZone: 'UTC',
    ...(table.lakeName ? { lakeName: table.lakeName } : {}),
    ...(table.primaryKey.length ? { primaryKey: [...table.primaryKey] } : {}),
    columns: { exclude: [...table.exclude], hash: [] },
  };
}

/** Tables whose names slug to the same lake folder (a.orders, b.orders) get schema_table names. */
export function assignLakeNames(tables: readonly DiscoveredTable[]): DiscoveredTable[] {
  const slug = (text: string): string | null => {
    try {
      return lakeTableName(text);
    } catch {
      return null; // no letters or digits at all
    }
  };
  const defaults = new Map(tables.map((t) => [t, slug(t.qualified.name)]));
  const counts = new Map<string, number>();
  for (const d of defaults.values()) if (d !== null) counts.set(d, (counts.get(d) ?? 0) + 1);
  const used = new Set([...counts.keys()]);
  const named = new Map<DiscoveredTable, string>();
  for (const [table, d] of defaults) {
    if (d !== null && counts.get(d) === 1) continue;
    const base = slug(`${table.qualified.schema}_${table.qualified.name}`) ?? 'table';
    let candidate = base;
    for (let n = 2; used.has(candidate); n++) candidate = `${base}_${n}`;
    used.add(candidate);
    named.set(table, candidate);
  }
  return tables.map((t) => (named.has(t) ? { ...t, lakeName: named.get(t) } : t));
}

/** Every ordinary or partitioned table in the given (or all non-system) schemas, in name order. */
export async function discoverTables(survey: DatabaseSurvey, options: DiscoverOptions = {}): Promise<DiscoveredTable[]> {
  const sampleRows = options.sampleRows ?? DEFAULT_SAMPLE_ROWS;
  const schemas = options.schemas?.length ? [...options.schemas] : null;
  if (schemas) {
    const present = new Set(await survey.listSchemas());
    const missing = schemas.filter((s) => !present.has(s));
    if (missing.length) {
      throw new ConfigError(`--schema: no schema named ${missing.map((s) => JSON.stringify(s)).join(', ')} (schemas: ${[...present].sort().join(', ') || 'none'})`);
    }
  }
  const tables: DiscoveredTable[] = [];
  for (const listed of await survey.listTables(schemas)) tables.push(await discoverOne(survey, listed, sampleRows));
  return assignLakeNames(tables);
}
