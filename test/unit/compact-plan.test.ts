// The pure parts of compaction (protocol/compact.ts): its configuration, the thresholds that
// trigger it, the pages of a new generation, and where a run writes (the live location).
import { describe, expect, it } from 'vitest';
import { parseConfig, selectTables } from '../../lambdas/core/config.ts';
import { compactionSettings, compactionTrigger, planPages, recordedLocation } from '../../lambdas/core/protocol/compact.ts';
import type { RunManifest } from '../../lambdas/core/protocol/table-state.ts';

const config = (extra = '', table = '') => parseConfig(`${extra}\ntables:\n  - name: public.orders\n${table}`, 'c.yaml');

describe('compaction configuration', () => {
  it('defaults: thresholds 8 files under 32 MB, 128 MB files, an hour of grace; day partitions', () => {
    const c = config();
    expect(c.compaction).toEqual({ enabled: true, minFiles: 8, maxMedianMB: 32, targetFileMB: 128, graceMinutes: 60, maxTableMB: 10_000 });
    const [table] = selectTables(c);
    expect(compactionSettings(c, table)).toEqual({ enabled: true, minFiles: 8, maxMedianBytes: 32e6, targetBytes: 128e6, everyHours: undefined });
    expect(recordedLocation(c, null, table)).toEqual({ granularity: 'day' });
  });

  it('takes a table\'s own thresholds and its opt-out', () => {
    const own = config('compaction: { minFiles: 20 }', '    compaction: { maxMedianMB: 8, everyHours: 24 }\n');
    expect(compactionSettings(own, selectTables(own)[0])).toEqual({ enabled: true, minFiles: 20, maxMedianBytes: 8e6, targetBytes: 128e6, everyHours: 24 });
    const off = config('', '    compaction: false\n');
    expect(compactionSettings(off, selectTables(off)[0]).enabled).toBe(false);
  });

  it('refuses a bad granularity or threshold by path', () => {
    expect(() => config('', '    partition: { granularity: week }\n')).toThrow('c.yaml: tables[0].partition.granularity: Invalid option: expected one of "day"|"month"|"year"');
    expect(() => config('compaction: { minFiles: 1, graceMinutes: -1 }')).toThrow('c.yaml: compaction.minFiles: Too small: expected number to be >=2; compaction.graceMinutes: Too small: expected number to be >=0');
    expect(() => config('', '    compaction: true\n')).toThrow('c.yaml: tables[0].compaction');
  });
});

describe('where a run writes', () => {
  it('keeps the lake\'s granularity and generation until a compaction changes them, and refuses a finer one by path', () => {
    const month = config('', '    partition: { granularity: month }\n');
    const [table] = selectTables(month);
    expect(recordedLocation(month, null, table)).toEqual({ granularity: 'month' });
    // A lake still in day partitions: day, until the next compaction switches it.
    expect(recordedLocation(month, { generation: 'g1' }, table)).toEqual({ granularity: 'day', generation: 'g1' });
    expect(recordedLocation(month, { granularity: 'month', generation: 'g2' }, table)).toEqual({ granularity: 'month', generation: 'g2' });
    const day = config();
    expect(() => recordedLocation(day, { granularity: 'year' }, selectTables(day)[0])).toThrow(
      'tables[0].partition.granularity: public.orders is partitioned by year in the lake; day is finer, and a compaction only merges partitions: set it back to year, or export the table anew under another lakeName',
    );
    // A snapshot folder is new every run: its granularity is the configured one.
    const snap = config('', '    mode: snapshot\n    partition: { granularity: day }\n');
    expect(recordedLocation(snap, { granularity: 'year' }, selectTables(snap)[0])).toEqual({ granularity: 'day' });
  });
});

const file = (key: string, bytes: number, rows = 1) => ({ key, bytes, rows });

describe('what triggers a compaction', () => {
  it('more than minFiles files in one partition with a median under maxMedianBytes', () => {
    const nine = Array.from({ length: 9 }, (_, i) => file(`raw/t/year=2024/month=03/day=07/r${i}-p000001.parquet`, 1000 + i));
    expect(compactionTrigger(nine, { minFiles: 8, maxMedianBytes: 32e6 })).toBe('raw/t/year=2024/month=03/day=07/ holds 9 files (more than 8) with a median of 1004 bytes (under 32000000)');
    expect(compactionTrigger(nine.slice(0, 8), { minFiles: 8, maxMedianBytes: 32e6 })).toBeNull();
    expect(compactionTrigger(nine, { minFiles: 8, maxMedianBytes: 1000 })).toBeNull();
    // Files spread over folders do not add up.
    const spread = nine.map((f, i) => ({ ...f, key: f.key.replace('day=07', `day=${String(i + 1).padStart(2, '0')}`) }));
    expect(compactionTrigger(spread, { minFiles: 2, maxMedianBytes: 32e6 })).toBeNull();
    // Files already at compaction.targetFileMB do not count: merging them would rewrite them as they are.
    expect(compactionTrigger(nine, { minFiles: 8, maxMedianBytes: 32e6, targetBytes: 1004 })).toBeNull();
    expect(compactionTrigger(nine, { minFiles: 8, maxMedianBytes: 32e6, targetBytes: 1e6 })).toMatch(/ holds 9 files under 1000000 bytes \(more than 8\)/);
  });
});

describe('the pages of a new generation', () => {
  const manifest = (runId: string, pages: { page: number; first: string; last: string; files: ReturnType<typeof file>[] }[]): RunManifest => ({
    runId, kind: 'scheduled', window: { from: null, fromInclusive: false, to: '2024-12-31 00:00:00.000000+00' }, committedAt: '2024-12-31T00:00:00Z',
    pages: pages.map((p) => ({ page: p.page, rows: p.files.length, first: [p.first, '1'], last: [p.last, '9'], files: p.files })),
  });
  const runs = [
    manifest('r1', [
      { page: 1, first: '2024-03-07 01:00:00.000000+00', last: '2024-03-08 02:00:00.000000+00', files: [file('raw/t/year=2024/month=03/day=07/r1-p000001.parquet', 40), file('raw/t/year=2024/month=03/day=08/r1-p000001.parquet', 40)] },
    ]),
    manifest('r2', [
      { page: 1, first: '2024-03-08 03:00:00.000000+00', last: '2024-04-01 00:00:00.000000+00', files: [file('raw/t/year=2024/month=03/day=08/r2-p000001.parquet', 70), file('raw/t/year=2024/month=04/day=01/r2-p000001.parquet', 10)] },
    ]),
  ];

  it('one page per partition, its bounds covering every page it merges', () => {
    expect(planPages(runs, 'day', 1e9)).toEqual([
      { page: 1, partition: { year: 2024, month: 3, day: 7 }, sources: [runs[0].pages[0].files[0]], first: ['2024-03-07 01:00:00.000000+00'], last: ['2024-03-08 02:00:00.000000+00'] },
      { page: 2, partition: { year: 2024, month: 3, day: 8 }, sources: [runs[0].pages[0].files[1], runs[1].pages[0].files[0]], first: ['2024-03-07 01:00:00.000000+00'], last: ['2024-04-01 00:00:00.000000+00'] },
      { page: 3, partition: { year: 2024, month: 4, day: 1 }, sources: [runs[1].pages[0].files[1]], first: ['2024-03-08 03:00:00.000000+00'], last: ['2024-04-01 00:00:00.000000+00'] },
    ]);
  });

  it('merges days into months, and cuts a partition at the target size', () => {
    const months = planPages(runs, 'month', 1e9);
    expect(months.map((p) => [p.partition, p.sources.length])).toEqual([[{ year: 2024, month: 3, day: 1 }, 3], [{ year: 2024, month: 4, day: 1 }, 1]]);
    const cut = planPages(runs, 'month', 100);
    expect(cut.map((p) => p.sources.map((s) => s.bytes))).toEqual([[40, 40], [70], [10]]);
  });

  it('gives bounds that overlap every window when a page\'s cannot be compared', () => {
    const carried = manifest('r3', [{ page: 1, first: '', last: '', files: [file('raw/t/year=2024/month=03/day=07/r3-p000001.parquet', 5)] }]);
    const [first] = planPages([...runs, { ...carried, pages: carried.pages.map((p) => ({ ...p, first: [], last: [] })) }], 'day', 1e9);
    expect(first).toMatchObject({ first: [], last: [] });
  });
});
