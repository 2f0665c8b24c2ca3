// Wall-clock cursors in a zone: conversions between instants and wall times, the hour clocks
// repeat, and which names are zones (pure functions; the integration tests run them in SQL).
import { describe, expect, it } from 'vitest';
import { CursorZone, isTimeZone } from '../../lambdas/core/cursor-zone.ts';

const ny = new CursorZone('America/New_York');
const berlin = new CursorZone('Europe/Berlin');

describe('CursorZone', () => {
  it('reads an instant on the zone wall clock, keeping the microseconds', () => {
    expect(ny.wallOf('2024-07-01 12:00:00.123456+00')).toBe('2024-07-01 08:00:00.123456+00');
    expect(ny.wallOf('2024-01-01 12:00:00.000000+00')).toBe('2024-01-01 07:00:00.000000+00');
    expect(berlin.wallOf('2024-12-31 23:30:00.000001+00')).toBe('2025-01-01 00:30:00.000001+00');
    expect(ny.wallOf('0050-06-01 04:56:02.000000+00')).toBe('0050-06-01 00:00:00.000000+00');
    expect(ny.wallOf('infinity')).toBe('infinity');
    expect(new CursorZone('UTC').wallOf('2024-07-01 12:00:00.000000+00')).toBe('2024-07-01 12:00:00.000000+00');
  });

  it('finds the instant of a wall time: both passes of a repeated hour, either side of a skipped one', () => {
    expect(ny.instantOf('2024-07-01 08:00:00.123456+00', 'earlier')).toBe('2024-07-01 12:00:00.123456+00');
    expect(ny.instantOf('2024-11-03 01:30:00.000000+00', 'earlier')).toBe('2024-11-03 05:30:00.000000+00');
    expect(ny.instantOf('2024-11-03 01:30:00.000000+00', 'later')).toBe('2024-11-03 06:30:00.000000+00');
    expect(ny.instantOf('2024-03-10 02:30:00.000000+00', 'earlier')).toBe('2024-03-10 06:30:00.000000+00');
    expect(ny.instantOf('2024-03-10 02:30:00.000000+00', 'later')).toBe('2024-03-10 07:30:00.000000+00');
  });

  it('ends a window before the first pass of a repeated hour, never inside it', () => {
    // New York, 2024-11-03: 01:00–02:00 happens twice (05:00–06:00 and 06:00–07:00 UTC).
    expect(ny.beforeRepeat('2024-11-03 05:45:00.000000+00')).toBe('2024-11-03 04:59:59.999999+00');
    expect(ny.beforeRepeat('2024-11-03 05:00:00.000000+00')).toBe('2024-11-03 04:59:59.999999+00');
    expect(ny.beforeRepeat('2024-11-03 04:59:59.999999+00')).toBe('2024-11-03 04:59:59.999999+00');
    expect(ny.beforeRepeat('2024-11-03 06:30:00.000000+00')).toBe('2024-11-03 06:30:00.000000+00');
    expect(ny.beforeRepeat('2024-07-01 12:00:00.000000+00')).toBe('2024-07-01 12:00:00.000000+00');
    // Berlin, 2024-10-27: 02:00–03:00 twice (00:00–01:00 and 01:00–02:00 UTC).
    expect(berlin.beforeRepeat('2024-10-27 00:30:00.000000+00')).toBe('2024-10-26 23:59:59.999999+00');
    expect(berlin.beforeRepeat('2024-10-27 01:30:00.000000+00')).toBe('2024-10-27 01:30:00.000000+00');
  });

  it('takes IANA names and refuses offsets, which Intl and Postgres read with opposite signs', () => {
    for (const name of ['UTC', 'America/New_York', 'Etc/GMT+5', 'Asia/Kolkata']) expect(isTimeZone(name)).toBe(true);
    for (const name of ['+05:00', '-0800', '5', 'Mars/Base', '']) expect(isTimeZone(name)).toBe(false);
    expect(() => new CursorZone('Mars/Base', 'tables[0].cursorTimeZone')).toThrow('tables[0].cursorTimeZone: "Mars/Base" is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)');
  });
});
