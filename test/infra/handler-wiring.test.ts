// What the composition roots give each deployed handler: the Glue catalog only to Compact
// (Summarize and Validate are not granted it), a query engine to Export only for a table with
// deletes.detect (not for a backfill segment, which never detects; closed when the invocation
// ends), and Compact's small state (its status only).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepRuntime } from '../../lambdas/adapters/aws-runtime.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { GlueRegistry } from '../../lambdas/adapters/glue-registry.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import type { QueryEngine } from '../../lambdas/core/ports.ts';
import type { ExportDeps, LakeDeps } from '../../lambdas/core/protocol/run-model.ts';

const config = validateConfig({
  lake: { glueDatabase: 'sales_lake' },
  tables: [{ name: 'public.orders', deletes: { detect: true } }, { name: 'public.customers' }],
});

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-lake-export-wiring-'));
  writeFileSync(join(dir, 'lake.config.json'), JSON.stringify(config));
  // What the stack sets; the container reads them on first use.
  Object.assign(process.env, { LAKE_CONFIG_FILE: join(dir, 'lake.config.json'), LAKE_BUCKET: 'lake-bucket', AWS_REGION: 'eu-west-1', POWERTOOLS_LOG_LEVEL: 'SILENT' });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A runtime over a directory lake that records what the handlers ask of it. */
function recordingRuntime() {
  const asked: Array<{ readonly registersTables?: boolean } | undefined> = [];
  const lakeDeps: LakeDeps = { store: new DirectoryStore(pathToFileURL(join(dir, 'lake')).href), config };
  const runtime: StepRuntime = {
    lakeDeps: (options) => {
      asked.push(options);
      return lakeDeps;
    },
    // Export's handler hands the deps to exportTable, which returns a finished task at once.
    withDeps: async (work) => work({ ...lakeDeps, source: undefined as unknown as ExportDeps['source'] }),
  };
  return { runtime, asked };
}

function task(table: string, extra: Record<string, unknown> = {}) {
  return {
    table, display: `public.${table}`, runId: '20250301T020000Z-0a1b2c3d', startedAt: '2025-03-01T02:00:00.123Z', exportedAtMicros: '1740794400123000',
    kind: 'scheduled', window: { from: '2025-02-28 01:59:55.123456+00', fromInclusive: false, to: '2025-03-01 01:59:55.123456+00' },
    fingerprint: '0123456789abcdef', after: null, page: 3, rows: 10, files: 3, bytes: 100, done: true, carried: null, nullCursorRows: 0, ...extra,
  };
}

describe('the deployed runtime', () => {
  it('gives the Glue catalog only to the step that registers tables', async () => {
    const { awsRuntime } = await import('../../lambdas/adapters/aws-runtime.ts');
    expect(awsRuntime.lakeDeps().registry).toBeUndefined();
    expect(awsRuntime.lakeDeps({ registersTables: true }).registry).toBeInstanceOf(GlueRegistry);
    expect(awsRuntime.lakeDeps().config.lake.glueDatabase).toBe('sales_lake');
  });
});

describe('the Compact handler', () => {
  it('asks for the catalog and keeps only its status in the state', async () => {
    const { compactHandler } = await import('../../lambdas/compact/handler.ts');
    const { runtime, asked } = recordingRuntime();
    // Nothing exported yet: nothing to compact.
    expect(await compactHandler(runtime)({ table: 'orders', status: 'succeeded', rows: 1 })).toEqual({ status: 'skipped' });
    expect(asked).toEqual([{ registersTables: true }]);
  });
});

describe('the Export handler', () => {
  it('opens the query engine for a table with deletes.detect only, not for its segments, and closes it', async () => {
    const { exportHandler } = await import('../../lambdas/export/handler.ts');
    const { runtime } = recordingRuntime();
    const events: string[] = [];
    const openEngine = async (table: string): Promise<QueryEngine> => {
      events.push(`open ${table}`);
      return { description: 'duckdb (test)', query: async () => ({ columns: [], rows: [], bytesScanned: 0 }), close: async () => { events.push(`close ${table}`); } };
    };
    const handler = exportHandler(runtime, openEngine);
    expect(await handler(task('orders'))).toMatchObject({ table: 'orders', done: true });
    expect(await handler(task('customers'))).toMatchObject({ table: 'customers', done: true });
    const segment = { index: 1, from: ['2025-02-28 12:00:00+00'], to: null };
    expect(await handler(task('orders', { segment }))).toMatchObject({ segment });
    expect(events).toEqual(['open orders', 'close orders']);
  });

  it('closes the engine when the export fails', async () => {
    const { exportHandler } = await import('../../lambdas/export/handler.ts');
    const failing: StepRuntime = { ...recordingRuntime().runtime, withDeps: async () => { throw new Error('database unreachable'); } };
    const events: string[] = [];
    const handler = exportHandler(failing, async () => ({ description: 'duckdb (test)', query: async () => ({ columns: [], rows: [], bytesScanned: 0 }), close: async () => { events.push('close'); } }));
    await expect(handler(task('orders'))).rejects.toThrow('database unreachable');
    expect(events).toEqual(['close']);
  });
});
