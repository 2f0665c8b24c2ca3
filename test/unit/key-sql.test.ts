// Delete detection's SQL: the key fingerprint as DuckDB computes it equals node's md5 on hostile
// strings (Postgres's is held to the same in test/integration/deletes.test.ts); the source and
// lake queries in each dialect, word for word; which keys detection refuses, by name.
import { createHash } from 'node:crypto';
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { resolveTable, validateConfig } from '../../lambdas/core/config.ts';
import { hashSliceSql, keyLineOf, keyLineProblem } from '../../lambdas/core/lake/key-hash.ts';
import { lakeKeyAggregateSql, lakeKeyListSql, lakeKeyWholeSql } from '../../lambdas/core/lake/key-queries.ts';
import { keyAggregateQuery, keyListQuery, tombstoneCursorQuery } from '../../lambdas/core/source/queries.ts';
import { shapeTable } from '../../lambdas/core/source/table-shape.ts';
import type { CatalogColumn } from '../../lambdas/core/source/type-map.ts';
import { quoteLiteral } from '../../lambdas/core/identifiers.ts';

const column = (name: string, typeName: string, formatted = typeName): CatalogColumn => ({
  name, typeName, typeKind: 'b', elementTypeName: null, elementTypeKind: null, typmod: -1, formatted, notNull: true,
});
const catalog = {
  columns: [column('Region', 'text'), column('it"em', 'uuid'), column('qty', 'int4', 'integer'), column('updated_at', 'timestamptz', 'timestamp with time zone')],
  primaryKey: ['Region', 'it"em'],
};
const config = validateConfig({ tables: [{ name: 'public."Line Items"', deletes: { detect: true }, where: "qty > 0" }] }, 'test config');
const shape = shapeTable(resolveTable(config.tables[0]), catalog, config);
const ordersShape = shapeTable(resolveTable(validateConfig({ tables: [{ name: 'orders' }] }).tables[0]), { columns: [column('id', 'int8', 'bigint'), column('updated_at', 'timestamptz')], primaryKey: ['id'] }, config);

describe('the key fingerprint', () => {
  it('is md5 bytes 0–3 and 4–7 as unsigned integers in DuckDB, as node computes them', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      for (const text of ['', 'a', "a'b", 'Zürich', '\u0001', '😀', '1\u00012', 'x'.repeat(1000)]) {
        const digest = createHash('md5').update(text, 'utf8').digest();
        const reader = await connection.runAndReadAll(`SELECT CAST(${hashSliceSql('duckdb', quoteLiteral(text), 0)} AS VARCHAR) AS a, CAST(${hashSliceSql('duckdb', quoteLiteral(text), 1)} AS VARCHAR) AS b`);
        expect(reader.getRowObjectsJson(), JSON.stringify(text)).toEqual([{ a: String(digest.readUInt32BE(0)), b: String(digest.readUInt32BE(4)) }]);
      }
    } finally {
      connection.closeSync();
    }
  });

  it('places a composite key by hash and a single integer key by value, and names a key it cannot compare', () => {
    expect(keyLineOf(shape.keyColumns)).toEqual({ kind: 'hash' });
    expect(keyLineOf([column('id', 'int8', 'bigint')])).toEqual({ kind: 'integer' });
    expect(keyLineProblem('public.t', [column('id', 'int8'), column('code', 'bpchar', 'character(3)')])).toBe(
      'public.t: deletes.detect compares primary keys of type smallint, integer, bigint, text, varchar or uuid; key column "code" is character(3)',
    );
    expect(keyLineProblem('public.t', shape.keyColumns)).toBeNull();
  });
});

describe('the queries', () => {
  const ranges = [[0n, 16n], [32n, 48n]] as const;

  it('asks Postgres for counts and sums by bucket over the whole table, its where applied, md5 once a row', () => {
    expect(keyAggregateQuery(shape, { kind: 'hash' }, 0n, 16n, ranges)).toBe(
      `SELECT (p / 16)::text AS b, count(*)::text AS n, sum(('x' || substr(m, 1, 8))::bit(32)::int8)::text AS s1, sum(('x' || substr(m, 9, 8))::bit(32)::int8)::text AS s2 FROM (`
      + `SELECT ('x' || substr(m, 1, 8))::bit(32)::int8 AS p, * FROM (SELECT md5(replace("Region"::text, chr(1), chr(1) || chr(1)) || chr(1) || chr(2) || replace("it""em"::text, chr(1), chr(1) || chr(1))) AS m FROM "public"."Line Items" WHERE (qty > 0) OFFSET 0) AS "hashed") AS "keys" `
      + `WHERE ((p >= 0 AND p < 16) OR (p >= 32 AND p < 48)) GROUP BY 1`,
    );
    // An integer key: ranges on the key itself (its index), no md5 to list keys.
    expect(keyListQuery(ordersShape, { kind: 'integer' }, -5n, [[0n, 10n]])).toBe(
      `SELECT k0 FROM (SELECT ("id"::int8 - (-5)) AS p, "id"::text AS k0 FROM "public"."orders" WHERE (("id" >= -5 AND "id" < 5)) OFFSET 0) AS "keys"`,
    );
  });

  it('asks the lake\'s current view the same in DuckDB and in Athena (Trino) SQL', () => {
    expect(lakeKeyWholeSql({ lakeTable: 'line_items', key: ['region', 'it"em'], dialect: 'duckdb' }, { kind: 'hash' })).toBe([
      'SELECT CAST(NULL AS VARCHAR) AS lo, CAST(NULL AS VARCHAR) AS hi, CAST(count(*) AS VARCHAR) AS n,',
      `  CAST(sum(CAST('0x' || substr(m, 1, 8) AS BIGINT)) AS VARCHAR) AS s1, CAST(sum(CAST('0x' || substr(m, 9, 8) AS BIGINT)) AS VARCHAR) AS s2`,
      `FROM (SELECT NULL AS k, md5(replace(CAST("region" AS VARCHAR), chr(1), chr(1) || chr(1)) || chr(1) || chr(2) || replace(CAST("it""em" AS VARCHAR), chr(1), chr(1) || chr(1))) AS m FROM "line_items_current") AS "keys"`,
    ].join('\n'));
    expect(lakeKeyAggregateSql({ lakeTable: 'orders', key: ['id'], dialect: 'athena' }, { kind: 'integer' }, 100n, 4096n, [[0n, 4096n]])).toBe([
      'SELECT CAST(p / 4096 AS VARCHAR) AS b, CAST(count(*) AS VARCHAR) AS n,',
      '  CAST(sum(from_base(substr(m, 1, 8), 16)) AS VARCHAR) AS s1, CAST(sum(from_base(substr(m, 9, 8), 16)) AS VARCHAR) AS s2',
      'FROM (SELECT to_hex(md5(to_utf8(CAST("id" AS VARCHAR)))) AS m, (CAST("id" AS BIGINT) - (100)) AS p FROM "orders_current" WHERE ((CAST("id" AS BIGINT) >= 100 AND CAST("id" AS BIGINT) < 4196))) AS "keys"',
      'GROUP BY 1',
    ].join('\n'));
    expect(lakeKeyListSql({ lakeTable: 'line_items', key: ['region', 'it"em'], dialect: 'athena' }, { kind: 'hash' }, 0n, [[0n, 16n]])).toBe(
      'SELECT k0, k1 FROM (SELECT from_base(substr(m, 1, 8), 16) AS p, * FROM (SELECT to_hex(md5(to_utf8(replace(CAST("region" AS VARCHAR), chr(1), chr(1) || chr(1)) || chr(1) || chr(2) || replace(CAST("it""em" AS VARCHAR), chr(1), chr(1) || chr(1))))) AS m, '
      + 'CAST("region" AS VARCHAR) AS k0, CAST("it""em" AS VARCHAR) AS k1 FROM "line_items_current") AS "hashed") AS "keys" WHERE ((p >= 0 AND p < 16))',
    );
    expect(lakeKeyListSql({ lakeTable: 'orders', key: ['id'], dialect: 'duckdb' }, { kind: 'integer' }, 1n, [[0n, 10n], [20n, 30n]])).toBe(
      'SELECT k0 FROM (SELECT (CAST("id" AS BIGINT) - (1)) AS p, CAST("id" AS VARCHAR) AS k0 FROM "orders_current" WHERE ((CAST("id" AS BIGINT) >= 1 AND CAST("id" AS BIGINT) < 11) OR (CAST("id" AS BIGINT) >= 21 AND CAST("id" AS BIGINT) < 31))) AS "keys"',
    );
  });

  it('computes a tombstone\'s cursor from the window end in the cursor\'s own type', () => {
    expect(tombstoneCursorQuery(shape as typeof shape & { cursor: CatalogColumn }, '2024-06-01 12:00:00.000001+00')).toBe(
      "SELECT (extract(epoch FROM '2024-06-01 12:00:00.000001+00'::timestamptz) * 1000000)::int8::text AS v",
    );
  });
});
