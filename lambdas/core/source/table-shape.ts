// A configured table checked against the live catalog: which columns are read, how, the keyset
// key and the partition column. Every mismatch is reported at once, naming table and column.
import { createHash } from 'node:crypto';
import type { LakeConfig, ResolvedTable } from '../config.ts';
import { CursorZone } from '../cursor-zone.ts';
import { SchemaMismatchError } from '../errors.ts';
import { quoteIdent } from '../identifiers.ts';
import { PARTITION_KEYS } from '../lake/keys.ts';
import { META_COLUMNS, type PageLayout } from '../page/page-layout.ts';
import type { LakeColumn, RowSource, TableCatalog } from '../ports.ts';
import { CURSOR_TYPES, planColumn, type CatalogColumn, type ColumnPlan } from './type-map.ts';

export interface TableShape {
  readonly table: ResolvedTable;
  readonly layout: PageLayout;
  /** The cursor column; null for snapshot tables, which page by primary key alone. */
  readonly cursor: CatalogColumn | null;
  readonly keyColumns: readonly CatalogColumn[];
  /** The key comes from tables[].primaryKey, not the table's own primary key: its uniqueness is checked each run. */
  readonly keyAsserted: boolean;
  /** pg_class.relkind (r, p, v, m, f); a view's writes lock its base tables, not the view. */
  readonly relkind: string;
  /**
   * The zone of a wall-clock cursor's values (cursorTimeZone): set for a `timestamp` or `date`
   * cursor, null for `timestamptz` (instants) and snapshots.
   */
  readonly zone: CursorZone | null;
  /** Hash of the column plans and cursorTimeZone: an export invocation refuses to continue a run if it changed. */
  readonly fingerprint: string;
  readonly warnings: readonly string[];
}

export function shapeTable(table: ResolvedTable, catalog: TableCatalog | null, config: LakeConfig): TableShape {
  const where = table.display;
  if (!catalog) throw new SchemaMismatchError(`${where}: table does not exist (or the database user cannot see it)`);
  const problems: string[] = [];
  const byName = new Map(catalog.columns.map((c) => [c.name, c]));
  const need = (name: string, role: string): CatalogColumn | undefined => {
    const column = byName.get(name);
    if (!column) problems.push(`${where}: ${role} column ${JSON.stringify(name)} does not exist (columns: ${catalog.columns.map((c) => c.name).join(', ')})`);
    return column;
  };
  const cfg = table.config;
  const warnings0: string[] = [];
  const snapshot = cfg.mode === 'snapshot';
  // A snapshot reads the whole table every run: it needs no cursor (the table may have none).
  const cursor = snapshot ? undefined : need(cfg.cursor, 'cursor');
  if (cursor && !CURSOR_TYPES.has(cursor.typeName)) {
    problems.push(`${where}: cursor column ${JSON.stringify(cursor.name)} is ${cursor.formatted}; it must be timestamptz, timestamp or date`);
  }
  const wallClock = cursor !== undefined && (cursor.typeName === 'timestamp' || cursor.typeName === 'date');
  if (cfg.cursorTimeZone !== 'UTC' && !wallClock) {
    problems.push(`${where}: cursorTimeZone ${JSON.stringify(cfg.cursorTimeZone)} applies to a timestamp or date cursor; ${snapshot ? 'a snapshot has no cursor' : `${JSON.stringify(cursor?.name)} is ${cursor?.formatted} (instants)`}`);
  }
  const keyNames = cfg.primaryKey ?? catalog.primaryKey;
  if (keyNames.length === 0) problems.push(`${where}: table has no primary key; set tables[].primaryKey to the columns that identify a row`);
  const keyColumns = keyNames.map((k) => need(k, 'primaryKey')).filter((c): c is CatalogColumn => c !== undefined);
  for (const k of keyColumns) {
    if (!k.notNull) warnings0.push(`${where}: primaryKey column ${JSON.stringify(k.name)} allows NULL; a run fails the table if its window holds a row with a NULL key (declare it NOT NULL)`);
    if (k.elementTypeName !== null || k.typeName === 'bytea' || k.typeName === 'json') problems.push(`${where}: primaryKey column ${JSON.stringify(k.name)} is ${k.formatted}, which cannot order a keyset`);
  }
  // Snapshot tables without partitionBy land in the partition of the run's date.
  const partitionName = cfg.partitionBy ?? (snapshot ? undefined : cfg.cursor);
  // When it defaults to the cursor, the cursor's own checks already speak for it.
  const partition = cfg.partitionBy === undefined ? undefined : need(cfg.partitionBy, 'partitionBy');
  if (partition && !CURSOR_TYPES.has(partition.typeName)) problems.push(`${where}: partitionBy column ${JSON.stringify(partition.name)} is ${partition.formatted}; it must be timestamptz, timestamp or date`);
  const excluded = new Set(cfg.columns.exclude);
  const softDelete = cfg.softDeleteColumn === undefined ? undefined : need(cfg.softDeleteColumn, 'softDeleteColumn');
  if (softDelete && softDelete.typeName !== 'bool') problems.push(`${where}: softDeleteColumn ${JSON.stringify(softDelete.name)} is ${softDelete.formatted}; it must be boolean`);
  if (softDelete && excluded.has(softDelete.name)) problems.push(`${where}: columns.exclude names ${JSON.stringify(softDelete.name)}, which softDeleteColumn needs`);
  for (const name of excluded) {
    need(name, 'columns.exclude');
    if ((!snapshot && name === cfg.cursor) || name === partitionName || keyNames.includes(name)) problems.push(`${where}: columns.exclude names ${JSON.stringify(name)}, which the export needs (cursor, key or partition)`);
  }
  for (const name of [...(cfg.checks?.notNull ?? []), ...(cfg.checks?.unique ?? [])]) {
    need(name, 'checks');
    if (excluded.has(name)) problems.push(`${where}: checks name ${JSON.stringify(name)}, which columns.exclude leaves out`);
  }
  for (const meta of META_COLUMNS) if (byName.has(meta.name)) problems.push(`${where}: column ${JSON.stringify(meta.name)} collides with the export metadata column of that name`);
  // Partition columns come from the folders (year=…/month=…/day=…): a column of the same name
  // would be hidden by them, and Glue refuses a table that declares a name twice.
  for (const column of catalog.columns) {
    const partition = PARTITION_KEYS.find((k) => k.name === column.name.toLowerCase());
    if (partition && !excluded.has(column.name)) problems.push(`${where}: column ${JSON.stringify(column.name)} collides with the partition column ${partition.name}; exclude it (columns.exclude) or export it through a view that renames it`);
  }
  const lower = new Map<string, string>();
  for (const column of catalog.columns) {
    if (excluded.has(column.name)) continue;
    const other = lower.get(column.name.toLowerCase());
    if (other !== undefined) problems.push(`${where}: columns ${JSON.stringify(other)} and ${JSON.stringify(column.name)} differ only in case; Athena cannot tell them apart (exclude one)`);
    lower.set(column.name.toLowerCase(), column.name);
  }
  const hashed = new Set(cfg.columns.hash);
  for (const name of hashed) {
    need(name, 'columns.hash');
    if ((!snapshot && name === cfg.cursor) || name === partitionName || keyNames.includes(name)) problems.push(`${where}: columns.hash names ${JSON.stringify(name)}, which the export needs in clear (cursor, key or partition)`);
    if (excluded.has(name)) problems.push(`${where}: ${JSON.stringify(name)} is in both columns.exclude and columns.hash`);
  }
  const columns: ColumnPlan[] = [];
  const warnings: string[] = [...warnings0];
  for (const column of catalog.columns) {
    if (excluded.has(column.name)) continue;
    if (hashed.has(column.name)) {
      // Hashed from its text form: the same value always gives the same hash, whatever the type.
      columns.push({ name: column.name, select: `${quoteIdent(column.name)}::text`, lakeType: { kind: 'string' }, glueType: 'string', hashed: true });
      continue;
    }
    try {
      const plan = planColumn(where, column, { unconstrainedNumericScale: config.export.unconstrainedNumericScale });
      if (plan.warning) warnings.push(plan.warning);
      columns.push(plan);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length) throw new SchemaMismatchError(problems.join('; '));
  const index = (name: string) => columns.findIndex((c) => c.name === name);
  const layout: PageLayout = {
    table: where,
    columns,
    keyFields: snapshot ? keyNames.map(index) : [index(cfg.cursor), ...keyNames.map(index)],
    cursorFirst: !snapshot,
    partitionField: partitionName === undefined ? -1 : index(partitionName),
    years: config.lake.partitionYears,
  };
  // What the run's files depend on: a change between Plan and Commit fails the run, publishing
  // nothing (a first commit records the granularity its files were written with).
  const fingerprint = createHash('sha256').update(JSON.stringify([cfg.mode, cfg.cursorTimeZone, cfg.partition?.granularity ?? 'day', keyNames, columns.map((c) => [c.name, c.select, c.glueType, c.hashed === true])])).digest('hex').slice(0, 16);
  const keyAsserted = cfg.primaryKey !== undefined && cfg.primaryKey.join('\u0000') !== catalog.primaryKey.join('\u0000');
  return { table, layout, cursor: cursor ?? null, keyColumns, keyAsserted, relkind: catalog.relkind ?? 'r', zone: wallClock ? new CursorZone(cfg.cursorTimeZone) : null, fingerprint, warnings };
}

export async function describeTableShape(source: RowSource, table: ResolvedTable, config: LakeConfig): Promise<TableShape> {
  return shapeTable(table, await source.describeTable(table.name), config);
}

/** The table's columns as Glue (and the local DuckDB views) declare them. */
export function lakeColumns(shape: TableShape): LakeColumn[] {
  return [
    ...shape.layout.columns.map((c) => ({ source: c.name, name: c.name.toLowerCase(), type: c.glueType })),
    ...META_COLUMNS.map((m) => ({ source: m.name, name: m.name, type: m.glueType })),
  ];
}

const WIDENINGS: Record<string, string[]> = { smallint: ['int', 'bigint'], int: ['bigint'], float: ['double'] };

function widens(from: string, to: string): boolean {
  if (from === to) return true;
  if (WIDENINGS[from]?.includes(to)) return true;
  const a = /^decimal\((\d+),(\d+)\)$/.exec(from);
  const b = /^decimal\((\d+),(\d+)\)$/.exec(to);
  return a !== null && b !== null && a[2] === b[2] && Number(b[1]) >= Number(a[1]);
}

/**
 * Columns whose lake type changed since the last commit in a way old files cannot be read as:
 * the table must fail rather than publish files Athena would mis-read. Added and dropped
 * columns are fine (old files read as NULL; the dropped column stays declared).
 */
export function incompatibleChanges(display: string, previous: readonly LakeColumn[], next: readonly LakeColumn[]): string[] {
  const before = new Map(previous.map((c) => [c.name, c.type]));
  return next
    .filter((c) => before.has(c.name) && !widens(before.get(c.name)!, c.type))
    .map((c) => `${display}.${c.source}: type changed from ${before.get(c.name)} to ${c.type} since the last export; files already in the lake cannot be read as ${c.type} (re-export the table with {"full": true} after renaming the column, or exclude it)`);
}
