// The SQL the exporter sends, built from a catalog without a database: every identifier quoted,
// every literal escaped, the keyset exact. (The integration tests run the same SQL for real.)
import { describe, expect, it } from 'vitest';
import { selectTables, validateConfig } from '../../lambdas/core/config.ts';
import { shapeTable } from '../../lambdas/core/source/table-shape.ts';
import { checkNotNullQuery, checkUniqueQuery, duplicateKeyQuery, nullKeyQuery, pageQuery, windowPredicates } from '../../lambdas/core/source/queries.ts';
import type { TableCatalog } from '../../lambdas/core/ports.ts';
import type { CatalogColumn } from '../../lambdas/core/source/type-map.ts';

function column(name: string, typeName: string, formatted: string, notNull = true): CatalogColumn {
  return { name, typeName, typeKind: 'b', elementTypeName: null, elementTypeKind: null, typmod: -1, formatted, notNull };
}

const catalog: TableCatalog = {
  columns: [
    column('Order "Id"', 'int4', 'integer'),
    column('line', 'int4', 'integer', false),
    column('note', 'text', 'text', false),
    column('updated_at', 'timestamptz', 'timestamp with time zone'),
  ],
  primaryKey: ['Order "Id"'],
};

function shapeOf(table: Record<string, unknown>) {
  const config = validateConfig({ tables: [table] }, 'test');
  return shapeTable(selectTables(config)[0], catalog, config);
}

const window = { from: "2024-01-01 00:00:00.000000+00", fromInclusive: false, to: "2024-02-01 00:00:00.000000+00" };

describe('protocol queries', () => {
  it('pages by (cursor, key) after the last key, with quoted identifiers and typed literals', () => {
    const shape = shapeOf({ name: '"Sales Data"."Order Items"', where: "note <> 'x'" });
    expect(pageQuery(shape, window, ['2024-01-05 10:00:00.123456+00', "7"], 500)).toBe(
      `SELECT "Order ""Id""", "line", "note", "updated_at" FROM "Sales Data"."Order Items" WHERE "updated_at" IS NOT NULL AND "updated_at" > '2024-01-01 00:00:00.000000+00'::timestamptz AND "updated_at" <= '2024-02-01 00:00:00.000000+00'::timestamptz AND (note <> 'x') AND ("updated_at", "Order ""Id""") > ('2024-01-05 10:00:00.123456+00'::timestamp with time zone, '7'::integer) ORDER BY "Sales Data"."Order Items"."updated_at", "Sales Data"."Order Items"."Order ""Id""" LIMIT 500`,
    );
  });

  it('a re-run window includes its lower bound; a literal with a quote is escaped', () => {
    const shape = shapeOf({ name: 'public.t' });
    expect(windowPredicates(shape, { from: "2024-01-01 00:00:00+00'; DROP TABLE t; --", fromInclusive: true, to: '2024-02-01 00:00:00+00' })).toEqual([
      '"updated_at" IS NOT NULL',
      `"updated_at" >= '2024-01-01 00:00:00+00''; DROP TABLE t; --'::timestamptz`,
      `"updated_at" <= '2024-02-01 00:00:00+00'::timestamptz`,
    ]);
  });

  it('checks a user-asserted key for duplicates and NULLs, and the table\'s own key for neither', () => {
    const own = shapeOf({ name: 'public.t' });
    expect(own.keyAsserted).toBe(false);
    expect(duplicateKeyQuery(own, window)).toBeNull();
    expect(nullKeyQuery(own, window)).toBeNull();
    const asserted = shapeOf({ name: 'public.t', primaryKey: ['Order "Id"', 'line'] });
    expect(asserted.keyAsserted).toBe(true);
    expect(duplicateKeyQuery(asserted, window)).toBe(
      `SELECT 'Order "Id"=' || coalesce("Order ""Id"""::text, 'NULL') || ', ' || 'line=' || coalesce("line"::text, 'NULL') AS key, count(*)::text AS n FROM "public"."t" WHERE "updated_at" IS NOT NULL AND "updated_at" > '2024-01-01 00:00:00.000000+00'::timestamptz AND "updated_at" <= '2024-02-01 00:00:00.000000+00'::timestamptz GROUP BY "Order ""Id""", "line" HAVING count(*) > 1 ORDER BY count(*) DESC LIMIT 3`,
    );
    expect(nullKeyQuery(asserted, window)?.columns).toEqual(['line']);
  });

  it('data-quality checks name the window and quote the column', () => {
    const shape = shapeOf({ name: 'public.t', checks: { notNull: ['note'], unique: ['note'] } });
    const where = `"updated_at" IS NOT NULL AND "updated_at" > '2024-01-01 00:00:00.000000+00'::timestamptz AND "updated_at" <= '2024-02-01 00:00:00.000000+00'::timestamptz`;
    expect(checkNotNullQuery(shape, window, 'note')).toBe(`SELECT "Order ""Id"""::text AS key FROM "public"."t" WHERE ${where} AND "note" IS NULL LIMIT 5`);
    expect(checkUniqueQuery(shape, window, 'note')).toBe(`SELECT "note"::text AS value, count(*)::text AS n FROM "public"."t" WHERE ${where} GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 5`);
  });
});
