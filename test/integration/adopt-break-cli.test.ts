// Breaker (HE): backfill adoption through the pg-lake-export command, as a user runs it: a first
// load split into 3 segments stopped by Ctrl-C (SIGINT) once a segment finished, writers changing
// rows, `run` again (which continues the backfill), then a `run --full` stopped the same way and
// continued by a plain `run`. The lake ends with every version once (checkLake: DuckDB against
// Postgres) and the runs print what they did.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, startCli } from '../support/cli.ts';
import { checkLake } from '../faults/lake-checks.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

let db: TestDatabase;
let lake: TestLake;

beforeAll(async () => {
  db = await createDatabase();
});

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

/** Start `run`, wait until segment 0 of a backfill reports done, then press Ctrl-C. */
async function interruptAfterFirstSegment(args: string[], state: string): Promise<{ code: number; stdout: string }> {
  const run = startCli(args, { DATABASE_URL: db.url });
  const segmentDone = () => {
    const pending = path.join(state, 'pending');
    if (!existsSync(pending)) return false;
    return readdirRuns(pending).some((dir) => {
      const progress = path.join(pending, dir, 's0000.json');
      return existsSync(progress) && (JSON.parse(readFileSync(progress, 'utf8')) as { done: boolean }).done;
    });
  };
  for (let i = 0; !segmentDone(); i++) {
    if (i > 6000) throw new Error(`segment 0 never finished: ${JSON.stringify(run.output())}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  run.child.kill('SIGINT');
  const stopped = await run.done;
  return { code: stopped.code, stdout: stopped.stdout };
}

function readdirRuns(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

describe('the command continues a backfill stopped by Ctrl-C', () => {
  it('first load and a --full re-run, each interrupted after a segment, writers between: every version once', async () => {
    lake = createLake();
    await db.query(`CREATE TABLE bfcli (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
      INSERT INTO bfcli (id, payload, updated_at) SELECT g, 'p' || g, timestamptz '2024-12-25 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 90000) g`);
    const config = path.join(lake.dir, 'bf.yaml');
    writeFileSync(config, 'export: { safetyLagSeconds: 0, pageRows: 2000 }\nlake: { rowGroupRows: 2000 }\ntables:\n  - name: public.bfcli\n    backfill: { segments: 3 }\n');
    const args = ['run', '--config', config, '--lake', lake.url];
    const state = path.join(lake.dir, 'raw/_state/bfcli');

    const first = await interruptAfterFirstSegment(args, state);
    expect(first.code, first.stdout).toBe(130);
    await db.query(`UPDATE bfcli SET payload = 'u1', updated_at = clock_timestamp() WHERE id % 97 = 0;
      DELETE FROM bfcli WHERE id % 1001 = 0;
      INSERT INTO bfcli (id, payload) SELECT g, 'n' || g FROM generate_series(90001, 90100) g`);
    const continued = await cli(args, { DATABASE_URL: db.url });
    expect(continued.code, continued.stderr).toBe(0);
    expect(continued.stderr).toContain('continuing a failed backfill');
    // The run continued is the first load (its window), then one more picks up the writers' rows.
    const caughtUp = await cli(args, { DATABASE_URL: db.url });
    expect(caughtUp.code, caughtUp.stderr).toBe(0);
    await checkLake(db, lake, 'bfcli', 'first load interrupted, continued by run');

    const full = await interruptAfterFirstSegment([...args, '--full'], state);
    expect(full.code, full.stdout).toBe(130);
    await db.query(`UPDATE bfcli SET payload = 'u2', updated_at = clock_timestamp() WHERE id % 89 = 0;
      DELETE FROM bfcli WHERE id % 1003 = 0`);
    const fullContinued = await cli(args, { DATABASE_URL: db.url });
    expect(fullContinued.code, fullContinued.stderr).toBe(0);
    expect(fullContinued.stderr).toContain('continuing a failed backfill');
    expect((await cli(args, { DATABASE_URL: db.url })).code).toBe(0);
    await checkLake(db, lake, 'bfcli', '--full interrupted, continued by run');
  }, 240_000);
});
