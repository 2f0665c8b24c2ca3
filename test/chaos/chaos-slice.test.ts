// A fixed-seed slice of the chaos suite (test/chaos/run.ts), so `npm test` plays random
// schedules of writers, runs, re-runs, kills and faults and fails on any violation the checker
// finds; `npm run test:chaos -- --seconds N` plays as long as asked. First, the checker's
// self-test: a lake damaged on purpose must be reported, or a quiet slice would prove nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalPostgres, type LocalPostgres } from '../../bin/local/embedded-postgres.ts';
import { CHAOS_SERVER_SETTINGS, runSchedule } from './engine.ts';
import { DEFAULT_STEPS, formatFailure, formatTotals, playChaos } from './run.ts';
import type { Schedule, Step } from './schedule.ts';

const SEED = 1_000;
const SECONDS = 60;

let server: LocalPostgres;
beforeAll(async () => {
  server = await startLocalPostgres({ settings: CHAOS_SERVER_SETTINGS });
});
afterAll(async () => {
  await server?.stop();
});

describe('the checker catches a damaged lake', () => {
  const plain: Step[] = [
    { op: 'run', run: 'r1', kind: 'scheduled', takeOver: false, faults: { storeErrors: [], sourceErrors: [] } },
    { op: 'wait' },
    { op: 'update', keys: [1, 2, 3, 500, 1_500], clock: false },
  ];
  const schedule = (damage: Step): Schedule => ({ seed: 0, store: 'directory', initialRows: 2_000, pageRows: 700, historySeconds: 3 * 86_400, steps: [...plain, damage] });

  it('a data file copied under a name no manifest lists: versions twice, an unlisted file', async () => {
    const { violations } = await runSchedule(schedule({ op: 'sabotage', what: 'copy-data-file' }), { server });
    expect(violations.map((v) => v.check).sort()).toEqual(['a', 'e']);
    expect(violations.find((v) => v.check === 'e')?.message).toMatch(/^1 visible data files no manifest lists \(\d+ rows\): raw\/chaos_items\/year=\d{4}\/month=\d\d\/day=\d\d\/\S+x-p000001\.parquet$/);
  });

  it('a listed data file deleted: versions lost, the latest version of keys differs, a manifest file missing', async () => {
    const { violations } = await runSchedule(schedule({ op: 'sabotage', what: 'drop-data-file' }), { server });
    expect([...new Set(violations.map((v) => v.check))].sort()).toEqual(['c', 'd', 'e']);
    expect(violations.filter((v) => v.check === 'e').map((v) => v.message)).toEqual([expect.stringMatching(/^1 files manifests list are missing: /)]);
  });
});

it(`chaos schedules from seed ${SEED} for ${SECONDS} s: no version duplicated, invented or lost; re-runs never destroy; nothing left behind`, async () => {
  const session = await playChaos({ seed: SEED, seconds: SECONDS, steps: DEFAULT_STEPS, server, log: () => undefined });
  console.log(formatTotals(session.totals, session.failures.length));
  expect(session.totals.kills, 'the slice injected kills').toBeGreaterThan(0);
  expect(session.failures.map((f) => formatFailure(f.seed, DEFAULT_STEPS, f.result))).toEqual([]);
}, 240_000);
