import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../lambdas/core/config.ts';
import { glueTableDefinition } from '../../lambdas/core/lake/glue-table.ts';
import { dataFileKey, dayFromEpochDays, lakeTableName, partitionProjection, partitionYearOf, projectionYears } from '../../lambdas/core/lake/keys.ts';

describe('lake layout', () => {
  it('writes zero-padded UTC partitions with a deterministic file name', () => {
    expect(dataFileKey('raw', 'orders', { year: 2024, month: 3, day: 7 }, 'run1', 12)).toBe('raw/orders/year=2024/month=03/day=07/run1-p000012.parquet');
  });

  it('turns epoch days into UTC calendar days, leap days included', () => {
    expect(dayFromEpochDays(0)).toEqual({ year: 1970, month: 1, day: 1 });
    expect(dayFromEpochDays(19782)).toEqual({ year: 2024, month: 2, day: 29 });
    expect(dayFromEpochDays(-1)).toEqual({ year: 1969, month: 12, day: 31 });
  });

  it.each([
    ['Order Items', 'order_items'], ['orders', 'orders'], ['__x__', 'x'],
    // Letters are kept: accents dropped, ligatures and ß spelled out, the rest escaped stably.
    ['Ärger', 'arger'], ['Ünïcode-Table', 'unicode_table'], ['Straße', 'strasse'], ['ÆRØ Œuvre', 'aero_oeuvre'],
    ['İstanbul', 'istanbul'], ['ﬁle²', 'file2'], ['订单', 'u8ba2_u5355'], ['Заказы 2024', 'u437_u430_u43a_u430_u437_u44b_2024'],
  ])('names lake folder of %s as %s', (name, slug) => {
    expect(lakeTableName(name)).toBe(slug);
  });

  it('refuses a name with no letters or digits, and two tables that map to one lake table', () => {
    expect(() => lakeTableName('"-"')).toThrow('table name "\\"-\\"" has no letters or digits to name a lake folder; set lakeName');
    expect(() => validateConfig({ tables: [{ name: 'public."Ärger"' }, { name: 'public.arger' }] }, 'x.yaml'))
      .toThrow('x.yaml: tables[1].name: public.arger and public."Ärger" both map to lake table "arger"; set lakeName on one');
    expect(validateConfig({ tables: [{ name: 'public."Ärger"' }, { name: 'public.arger', lakeName: 'arger_ascii' }] }).tables).toHaveLength(2);
  });

  it('generates the Glue projection whose template resolves to the path the writer uses', () => {
    const parameters = partitionProjection('bucket', 'raw', 'orders', { from: 1970, to: 2099 });
    expect(parameters).toEqual({
      'projection.enabled': 'true',
      'storage.location.template': 's3://bucket/raw/orders/year=${year}/month=${month}/day=${day}/',
      'projection.year.type': 'integer', 'projection.year.range': '1970,2099', 'projection.year.digits': '4',
      'projection.month.type': 'integer', 'projection.month.range': '1,12', 'projection.month.digits': '2',
      'projection.day.type': 'integer', 'projection.day.range': '1,31', 'projection.day.digits': '2',
    });
    // Fill the template as Athena does (each value padded to its digits) for a sample date.
    const resolved = parameters['storage.location.template']
      .replace('${year}', '2024'.padStart(Number(parameters['projection.year.digits']), '0'))
      .replace('${month}', '3'.padStart(Number(parameters['projection.month.digits']), '0'))
      .replace('${day}', '7'.padStart(Number(parameters['projection.day.digits']), '0'));
    const written = dataFileKey('raw', 'orders', { year: 2024, month: 3, day: 7 }, 'run', 1);
    expect(`s3://bucket/${written}`.startsWith(resolved)).toBe(true);
  });

  it('defines the Glue table with int partition keys, Parquet serde and lower-case columns', () => {
    const table = glueTableDefinition('orders', 'public.orders', [{ source: 'Amount', name: 'amount', type: 'decimal(12,2)' }], { bucket: 'b', prefix: 'raw', years: { from: 2000, to: 2030 } });
    expect(table.PartitionKeys).toEqual([{ Name: 'year', Type: 'int' }, { Name: 'month', Type: 'int' }, { Name: 'day', Type: 'int' }]);
    expect(table.StorageDescriptor.Columns).toEqual([{ Name: 'amount', Type: 'decimal(12,2)' }]);
    expect(table.StorageDescriptor.Location).toBe('s3://b/raw/orders/');
    expect(table.Parameters['projection.year.range']).toBe('2000,2030');
    expect(table.StorageDescriptor.SerdeInfo.SerializationLibrary).toBe('org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe');
  });
});

describe('projection years', () => {
  it('reads a data key\'s year, and none from a key outside the layout', () => {
    expect(partitionYearOf('raw/orders/year=2024/month=03/day=07/r-p000001.parquet')).toBe(2024);
    expect(partitionYearOf('raw/_state/orders/watermark.json')).toBeNull();
  });

  it('covers the years written through next year and never narrows', () => {
    expect(projectionYears(null, [], 2026)).toEqual({ from: 2026, to: 2027 });
    expect(projectionYears(null, [2023, 2024], 2026)).toEqual({ from: 2023, to: 2027 });
    expect(projectionYears({ from: 2023, to: 2027 }, [1999, 2031], 2026)).toEqual({ from: 1999, to: 2031 });
    expect(projectionYears({ from: 1970, to: 2099 }, [2024], 2026)).toEqual({ from: 1970, to: 2099 });
  });
});
