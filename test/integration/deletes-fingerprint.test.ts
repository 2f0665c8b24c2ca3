// The integer key fingerprint, differentially: for the same keys, Postgres (its built-in
// hashint8extended, as the source query runs it over smallint, integer and bigint primary keys),
// DuckDB (the lake SQL, over the same keys in a Parquet file) and the Athena text (run by DuckDB
// with Trino's bitwise functions as macros and integer division) give the same count and sums,
// and each key the same hashes as the TypeScript port of Postgres's C code. Keys at every edge:
// 0, ±1, the smallint, integer, 2^32 and bigint bounds, and seeded random ones of every size.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveTable, validateConfig } from '../../lambdas/core/config.ts';
import { int8HashLakeSql, type KeyLine, type LakeDialect } from '../../lambdas/core/lake/key-hash.ts';
import { lakeKeyAggregateSql, type LakeKeys } from '../../lambdas/core/lake/key-queries.ts';
import { keyAggregateQuery } from '../../lambdas/core/source/queries.ts';
import { shapeTable } from '../../lambdas/core/source/table-shape.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { hashint8extended, int8KeyHashes } from '../unit/hashint8-reference.ts';
import { random } from '../fuzz/random.ts';

let db: TestDatabase;
let lake: TestLake;

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
}, 120_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

const TYPES = [
  { type: 'smallint', typeName: 'int2', bits: 16 },
  { type: 'integer', typeName: 'int4', bits: 32 },
  { type: 'bigint', typeName: 'int8', bits: 64 },
] as const;

/** Distinct keys of a `bits`-bit signed type: its edges and their neighbours, then seeded random ones. */
function keysOf(bits: number, seed: number, n: number): bigint[] {
  const min = -(1n << BigInt(bits - 1));
  const max = (1n << BigInt(bits - 1)) - 1n;
  const out = new Set<bigint>();
  for (const edge of [0n, 1n << 15n, 1n << 31n, 1n << 32n, 1n << 62n, max, min]) {
    for (const d of [-2n, -1n, 0n, 1n, 2n]) for (const v of [edge + d, -edge + d]) if (v >= min && v <= max) out.add(v);
  }
  const next = random(seed);
  while (out.size < n) {
    const size = 1 + Math.floor(next() * (bits - 1));
    let v = 0n;
    for (let b = 0; b < size; b += 16) v = (v << 16n) | BigInt(Math.floor(next() * 65536));
    v &= (1n << BigInt(size)) - 1n;
    out.add(next() < 0.5 ? -v : v);
  }
  return [...out];
}

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

describe('the integer key fingerprint in Postgres, DuckDB and Athena SQL', () => {
  for (const { type, typeName, bits } of TYPES) {
    it(`agrees on ${type} keys at every edge and 2,000 seeded random ones`, async () => {
      const keys = keysOf(bits, bits * 1000 + 7, 2000);
      const table = `keys_${typeName}`;
      await db.query(`CREATE TABLE ${table} (id ${type} PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`);
      await db.query(`INSERT INTO ${table} (id) SELECT unnest($1::${type}[])`, [keys.map(String)]);
      // Per key, Postgres's own function against the port of its C code.
      const pg = await db.query(`SELECT id::text AS k, (h & 4294967295)::text AS h1, ((h >> 32) & 4294967295)::text AS h2 FROM (SELECT id, hashint8extended(id::int8, id::int8 >> 32) AS h FROM ${table}) x`);
      expect(pg.filter((r) => `${r.h1} ${r.h2}` !== int8KeyHashes(BigInt(r.k!)).join(' ')).slice(0, 3)).toEqual([]);

      // The source query the reconciliation sends, over the whole line (one bucket).
      const config = validateConfig({ tables: [{ name: table }] });
      const column = { name: 'id', typeName, typeKind: 'b', elementTypeName: null, elementTypeKind: null, typmod: -1, formatted: type, notNull: true };
      const shape = shapeTable(resolveTable(config.tables[0]), { columns: [column, { ...column, name: 'updated_at', typeName: 'timestamptz', formatted: 'timestamp with time zone' }], primaryKey: ['id'] }, config);
      const lowest = keys.reduce((a, b) => (a < b ? a : b));
      const span = keys.reduce((a, b) => (a > b ? a : b)) - lowest + 1n;
      // Keys spread over more than 2^62 are placed by hash (reconcile.ts): the line of every other key.
      const line: KeyLine = span <= 1n << 62n ? { kind: 'integer', hash: 'int8' } : { kind: 'hash', hash: 'int8' };
      const [width, ranges, offset]: [bigint, [bigint, bigint][], bigint] = line.kind === 'integer' ? [1n << 63n, [[0n, span]], lowest] : [1n << 32n, [[0n, 1n << 32n]], 0n];
      const source = await db.query(keyAggregateQuery(shape, line, offset, width, ranges));
      // An integer key's sums: its 64-bit hashes as Postgres's int8, summed; and 0.
      const expected = keys.map((k) => hashint8extended(k, k >> 32n)).reduce((a, b) => a + b, 0n);
      expect(source).toEqual([{ b: '0', n: String(keys.length), s1: String(expected), s2: '0' }]);

      // The lake side, over the same keys in a Parquet file, in both dialects.
      const file = path.join(lake.dir, `${table}.parquet`);
      for (const dialect of ['duckdb', 'athena'] as const) {
        const connection = await openDuckdb(dialect);
        try {
          await connection.run(`COPY (SELECT CAST(k AS ${type.toUpperCase()}) AS id FROM (VALUES ${keys.map((k) => `('${k}')`).join(', ')}) AS v(k)) TO '${file}' (FORMAT parquet)`);
          await connection.run(`CREATE OR REPLACE VIEW ${table} AS SELECT id, CAST(NULL AS TIMESTAMPTZ) AS updated_at FROM read_parquet('${file}')`);
          const lakeKeys: LakeKeys = { dialect, lakeTable: table, key: ['id'], cursor: 'updated_at', tombstones: false };
          const lakeRows = (await connection.runAndReadAll(lakeKeyAggregateSql(lakeKeys, line, offset, width, ranges))).getRowObjectsJson();
          expect(lakeRows, dialect).toEqual(source);
          if (line.kind === 'integer') {
            // A deep level: more buckets than one LATERAL aggregate each (Postgres groups by position then), and a few.
            for (const narrow of [(span >> 13n) + 1n, (span >> 2n) + 1n]) {
              const byBucket = (r: Record<string, unknown>) => String(r.b);
              const pgBuckets = (await db.query(keyAggregateQuery(shape, line, offset, narrow, ranges))).sort((a, b) => byBucket(a).localeCompare(byBucket(b)));
              const lakeBuckets = (await connection.runAndReadAll(lakeKeyAggregateSql(lakeKeys, line, offset, narrow, ranges))).getRowObjectsJson().sort((a, b) => byBucket(a).localeCompare(byBucket(b)));
              expect(pgBuckets.length, `${dialect}, width ${narrow}`).toBeGreaterThan(1);
              expect(lakeBuckets, `${dialect}, width ${narrow}`).toEqual(pgBuckets);
            }
          }
          // And key by key.
          const hashed = (await connection.runAndReadAll(`SELECT CAST(k0 AS VARCHAR) AS k, CAST(h1 AS VARCHAR) AS h1, CAST(h2 AS VARCHAR) AS h2 FROM (${int8HashLakeSql(dialect, 'CAST(k0 AS BIGINT)', ['k0'], `SELECT id AS k0 FROM ${table}`)})`)).getRowObjectsJson();
          const byKey = new Map(pg.map((r) => [r.k!, `${r.h1} ${r.h2}`]));
          expect(hashed.filter((r) => byKey.get(String(r.k)) !== `${r.h1} ${r.h2}`).slice(0, 3), dialect).toEqual([]);
        } finally {
          connection.closeSync();
        }
      }
    }, 300_000);
  }
});
