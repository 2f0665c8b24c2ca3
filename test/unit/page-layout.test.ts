import { describe, expect, it } from 'vitest';
import { columnWhere, describeKey, type PageLayout } from '../../lambdas/core/page/page-layout.ts';
import type { ColumnPlan } from '../../lambdas/core/source/type-map.ts';

const plan = (name: string): ColumnPlan => ({ name, select: `"${name}"`, lakeType: { kind: 'string' }, glueType: 'string' });
const layout = (names: string[]): PageLayout => ({
  table: 'public."Order Items"', columns: names.map(plan), keyFields: names.map((_, i) => i), cursorFirst: true, partitionField: 0, years: { from: 1970, to: 2099 },
});

describe('value error wording', () => {
  it('shows plain names and values as they are', () => {
    expect(describeKey(layout(['updated_at', 'id']), ['2024-01-01 00:00:00.000000+00', '2'])).toBe('updated_at=2024-01-01 00:00:00.000000+00, id=2');
    expect(columnWhere('public.orders', 'amount')).toBe('public.orders.amount');
  });

  it('quotes names and values that could be misread', () => {
    // without quoting this read "null=}], a=b=c" — which part is the key of which column?
    expect(describeKey(layout(['null', 'a=b', 'Order Id']), ['}], x', '', ' padded'])).toBe('null="}], x", "a=b"="", "Order Id"=" padded"');
    expect(describeKey(layout(['k']), ['tab\there'])).toBe('k="tab\\there"');
    expect(columnWhere('public."Order Items"', 'Tab\tName')).toBe('public."Order Items"."Tab\tName"');
  });
});
