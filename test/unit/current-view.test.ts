import { describe, expect, it } from 'vitest';
import { currentViewClashes, currentViewSql, decodePrestoView, glueViewDefinition, lakeSchema, prestoType } from '../../lambdas/core/lake/current-view.ts';
import { resolveTable, validateConfig } from '../../lambdas/core/config.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { lakeColumns, shapeTable } from '../../lambdas/core/source/table-shape.ts';
import type { CatalogColumn } from '../../lambdas/core/source/type-map.ts';

const orderLines: LakeSchema = {
  columns: [
    { source: 'order_id', name: 'order_id', type: 'bigint' },
    { source: 'line_no', name: 'line_no', type: 'int' },
    { source: 'amount', name: 'amount', type: 'decimal(12,2)' },
    { source: 'tags', name: 'tags', type: 'array<string>' },
    { source: 'deleted', name: 'deleted', type: 'boolean' },
    { source: 'updated_at', name: 'updated_at', type: 'timestamp' },
    { source: '_lake_exported_at', name: '_lake_exported_at', type: 'timestamp' },
    { source: '_lake_run_id', name: '_lake_run_id', type: 'string' },
  ],
  key: ['order_id', 'line_no'],
  cursor: 'updated_at',
  softDelete: 'deleted',
};

const COLS = '"order_id", "line_no", "amount", "tags", "deleted", "updated_at", "_lake_exported_at", "_lake_run_id"';

describe('current-state view SQL', () => {
  it('keeps the newest version per composite key, then drops soft-deleted keys (DuckDB)', () => {
    expect(currentViewSql('duckdb', { lakeTable: 'order_lines', schema: orderLines })).toBe([
      `SELECT ${COLS}`,
      'FROM (',
      `  SELECT ${COLS}, row_number() OVER (PARTITION BY "order_id", "line_no" ORDER BY "updated_at" DESC, "_lake_exported_at" DESC) AS "_lake_rank"`,
      '  FROM "order_lines"',
      ') AS "versions"',
      'WHERE "_lake_rank" = 1 AND "deleted" IS DISTINCT FROM true',
    ].join('\n'));
  });

  it('names the table with its Glue database for Athena, and needs one', () => {
    const sql = currentViewSql('athena', { lakeTable: 'order_lines', schema: orderLines, database: 'lake' });
    expect(sql).toContain('\n  FROM "lake"."order_lines"\n');
    expect(() => currentViewSql('athena', { lakeTable: 'order_lines', schema: orderLines })).toThrow('order_lines: the Athena view needs the Glue database name');
  });

  it('has no soft-delete filter without a soft-delete column', () => {
    const { softDelete: _, ...kept } = orderLines;
    expect(currentViewSql('duckdb', { lakeTable: 'order_lines', schema: kept }).split('\n').at(-1)).toBe('WHERE "_lake_rank" = 1');
  });

  it('quotes hostile identifiers and keeps the rank column clear of real ones', () => {
    const schema: LakeSchema = {
      columns: [
        { source: 'Order "Id"', name: 'order "id"', type: 'int' },
        { source: 'select', name: 'select', type: 'string' },
        { source: "it's gone", name: "it's gone", type: 'boolean' },
        { source: '_lake_rank', name: '_lake_rank', type: 'int' },
        { source: 'updated_at', name: 'updated_at', type: 'timestamp' },
        { source: '_lake_exported_at', name: '_lake_exported_at', type: 'timestamp' },
      ],
      key: ['order "id"', 'select'],
      cursor: 'updated_at',
      softDelete: "it's gone",
    };
    const sql = currentViewSql('athena', { lakeTable: 'items', schema, database: 'lake' });
    expect(sql).toContain('PARTITION BY "order ""id""", "select" ORDER BY "updated_at" DESC');
    expect(sql).toContain('AS "__lake_rank"');
    expect(sql).toContain(`WHERE "__lake_rank" = 1 AND "it's gone" IS DISTINCT FROM true`);
    expect(sql.split('\n')[0]).toBe(`SELECT "order ""id""", "select", "it's gone", "_lake_rank", "updated_at", "_lake_exported_at"`);
  });

  it('refuses a key or cursor that is not a column', () => {
    expect(() => currentViewSql('duckdb', { lakeTable: 't', schema: { ...orderLines, key: ['nope'] } })).toThrow('t: view column "nope" is not among the table\'s columns');
    expect(() => currentViewSql('duckdb', { lakeTable: 't', schema: { ...orderLines, key: [] } })).toThrow('t: a current-state view needs a primary key');
  });
});

describe('Glue view definition (Presto view encoding)', () => {
  it.each([
    ['smallint', 'smallint'], ['int', 'integer'], ['bigint', 'bigint'], ['float', 'real'], ['double', 'double'],
    ['boolean', 'boolean'], ['string', 'varchar'], ['binary', 'varbinary'], ['date', 'date'], ['timestamp', 'timestamp(3)'],
    ['decimal(38,9)', 'decimal(38,9)'], ['array<string>', 'array(varchar)'], ['array<decimal(5,1)>', 'array(decimal(5,1))'],
  ])('maps Hive %s to Presto %s', (hive, presto) => {
    expect(prestoType(hive)).toBe(presto);
  });

  it('refuses a type it cannot name', () => {
    expect(() => prestoType('map<string,int>')).toThrow('Glue type "map<string,int>" has no Presto view type');
  });

  it('is a VIRTUAL_VIEW whose original text decodes to the SQL, catalog, schema and Presto columns', () => {
    const view = glueViewDefinition('order_lines', 'public.order_lines', 'lake', orderLines);
    expect(view).toMatchObject({
      Name: 'order_lines_current',
      TableType: 'VIRTUAL_VIEW',
      Parameters: { presto_view: 'true', comment: 'Presto View' },
      PartitionKeys: [],
      ViewExpandedText: '/* Presto View */',
      StorageDescriptor: { SerdeInfo: {} },
    });
    expect(view.ViewOriginalText).toMatch(/^\/\* Presto View: [A-Za-z0-9+/]+=*\s\*\/$/);
    expect(view.StorageDescriptor.Columns).toEqual(orderLines.columns.map((c) => ({ Name: c.name, Type: c.type })));
    const decoded = decodePrestoView(view.ViewOriginalText);
    expect(decoded).toEqual({
      originalSql: currentViewSql('athena', { lakeTable: 'order_lines', schema: orderLines, database: 'lake' }),
      catalog: 'awsdatacatalog',
      schema: 'lake',
      columns: [
        { name: 'order_id', type: 'bigint' },
        { name: 'line_no', type: 'integer' },
        { name: 'amount', type: 'decimal(12,2)' },
        { name: 'tags', type: 'array(varchar)' },
        { name: 'deleted', type: 'boolean' },
        { name: 'updated_at', type: 'timestamp(3)' },
        { name: '_lake_exported_at', type: 'timestamp(3)' },
        { name: '_lake_run_id', type: 'varchar' },
      ],
    });
  });

  it('reports a lake table named as another table\'s view', () => {
    expect(currentViewClashes(['orders', 'orders_current', 'lines'])).toEqual([
      { table: 'orders', view: 'orders_current', message: 'lake table "orders_current" has the name of the current-state view of lake table "orders"; set tables[].lakeName on one of them' },
    ]);
  });
});

describe('schema.json for the view', () => {
  const testConfig = (tables: unknown[]) => validateConfig({ tables }, 'test config');
  const column = (name: string, typeName: string, formatted = typeName): CatalogColumn => ({
    name, typeName, typeKind: 'b', elementTypeName: null, elementTypeKind: null, typmod: -1, formatted, notNull: false,
  });
  const catalog = {
    columns: [column('Order Id', 'int4', 'integer'), column('Line', 'int4', 'integer'), column('Gone', 'bool', 'boolean'), column('Note', 'text'), column('updated_at', 'timestamptz', 'timestamp with time zone')],
    primaryKey: ['Order Id', 'Line'],
  };

  it('records key, cursor and soft-delete column by their engine (lower-case) names', () => {
    const config = testConfig([{ name: 'lines', softDeleteColumn: 'Gone' }]);
    const shape = shapeTable(resolveTable(config.tables[0]), catalog, config);
    const columns = lakeColumns(shape);
    expect(lakeSchema(shape, columns)).toEqual({ columns, key: ['order id', 'line'], cursor: 'updated_at', softDelete: 'gone' });
  });

  it('leaves softDelete out when none is configured', () => {
    const config = testConfig([{ name: 'lines' }]);
    const shape = shapeTable(resolveTable(config.tables[0]), catalog, config);
    expect(lakeSchema(shape, lakeColumns(shape))).not.toHaveProperty('softDelete');
  });

  it.each([
    [{ softDeleteColumn: 'Note' }, 'public.lines: softDeleteColumn "Note" is text; it must be boolean'],
    [{ softDeleteColumn: 'missing' }, 'public.lines: softDeleteColumn column "missing" does not exist (columns: Order Id, Line, Gone, Note, updated_at)'],
    [{ softDeleteColumn: 'Gone', columns: { exclude: ['Gone'] } }, 'public.lines: columns.exclude names "Gone", which softDeleteColumn needs'],
  ])('refuses softDeleteColumn %j', (extra, message) => {
    const config = testConfig([{ name: 'lines', ...extra }]);
    expect(() => shapeTable(resolveTable(config.tables[0]), catalog, config)).toThrow(message);
  });
});
