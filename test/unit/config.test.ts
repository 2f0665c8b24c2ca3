import { describe, expect, it } from 'vitest';
import { parseConfig, selectTables, validateConfig } from '../../lambdas/core/config.ts';
import { parseQualifiedName, quoteIdent, quoteLiteral } from '../../lambdas/core/identifiers.ts';

describe('config validation', () => {
  it('fills every default', () => {
    const config = parseConfig('tables:\n  - name: public.orders\n');
    // No glueDatabase: the stack names it after itself (lib/lake-catalog.ts).
    expect(config.lake).toEqual({ prefix: 'raw', partitionYears: { from: 1970, to: 2099 }, rowGroupMB: 64, rowGroupRows: 1_000_000, targetFileMB: 256 });
    expect(config.export).toEqual({
      pageRows: 50000, maxConcurrency: 2, safetyLagSeconds: 5, unconstrainedNumericScale: 9, leaseSeconds: 300,
      memoryMb: 3008, workflowTimeoutHours: 6, planTimeoutSeconds: 300, commitTimeoutSeconds: 300,
      backfillRows: 10_000_000, backfillSegments: 8, backfillConcurrency: 4,
    });
    expect(config.tables[0]).toEqual({ name: 'public.orders', cursor: 'updated_at', cursorTimeZone: 'UTC', mode: 'incremental', columns: { exclude: [], hash: [] } });
    expect(config.validation).toEqual({ enabled: true, bytesScannedLimitMb: 10_240 });
  });

  it('bounds validation.bytesScannedLimitMb by Athena\'s 10 MB minimum and 1 TiB, whole MiB', () => {
    const at = (value: string) => () => parseConfig(`validation: { bytesScannedLimitMb: ${value} }\ntables:\n  - name: public.orders\n`, 'v.yaml');
    expect(at('10')().validation).toEqual({ enabled: true, bytesScannedLimitMb: 10 });
    expect(at('1048576')().validation.bytesScannedLimitMb).toBe(1_048_576);
    expect(at('9')).toThrow('v.yaml: validation.bytesScannedLimitMb: Too small: expected number to be >=10');
    expect(at('1048577')).toThrow('v.yaml: validation.bytesScannedLimitMb: Too big: expected number to be <=1048576');
    expect(at('10.5')).toThrow('v.yaml: validation.bytesScannedLimitMb: Invalid input: expected int, received number');
    expect(() => parseConfig('validation: { enabled: "yes", cutoff: 1 }\ntables:\n  - name: public.orders\n', 'v.yaml')).toThrow(
      'v.yaml: validation.enabled: Invalid input: expected boolean, received string; validation: Unrecognized key: "cutoff"',
    );
  });

  it('reports every problem at once, each with its key path', () => {
    const text = [
      'lake: { prefix: "/abs/", glueDatabase: "Bad-Name" }',
      'export: { pageRows: 0 }',
      'tables:',
      '  - name: orders',
      '    cursr: updated_at',
      '  - cursor: 5',
    ].join('\n');
    expect(() => parseConfig(text, 'lake.config.yaml')).toThrow(
      'lake.config.yaml: lake.prefix: must be a relative key prefix without leading or trailing "/"; lake.glueDatabase: must be 1–255 lower-case letters, digits or "_", starting with a letter (Glue and Athena naming rules); export.pageRows: Too small: expected number to be >=1; tables[0]: Unrecognized key: "cursr"; tables[1].name: Invalid input: expected string, received undefined; tables[1].cursor: Invalid input: expected string, received number',
    );
  });

  it('reads tables[].deletes, every run by default or every so many hours, and refuses it on a snapshot table by path', () => {
    const table = (deletes: string, mode = 'incremental') => parseConfig(`tables:\n  - name: public.orders\n    mode: ${mode}\n    deletes: ${deletes}\n`, 'd.yaml').tables[0].deletes;
    expect(table('{ detect: true }')).toEqual({ detect: true, every: 'run' });
    expect(table('{ detect: true, every: 24 }')).toEqual({ detect: true, every: 24 });
    expect(() => table('{ detect: true, every: 0 }')).toThrow('d.yaml: tables[0].deletes.every: Too small: expected number to be >0');
    expect(() => table('{ detect: true, every: daily }')).toThrow(/^d\.yaml: tables\[0\]\.deletes\.every: /);
    expect(() => table('{ detect: true }', 'snapshot')).toThrow(
      'd.yaml: tables[0].deletes: public.orders is a snapshot table (mode: snapshot), which already drops deleted rows every run; deletes.detect applies to incremental tables',
    );
  });

  it('names the file and line of broken YAML', () => {
    expect(() => parseConfig('tables: [\n', 'my.yaml')).toThrow(/^my\.yaml: not valid YAML: /);
  });

  it('refuses two tables that land in the same lake folder', () => {
    expect(() => validateConfig({ tables: [{ name: 'a.orders' }, { name: 'b.orders' }] }, 'c.yaml')).toThrow(
      'c.yaml: tables[1].name: b.orders and a.orders both map to lake table "orders"; set lakeName on one',
    );
  });

  it('selects tables by config name, schema.table or lake name, and names an unknown one', () => {
    const config = validateConfig({ tables: [{ name: 'public.orders' }, { name: '"Sales Data"."Order Items"' }] });
    expect(selectTables(config, ['order_items', 'public.orders']).map((t) => t.lakeName)).toEqual(['order_items', 'orders']);
    expect(() => selectTables(config, ['public.nope'])).toThrow('tables: "public.nope" is not configured (configured: public.orders, "Sales Data"."Order Items")');
  });
});

describe('identifiers', () => {
  it.each([
    ['orders', { schema: 'public', name: 'orders' }],
    ['Sales.Orders', { schema: 'sales', name: 'orders' }],
    ['"Sales Data"."Order Items"', { schema: 'Sales Data', name: 'Order Items' }],
    ['"a""b"."c.d"', { schema: 'a"b', name: 'c.d' }],
  ])('parses %s', (text, expected) => {
    expect(parseQualifiedName(text)).toEqual(expected);
  });

  it.each([
    ['a.b.c', 'expected schema.table'],
    ['"open', 'unterminated quote'],
    ['a.', 'ends with "."'],
    ['a b', 'expected "." at 2'],
    ['""', 'empty quoted identifier'],
  ])('refuses %s (%s)', (text, why) => {
    expect(() => parseQualifiedName(text, 'tables[0].name')).toThrow(`tables[0].name: ${JSON.stringify(text)} is not a valid table name (${why})`);
  });

  it('quotes identifiers and literals so no input escapes them', () => {
    expect(quoteIdent('we"ird')).toBe('"we""ird"');
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(() => quoteLiteral('nul\0byte')).toThrow('contains a NUL byte');
  });
});
