import { describe, expect, it } from 'vitest';
import { formatDuration, ProgressBars } from '../../bin/local/progress.ts';

/** A stream that records what was written; `tty` as a terminal would say. */
function stream(tty: boolean) {
  const writes: string[] = [];
  return { isTTY: tty, write: (text: string) => writes.push(text), writes };
}

describe('progress bars', () => {
  it('draws rows, the estimate, rate and time left, redrawn in place on a terminal', () => {
    let now = 0;
    const out = stream(true);
    const bars = new ProgressBars({ stream: out, now: () => now });
    bars.begin('public.orders', 1_000_000, { estimated: true });
    now = 2_000;
    bars.update('public.orders', 250_000);
    expect(out.writes.at(-1)).toBe(`\x1b[1A\x1b[2K  public.orders        ██████░░░░░░░░░░░░░░░░░░  25%      250,000 / ~1,000,000 rows    125,000 rows/s  ETA 6s\n`);
    // Past an estimate that fell short: 99 %, time left unknown; finishing fills the bar.
    now = 9_000;
    bars.update('public.orders', 1_100_000);
    expect(out.writes.at(-1)).toContain(' 99%    1,100,000 / ~1,000,000 rows    122,222 rows/s  ETA ?');
    bars.finish('public.orders', 1_200_000);
    expect(out.writes.at(-1)).toContain('100%    1,200,000 / 1,200,000 rows    133,333 rows/s  done');
    // A message goes above the bars, which are drawn again below it.
    bars.print('note');
    expect(out.writes.at(-2)).toBe('note\n');
    expect(out.writes.at(-1)).toContain('public.orders');
  });

  it('off a terminal writes a plain line now and then, and when a table is done', () => {
    let now = 0;
    const out = stream(false);
    const bars = new ProgressBars({ stream: out, now: () => now, lineEveryMillis: 30_000 });
    bars.begin('orders', 100);
    now = 10_000;
    bars.update('orders', 10);
    expect(out.writes).toEqual([]);
    now = 30_000;
    bars.update('orders', 30);
    now = 40_000;
    bars.update('orders', 100);
    expect(out.writes).toEqual([
      '  orders               ███████░░░░░░░░░░░░░░░░░  30%           30 / 100 rows          1 rows/s  ETA 1m10s\n',
      '  orders               ████████████████████████ 100%          100 / 100 rows          3 rows/s  done\n',
    ]);
  });

  it('counts rows without a total', () => {
    const out = stream(false);
    const bars = new ProgressBars({ stream: out, now: () => 4_000 });
    bars.begin('t', null, { startedAt: 0 });
    expect(bars.line('t')).toBe(`${'t'.padEnd(20)} ${'0'.padStart(11)} rows  ${'0'.padStart(9)} rows/s`);
  });

  it.each([[0, '0s'], [59.4, '59s'], [61, '1m01s'], [3_725, '1h02m'], [Number.POSITIVE_INFINITY, '?']])('writes %s seconds as %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});
