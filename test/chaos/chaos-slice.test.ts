// A fixed-seed slice of the chaos suite (test/chaos/run.ts), so `npm test` plays a few random
// schedules of writers, runs, re-runs, kills and faults and fails on any violation the checker
// finds. `npm run test:chaos -- --seconds N` plays as long as asked.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startLocalPostgres, type LocalPostgres } from '../../bin/local/embedded-postgres.ts';
import { CHAOS_SERVER_SETTINGS } from './engine.ts';
import { DEFAULT_STEPS, formatFailure, formatTotals, playChaos } from './run.ts';

const SEED = 1_000;
const SECONDS = 60;

let server: LocalPostgres;
beforeAll(async () => {
  server = await startLocalPostgres({ settings: CHAOS_SERVER_SETTINGS });
});
afterAll(async () => {
  await server?.stop();
});

it(`chaos schedules from seed ${SEED} for ${SECONDS} s: no version duplicated, invented or lost; re-runs never destroy; nothing left behind`, async () => {
  const session = await playChaos({ seed: SEED, seconds: SECONDS, steps: DEFAULT_STEPS, server, log: () => undefined });
  console.log(formatTotals(session.totals, session.failures.length));
  expect(session.totals.kills, 'the slice injected kills').toBeGreaterThan(0);
  expect(session.failures.map((f) => formatFailure(f.seed, DEFAULT_STEPS, f.result))).toEqual([]);
}, 240_000);
