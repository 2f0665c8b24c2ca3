// One page whose rows fall into thousands of partitions (partitionBy a business date, not the
// cursor): the streaming writer must not open a Parquet writer per partition at once. Found by
// the fuzzer (seed 20261153): 24 columns over ~1,000 days in one page trapped in wasm
// ("RuntimeError: unreachable") and the poisoned encoder failed the next run too.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { createDatabase, createLake, duckdb, exportDeps, parquetGlob, stopPostgres, testConfig, type TestDatabase } from '../support/local-stack.ts';

let db: TestDatabase;
beforeAll(async () => { db = await createDatabase(); });
afterAll(async () => {
  await db?.close();
  await stopPostgres();
});

const COLUMNS = 24;
const DAYS = 4000;

it('a page over 4,000 partition days and 24 columns exports every row once, one file per day, and the encoder serves the next table', async () => {
  const extra = Array.from({ length: COLUMNS - 3 }, (_, i) => (i % 3 === 0 ? `c${i} bigint` : i % 3 === 1 ? `c${i} text` : `c${i} timestamptz`));
  const values = Array.from({ length: COLUMNS - 3 }, (_, i) => (i % 3 === 0 ? `g * ${i + 1}` : i % 3 === 1 ? `'v' || g || '-${i}'` : `timestamptz '2020-01-01' + g * interval '${i} minutes'`));
  await db.query(`CREATE TABLE spread (id int PRIMARY KEY, booked date NOT NULL, updated_at timestamptz NOT NULL, ${extra.join(', ')});
    INSERT INTO spread SELECT g, date '1990-01-01' + g, timestamptz '2024-06-01', ${values.join(', ')} FROM generate_series(1, ${DAYS}) g;
    CREATE TABLE after_spread (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-06-01');
    INSERT INTO after_spread SELECT g FROM generate_series(1, 10) g`);
  const lake = createLake();
  const deps = exportDeps(db, lake.store, testConfig([{ name: 'spread', partitionBy: 'booked' }, { name: 'after_spread' }]));
  try {
    const outcome = await runExport(deps);
    expect(outcome.tables.map((t) => [t.table, t.status, t.rows])).toEqual([['spread', 'succeeded', DAYS], ['after_spread', 'succeeded', 10]]);
  } finally {
    await deps.close();
  }
  const [stats] = await duckdb<{ n: string; ids: string; files: string; mismatched: string }>(`SELECT count(*) AS n, count(DISTINCT id) AS ids, count(DISTINCT filename) AS files,
      count(*) FILTER (WHERE c1 <> 'v' || id || '-1' OR c0 <> id OR booked <> DATE '1990-01-01' + id::int) AS mismatched
    FROM read_parquet(${parquetGlob(lake, 'spread')}, filename = true)`);
  expect(stats).toEqual({ n: String(DAYS), ids: String(DAYS), files: String(DAYS), mismatched: '0' });
  lake.remove();
}, 300_000);
