import { describe, expect, it } from 'vitest';
import { formatRows } from '../../bin/local/format-rows.ts';

describe('formatRows', () => {
  it('right-aligns numeric columns, shows NULL, and escapes line breaks', () => {
    const rows = [{ id: 7, name: 'a\nb', amount: '12.50' }, { id: 1234, name: null, amount: '-3.00' }];
    expect(formatRows(rows, { numericColumns: new Set(['id', 'amount']) })).toBe([
      '  id | name | amount',
      '-----+------+-------',
      '   7 | a\\nb |  12.50',
      '1234 | NULL |  -3.00',
      '(2 rows)',
    ].join('\n'));
  });

  it('without column types, right-aligns columns whose values are all JS numbers', () => {
    expect(formatRows([{ n: 5, s: '5' }, { n: 10, s: '10' }])).toBe(' n | s\n---+---\n 5 | 5\n10 | 10\n(2 rows)');
  });

  it('cuts a long cell with … and says so in the footer', () => {
    const text = formatRows([{ v: 'x'.repeat(30) }], { maxWidth: 10, indent: '  ' });
    expect(text).toBe(['  v', '  ----------', '  xxxxxxxxx…', '  (1 row; 1 cell longer than 10 characters cut at …; --json prints whole values)'].join('\n'));
    expect(formatRows([], { indent: '  ' })).toBe('  (0 rows)');
  });
});
