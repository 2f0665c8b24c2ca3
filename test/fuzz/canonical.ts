// Canonical text of a cell, computed three independent ways: by Postgres in SQL (the truth), by
// DuckDB in SQL over the lake files, and from hyparquet's decoded values. Arrays become a JSON
// list of their elements' canonical texts. Numbers are compared by value (trailing zeros of a
// decimal, a float's spelling), everything else by exact text.
import type { Kind } from './types.ts';

/** Postgres: canonical text of expression `x` of kind `kind` (NULL stays NULL). */
export function pgCanonical(kind: Kind, x: string): string {
  switch (kind) {
    case 'bpchar': return `CASE WHEN ${x} IS NULL THEN NULL ELSE concat(${x}) END`; // ::text would trim the padding the lake keeps
    case 'bytea': return `encode(${x}, 'hex')`;
    case 'date': return `CASE WHEN isfinite(${x}) THEN (${x} - date '1970-01-01')::text ELSE ${x}::text END`;
    case 'timestamp': return `CASE WHEN isfinite(${x}) THEN (extract(epoch FROM ${x}) * 1000000)::numeric(30,0)::text ELSE ${x}::text END`;
    default: return `(${x})::text`;
  }
}

export function pgCanonicalArray(kind: Kind, x: string): string {
  // unnest in the select list keeps a composite element whole (in FROM it would spread into its
  // fields); subscripting x[i] instead would detoast the whole array once per element.
  return `CASE WHEN ${x} IS NULL THEN NULL ELSE to_json(ARRAY(SELECT ${pgCanonical(kind, 'e')} FROM (SELECT unnest(${x}) AS e, generate_subscripts(${x}, 1) AS i) AS u ORDER BY i))::text END`;
}

/**
 * DuckDB: canonical text of expression `x` read from the lake, as hex of its UTF-8 bytes: the
 * node client decodes strings with a BOM-stripping decoder, which would lose a leading U+FEFF.
 */
export function duckCanonical(kind: Kind, x: string): string {
  return `hex(${duckText(kind, x)})`;
}

function duckText(kind: Kind, x: string): string {
  switch (kind) {
    case 'bytea': return `lower(hex(${x}))`;
    case 'date': return `CASE WHEN isinf(${x}) THEN CAST(${x} AS VARCHAR) ELSE CAST(datediff('day', DATE '1970-01-01', ${x}) AS VARCHAR) END`;
    case 'timestamp': return `CASE WHEN isinf(${x}) THEN CAST(${x} AS VARCHAR) ELSE CAST(epoch_us(${x}) AS VARCHAR) END`;
    default: return `CAST(${x} AS VARCHAR)`;
  }
}

export function duckCanonicalArray(kind: Kind, x: string): string {
  return `CASE WHEN ${x} IS NULL THEN NULL ELSE CAST(to_json(list_transform(${x}, e -> ${duckCanonical(kind, 'e')})) AS VARCHAR) END`;
}

const MAX_I64 = (1n << 63n) - 1n;

/** Undo duckCanonical's hex transport (scalars, or a JSON list of them). */
export function fromDuckHex(array: boolean, value: string | null): string | null {
  if (value === null) return null;
  const decode = (hex: string) => Buffer.from(hex, 'hex').toString('utf8');
  if (!array) return decode(value);
  const parsed: unknown = JSON.parse(value);
  return Array.isArray(parsed) ? JSON.stringify(parsed.map((e) => (typeof e === 'string' ? decode(e) : null))) : `<not a list: ${value}>`;
}

/** hyparquet: canonical text of one decoded value (decimals arrive unscaled, see readers.ts). */
export function hyparquetCanonical(kind: Kind, value: unknown, decimalScale: number | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (kind === 'decimal' && decimalScale !== undefined) return scaled(unscaledOf(value), decimalScale);
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  if (kind === 'date' && typeof value === 'number') return value === 0x7fffffff ? 'infinity' : value === -0x7fffffff ? '-infinity' : String(value);
  if (kind === 'timestamp' && typeof value === 'bigint') return value === MAX_I64 ? 'infinity' : value === -MAX_I64 ? '-infinity' : String(value);
  if (typeof value === 'number') return floatText(value);
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return `<unexpected ${typeof value}: ${String(value)}>`;
}

function unscaledOf(value: unknown): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(value);
  if (value instanceof Uint8Array) {
    let v = 0n;
    for (const b of value) v = (v << 8n) | BigInt(b);
    return value.length && value[0] & 0x80 ? v - (1n << BigInt(8 * value.length)) : v;
  }
  throw new Error(`a decimal arrived as ${typeof value}`);
}

function scaled(k: bigint, scale: number): string {
  const negative = k < 0n;
  let body = (negative ? -k : k).toString();
  if (scale > 0) {
    body = body.padStart(scale + 1, '0');
    body = `${body.slice(0, -scale)}.${body.slice(-scale)}`;
  }
  return negative ? `-${body}` : body;
}

function floatText(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  return Object.is(n, -0) ? '-0' : String(n);
}

function parseFloatText(text: string): number {
  switch (text.toLowerCase()) {
    case 'nan': case '-nan': return Number.NaN;
    case 'inf': case 'infinity': return Infinity;
    case '-inf': case '-infinity': return -Infinity;
    default: return Number(text);
  }
}

/** One scalar's canonical text, spelled the same whichever side produced it. */
export function normalize(kind: Kind, text: string | null): string | null {
  if (text === null) return null;
  switch (kind) {
    case 'float4': return floatText(Math.fround(parseFloatText(text)));
    case 'float8': return floatText(parseFloatText(text));
    case 'decimal': {
      // DuckDB prints decimal(p,p) without the leading zero ('.50', '-.50').
      const full = text.replace(/^(-?)\./, '$10.');
      const trimmed = full.includes('.') ? full.replace(/0+$/, '').replace(/\.$/, '') : full;
      return trimmed === '-0' ? '0' : trimmed;
    }
    default: return text;
  }
}

/** A cell as compared: scalar text, or for arrays the list of element texts. */
export type Cell = string | null | (string | null)[];

export function normalizeCell(kind: Kind, array: boolean, text: string | null): Cell {
  if (!array || text === null) return normalize(kind, text);
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) return `<not a list: ${text}>`;
  return parsed.map((e) => normalize(kind, e === null ? null : String(e)));
}

export function sameCell(a: Cell, b: Cell): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
