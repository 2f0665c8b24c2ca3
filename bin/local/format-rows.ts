// Query results as a plain text table, for `query` and the demo. Numbers are right-aligned (so
// digits line up); nested values (lists) print as JSON, line breaks and tabs as \n and \t. A cell
// wider than the limit is cut with an ellipsis and the footer says how many were cut and how to
// see them whole: a value is never shortened without a word.

export interface FormatOptions {
  /** Put before every line (the demo indents its answers). @default '' */
  readonly indent?: string;
  /** Columns holding numbers (from the query's column types); others are told apart by their values. */
  readonly numericColumns?: ReadonlySet<string>;
  /** Widest cell before it is cut. @default 60 */
  readonly maxWidth?: number;
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text.replace(/\r?\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r');
}

export function formatRows(rows: Record<string, unknown>[], options: FormatOptions = {}): string {
  const indent = options.indent ?? '';
  const maxWidth = Math.max(options.maxWidth ?? 60, 2);
  if (rows.length === 0) return `${indent}(0 rows)`;
  const columns = Object.keys(rows[0]);
  const numeric = columns.map((c) => options.numericColumns?.has(c)
    ?? rows.every((r) => r[c] === null || typeof r[c] === 'number' || typeof r[c] === 'bigint'));
  let cut = 0;
  const cells = rows.map((r) => columns.map((c) => {
    const text = cellText(r[c]);
    if (text.length <= maxWidth) return text;
    cut++;
    return `${text.slice(0, maxWidth - 1)}…`;
  }));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const line = (values: string[]) => indent + values
    .map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
    .join(' | ')
    .trimEnd();
  const footer = [`${rows.length} row${rows.length === 1 ? '' : 's'}`];
  if (cut) footer.push(`${cut} cell${cut === 1 ? '' : 's'} longer than ${maxWidth} characters cut at …; --json prints whole values`);
  return [
    line(columns),
    `${indent}${widths.map((w) => '-'.repeat(w)).join('-+-')}`,
    ...cells.map((row) => line(row)),
    `${indent}(${footer.join('; ')})`,
  ].join('\n');
}
