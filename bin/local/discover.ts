// `pg-lake-export discover`: read a database's catalog and write a lake.config.yaml to start
// from. Each table gets a cursor candidate (or, without one, `mode: snapshot`), its key, the
// catalog's size estimates and the warnings an operator should read before the first export
// (missing index on the cursor, no key, unconstrained numeric with the digits actually seen,
// columns that become strings). Written into an existing file, it replaces only `tables:`.
import { isMap, parseDocument } from 'yaml';
import { validateConfig, parseConfig, resolveTable, type TableConfig } from '../../lambdas/core/config.ts';
import { ConfigError, UnsupportedTypeError } from '../../lambdas/core/errors.ts';
import { displayName, quoteIdent, quoteQualified, type QualifiedName } from '../../lambdas/core/identifiers.ts';
import { lakeTableName } from '../../lambdas/core/lake/keys.ts';
import type { TableCatalog } from '../../lambdas/core/ports.ts';
import { shapeTable } from '../../lambdas/core/source/table-shape.ts';
import { CURSOR_TYPES, MAX_DECIMAL_PRECISION, planColumn, type CatalogColumn } from '../../lambdas/core/source/type-map.ts';
import type { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';

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
  /** pg_class.reltuples (summed over partitions); null when the table was never analyzed. */
  readonly estimatedRows: number | null;
  /** pg_total_relation_size (summed over partitions): heap, indexes and TOAST. */
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

const SYSTEM_SCHEMA_FILTER = `n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

// Ordinary and partitioned tables; partitions are exported through their parent, extension
// members (e.g. spatial_ref_sys) and temporary tables are not the user's data.
const TABLES_SQL = `
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
const INDEXES_SQL = `
SELECT ic.relname AS name, i.indisunique::text AS is_unique,
       (SELECT json_agg(a.attname ORDER BY k.ord)
          FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, ord)
          LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)::text AS columns
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
 WHERE i.indrelid = $1::oid AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'
 ORDER BY ic.relname COLLATE "C"`;

interface IndexInfo {
  readonly name: string;
  readonly unique: boolean;
  readonly columns: readonly (string | null)[];
}

/** One line, whatever the identifiers hold (they end up in YAML comments and terminal lines). */
function oneLine(text: string): string {
  return text.replace(/[\r\n\u0085\u2028\u2029]+/g, ' ');
}

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

interface NumericObservation {
  readonly nonNull: number;
  readonly integerDigits: number | null;
  readonly scale: number | null;
  readonly special: number;
}

/** Digits of unconstrained numeric columns, over the whole table when small, else bounded. */
async function observeNumerics(
  source: PostgresSource, table: QualifiedName, columns: readonly string[], estimatedRows: number | null, sampleRows: number,
): Promise<{ scope: string; byColumn: Map<string, NumericObservation> }> {
  let from = quoteQualified(table);
  let sampled: string | null = null;
  if (estimatedRows !== null && estimatedRows > sampleRows) {
    const percent = Number(Math.max(0.0001, (100 * sampleRows) / estimatedRows).toPrecision(2));
    from += ` TABLESAMPLE SYSTEM (${percent})`;
    sampled = `a TABLESAMPLE SYSTEM (${percent}%) sample`;
  }
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
  const sql = `SELECT count(*)::text AS rows, ${select.join(', ')} FROM (SELECT ${quoteList(columns)} FROM ${from} LIMIT ${sampleRows}) s`;
  const [row] = await source.queryText(sql);
  const rows = Number(row.rows);
  const num = (value: string | null) => (value === null ? null : Number(value));
  const byColumn = new Map(columns.map((c, i): [string, NumericObservation] => [c, {
    nonNull: Number(row[`n${i}`]),
    integerDigits: num(row[`i${i}`]),
    scale: num(row[`s${i}`]),
    special: Number(row[`x${i}`]),
  }]));
  let scope: string;
  if (sampled) scope = `in ${sampled} of ${rows} rows (of ~${estimatedRows} rows)`;
  else if (rows < sampleRows) scope = `over all ${rows} rows`;
  else scope = `in the first ${rows} rows read (LIMIT ${sampleRows}; the table has no row estimate, run ANALYZE)`;
  return { scope, byColumn };
}

function numericWarning(column: string, scope: string, seen: NumericObservation): string {
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

async function discoverOne(
  source: PostgresSource,
  row: Record<string, string | null>,
  sampleRows: number,
): Promise<DiscoveredTable> {
  const qualified: QualifiedName = { schema: row.schema!, name: row.name! };
  const name = displayName(qualified);
  const estimatedRows = row.estimated_rows === null ? null : Number(row.estimated_rows);
  const sizeBytes = Number(row.size_bytes);
  const catalog: TableCatalog | null = await source.describeTable(qualified);
  if (!catalog) throw new ConfigError(`${name}: dropped while discovering; run discover again`);
  const base = { name, qualified, estimatedRows, sizeBytes };
  const picked = pickCursor(catalog.columns);
  const cursor = 'cursor' in picked ? picked.cursor : null;
  const warnings: string[] = 'reason' in picked ? [picked.reason] : [];
  const indexes: IndexInfo[] = (await source.queryText(INDEXES_SQL, [row.oid!])).map((r) => ({
    name: r.name!,
    unique: r.is_unique === 'true',
    columns: JSON.parse(r.columns ?? '[]') as (string | null)[],
  }));

  let primaryKey = catalog.primaryKey;
  if (primaryKey.length === 0) {
    const unique = pickUniqueKey(indexes, catalog.columns);
    if (unique) {
      primaryKey = unique.columns as string[];
      warnings.push(`no primary key: primaryKey set from unique index ${quoteIdent(unique.name)} (${unique.columns.join(', ')}) on NOT NULL columns`);
    } else {
      warnings.push(`no primary key: set primaryKey: [column, …] to NOT NULL columns that identify a row (or add a primary key); the export refuses the table until then`);
    }
  }
  if (cursor && !cursor.notNull) {
    warnings.push(`${cursor.name} allows NULL: rows where it is NULL are counted and reported by each run, never exported`);
  }
  if (cursor?.typeName === 'timestamp') {
    warnings.push(`${cursor.name} is ${cursor.formatted}: its values are read as UTC wall-clock times; if the writers' sessions use another TimeZone, set cursorTimeZone to it, or a late commit can be missed`);
  } else if (cursor?.typeName === 'date') {
    warnings.push(`${cursor.name} is date: a day is exported once it has ended in UTC; if the writers' dates follow another time zone, set cursorTimeZone to it, or rows written late in a day can be missed`);
  }
  if (cursor && !indexes.some((i) => i.columns[0] === cursor.name)) {
    // CONCURRENTLY keeps a production table writable while the index builds; partitioned
    // tables do not support it (create it on each partition, then on the parent).
    const concurrently = row.kind === 'p' ? '' : ' CONCURRENTLY';
    warnings.push(`no index starts with ${cursor.name}: every page query scans the table; CREATE INDEX${concurrently} ON ${quoteQualified(qualified)} (${quoteList([cursor.name, ...primaryKey])})`);
  }

  const numericColumns = catalog.columns.filter((c) => c.typeName === 'numeric' && c.elementTypeName === null && c.typmod < 0).map((c) => c.name);
  const types = typeWarnings(name, catalog.columns, new Set(numericColumns));
  if (row.readable !== 'true') {
    warnings.push(`the database user cannot SELECT this table: GRANT SELECT ON ${quoteQualified(qualified)} TO the export's user`);
    for (const column of numericColumns) warnings.push(`${column}: unconstrained numeric exported as decimal(${MAX_DECIMAL_PRECISION},${NUMERIC_SCALE}); values not observed (no SELECT privilege)`);
  } else if (numericColumns.length) {
    const { scope, byColumn } = await observeNumerics(source, qualified, numericColumns, estimatedRows, sampleRows);
    for (const column of numericColumns) warnings.push(numericWarning(column, scope, byColumn.get(column)!));
  }
  warnings.push(...types.warnings);

  const table: DiscoveredTable = { ...base, mode: cursor ? 'incremental' : 'snapshot', cursor: cursor?.name ?? null, primaryKey, exclude: types.exclude, warnings };
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

function tableConfig(table: DiscoveredTable): TableConfig {
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
function assignLakeNames(tables: readonly DiscoveredTable[]): DiscoveredTable[] {
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
export async function discoverTables(source: PostgresSource, options: DiscoverOptions = {}): Promise<DiscoveredTable[]> {
  const sampleRows = options.sampleRows ?? DEFAULT_SAMPLE_ROWS;
  const schemas = options.schemas?.length ? [...options.schemas] : null;
  if (schemas) {
    const present = new Set((await source.queryText(`SELECT nspname FROM pg_namespace n WHERE ${SYSTEM_SCHEMA_FILTER}`)).map((r) => r.nspname!));
    const missing = schemas.filter((s) => !present.has(s));
    if (missing.length) {
      throw new ConfigError(`--schema: no schema named ${missing.map((s) => JSON.stringify(s)).join(', ')} (schemas: ${[...present].sort().join(', ') || 'none'})`);
    }
  }
  const rows = await source.queryText(TABLES_SQL, [JSON.stringify(schemas ?? [])]);
  const tables: DiscoveredTable[] = [];
  for (const row of rows) tables.push(await discoverOne(source, row, sampleRows));
  return assignLakeNames(tables);
}

// YAML scalars: plain where unambiguous, else single-quoted, else (control characters) the JSON
// form, which is a valid YAML double-quoted scalar.
const YAML_WORDS = new Set(['true', 'false', 'null', 'yes', 'no', 'on', 'off', 'y', 'n', '~']);
function yamlScalar(value: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_$.]*$/.test(value) && !YAML_WORDS.has(value.toLowerCase())) return value;
  if (/^[\x20-\x7e\u00a0-\u2027\u202a-\ufefe\uff00-\uffff]*$/.test(value)) return `'${value.replaceAll("'", "''")}'`;
  return JSON.stringify(value);
}

function yamlList(values: readonly string[]): string {
  return `[${values.map(yamlScalar).join(', ')}]`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

function describeSize(table: DiscoveredTable): string {
  const rows = table.estimatedRows === null ? 'rows unknown (never analyzed)' : `~${table.estimatedRows.toLocaleString('en-US')} rows`;
  return `${rows}, ${formatBytes(table.sizeBytes)}`;
}

export interface RenderOptions {
  /** The file already has a `source:` section (kept by --out): no template for it is printed. */
  readonly hasSource?: boolean;
}

// What `cdk synth`/`cdk deploy` need besides the tables; local runs use DATABASE_URL instead.
const SOURCE_TEMPLATE = [
  '# Before `cdk synth` / `cdk deploy`, add where the database is (local runs use DATABASE_URL',
  '# instead). Uncomment and fill in:',
  '# source:',
  '#   secretArn: arn:aws:secretsmanager:<region>:<account>:secret:<name>  # RDS-format secret: host, port, dbname, username, password',
  '#   vpcId: vpc-<id>                # the VPC the database is reachable in',
  '#   securityGroupId: sg-<id>       # for the functions; the database\'s security group must admit it on the database port',
  '#   subnetIds: [subnet-<id>]       # private subnets with a route to S3 and Secrets Manager (default: the VPC\'s private subnets)',
];

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A lake.config.yaml listing the tables, with each table's estimates and warnings as comments. */
export function renderConfig(tables: readonly DiscoveredTable[], options: RenderOptions = {}): string {
  if (tables.length === 0) {
    throw new ConfigError('discover: no tables found; check --schema and that the database user can see the tables');
  }
  const snapshots = tables.filter((t) => t.mode === 'snapshot').length;
  const lines = [
    '# lake.config.yaml written by `pg-lake-export discover`.',
    `# ${plural(tables.length - snapshots, 'table')} by a cursor column (new and changed rows each run)${snapshots ? `, ${snapshots} as mode: snapshot (no cursor column: the whole table each run)` : ''}.`,
    '# Read the warnings under each table. Rows and sizes are the catalog\'s estimates.',
    '# Defaults apply to everything not written here (lake prefix raw, daily schedule at 02:00 UTC).',
    ...(options.hasSource ? [] : SOURCE_TEMPLATE),
    'tables:',
  ];
  for (const table of tables) {
    lines.push(`  # ${oneLine(table.name)}: ${describeSize(table)}`);
    for (const warning of table.warnings) lines.push(`  # warning: ${oneLine(warning)}`);
    lines.push(`  - name: ${yamlScalar(table.name)}`);
    if (table.lakeName) lines.push(`    lakeName: ${table.lakeName}`);
    if (table.cursor) lines.push(`    cursor: ${yamlScalar(table.cursor)}`);
    else lines.push('    mode: snapshot');
    if (table.primaryKey.length) lines.push(`    primaryKey: ${yamlList(table.primaryKey)}`);
    else lines.push('    # primaryKey: [<column>, …]   # required: the table has no primary key');
    if (table.exclude.length) lines.push(`    columns: { exclude: ${yamlList(table.exclude)} }`);
  }
  const text = `${lines.join('\n')}\n`;
  // What this prints must load: a failure here is a bug in discover, not in the database.
  const parsed = parseConfig(text, 'discovered config');
  if (parsed.tables.length !== tables.length) throw new Error(`discover: rendered ${parsed.tables.length} tables, expected ${tables.length}`);
  return text;
}

/**
 * The sections of an existing config other than `tables:` (source, lake, schedule, export,
 * alarms, with their comments), or null when the file has none; `file` names it in errors.
 */
export function keptSections(existing: string, file: string): { text: string; hasSource: boolean } | null {
  const doc = parseDocument(existing);
  if (doc.errors.length) throw new ConfigError(`${file}: not valid YAML, so its sections cannot be kept: ${doc.errors[0].message.split('\n')[0]}`);
  if (doc.contents === null) return null;
  if (!isMap(doc.contents)) throw new ConfigError(`${file}: not a lake.config.yaml (its top level is not a mapping of sections)`);
  doc.delete('tables');
  if (doc.contents.items.length === 0) return null;
  return { text: doc.toString(), hasSource: doc.has('source') };
}

/** The discovered tables written into an existing config: its other sections kept as they are. */
export function mergeConfig(existing: string, tables: readonly DiscoveredTable[], file: string): string {
  const kept = keptSections(existing, file);
  const text = kept ? `${kept.text.trimEnd()}\n\n${renderConfig(tables, { hasSource: kept.hasSource })}` : renderConfig(tables);
  // The kept sections must still load beside the new tables (a section that does not validate is named).
  parseConfig(text, file);
  return text;
}

/** The short account printed to stderr beside the YAML. */
export function summarizeDiscovery(tables: readonly DiscoveredTable[]): string {
  const snapshots = tables.filter((t) => t.mode === 'snapshot');
  const noKey = tables.filter((t) => t.primaryKey.length === 0);
  const warnings = tables.reduce((n, t) => n + t.warnings.length, 0);
  const lines = [`discovered ${plural(tables.length, 'table')}: ${tables.length - snapshots.length} by a cursor column, ${snapshots.length} as mode: snapshot (no cursor column)`];
  if (snapshots.length) lines.push(`  copied whole every run (add an updated_at column kept by a trigger to export only changes): ${snapshots.map((t) => oneLine(t.name)).join(', ')}`);
  if (noKey.length) lines.push(`  need primaryKey before they can run: ${noKey.map((t) => oneLine(t.name)).join(', ')}`);
  if (warnings) lines.push(`  ${plural(warnings, 'warning')}: read the "# warning:" comments above each table`);
  return `${lines.join('\n')}\n`;
}
