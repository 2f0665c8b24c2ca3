// One fuzz case from one seed: a table with hostile names and random columns of every type,
// its rows as SQL expressions, the export settings, and (sometimes) one value that README says
// fails the table by name. Everything is drawn from forks of the case's generator, so dropping
// columns or rows while shrinking leaves the rest of the case as it was.
import { Rng } from './random.ts';
import { ARRAY_DOMAIN_LABEL, caseTypes, lakeDecimal, type Poison, type TypeSpec } from './types.ts';

export type CursorType = 'timestamptz' | 'timestamp' | 'date';

export interface FuzzColumn {
  /** The column's name as Postgres stores it (unquoted). */
  readonly name: string;
  readonly type: TypeSpec;
  /** The column holds arrays of `type` (`type[]`, or the int4[] domain). */
  readonly array: boolean;
  readonly ddl: string;
  readonly role: 'key' | 'cursor' | 'value';
  /** columns.hash: exported as the salted SHA-256 of its text form. */
  readonly hashed?: boolean;
}

export interface FuzzPoison extends Poison {
  readonly column: string;
  /** The error names `table.column` with `[]` for an array element. */
  readonly element: boolean;
  /** The row's values, the poison in `column`. */
  readonly row: string[];
}

export interface FuzzCase {
  readonly seed: number;
  readonly schema: string;
  readonly table: string;
  /** The table as the config names it: quoted where needed. */
  readonly configName: string;
  readonly setup: string[];
  readonly ddl: string;
  readonly columns: FuzzColumn[];
  readonly keyColumns: string[];
  readonly cursor: { readonly name: string; readonly type: CursorType; readonly nullable: boolean; readonly zone: string } | null;
  readonly pageRows: number;
  readonly unconstrainedScale: number;
  /** Per row, one SQL expression per column (in `columns` order). */
  readonly rows: string[][];
  /** Rows written after the first run, their cursor at the database's now(): a later incremental run exports them. */
  readonly laterRows: string[][];
  readonly rerun: 'full' | 'window';
  readonly poison: FuzzPoison | null;
  /** The salt of columns.hash (hostile: quotes, unicode). */
  readonly hashSalt: string;
}

export interface ShrinkOptions {
  /** Keep only these value columns (key and cursor always stay). */
  readonly onlyColumns?: readonly string[];
  /** Keep only the first n rows. */
  readonly maxRows?: number;
}

// Reserved words, spaces, quotes, unicode, case, digits first, the cursor's usual name, 63 bytes.
// (year, month and day are the partition columns: a table with one fails by name, README.)
const NAMES = [
  'select', 'from', 'order', 'user', 'group by', 'with space', ' lead', 'trail ', 'ünïcödé', '中文列', 'a"b', "it's", 'CamelCase', '1starts_digit',
  'dot.name', '$dollar', 'null', 'true', 'end', 'Tab\tName', 'emoji 😀', 'x'.repeat(63), 'semi;colon', 'back\\slash', '[brackets]', 'updated_at',
];

function uniqueName(r: Rng, taken: Set<string>): string {
  for (;;) {
    const base = r.chance(0.6) ? r.pick(NAMES) : `c ${r.int(0, 999)}${r.pick(['', 'é', ' X', '"'])}`;
    const name = taken.has(base.toLowerCase()) ? `${base.slice(0, 50)} ${r.int(0, 9999)}` : base;
    // DuckDB (like Athena) folds case: names must differ in more than case.
    if (!taken.has(name.toLowerCase())) {
      taken.add(name.toLowerCase());
      return name;
    }
  }
}

export const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

const ZONES = ['America/New_York', 'Europe/Berlin', 'Asia/Kolkata', 'Pacific/Chatham', 'Australia/Lord_Howe'];

const PAGE_ROWS = [1, 2, 3, 5, 7, 16, 64, 100, 333, 1000, 1024, 4096, 50_000];

/** A row count that often lands on, just before or just after a page boundary. */
function rowCount(r: Rng, pageRows: number): number {
  const cap = Math.min(2500, pageRows * 120);
  const pick = r.int(0, 5);
  if (pick === 0) return Math.min(cap, pageRows * r.int(1, 4));
  if (pick === 1) return Math.min(cap, pageRows * r.int(1, 4) + 1);
  if (pick === 2) return Math.max(0, Math.min(cap, pageRows * r.int(1, 4) - 1));
  return r.size(cap);
}

function cursorValue(r: Rng, type: CursorType, ties: string[]): string {
  if (ties.length && r.chance(0.7)) return r.pick(ties);
  // 1970 … 2025: inside the partition years, before the run's window ends (today's dates wait a day)
  const days = r.int(0, 20_453);
  if (type === 'date') return `(date '1970-01-01' + ${days})`;
  const micros = r.chance(0.3) ? 0 : r.int(0, 86_399_999_999);
  return `(${type} '1970-01-01 00:00:00${type === 'timestamptz' ? '+00' : ''}' + ${days} * interval '1 day' + interval '${micros} microseconds')`;
}

function arrayValue(r: Rng, col: FuzzColumn): string {
  const cast = col.ddl;
  const shape = r.int(0, 9);
  if (shape === 0) return `'{}'::${cast}`;
  const n = shape === 1 ? r.int(200, 3000) : r.size(12);
  const nulls = r.chance(0.3) ? r.next() * 0.5 : 0;
  const elementType = col.type.label === ARRAY_DOMAIN_LABEL ? intElement : col.type;
  const elements = Array.from({ length: n }, () => (r.chance(nulls) ? 'NULL' : elementType.gen(r)));
  return n === 0 ? `'{}'::${cast}` : `ARRAY[${elements.join(', ')}]::${cast}`;
}

const intElement: TypeSpec = { label: 'int4', ddl: 'int4', kind: 'int', element: true, gen: (r) => String(r.chance(0.2) ? r.pick([-2147483648, 2147483647, 0]) : r.int(-100000, 100000)) };

export function generateCase(seed: number, shrink: ShrinkOptions = {}): FuzzCase {
  const root = new Rng(seed);
  const r = root.fork('shape');
  const tag = String(seed);
  // export.unconstrainedNumericScale: mostly the default 9, sometimes either end
  const unconstrainedScale = root.fork('scale').pick([9, 9, 9, 0, 2, 20, 38]);
  const types = caseTypes(root.fork('types'), tag, unconstrainedScale);
  const taken = new Set<string>();
  const schema = r.chance(0.3) ? `Fuzz Schema ${tag} ü` : 'public';
  const table = `${r.pick(['Fuzz Table', 'fuzz', 'Ünïcode Tab', 'select', 'Order Items'])} ${tag}`;
  const configName = `${quoteIdent(schema)}.${quoteIdent(table)}`;

  const snapshot = r.chance(0.15);
  const cursorType: CursorType = r.pick(['timestamptz', 'timestamptz', 'timestamp', 'date']);
  const cursorNullable = !snapshot && r.chance(0.2);
  const columns: FuzzColumn[] = [];
  const keyTypes = types.filter((t) => t.key);
  const keyCount = r.chance(0.3) ? 2 : 1;
  for (let k = 0; k < keyCount; k++) {
    const type = k === 0 && r.chance(0.5) ? types.find((t) => t.ddl === 'int8')! : r.pick(keyTypes);
    columns.push({ name: uniqueName(r, taken), type, array: false, ddl: type.ddl, role: 'key' });
  }
  const cursorName = snapshot ? null : uniqueName(r, taken);
  // a wall-clock cursor is read in its writers' zone (cursorTimeZone); an instant cursor may be a domain
  const zoneRng = root.fork('zone');
  const cursorZone = cursorType !== 'timestamptz' && zoneRng.chance(0.4) ? zoneRng.pick(ZONES) : 'UTC';
  if (cursorName) {
    const domain = cursorType === 'timestamptz' && zoneRng.chance(0.2);
    const type = types.find((t) => (domain ? t.label === 'domain timestamptz' : t.ddl === cursorType))!;
    columns.push({ name: cursorName, type, array: false, ddl: domain ? type.ddl : cursorType, role: 'cursor' });
  }
  // now and then a wide table: many fields per row in the page's slots
  const valueCount = r.chance(0.04) ? r.int(100, 300) : r.size(24);
  for (let c = 0; c < valueCount; c++) {
    const type = r.pick(types);
    const array = type.label === ARRAY_DOMAIN_LABEL || (type.element && r.chance(0.35));
    const ddl = array && type.label !== ARRAY_DOMAIN_LABEL ? `${type.ddl}[]` : type.ddl;
    columns.push({ name: uniqueName(r, taken), type, array, ddl, role: 'value' });
  }
  // now and then a few value columns under columns.hash
  const hashRng = root.fork('hash');
  const hashing = hashRng.chance(0.2);
  const withHash = columns.map((c) => (hashing && c.role === 'value' && hashRng.chance(0.3) ? { ...c, hashed: true } : c));
  const kept = withHash.filter((c) => c.role !== 'value' || !shrink.onlyColumns || shrink.onlyColumns.includes(c.name));
  const keptNames = new Set(kept.map((c) => c.name));

  const setup = [...new Set(kept.flatMap((c) => c.type.setup ?? []))];
  if (schema !== 'public') setup.unshift(`CREATE SCHEMA ${quoteIdent(schema)}`);
  const keyColumns = kept.filter((c) => c.role === 'key').map((c) => c.name);
  const defs = kept.map((c) => `${quoteIdent(c.name)} ${c.ddl}${c.role === 'key' || (c.role === 'cursor' && !cursorNullable) ? ' NOT NULL' : ''}`);
  const ddl = `CREATE TABLE ${configName} (\n  ${defs.join(',\n  ')},\n  PRIMARY KEY (${keyColumns.map(quoteIdent).join(', ')})\n)`;

  const pageRows = r.pick(PAGE_ROWS);
  const n = Math.min(rowCount(r, pageRows), shrink.maxRows ?? Infinity, valueCount > 50 ? 200 : Infinity);
  const tieCount = r.pick([0, 1, 2, 5]);
  const tieRng = root.fork('ties');
  const ties = cursorName ? Array.from({ length: tieCount }, () => cursorValue(tieRng, cursorType, [])) : [];
  const density = new Map(columns.map((c) => [c.name, c.role === 'value' ? r.pick([0, 0.05, 0.3, 0.9, 1]) : 0]));

  const rowsFor = (count: number, label: string, later: boolean): string[][] => {
    const cols = new Map(columns.map((c) => [c.name, root.fork(`${label}:${c.name}`)]));
    const rows: string[][] = [];
    for (let i = 0; i < count; i++) {
      const row: string[] = [];
      for (const c of columns) {
        const g = cols.get(c.name)!;
        let value: string;
        if (c.role === 'cursor') {
          value = cursorNullable && g.chance(0.05) ? 'NULL' : later ? (cursorType === 'timestamptz' ? 'now()' : `(now() AT TIME ZONE '${cursorZone}')`) : cursorValue(g, cursorType, ties);
        } else if (c.role === 'value' && g.chance(density.get(c.name)!)) value = 'NULL';
        else value = c.array ? arrayValue(g, c) : c.type.gen(g);
        // a btree entry holds at most 2,704 bytes: keys stay short
        while (c.role === 'key' && value.length > 1000) value = c.type.gen(g);
        if (keptNames.has(c.name)) row.push(value);
      }
      rows.push(row);
    }
    return rows;
  };
  const rows = rowsFor(n, 'rows', false);
  const laterRows = !snapshot && cursorType !== 'date' && r.chance(0.5) ? rowsFor(Math.min(r.size(60), shrink.maxRows ?? Infinity), 'later', true) : [];

  let poison: FuzzPoison | null = null;
  const pr = root.fork('poison');
  if (pr.chance(0.25) && !shrink.onlyColumns) {
    const candidates = kept.filter((c) => c.role === 'value' && !c.hashed && (c.type.poison || c.array));
    const cursorAt = kept.findIndex((c) => c.role === 'cursor');
    if (cursorAt >= 0 && (pr.chance(0.2) || !candidates.length)) {
      // a cursor, and so a partition day, before the partition years (1970–2099) fails by name
      const [row] = rowsFor(1, 'poison', false);
      const text = { timestamptz: '1969-12-31 23:59:59.999999+00', timestamp: '1969-12-31 23:59:59.999999', date: '1969-12-31' }[cursorType];
      row[cursorAt] = `'${text}'::${cursorType}`;
      poison = { sql: row[cursorAt], valueText: text, reason: 'falls outside the partition years 1970–2099', element: false, column: kept[cursorAt].name, row };
    } else if (candidates.length) {
      const target = pr.pick(candidates);
      const [row] = rowsFor(1, 'poison', false);
      const made = poisonFor(pr, target);
      if (made) {
        row[kept.indexOf(target)] = made.sql;
        if (cursorName) row[kept.findIndex((c) => c.role === 'cursor')] = cursorValue(pr, cursorType, []);
        poison = { ...made, column: target.name, row };
      }
    }
  }

  return {
    seed, schema, table, configName, setup, ddl, columns: kept, keyColumns,
    cursor: cursorName ? { name: cursorName, type: cursorType, nullable: cursorNullable, zone: cursorZone } : null,
    pageRows, unconstrainedScale, rows, laterRows, rerun: r.chance(0.5) ? 'full' : 'window', poison,
    hashSalt: `salt ${seed} 'ü' "😀"`,
  };
}

function poisonFor(r: Rng, col: FuzzColumn): (Poison & { element: boolean }) | null {
  if (!col.array) return col.type.poison ? { ...col.type.poison(r), element: false } : null;
  const elementType = col.type.label === ARRAY_DOMAIN_LABEL ? null : col.type;
  const choice = r.int(0, 2);
  if (choice === 0 && elementType?.poison) {
    const bad = elementType.poison(r);
    return { ...bad, sql: `ARRAY[${elementType.gen(r)}, ${bad.sql}]::${col.ddl}`, element: true };
  }
  const e = (elementType ?? intElement).gen(r);
  if (choice === 1) return { sql: `ARRAY[[${e}], [${e}]]::${col.ddl}`, valueText: 'a 2×1 array', reason: 'cannot be stored as array<…>; only one-dimensional arrays are supported', element: false };
  return { sql: `array_fill(${e}, ARRAY[2], ARRAY[0])::${col.ddl}`, valueText: '[0:1]={…}', reason: 'starts at index 0; array<…> starts at 1, so it cannot be stored exactly', element: false };
}

/** The lake type a numeric column must get (README rule), for the type check. */
export { lakeDecimal };
