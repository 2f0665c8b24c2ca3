// Postgres → lake type map (DESIGN.md "Types"). One place decides, per catalog column, what the
// page query selects, how the binary COPY field is decoded, the Arrow type and the Glue type.
import { quoteIdent } from '../identifiers.ts';
import { UnsupportedTypeError } from '../errors.ts';

export type LakeType =
  | { readonly kind: 'int16' | 'int32' | 'int64' | 'float32' | 'float64' | 'bool' | 'string' | 'binary' | 'date' }
  | { readonly kind: 'timestamp'; readonly utc: boolean }
  | { readonly kind: 'decimal'; readonly precision: number; readonly scale: number }
  | { readonly kind: 'list'; readonly element: LakeType };

/** What the catalog says about one column (adapters/postgres reads it). */
export interface CatalogColumn {
  readonly name: string;
  /** pg_type.typname of the column's type after resolving domains (arrays: `_int4`, …). */
  readonly typeName: string;
  /** pg_type.typtype of the resolved type: b base, e enum, c composite, r range, m multirange, d domain. */
  readonly typeKind: string;
  /** For arrays: the element type's typname and typtype; otherwise null. */
  readonly elementTypeName: string | null;
  readonly elementTypeKind: string | null;
  /** atttypmod (numeric precision/scale live here); -1 when unconstrained. */
  readonly typmod: number;
  /** format_type(atttypid, atttypmod): how Postgres spells the type, for casts and messages. */
  readonly formatted: string;
  readonly notNull: boolean;
}

export interface ColumnPlan {
  readonly name: string;
  /** The expression in the page query's select list (identifier quoted; `::text` when read as text). */
  readonly select: string;
  readonly lakeType: LakeType;
  readonly glueType: string;
  /** Set when the column is exported as its text form rather than a native type. */
  readonly warning?: string;
  /** columns.hash: exported as salted SHA-256 hex of its text form. */
  readonly hashed?: boolean;
}

export interface TypeMapOptions {
  readonly unconstrainedNumericScale: number;
}

// Read as their Postgres text output (exact, documented): no native Athena type or no exact
// Arrow one. jsonb's text output is its canonical form (keys sorted, duplicates removed).
const TEXT_FORM = new Set([
  'time', 'timetz', 'interval', 'uuid', 'inet', 'cidr', 'macaddr', 'macaddr8', 'json', 'jsonb', 'xml',
  'money', 'bit', 'varbit', 'tsvector', 'tsquery', 'pg_lsn', 'oid', 'xid', 'xid8', 'regclass', 'regtype',
  // "char" is one raw byte, not text: its binary form may be a lone high byte (not UTF-8) or a
  // zero byte, where its text output is `\377` or the empty string.
  'char',
]);
const STRING_NATIVE = new Set(['text', 'varchar', 'bpchar', 'name', 'citext']);
const SCALAR: Record<string, LakeType> = {
  int2: { kind: 'int16' }, int4: { kind: 'int32' }, int8: { kind: 'int64' },
  float4: { kind: 'float32' }, float8: { kind: 'float64' }, bool: { kind: 'bool' },
  bytea: { kind: 'binary' }, date: { kind: 'date' },
  timestamp: { kind: 'timestamp', utc: false }, timestamptz: { kind: 'timestamp', utc: true },
};
// Types we decline to guess about: exporting them as text would hide a real modelling question.
const REFUSED = new Set(['void', 'record', 'anyelement', 'unknown', 'internal']);

export const MAX_DECIMAL_PRECISION = 38;

export function glueTypeOf(type: LakeType): string {
  switch (type.kind) {
    case 'int16': return 'smallint';
    case 'int32': return 'int';
    case 'int64': return 'bigint';
    case 'float32': return 'float';
    case 'float64': return 'double';
    case 'bool': return 'boolean';
    case 'string': return 'string';
    case 'binary': return 'binary';
    case 'date': return 'date';
    case 'timestamp': return 'timestamp';
    case 'decimal': return `decimal(${type.precision},${type.scale})`;
    case 'list': return `array<${glueTypeOf(type.element)}>`;
  }
}

/** numeric typmod → precision/scale; null when unconstrained. */
export function numericTypmod(typmod: number): { precision: number; scale: number } | null {
  if (typmod < 4) return null;
  const value = typmod - 4;
  const precision = (value >> 16) & 0xffff;
  // Postgres 15+ allows negative scale; it is stored as an 11-bit two's complement.
  let scale = value & 0x7ff;
  if (scale & 0x400) scale -= 0x800;
  return { precision, scale };
}

/**
 * The exact decimal for numeric(p,s), or null when it needs more than 38 digits. A scale above
 * the precision (numeric(2,5): |v| < 0.001, five fractional digits) needs decimal(s,s); a
 * negative scale (numeric(3,-2): multiples of 100 below 100,000) needs decimal(p − s, 0).
 */
export function decimalOf(precision: number, scale: number): (LakeType & { kind: 'decimal' }) | null {
  const digits = scale < 0 ? precision - scale : Math.max(precision, scale, 1);
  if (digits > MAX_DECIMAL_PRECISION) return null;
  return { kind: 'decimal', precision: digits, scale: Math.max(scale, 0) };
}

interface Mapped {
  readonly type: LakeType;
  readonly asText: boolean;
  readonly warning?: string;
}

function mapScalar(typeName: string, typeKind: string, typmod: number, options: TypeMapOptions, where: string): Mapped {
  if (typeName === 'numeric') {
    const tm = numericTypmod(typmod);
    if (!tm) {
      return {
        type: { kind: 'decimal', precision: MAX_DECIMAL_PRECISION, scale: options.unconstrainedNumericScale },
        asText: false,
        warning: `${where}: unconstrained numeric exported as decimal(38,${options.unconstrainedNumericScale}); a value with more integer or fractional digits fails the table`,
      };
    }
    const type = decimalOf(tm.precision, tm.scale);
    if (!type) {
      return { type: { kind: 'string' }, asText: true, warning: `${where}: numeric(${tm.precision},${tm.scale}) needs more than 38 digits as a decimal; exported as its exact text form` };
    }
    return { type, asText: false };
  }
  const scalar = SCALAR[typeName];
  if (scalar) return { type: scalar, asText: false };
  if (STRING_NATIVE.has(typeName)) return { type: { kind: 'string' }, asText: false };
  if (TEXT_FORM.has(typeName) || typeKind === 'e') return { type: { kind: 'string' }, asText: true };
  if (REFUSED.has(typeName)) throw new UnsupportedTypeError(`${where}: type ${typeName} cannot be exported`);
  return { type: { kind: 'string' }, asText: true, warning: `${where}: type ${typeName} has no lake type; exported as its text form` };
}

/** Decide how one catalog column is read and stored. */
export function planColumn(table: string, column: CatalogColumn, options: TypeMapOptions): ColumnPlan {
  const where = `${table}.${column.name}`;
  const ident = quoteIdent(column.name);
  if (column.elementTypeName !== null) {
    const element = mapScalar(column.elementTypeName, column.elementTypeKind ?? 'b', column.typmod, options, `${where}[]`);
    const type: LakeType = { kind: 'list', element: element.type };
    return {
      name: column.name,
      select: element.asText ? `${ident}::text[]` : ident,
      lakeType: type,
      glueType: glueTypeOf(type),
      warning: element.warning,
    };
  }
  const mapped = mapScalar(column.typeName, column.typeKind, column.typmod, options, where);
  return {
    name: column.name,
    select: mapped.asText ? `${ident}::text` : ident,
    lakeType: mapped.type,
    glueType: glueTypeOf(mapped.type),
    warning: mapped.warning,
  };
}

export const CURSOR_TYPES = new Set(['timestamp', 'timestamptz', 'date']);
