// Delete detection's SQL: the key fingerprint as DuckDB computes it, and as the Athena (Trino)
// text computes it when DuckDB runs it with Trino's functions defined, equals an independent
// implementation (node's md5; Postgres's hashint8extended ported from its C source, itself held
// to Postgres in test/integration/deletes-fingerprint.test.ts) on edge and seeded random keys;
// the lake's live keys equal `<table>_current`'s over random version histories; the source
// queries' shapes; which keys detection refuses, by name.
import { createHash } from 'node:crypto';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { resolveTable, validateConfig } from '../../lambdas/core/config.ts';
import { currentViewSql } from '../../lambdas/core/lake/current-view.ts';
import { lineWidth } from '../../lambdas/core/lake/key-bisect.ts';
import { hashSliceSql, int8HashLakeSql, keyLineOf, keyLineProblem, lakeRangesSql, type KeyLine, type LakeDialect } from '../../lambdas/core/lake/key-hash.ts';
import { lakeKeyAggregateSql, lakeKeyListSql, lakeKeySpanSql, lakeKeysOf, type LakeKeys } from '../../lambdas/core/lake/key-queries.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { keyAggregateQuery, keyBuckets, keyListQuery, tombstoneCursorQuery } from '../../lambdas/core/source/queries.ts';
import { shapeTable } from '../../lambdas/core/source/table-shape.ts';
import type { CatalogColumn } from '../../lambdas/core/source/type-map.ts';
import { quoteLiteral } from '../../lambdas/core/identifiers.ts';
import { hashint8extended, int8KeyHashes } from './hashint8-reference.ts';
import { random } from '../fuzz/random.ts';

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
const INTEGER: KeyLine = { kind: 'integer', hash: 'int8' };
const MD5: KeyLine = { kind: 'hash', hash: 'md5' };

/**
 * DuckDB, speaking Trino for the Athena dialect: Trino's bitwise functions as macros over
 * DuckDB's operators, and `/` on integers as integer division, as Trino's is.
 */
async function openDuckdb(dialect: LakeDialect): Promise<DuckDBConnection> {
  const connection = await (await DuckDBInstance.create(':memory:')).connect();
  if (dialect === 'athena') {
    for (const sql of [
      'SET integer_division = true',
      'CREATE MACRO bitwise_and(a, b) AS a & b',
      'CREATE MACRO bitwise_or(a, b) AS a | b',
      'CREATE MACRO bitwise_xor(a, b) AS xor(a, b)',
    ]) await connection.run(sql);
  }
  return connection;
}

async function rows(connection: DuckDBConnection, sql: string): Promise<Record<string, string>[]> {
  return (await connection.runAndReadAll(sql)).getRowObjectsJson() as Record<string, string>[];
}

/** Keys at every edge the arithmetic has: 0, ±1, smallint, integer, 2^32 and bigint bounds, and their neighbours. */
function edgeKeys(): bigint[] {
  const out = new Set<bigint>();
  for (const edge of [0n, 1n << 15n, 1n << 31n, 1n << 32n, 1n << 33n, 1n << 62n, 1n << 63n]) {
    for (const d of [-2n, -1n, 0n, 1n, 2n]) for (const sign of [1n, -1n]) out.add(sign * edge + d);
  }
  return [...out].filter((k) => k >= -(1n << 63n) && k < 1n << 63n);
}

/** Seeded random bigints of every magnitude (1 to 64 bits), both signs. */
function randomKeys(seed: number, n: number): bigint[] {
  const next = random(seed);
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const bits = 1 + Math.floor(next() * 63);
    let v = 0n;
    for (let b = 0; b < bits; b += 16) v = (v << 16n) | BigInt(Math.floor(next() * 65536));
    v &= (1n << BigInt(bits)) - 1n;
    out.push(next() < 0.5 ? -v - (bits === 63 && next() < 0.1 ? 1n : 0n) : v);
  }
  return out;
}

describe('the key fingerprint', () => {
  it('is md5 bytes 0–3 and 4–7 as unsigned integers in DuckDB, as node computes them', async () => {
    const connection = await openDuckdb('duckdb');
    try {
      for (const text of ['', 'a', "a'b", 'Zürich', '\u0001', '😀', '1\u00012', 'x'.repeat(1000)]) {
        const digest = createHash('md5').update(text, 'utf8').digest();
        expect(await rows(connection, `SELECT CAST(${hashSliceSql('duckdb', quoteLiteral(text), 0)} AS VARCHAR) AS a, CAST(${hashSliceSql('duckdb', quoteLiteral(text), 1)} AS VARCHAR) AS b`), JSON.stringify(text))
          .toEqual([{ a: String(digest.readUInt32BE(0)), b: String(digest.readUInt32BE(4)) }]);
      }
    } finally {
      connection.closeSync();
    }
  });

  for (const dialect of ['duckdb', 'athena'] as const) {
    it(`is Postgres's hashint8extended(k, k >> 32) of an integer key in the ${dialect} SQL, on edge keys and 3,000 seeded random ones`, async () => {
      const connection = await openDuckdb(dialect);
      try {
        const keys = [...new Set([...edgeKeys(), ...randomKeys(20261130, 3000)])];
        await connection.run(`CREATE TABLE k AS SELECT CAST(k AS BIGINT) AS k0 FROM (VALUES ${keys.map((k) => `('${k}')`).join(', ')}) AS v(k)`);
        const check = async (sql: string, subset: readonly bigint[], label: string) => {
          const got = new Map((await rows(connection, `SELECT CAST(k0 AS VARCHAR) AS k, CAST(h1 AS VARCHAR) AS h1, CAST(h2 AS VARCHAR) AS h2 FROM (${sql})`)).map((r) => [r.k, `${r.h1} ${r.h2}`]));
          expect(got.size, label).toBe(subset.length);
          const wrong = subset.filter((k) => got.get(k.toString()) !== int8KeyHashes(k).join(' ')).slice(0, 3).map((k) => `${k}: ${got.get(k.toString())} ≠ ${int8KeyHashes(k).join(' ')}`);
          expect(wrong, label).toEqual([]);
        };
        await check(int8HashLakeSql(dialect, 'k0', ['k0'], 'SELECT k0 FROM k'), keys, 'every key');
        // The shortcut for keys known to lie in [0, 2^32) gives the same hashes there.
        const small = keys.filter((k) => k >= 0n && k < 1n << 32n);
        await check(int8HashLakeSql(dialect, 'k0', ['k0'], `SELECT k0 FROM k WHERE k0 >= 0 AND k0 < ${1n << 32n}`, { unsigned32: true }), small, 'keys in [0, 2^32)');
      } finally {
        connection.closeSync();
      }
    });
  }

  it('tells the Prouhet–Tarry–Escott sets {1, 5, 6} and {2, 3, 7} apart, which share count, sum and sum of squares', () => {
    const sums = (keys: bigint[]) => keys.map(int8KeyHashes).reduce(([a, b], [x, y]) => [a + x, b + y], [0n, 0n]).join(' ');
    expect([1n, 5n, 6n].reduce((a, b) => a + b * b, 0n)).toBe([2n, 3n, 7n].reduce((a, b) => a + b * b, 0n));
    expect(sums([1n, 5n, 6n])).not.toBe(sums([2n, 3n, 7n]));
  });

  it('places a composite key by hash and a single integer key by value, and names a key it cannot compare', () => {
    expect(keyLineOf(shape.keyColumns)).toEqual(MD5);
    expect(keyLineOf([column('id', 'int8', 'bigint')])).toEqual(INTEGER);
    expect(keyLineOf([column('id', 'int2', 'smallint')])).toEqual(INTEGER);
    expect(keyLineProblem('public.t', [column('id', 'int8'), column('code', 'bpchar', 'character(3)')])).toBe(
      'public.t: deletes.detect compares primary keys of type smallint, integer, bigint, text, varchar or uuid; key column "code" is character(3)',
    );
    expect(keyLineProblem('public.t', shape.keyColumns)).toBeNull();
  });
});

const lakeSchema = (softDelete: boolean): LakeSchema => ({
  columns: [
    { source: 'id', name: 'id', type: 'bigint' },
    { source: 'updated_at', name: 'updated_at', type: 'timestamp' },
    { source: '_lake_exported_at', name: '_lake_exported_at', type: 'timestamp' },
    { source: '_lake_deleted', name: '_lake_deleted', type: 'boolean' },
    { source: 'gone', name: 'gone', type: 'boolean' },
  ],
  key: ['id'],
  cursor: 'updated_at',
  ...(softDelete ? { softDelete: 'gone' } : {}),
});

/**
 * One random version history as a lake holds it: keys (dense, sparse or negative), each with
 * one to four versions whose cursors and export times often tie, some tombstones (NULL, false
 * or true), some soft deletes, some keys inserted again after their tombstone.
 */
function randomHistory(seed: number): string {
  const next = random(seed);
  const int = (n: number) => Math.floor(next() * n);
  const base = [0, 1, -500, 2 ** 33, -(2 ** 40)][int(5)];
  const stride = [1, 1, 2, 7, 1000][int(5)];
  // Some histories have no tombstone nor soft delete at all.
  const none = next() < 0.2;
  const flag = () => (none ? ['NULL', 'false'][int(2)] : ['NULL', 'false', 'true'][next() < 0.7 ? int(2) : 2]);
  const values: string[] = [];
  for (let i = 0, n = int(120); i < n; i++) {
    const key = base + i * stride;
    for (let v = 0, versions = 1 + int(4); v < versions; v++) {
      const day = 1 + int(3);
      const exported = 1 + int(2);
      values.push(`(${key}, TIMESTAMPTZ '2024-01-0${day} 00:00:00+00', TIMESTAMPTZ '2024-01-0${day} 0${exported}:00:00+00', ${next() < 0.25 && !none ? 'true' : flag()}, ${next() < 0.1 && !none ? 'true' : flag()})`);
    }
  }
  if (values.length === 0) return 'CREATE OR REPLACE TABLE t (id BIGINT, updated_at TIMESTAMPTZ, _lake_exported_at TIMESTAMPTZ, _lake_deleted BOOLEAN, gone BOOLEAN)';
  return `CREATE OR REPLACE TABLE t AS SELECT * FROM (VALUES ${values.join(', ')}) AS v(id, updated_at, _lake_exported_at, _lake_deleted, gone)`;
}

describe('the live keys', () => {
  for (const dialect of ['duckdb', 'athena'] as const) {
    it(`are <table>_current's keys, counted and hashed alike, over 100 random version histories (${dialect} SQL)`, async () => {
      const connection = await openDuckdb(dialect);
      try {
        for (let seed = 1; seed <= 100; seed++) {
          await connection.run(randomHistory(seed));
          const schema = lakeSchema(seed % 3 === 0);
          await connection.run(`CREATE OR REPLACE VIEW t_current AS ${currentViewSql('duckdb', { lakeTable: 't', schema })}`);
          const current = (await rows(connection, 'SELECT CAST(id AS VARCHAR) AS id FROM t_current ORDER BY id')).map((r) => r.id).sort();
          const keys: LakeKeys = lakeKeysOf(dialect, 't', schema);
          const [span] = await rows(connection, lakeKeySpanSql(keys));
          if (span.lo === null) {
            expect(current, `seed ${seed}`).toEqual([]);
            continue;
          }
          const lowest = BigInt(span.lo);
          const width = lineWidth(BigInt(span.hi) - lowest + 1n, 16);
          const whole: [bigint, bigint][] = [[0n, BigInt(span.hi) - lowest + 1n]];
          const listed = (await rows(connection, lakeKeyListSql(keys, INTEGER, lowest, whole))).map((r) => r.k0).sort();
          expect(listed, `seed ${seed}`).toEqual(current);
          // The aggregate over the whole line: count and sums of the reference hashes of the view's keys.
          // An integer key's sums: its 64-bit hashes as Postgres's int8, summed; and 0.
          const expected = current.map((k) => hashint8extended(BigInt(k), BigInt(k) >> 32n)).reduce((a, b) => a + b, 0n);
          const want = current.length === 0 ? [] : [{ b: '0', n: String(current.length), s1: String(expected), s2: '0' }];
          for (const denseKeys of [false, true]) {
            expect(await rows(connection, lakeKeyAggregateSql(keys, INTEGER, lowest, width, whole, { denseKeys })), `seed ${seed}, dense ${denseKeys}`).toEqual(want);
          }
          // The span counts the dead versions; with none, nothing needs ranking.
          const [{ d }] = await rows(connection, `SELECT CAST(count(*) AS VARCHAR) AS d FROM t WHERE _lake_deleted${schema.softDelete ? ' OR gone' : ''}`);
          expect(span.d, `seed ${seed}`).toBe(d);
          if (d === '0') expect(await rows(connection, lakeKeyAggregateSql({ ...keys, noneDead: true }, INTEGER, lowest, width, whole)), `seed ${seed}`).toEqual(want);
          if (dialect === 'duckdb') {
            // By md5 of the text (the line of other keys), the same keys.
            const md5 = (await rows(connection, lakeKeyAggregateSql(keys, MD5, 0n, 1n << 32n, [[0n, 1n << 32n]]))).map((r) => r.n);
            expect(md5, `seed ${seed}`).toEqual(current.length === 0 ? [] : [String(current.length)]);
          }
        }
      } finally {
        connection.closeSync();
      }
    });
  }

  it('groups dense keys into buckets of a narrower width, keys below the lowest left out', async () => {
    const connection = await openDuckdb('duckdb');
    try {
      await connection.run(randomHistory(7));
      const keys = lakeKeysOf('duckdb', 't', lakeSchema(false));
      const plain = await rows(connection, `${lakeKeyAggregateSql(keys, INTEGER, 3n, 16n, [[16n, 48n], [64n, 70n]])} ORDER BY 1`);
      expect(plain.length).toBeGreaterThan(1);
      expect(await rows(connection, `${lakeKeyAggregateSql(keys, INTEGER, 3n, 16n, [[16n, 48n], [64n, 70n]], { denseKeys: true })} ORDER BY 1`)).toEqual(plain);
    } finally {
      connection.closeSync();
    }
  });
});

describe('position ranges in lake SQL', () => {
  for (const dialect of ['duckdb', 'athena'] as const) {
    it(`hold the same values as aligned blocks as compared one by one, over 100 random range sets (${dialect} SQL)`, async () => {
      const connection = await openDuckdb(dialect);
      try {
        for (let seed = 1; seed <= 100; seed++) {
          const next = random(seed);
          const offset = BigInt(Math.floor(next() * 2000) - 1000) * (seed % 5 === 0 ? 1n << 40n : 1n);
          // Disjoint ranges, sorted, of every width, past 2^32 in some sets.
          const ranges: [bigint, bigint][] = [];
          let at = BigInt(Math.floor(next() * 50)) << BigInt(seed % 4 === 0 ? 30 : 0);
          for (let i = 0, n = 1 + Math.floor(next() * 60); i < n; i++) {
            const start = at + BigInt(Math.floor(next() * 40));
            const end = start + 1n + BigInt(Math.floor(next() * (next() < 0.2 ? 5000 : 40)));
            ranges.push([start, end]);
            at = end;
          }
          const values = Array.from({ length: 400 }, () => offset + BigInt(Math.floor(next() * Number(at + 10n))) - 5n);
          const inside = (v: bigint) => ranges.some(([a, b]) => v - offset >= a && v - offset < b);
          const sql = `SELECT CAST(v AS VARCHAR) AS v FROM (VALUES ${values.map((v) => `(CAST('${v}' AS BIGINT))`).join(', ')}) AS t(v) WHERE ${lakeRangesSql(dialect, 'v', offset, ranges)}`;
          const got = (await rows(connection, sql)).map((r) => r.v).sort();
          expect(got, `seed ${seed}: ${ranges.length} ranges`).toEqual(values.filter(inside).map(String).sort());
        }
      } finally {
        connection.closeSync();
      }
    });
  }
});

describe('the queries', () => {
  const ranges = [[0n, 16n], [32n, 48n]] as const;

  it('asks Postgres for md5 counts and sums by bucket over the whole table, its where applied, md5 once a row', () => {
    expect(keyAggregateQuery(shape, MD5, 0n, 16n, ranges)).toBe(
      `SELECT (p / 16)::text AS b, count(*)::text AS n, (sum(('x' || substr(h, 1, 8))::bit(32)::int8))::text AS s1, (sum(('x' || substr(h, 9, 8))::bit(32)::int8))::text AS s2 FROM (`
      + `SELECT ('x' || substr(h, 1, 8))::bit(32)::int8 AS p, * FROM (SELECT md5(replace("Region"::text, chr(1), chr(1) || chr(1)) || chr(1) || chr(2) || replace("it""em"::text, chr(1), chr(1) || chr(1))) AS h FROM "public"."Line Items" WHERE (qty > 0) OFFSET 0) AS "hashed" `
      + `WHERE ((('x' || substr(h, 1, 8))::bit(32)::int8 >= 0 AND ('x' || substr(h, 1, 8))::bit(32)::int8 < 16) OR (('x' || substr(h, 1, 8))::bit(32)::int8 >= 32 AND ('x' || substr(h, 1, 8))::bit(32)::int8 < 48))) AS "keys" GROUP BY p / 16`,
    );
  });

  it('asks Postgres for an integer key\'s buckets one index range each, hashed by hashint8extended', () => {
    expect(keyAggregateQuery(ordersShape, INTEGER, -5n, 16n, [[0n, 20n]])).toBe(
      'SELECT "r"."b"::text AS b, sum("a"."n")::text AS n, sum("a"."s1")::text AS s1, sum("a"."s2")::text AS s2 FROM (SELECT * FROM (VALUES (0::int8, -5::int8, 11::int8), (1::int8, 11::int8, 15::int8)) AS "v" ("b", "lo", "hi") OFFSET 0) AS "r" '
      + 'CROSS JOIN LATERAL (SELECT count(*) AS n, sum(h) AS s1, 0 AS s2 FROM (SELECT hashint8extended("id"::int8, "id"::int8 >> 32) AS h FROM "public"."orders" WHERE "id" >= "r"."lo" AND "id" < "r"."hi" OFFSET 0) AS "keys") AS "a" GROUP BY "r"."b" HAVING sum("a"."n") > 0',
    );
    // Too many buckets for one LATERAL each: grouped by position instead.
    expect(keyAggregateQuery(ordersShape, INTEGER, 0n, 1n, [[0n, 5000n]])).toMatch(/^SELECT \(p \/ 1\)::text AS b, .* GROUP BY p \/ 1$/);
    expect(keyBuckets(16n, [[5n, 40n]])).toEqual([[0n, 5n, 16n], [1n, 16n, 32n], [2n, 32n, 40n]]);
    // An integer key: ranges on the key itself (its index), no hash to list keys.
    expect(keyListQuery(ordersShape, INTEGER, -5n, [[0n, 10n]])).toBe(
      `SELECT "id"::text AS k0 FROM "public"."orders" WHERE (("id" >= -5 AND "id" < 5))`,
    );
  });

  it('asks the lake for an integer key\'s span, and lists its keys without hashing them', () => {
    const keys = lakeKeysOf('athena', 'orders', lakeSchema(false));
    expect(lakeKeySpanSql(keys)).toBe('SELECT CAST(min(CAST("id" AS BIGINT)) AS VARCHAR) AS lo, CAST(max(CAST("id" AS BIGINT)) AS VARCHAR) AS hi, CAST(count(*) AS VARCHAR) AS n, '
      + 'CAST(count(*) FILTER (WHERE ("_lake_deleted" IS TRUE)) AS VARCHAR) AS d FROM "orders"');
    const list = lakeKeyListSql(keys, INTEGER, 1n, [[0n, 10n]]);
    expect(list).toContain('WHERE ((CAST("id" AS BIGINT) >= 1 AND CAST("id" AS BIGINT) < 11))');
    expect(list).not.toMatch(/md5|bitwise_xor/);
    // Trino's functions only in the Athena text (the bitwise ones of https://trino.io/docs/current/functions/bitwise.html), DuckDB's in DuckDB's.
    const athena = lakeKeyAggregateSql(keys, INTEGER, 1n, 16n, [[0n, 16n]], { denseKeys: true });
    expect(athena).toMatch(/bitwise_xor\(.*bitwise_and\(/s);
    expect(athena).not.toMatch(/ \/\/ | >> | << |\bxor\(|bit_or\(|bitwise_[a-z_]*shift|_agg\(/);
    const duckdb = lakeKeyAggregateSql(lakeKeysOf('duckdb', 'orders', lakeSchema(false)), INTEGER, 1n, 16n, [[0n, 16n]], { denseKeys: true });
    expect(duckdb).not.toMatch(/bitwise_/);
  });

  it('computes a tombstone\'s cursor from the window end in the cursor\'s own type', () => {
    expect(tombstoneCursorQuery(shape as typeof shape & { cursor: CatalogColumn }, '2024-06-01 12:00:00.000001+00')).toBe(
      "SELECT (extract(epoch FROM '2024-06-01 12:00:00.000001+00'::timestamptz) * 1000000)::int8::text AS v",
    );
  });
});
