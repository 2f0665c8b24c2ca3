// `discover`'s output: the discovered tables as a lake.config.yaml (each table's estimates and
// warnings as comments), merged into an existing file's other sections, and the short account
// printed beside it.
import { isMap, parseDocument } from 'yaml';
import { parseConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import type { DiscoveredTable } from './discover.ts';

/** One line, whatever the identifiers hold (they end up in YAML comments and terminal lines). */
function oneLine(text: string): string {
  return text.replace(/[\r\n\u0085\u2028\u2029]+/g, ' ');
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
