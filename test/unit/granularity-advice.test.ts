// discover's partition granularity rule (source/discover.ts granularityAdvice): a coarser
// granularity exactly when a day's rows would make a Parquet file under a few MB.
import { describe, expect, it } from 'vitest';
import { granularityAdvice, SMALL_FILE_BYTES } from '../../lambdas/core/source/discover.ts';

describe('granularity advice', () => {
  it('keeps day partitions when a day holds a big enough file', () => {
    // 10M rows over 100 days, 400 catalog bytes a row: ~10 MB of Parquet a day.
    expect(granularityAdvice(10_000_000, 4e9, 100)).toBeNull();
  });

  it('proposes month when a month of rows fills a file, year when not even a month does', () => {
    // 3,000 rows a day over two years, 200 catalog bytes a row: ~150 KB a day, ~4.6 MB a month.
    const month = granularityAdvice(3000 * 730, 3000 * 730 * 200, 730);
    expect(month?.granularity).toBe('month');
    expect(month?.warning).toBe('about 3,000 rows a day over 730 days (~0.15 MB of Parquet a day): day partitions would hold files of a few KB to MB, which Athena pays for per file; add partition: { granularity: month } (~4.6 MB a month per run\'s file)');
    // The demo's invoices: ~228 rows a day over 1,096 days.
    expect(granularityAdvice(250_000, 30e6, 1096)?.granularity).toBe('year');
    // Less than a year of data: month (a year partition would hold it all in one folder).
    expect(granularityAdvice(100, 100 * 200, 30)?.granularity).toBe('month');
    expect(granularityAdvice(400, 400 * 400, 400)?.warning).toMatch(/^about 1 row a day over 400 days \(/);
    expect(granularityAdvice(2, 2 * 8000, 1)?.warning).toMatch(/^about 2 rows a day over 1 day \(/);
  });

  it('says nothing without estimates or a span', () => {
    expect(granularityAdvice(null, 1e6, 100)).toBeNull();
    expect(granularityAdvice(0, 0, 100)).toBeNull();
    expect(granularityAdvice(1000, 1e6, null)).toBeNull();
    expect(granularityAdvice(1000, 1e6, 0)).toBeNull();
  });

  it('draws the line at SMALL_FILE_BYTES of Parquet a day', () => {
    // 1 row a day of `bytes` catalog bytes: a quarter of it in Parquet.
    expect(granularityAdvice(100, 100 * 4 * SMALL_FILE_BYTES, 100)).toBeNull();
    expect(granularityAdvice(100, 100 * (4 * SMALL_FILE_BYTES - 8), 100)?.granularity).toBe('month');
  });
});
