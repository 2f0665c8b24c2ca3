// `npm run test:chaos [-- --seed S --seconds N --steps K --kinds scheduled,window,full]`: plays seeded chaos schedules (seed S,
// S+1, …) for N seconds (at least one schedule; --seconds 0 plays exactly one), checks each, and
// prints the totals. A violation prints its seed, the whole schedule and the command that plays
// it again; the exit code is 1 if any schedule found one.
import { startS3Server } from '../support/s3-server.ts';
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { startLocalPostgres, type LocalPostgres } from '../../bin/local/embedded-postgres.ts';
import { CHAOS_SERVER_SETTINGS, emptyTotals, runSchedule, type ScheduleResult, type Totals } from './engine.ts';
import { generateSchedule, type RunKind } from './schedule.ts';

export interface ChaosSession {
  readonly totals: Totals;
  readonly failures: { seed: number; result: ScheduleResult }[];
}

export function reproduceCommand(seed: number, steps: number, kinds?: readonly RunKind[]): string {
  return `npm run test:chaos -- --seed ${seed} --seconds 0${steps === DEFAULT_STEPS ? '' : ` --steps ${steps}`}${kinds ? ` --kinds ${kinds.join(',')}` : ''}`;
}

export const DEFAULT_STEPS = 40;

export function formatFailure(seed: number, steps: number, result: ScheduleResult, kinds?: readonly RunKind[]): string {
  return [
    `CHAOS VIOLATION — seed ${seed}`,
    ...result.violations.map((v) => `  [${v.check}] ${v.message}`),
    `  schedule (seed ${seed}):`,
    ...result.transcript.map((l) => `    ${l}`),
    `  reproduce: ${reproduceCommand(seed, steps, kinds)}`,
  ].join('\n');
}

export function formatTotals(t: Totals, failures: number): string {
  return `chaos totals: ${t.schedules} schedules, ${t.steps} steps, ${t.runs} runs, ${t.kills} kills injected, ${t.storeFaults} store faults injected, ${t.sourceFaults} source faults injected, ${t.connectionsDropped} connections dropped, ${t.auditVersionsChecked} audited versions checked, ${t.lakeVersionsChecked} lake versions checked, ${t.rollForwardsPending} quiet moments with a roll-forward pending; ${failures} schedules with violations`;
}

/** Play schedules from `seed` on until `seconds` have passed (one at least). */
export async function playChaos(options: { seed: number; seconds: number; steps: number; kinds?: readonly RunKind[]; server?: LocalPostgres; log?: (line: string) => void }): Promise<ChaosSession> {
  const server = options.server ?? (await startLocalPostgres({ settings: CHAOS_SERVER_SETTINGS }));
  const s3 = await startS3Server();
  const log = options.log ?? ((line: string) => console.log(line));
  const totals = emptyTotals();
  const failures: ChaosSession['failures'] = [];
  const until = Date.now() + options.seconds * 1000;
  try {
    for (let seed = options.seed; ; seed = (seed + 1) >>> 0) {
      const started = Date.now();
      const result = await runSchedule(generateSchedule(seed, options.steps, options.kinds), { server, s3 });
      for (const key of Object.keys(totals) as (keyof Totals)[]) totals[key] += result.totals[key];
      const t = result.totals;
      log(`seed ${seed} (${result.store} lake): ${t.steps} steps, ${t.runs} runs, ${t.kills} killed, ${t.storeFaults} store faults, ${t.sourceFaults} source faults, ${t.connectionsDropped} connections dropped, ${t.auditVersionsChecked} versions audited — ${result.violations.length ? `${result.violations.length} VIOLATIONS` : 'ok'} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      if (result.violations.length) {
        failures.push({ seed, result });
        log(formatFailure(seed, options.steps, result, options.kinds));
      }
      if (Date.now() >= until) break;
    }
  } finally {
    await s3.stop();
    if (!options.server) await server.stop();
  }
  return { totals, failures };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { seed: { type: 'string' }, seconds: { type: 'string', default: '120' }, steps: { type: 'string', default: String(DEFAULT_STEPS) }, kinds: { type: 'string' } } });
  const seed = values.seed === undefined ? randomInt(1, 2 ** 31) : Number(values.seed);
  const seconds = Number(values.seconds);
  const steps = Number(values.steps);
  const kinds = values.kinds?.split(',') as RunKind[] | undefined;
  if (kinds?.some((k) => !['scheduled', 'window', 'full'].includes(k))) {
    console.error(`--kinds: a comma-separated list of scheduled, window, full; got ${values.kinds}`);
    process.exit(2);
  }
  if (!Number.isInteger(seed) || seed < 0 || !(seconds >= 0) || !Number.isInteger(steps) || steps < 1) {
    console.error(`usage: npm run test:chaos -- [--seed S (integer ≥ 0)] [--seconds N (≥ 0)] [--steps K (≥ 1)]; got seed ${values.seed}, seconds ${values.seconds}, steps ${values.steps}`);
    process.exit(2);
  }
  console.log(`chaos: seed ${seed}, ${seconds} s, ${steps} steps per schedule${kinds ? `, runs: ${kinds.join(', ')}` : ''}`);
  const session = await playChaos({ seed, seconds, steps, kinds });
  console.log(formatTotals(session.totals, session.failures.length));
  if (session.failures.length) {
    console.log(`failing seeds: ${session.failures.map((f) => f.seed).join(', ')} — reproduce one with: ${reproduceCommand(session.failures[0].seed, steps, kinds)}`);
    process.exit(1);
  }
  process.exit(0);
}
