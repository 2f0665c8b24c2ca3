// Partition granularity and compaction generations in the lake layout: the keys the writer and
// the compaction use, the Glue projection and table that read them, and the validation labels.
import { describe, expect, it } from 'vitest';
import { glueTableDefinition } from '../../lambdas/core/lake/glue-table.ts';
import { dataFileKey, dayFromEpochDays, isCoarserOrSame, partitionStartDay, locationOf, partitionKeysOf, partitionOf, partitionOfKey, partitionProjection, tableDataPrefix } from '../../lambdas/core/lake/keys.ts';
import { partitionCountSql, partitionLabel } from '../../lambdas/core/lake/validate.ts';

const day = { year: 2024, month: 3, day: 7 };

/** The template filled as Athena does: each value padded to its projection digits. */
function resolve(parameters: Record<string, string>, values: Record<string, number>): string {
  let template = parameters['storage.location.template'];
  for (const [name, value] of Object.entries(values)) {
    template = template.replace(`\${${name}}`, String(value).padStart(Number(parameters[`projection.${name}.digits`]), '0'));
  }
  return template;
}

describe('partition granularity', () => {
  it('keeps the year=/month=/day= scheme as far as the granularity goes', () => {
    expect(dataFileKey('raw', 'orders', day, 'r1', 12)).toBe('raw/orders/year=2024/month=03/day=07/r1-p000012.parquet');
    expect(dataFileKey('raw', 'orders', day, 'r1', 12, false, { granularity: 'day' })).toBe('raw/orders/year=2024/month=03/day=07/r1-p000012.parquet');
    // The file of a coarser partition names its day, so a page split by day keeps one key per day.
    expect(dataFileKey('raw', 'orders', day, 'r1', 12, false, { granularity: 'month' })).toBe('raw/orders/year=2024/month=03/r1-p000012-d07.parquet');
    expect(dataFileKey('raw', 'orders', day, 'r1', 12, false, { granularity: 'year' })).toBe('raw/orders/year=2024/r1-p000012-d0307.parquet');
    expect(dataFileKey('raw', 'orders', { ...day, day: 8 }, 'r1', 12, false, { granularity: 'month' })).not.toBe(dataFileKey('raw', 'orders', day, 'r1', 12, false, { granularity: 'month' }));
  });

  it('puts a generation under its own folder, and a snapshot under its run whatever the generation', () => {
    expect(dataFileKey('raw', 'orders', day, 'r1', 1, false, { granularity: 'month', generation: 'g7' })).toBe('raw/orders/generation=g7/year=2024/month=03/r1-p000001-d07.parquet');
    expect(dataFileKey('raw', 'orders', day, 'r1', 1, true, { generation: 'g7' })).toBe('raw/orders/snapshot=r1/year=2024/month=03/day=07/r1-p000001.parquet');
    expect(tableDataPrefix('raw', 'orders')).toBe('raw/orders/');
    expect(tableDataPrefix('raw', 'orders', { generation: 'g7' })).toBe('raw/orders/generation=g7/');
    expect(tableDataPrefix('raw', 'orders', { snapshotRunId: 's1' })).toBe('raw/orders/snapshot=s1/');
  });

  it.each(['day', 'month', 'year'] as const)('projects %s partitions onto exactly the folders the writer uses', (granularity) => {
    const parameters = partitionProjection('bucket', 'raw', 'orders', { from: 2000, to: 2030 }, { granularity, generation: 'g2' });
    const keys = partitionKeysOf(granularity).map((k) => k.name);
    expect(Object.keys(parameters).filter((k) => k.endsWith('.type')).map((k) => k.split('.')[1])).toEqual(keys);
    const filled = resolve(parameters, { year: 2024, month: 3, day: 7 });
    expect(filled).not.toContain('${');
    const written = dataFileKey('raw', 'orders', partitionOf(day, granularity), 'r', 1, false, { granularity, generation: 'g2' });
    expect(`s3://bucket/${written}`.slice(0, filled.length)).toBe(filled);
    expect(`s3://bucket/${written}`.slice(filled.length)).not.toContain('/');
  });

  it('declares only the granularity\'s partition keys in Glue, and the generation\'s folder', () => {
    const table = glueTableDefinition('orders', 'public.orders', [{ source: 'id', name: 'id', type: 'bigint' }], { bucket: 'b', prefix: 'raw', years: { from: 2000, to: 2030 }, location: { granularity: 'month', generation: 'g3' } });
    expect(table.PartitionKeys).toEqual([{ Name: 'year', Type: 'int' }, { Name: 'month', Type: 'int' }]);
    expect(table.StorageDescriptor.Location).toBe('s3://b/raw/orders/generation=g3/');
    expect(table.Parameters['storage.location.template']).toBe('s3://b/raw/orders/generation=g3/year=${year}/month=${month}/');
    expect(table.Parameters['projection.day.type']).toBeUndefined();
  });

  it('reads the partition back from any key of the layout, and nothing from state keys', () => {
    expect(partitionOfKey('raw/orders/year=2024/month=03/day=07/r-p000001.parquet')).toEqual(day);
    expect(partitionOfKey('raw/orders/generation=g/year=2024/month=03/r-p000001-d07.parquet')).toEqual({ year: 2024, month: 3, day: 1 });
    expect(partitionOfKey('raw/orders/generation=g/year=2024/r-p000001-d0307.parquet')).toEqual({ year: 2024, month: 1, day: 1 });
    expect(partitionOfKey('raw/_state/orders/watermark.json')).toBeNull();
    expect(partitionOf(day, 'month')).toEqual({ year: 2024, month: 3, day: 1 });
    expect(partitionOf(day, 'year')).toEqual({ year: 2024, month: 1, day: 1 });
  });

  it('groups a day into its partition\'s first day, before 1970 too', () => {
    for (const epochDay of [0, 19_782, 19_783, -1, -366, 20_000, 2_932_896]) {
      const day = dayFromEpochDays(epochDay);
      expect(partitionStartDay(epochDay, 'day')).toBe(epochDay);
      expect(dayFromEpochDays(partitionStartDay(epochDay, 'month'))).toEqual(partitionOf(day, 'month'));
      expect(dayFromEpochDays(partitionStartDay(epochDay, 'year'))).toEqual(partitionOf(day, 'year'));
    }
  });

  it('orders granularities: a compaction merges into the same or a coarser one only', () => {
    expect(isCoarserOrSame('day', 'month')).toBe(true);
    expect(isCoarserOrSame('day', 'year')).toBe(true);
    expect(isCoarserOrSame('month', 'month')).toBe(true);
    expect(isCoarserOrSame('year', 'day')).toBe(false);
    expect(isCoarserOrSame('month', 'day')).toBe(false);
  });

  it('takes the location a schema records, and none from a schema before compaction', () => {
    expect(locationOf(null)).toEqual({});
    expect(locationOf({ snapshotRunId: 's' })).toEqual({ snapshotRunId: 's' });
    expect(locationOf({ granularity: 'year', generation: 'g' })).toEqual({ granularity: 'year', generation: 'g' });
  });

  it('validates month partitions by year and month only', () => {
    expect(partitionLabel(day, 'month')).toBe('year=2024/month=03');
    expect(partitionLabel(day)).toBe('year=2024/month=03/day=07');
    const sql = partitionCountSql('orders', 'r1', { from: 2024, to: 2024 }, 'month');
    expect(sql).toContain('SELECT "year", "month", count(*)');
    expect(sql).not.toContain('"day"');
  });
});
