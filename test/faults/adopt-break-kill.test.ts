// Breaker (HE): backfill adoption under repeated SIGKILLs at random store mutations. Each seed
// runs a sequence of executions of one table (a 3-segment backfill; later scheduled runs and
// {"full": true} re-runs, which are backfills too), each killed at its nth put/move/delete/upload
// (before or after it), with writers updating, inserting and deleting rows in between. A killed
// execution's lease lapses (time passes); an execution that fails is tidied as Summarize does.
// Then runs without faults until the table is committed and incremental, and the lake is checked
// against Postgres by DuckDB: every version once, nothing lost, nothing pending.
//   ADOPT_BREAK_SEEDS=1,2,3 ADOPT_BREAK_STEPS=10 to choose; ADOPT_BREAK_MOVES=0.4 kills that share
//   of the executions at their nth publish move instead (a commit's publishing is a small part of
//   all mutations, so random kills seldom land in it); ADOPT_BREAK_BACKFILL='{"segments":4,"concurrency":2}'
//   sets the table's backfill (lanes, by: ctid…).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../lambdas/core/config.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { checkLake } from './lake-checks.ts';
import { createLake, exportDeps, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { random } from '../fuzz/random.ts';

const run = promisify(execFile);
const CHILD = path.join(import.meta.dirname, 'adopt-break-kill-child.ts');
const SEEDS = (process.env.ADOPT_BREAK_SEEDS ?? '11,12,13').split(',').map(Number);
const STEPS = Number(process.env.ADOPT_BREAK_STEPS ?? 8);
const MOVES = Number(process.env.ADOPT_BREAK_MOVES ?? 0);
const BACKFILL = JSON.parse(process.env.ADOPT_BREAK_BACKFILL ?? '{"segments":3}') as object;
const db = fileDatabase();

type Outcome = { kind: 'killed' } | { kind: 'failed'; error: string } | { kind: 'done'; out: Record<string, unknown> };

async function execution(lake: TestLake, raw: object, runId: string, request: object, killAt: number, after: boolean, moves = false): Promise<Outcome> {
  const file = path.join(lake.dir, `job-${runId}.json`);
  writeFileSync(file, JSON.stringify({ databaseUrl: db.url, lakeUrl: lake.url, config: raw, runId, request, killAt, after, moves }));
  try {
    const { stdout } = await run(process.execPath, [CHILD, file], { timeout: 120_000 });
    return { kind: 'done', out: JSON.parse(stdout.trim()) as Record<string, unknown> };
  } catch (error) {
    if ((error as { signal?: string }).signal === 'SIGKILL') return { kind: 'killed' };
    const stderr = String((error as { stderr?: string }).stderr ?? error);
    return { kind: 'failed', error: stderr.split('\n').find((l) => /^\w*Error\b/.test(l)) ?? stderr.slice(0, 400) };
  }
}

describe('backfill adoption under SIGKILL at random store mutations', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: every version once after ${STEPS} killed or failed executions and writers`, async () => {
      const rand = random(seed);
      const table = `adopt_break_kill_${seed}`;
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
        INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-12-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 3000) g`);
      const lake = createLake();
      const raw = { export: { pageRows: 200, safetyLagSeconds: 0 }, lake: { rowGroupRows: 200 }, tables: [{ name: table, backfill: BACKFILL }] };
      const config = validateConfig(raw, 'fault config');
      const state = new TableState(lake.store, 'raw', table);
      const deps = exportDeps(db, lake.store, config);
      const log: string[] = [];
      let nextId = 3001;
      let step = 0;
      const runId = () => `20260301T${String(step).padStart(6, '0')}Z-${seed.toString(16).padStart(8, '0')}`;
      const lapse = async () => {
        const lease = await state.read<Lease>(state.leaseKey());
        if (lease) await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
      };
      try {
        for (; step < STEPS; step++) {
          if (rand() < 0.6) {
            const ids = Array.from({ length: 20 }, () => 1 + Math.floor(rand() * (nextId - 1)));
            await db.query(`UPDATE ${table} SET payload = 'u${step}', updated_at = clock_timestamp() WHERE id = ANY($1::int[])`, [ids]);
            await db.query(`INSERT INTO ${table} (id, payload) SELECT g, 'n' || g FROM generate_series($1::int, $2::int) g`, [nextId, nextId + 9]);
            nextId += 10;
            await db.query(`DELETE FROM ${table} WHERE id = ANY($1::int[])`, [ids.slice(0, 3).map((i) => i + 1)]);
          }
          const watermark = await state.watermark();
          const request = watermark && rand() < 0.4 ? { full: true } : {};
          const moves = MOVES > 0 && rand() < MOVES;
          const killAt = moves ? 1 + Math.floor(rand() * 12) : rand() < 0.8 ? 1 + Math.floor(rand() * 80) : 0;
          const after = rand() < 0.5;
          const outcome = await execution(lake, raw, runId(), request, killAt, after, moves);
          log.push(`step ${step} ${JSON.stringify(request)} kill ${killAt}${moves ? ' (moves)' : ''}${after ? ' after' : ''}: ${outcome.kind === 'done' ? JSON.stringify(outcome.out) : outcome.kind === 'failed' ? `failed ${outcome.error}` : 'killed'}`);
          if (outcome.kind === 'failed') await abandonRun(deps, table, runId());
          else if (outcome.kind === 'killed') await lapse();
        }
        // Converge: no faults until a scheduled run that is incremental commits.
        for (let tries = 0; ; tries++, step++) {
          expect(tries, log.join('\n')).toBeLessThan(4);
          const outcome = await execution(lake, raw, runId(), {}, 0, false);
          log.push(`step ${step} converge: ${outcome.kind === 'done' ? JSON.stringify(outcome.out) : outcome.kind === 'failed' ? `failed ${outcome.error}` : 'killed'}`);
          if (outcome.kind === 'failed') await abandonRun(deps, table, runId());
          if (outcome.kind === 'done' && outcome.out.backfill === false && outcome.out.runId === runId()) break;
        }
      } finally {
        await deps.close();
      }
      console.log(`[seed ${seed}]\n${log.join('\n')}`);
      expect(log.filter((l) => l.includes('failed')), log.join('\n')).toEqual([]);
      await checkLake(db, lake, table, `seed ${seed}`);
      lake.remove();
    }, 600_000);
  }
});
