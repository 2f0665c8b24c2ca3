// Query results as a plain text table, for `query` and the demo. Cells wider than 40 characters
// are cut with an ellipsis; nested values (lists) print as JSON.
export function formatRows(rows: Record<string, unknown>[], indent = ''): string {
  if (rows.length === 0) return `${indent}(0 rows)`;
  const columns = Object.keys(rows[0]);
  const cells = rows.map((r) => columns.map((c) => (r[c] === null ? 'NULL' : typeof r[c] === 'object' ? JSON.stringify(r[c]) : String(r[c]))));
  const widths = columns.map((c, i) => Math.min(40, Math.max(c.length, ...cells.map((row) => row[i].length))));
  const line = (values: string[]) => indent + values.map((v, i) => (v.length > widths[i] ? `${v.slice(0, widths[i] - 1)}…` : v.padEnd(widths[i]))).join(' | ');
  return [line(columns), `${indent}${widths.map((w) => '-'.repeat(w)).join('-+-')}`, ...cells.map(line), `${indent}(${rows.length} row${rows.length === 1 ? '' : 's'})`].join('\n');
}
