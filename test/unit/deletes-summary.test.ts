// Summarize and the deletes: a table with deletes.detect reports the tombstones its run's
// manifest marks (DeletesDetected); a table without it reports none; and the deletes schedule.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { deletesDue } from '../../lambdas/core/protocol/reconcile.ts';
import { runMetrics, summarizeInputSchema, summarizeRun } from '../../lambdas/core/protocol/summarize.ts';
import { TableState, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';

const dir = mkdtempSync(join(tmpdir(), 'deletes-summary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('DeletesDetected', () => {
  it('counts the rows of the pages the run marked as tombstones, per table that detects', async () => {
    const store = new DirectoryStore(pathToFileURL(dir).href);
    const config = validateConfig({ validation: { enabled: false }, tables: [{ name: 'public.orders', deletes: { detect: true } }, { name: 'public.customers' }] });
    const window = { from: '2024-06-01 00:00:00.000000+00', fromInclusive: false, to: '2024-06-02 00:00:00.000000+00' };
    const manifest: RunManifest & { pages: unknown[] } = {
      runId: 'r', kind: 'scheduled', window, committedAt: '2024-06-02T00:00:05.000Z',
      pages: [
        { page: 1, rows: 500, first: [], last: [], files: [] },
        { page: 2, rows: 7, first: [], last: [], files: [], tombstones: true },
        { page: 3, rows: 3, first: [], last: [], files: [], tombstones: true },
      ],
    };
    await new TableState(store, 'raw', 'orders').write(new TableState(store, 'raw', 'orders').manifestKey('r'), manifest);
    const result = (table: string) => ({ table, status: 'succeeded', rows: 510, files: 3, bytes: 1, windowFrom: window.from, windowTo: window.to, watermark: window.to, nullCursorRows: 0 });
    const summary = await summarizeRun({ store, config }, summarizeInputSchema.parse({ runId: 'r', startedAt: '2024-06-02T00:00:00.000Z', results: [result('orders'), result('customers')] }));
    expect(summary.tables.map((t) => [t.table, t.deletes])).toEqual([['orders', 10], ['customers', undefined]]);
    expect(runMetrics(summary).filter((m) => m.name === 'DeletesDetected')).toEqual([{ table: 'orders', name: 'DeletesDetected', unit: 'Count', value: 10 }]);
  });

  it('is due every run, or once per period: in the run whose window crosses a multiple of it', () => {
    const window = (from: string | null, to: string) => ({ from, fromInclusive: false, to });
    expect(deletesDue('run', window(null, '2024-06-02 00:00:00+00'))).toBe(false);
    expect(deletesDue('run', window('2024-06-01 23:00:00.000000+00', '2024-06-01 23:30:00.000000+00'))).toBe(true);
    expect(deletesDue(24, window('2024-06-01 23:00:00.000000+00', '2024-06-01 23:59:59.999999+00'))).toBe(false);
    expect(deletesDue(24, window('2024-06-01 23:00:00.000000+00', '2024-06-02 00:00:00.000000+00'))).toBe(true);
    expect(deletesDue(6, window('2024-06-02 00:00:00.000000+00', '2024-06-02 05:00:00.000000+00'))).toBe(false);
    expect(deletesDue(6, window('2024-06-02 05:59:59.000000+00', '2024-06-02 06:00:01.000000+00'))).toBe(true);
  });
});
