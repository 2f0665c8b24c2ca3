// Postgres identifiers as the user writes them in the config: `schema.table`, each part either
// a plain lower-case name or a double-quoted one ("Order Items", "a""b"). Every identifier that
// reaches SQL goes through quoteIdent; every literal through quoteLiteral.
import { ConfigError } from './errors.ts';

export interface QualifiedName {
  readonly schema: string;
  readonly name: string;
}

/** Split `a.b`, `"A b"."C.d"` or `b` (schema public) into its unquoted parts. */
export function parseQualifiedName(text: string, path = 'name'): QualifiedName {
  const parts: string[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw new ConfigError(`${path}: ${JSON.stringify(text)} is not a valid table name (${why})`);
  };
  while (i < text.length) {
    if (text[i] === '"') {
      let part = '';
      i++;
      for (;;) {
        if (i >= text.length) fail('unterminated quote');
        if (text[i] === '"') {
          if (text[i + 1] === '"') { part += '"'; i += 2; continue; }
          i++;
          break;
        }
        part += text[i++];
      }
      if (part === '') fail('empty quoted identifier');
      parts.push(part);
    } else {
      const match = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(text.slice(i));
      if (!match) fail(`unexpected character at ${i + 1}`);
      // Unquoted identifiers fold to lower case, as in Postgres.
      parts.push(match![0].toLowerCase());
      i += match![0].length;
    }
    if (i < text.length) {
      if (text[i] !== '.') fail(`expected "." at ${i + 1}`);
      i++;
      if (i === text.length) fail('ends with "."');
    }
  }
  if (parts.length === 1) return { schema: 'public', name: parts[0] };
  if (parts.length === 2) return { schema: parts[0], name: parts[1] };
  return fail('expected schema.table');
}

export function quoteIdent(identifier: string): string {
  if (identifier.includes('\0')) throw new ConfigError(`identifier ${JSON.stringify(identifier)} contains a NUL byte`);
  return `"${identifier.replaceAll('"', '""')}"`;
}

export function quoteQualified(name: QualifiedName): string {
  return `${quoteIdent(name.schema)}.${quoteIdent(name.name)}`;
}

/** A standard-conforming string literal: E'' syntax avoided, quotes doubled, NUL refused. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new ConfigError(`literal ${JSON.stringify(value)} contains a NUL byte`);
  return `'${value.replaceAll("'", "''")}'`;
}

/** How a table is shown to people: schema.table with quotes only where needed. */
export function displayName(name: QualifiedName): string {
  const show = (part: string) => (/^[a-z_][a-z0-9_$]*$/.test(part) ? part : quoteIdent(part));
  return `${show(name.schema)}.${show(name.name)}`;
}
