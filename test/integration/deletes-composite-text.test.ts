// Found by the breaker: a composite text key's canonical text joined its columns with U+0001
// unescaped, so ('a\u0001b', 'c') and ('a', 'b\u0001c') had the same text, hash and count; a
// delete of one with an insert of the other in the same interval went unseen for a run.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';

let db: TestDatabase;
let lake: TestLake;
const config = testConfig([{ name: 'public.r_sep', deletes: { detect: true } }], { export: { safetyLagSeconds: 0 } });

beforeAll(async () => {
  db = await createDatabase();
  lake = createLake();
  await db.query(`CREATE TABLE r_sep (a text, b text, v text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (a, b));
    INSERT INTO r_sep (a, b, v) VALUES ('a' || chr(1) || 'b', 'c', 'one'), ('x', 'y', 'two')`);
}, 120_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

async function run(): Promise<{ tombstones: number; current: { a: string; b: string; v: string }[] }> {
  const query = await LakeQuery.open(config, lake.store);
  const deps = { ...exportDeps(db, lake.store, config), engine: query.engine() };
  try {
    const outcome = await runExport(deps);
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded' });
    const after = await LakeQuery.open(config, lake.store);
    try {
      const [history] = await after.query(`SELECT count(*) FILTER (WHERE _lake_deleted)::int AS n FROM r_sep`) as { n: number }[];
      return { tombstones: history.n, current: await after.query(`SELECT a, b, v FROM r_sep_current ORDER BY v`) as never };
    } finally {
      after.close();
    }
  } finally {
    await deps.close();
    query.close();
  }
}

it('a composite text key holding U+0001 is told from the key it would spell joined plainly: the delete is found in its own run', async () => {
  expect((await run()).current.map((r) => r.v)).toEqual(['one', 'two']);
  await db.query(`DELETE FROM r_sep WHERE v = 'one'; INSERT INTO r_sep (a, b, v) VALUES ('a', 'b' || chr(1) || 'c', 'three')`);
  const second = await run();
  expect(second.current).toEqual([{ a: 'a', b: `b\u0001c`, v: 'three' }, { a: 'x', b: 'y', v: 'two' }]);
  expect(second.tombstones).toBe(1);
}, 180_000);
