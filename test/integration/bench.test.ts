// `npm run bench` works end to end on a small table (its numbers are not asserted: they depend on
// the machine; the benchmark is run on demand, see README "Performance").
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BENCH = path.resolve(import.meta.dirname, '../../bin/local/bench.ts');
const ROWS = 50_000;

describe('npm run bench', () => {
  it('--json measures the three pipelines over the same rows and prints one object', async () => {
    const { stdout } = await run(process.execPath, [BENCH, '--rows', String(ROWS), '--runs', '1', '--json'], { timeout: 110_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(Object.keys(result)).toEqual(expect.arrayContaining(['limitRowsPerSec', 'exportRowsPerSec', 'ratioToLimit', 'ratioToDuckdb', 'peakRssMiB']));
    expect(result.rows).toBe(ROWS);
    // The export runs as the Export function does: from its bundle, the encoder thread from encoder.js.
    expect(result.exporter).toBe('bundle');
    for (const mode of ['limit', 'export', 'duckdb']) {
      expect(result[mode].runs).toHaveLength(1);
      expect(result[mode].bytes).toBeGreaterThan(0);
      expect(result[mode].peakRssMiB).toBeGreaterThan(0);
    }
    // The ratios are the throughputs' ratios, as printed.
    expect(result.ratioToLimit).toBeCloseTo(result.exportRowsPerSec / result.limitRowsPerSec, 6);
    expect(result.ratioToDuckdb).toBeCloseTo(result.exportRowsPerSec / result.duckdbRowsPerSec, 6);
    expect(result.peakRssMiB).toBe(result.export.peakRssMiB);
    // CPU-seconds per 1M rows of each pipeline's process (all threads), and the export's files:
    // 50,000 rows within fifty minutes of one day: one growing file, one row group.
    for (const mode of ['limit', 'export', 'duckdb']) expect(result.cpuSecondsPerMillion[mode]).toBeGreaterThan(0);
    expect(result.export.cpuSecondsPerMillion).toBe(result.cpuSecondsPerMillion.export);
    expect(result.files).toMatchObject({ count: 1, medianRowGroups: 1, minRowGroupRows: ROWS });
    expect(result.files.medianBytes).toBe(result.export.bytes);
    // Linux: the export's CPU by thread (main, the encoder thread, V8's helpers), adding up to
    // its process's CPU within the clock ticks /proc counts in: each thread's user and system
    // times are whole ticks of 10 ms, so each thread's share may be off by up to 20 ms.
    if (process.platform === 'linux') {
      expect(result.exportThreads.main).toBeGreaterThan(0);
      expect(result.exportThreads.encoder).toBeGreaterThan(0);
      const sum = Object.values(result.exportThreads as Record<string, number>).reduce((a, b) => a + b, 0);
      expect(result.exportThreadsCounted).toBeGreaterThanOrEqual(2);
      expect(Math.abs(sum - result.cpuSecondsPerMillion.export)).toBeLessThan(result.exportThreadsCounted * 0.02 / (ROWS / 1e6));
    }
  });

  it.runIf(process.platform === 'linux')('--pin runs the server on core 0 and each pipeline on core 1 (taskset); --source runs the TypeScript source', async () => {
    const { stdout, stderr } = await run(process.execPath, [BENCH, '--rows', '2000', '--runs', '1', '--only', 'export', '--pin', '--source'], { timeout: 110_000 });
    expect(stdout).toContain('exporter: TypeScript source (--source)');
    expect(stderr).toMatch(/pinned Postgres \(postmaster \d+, \d+ children\) to core 0; pipelines run on core 1/);
    expect(stdout).toContain('pinned: Postgres on core 0, each pipeline on core 1');
    expect(stdout).toMatch(/export files: 1, median [\d.]+ MiB, row groups per file 1/);
    expect(stdout).toMatch(/export CPU-s\/1M by thread: main [\d.]+, encoder [\d.]+/);
  });
});
