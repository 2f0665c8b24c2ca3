// The Validate Table handler's own logic: which run it checks, the few counts that travel between
// states (the details stay in its log), and an engine fault passed on by name (the state's Retry
// matches ThrottlingError) with the engine closed. The engine is real code only where it answers;
// the failing one is fault injection. The checks themselves: test/integration (validate) and test/e2e.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { localStepRuntime } from '../../bin/local/local-runtime.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { ThrottlingError } from '../../lambdas/core/errors.ts';
import type { QueryEngine, QueryResult } from '../../lambdas/core/ports.ts';
import { TableState, type RunManifest, type Watermark } from '../../lambdas/core/protocol/table-state.ts';
import type { ValidationResult } from '../../lambdas/core/lake/validate.ts';
import { runMetrics, summarizeInputSchema, summarizeRun } from '../../lambdas/core/protocol/summarize.ts';
import { shapeValidation, tableValidationSchema, validateCommittedTable } from '../../lambdas/core/protocol/workflow-io.ts';

const dir = mkdtempSync(join(tmpdir(), 'validate-handler-'));
const lakeUrl = pathToFileURL(join(dir, 'lake')).href;
const config = validateConfig({ tables: [{ name: 'public.orders' }, { name: 'public.customers' }] });
const store = new DirectoryStore(lakeUrl);
const deps = { store, config, log: () => {} };
let validateHandler: typeof import('../../lambdas/validate/handler.ts').validateHandler;

const commitResult = (table: string) => ({ table, status: 'succeeded', rows: 2, files: 1, bytes: 10, windowFrom: null, windowTo: '2024-06-02 00:00:00+00', watermark: '2024-06-02 00:00:00+00', nullCursorRows: 0 });

/** A committed run of `orders` with one file of 2 rows (state only: the engine below never reads files). */
async function commitOrders(runId: string, rows: number): Promise<void> {
  const state = new TableState(store, 'raw', 'orders');
  const window = { from: null, fromInclusive: false, to: '2024-06-02 00:00:00+00' };
  const manifest: RunManifest = {
    runId, kind: 'scheduled', window, committedAt: '2024-06-02T00:00:01.000Z',
    pages: rows === 0 ? [] : [{ page: 1, rows, first: [], last: [], files: [{ key: `raw/orders/year=2024/month=06/day=01/${runId}-p000001.parquet`, rows, bytes: 10 }] }],
  };
  await state.write(state.manifestKey(runId), manifest);
  await state.write(state.schemaKey(), { columns: [{ source: 'id', name: 'id', type: 'int' }, { source: 'updated_at', name: 'updated_at', type: 'timestamp' }], key: ['id'], cursor: 'updated_at' });
  const watermark: Watermark = { cursor: window.to, runId, committedAt: manifest.committedAt, cursorTimeZone: 'UTC' };
  await state.write(state.watermarkKey(), watermark);
}

/** An engine that answers the count query with `seen` rows in 2024-06-01 and finds no duplicates; records what it was asked. */
function answeringEngine(seen: number) {
  const asked: string[] = [];
  let closed = false;
  const engine: QueryEngine = {
    description: 'answers from a script',
    async query(sql: string): Promise<QueryResult> {
      asked.push(sql);
      if (sql.includes('count(*) AS "rows"')) {
        return { columns: ['year', 'month', 'day', 'rows'].map((name) => ({ name, type: 'bigint', kind: 'integer' as const })), rows: [['2024', '6', '1', String(seen)]], bytesScanned: 1234 };
      }
      return { columns: [], rows: [], bytesScanned: 5 };
    },
    async close() { closed = true; },
  };
  return { engine, asked, closed: () => closed };
}

// The handler over the local runtime (the lake in a directory; Validate never reads the database).
const runtime = localStepRuntime({ config, lake: lakeUrl });

beforeAll(async () => {
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
  ({ validateHandler } = await import('../../lambdas/validate/handler.ts'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('shapeValidation', () => {
  const base: ValidationResult = {
    table: 'orders', runId: 'r1', committedAt: 'c', key: ['id'], cursor: 'updated_at', ok: true, partitions: 3, expectedRows: 10, seenRows: 10,
    mismatches: [], duplicates: { versions: 0, extraRows: 0, sample: [] }, notes: ['a note'], queries: ['SELECT 1', 'SELECT 2'], bytesScanned: 99,
  };

  it('keeps the counts and drops the samples, notes and SQL (hundreds of tables share 256 KB)', () => {
    const many = Array.from({ length: 50 }, (_, i) => ({ partition: `year=2024/month=01/day=${String(i % 28 + 1).padStart(2, '0')}`, expected: 1, seen: 2 }));
    const sample = Array.from({ length: 10 }, (_, i) => ({ key: { id: `${'x'.repeat(200)}${i}` }, cursor: '2024-01-01', copies: 2 }));
    const shaped = shapeValidation({ ...base, ok: false, mismatches: many, duplicates: { versions: 40, extraRows: 40, sample } });
    expect(shaped).toEqual({ status: 'mismatch', runId: 'r1', expectedRows: 10, seenRows: 10, mismatchedPartitions: 50, duplicateVersions: 40 });
    expect(Buffer.byteLength(JSON.stringify(shaped))).toBeLessThan(150);
    expect(tableValidationSchema.parse(shaped)).toEqual(shaped);
  });

  it('calls duplicates alone a mismatch, and a clean result ok', () => {
    expect(shapeValidation(base).status).toBe('ok');
    expect(shapeValidation({ ...base, ok: false, duplicates: { versions: 1, extraRows: 1, sample: [] } })).toMatchObject({ status: 'mismatch', mismatchedPartitions: 0, duplicateVersions: 1 });
  });
});

describe('validateCommittedTable', () => {
  it('skips a table with nothing committed, without asking the engine', async () => {
    const { engine, asked } = answeringEngine(0);
    expect((await validateCommittedTable(engine, deps, 'customers')).validation).toEqual({ status: 'skipped', error: 'customers: nothing committed yet, nothing to validate' });
    expect(asked).toEqual([]);
  });

  it('checks the run just committed; when it published nothing, the last run that did', async () => {
    await commitOrders('20240602T000000Z-aaaaaaaa', 2);
    const clean = answeringEngine(2);
    expect((await validateCommittedTable(clean.engine, deps, 'orders')).validation).toEqual({
      status: 'ok', runId: '20240602T000000Z-aaaaaaaa', expectedRows: 2, seenRows: 2, mismatchedPartitions: 0, duplicateVersions: 0,
    });
    expect(clean.asked[0]).toContain(`"_lake_run_id" = '20240602T000000Z-aaaaaaaa'`);
    await commitOrders('20240603T000000Z-bbbbbbbb', 0);
    const copied = answeringEngine(4);
    expect((await validateCommittedTable(copied.engine, deps, 'orders')).validation).toMatchObject({ status: 'mismatch', runId: '20240602T000000Z-aaaaaaaa', expectedRows: 2, seenRows: 4, mismatchedPartitions: 1 });
  });
});

describe('the handler', () => {
  it('returns only the counts, and closes the engine', async () => {
    const { engine, closed } = answeringEngine(2);
    await commitOrders('20240602T000000Z-aaaaaaaa', 2);
    const handler = validateHandler(runtime, async () => engine);
    expect(await handler(commitResult('orders'))).toEqual(expect.objectContaining({ status: 'ok', seenRows: 2 }));
    expect(closed()).toBe(true);
  });

  it('passes an engine fault on under its own name (the state retries ThrottlingError) and still closes the engine', async () => {
    let closed = false;
    const throttled: QueryEngine = {
      description: 'throttled',
      query: async () => { throw new ThrottlingError('Athena query q-1 in workgroup w ended FAILED: TOO_MANY_REQUESTS'); },
      close: async () => { closed = true; },
    };
    const handler = validateHandler(runtime, async () => throttled);
    await expect(handler(commitResult('orders'))).rejects.toMatchObject({ name: 'ThrottlingError', message: 'Athena query q-1 in workgroup w ended FAILED: TOO_MANY_REQUESTS' });
    expect(closed).toBe(true);
  });

  it('refuses an input that is not a commit result, naming the key', async () => {
    const handler = validateHandler(runtime, async () => answeringEngine(0).engine);
    await expect(handler({ table: 'orders', status: 'failed' })).rejects.toThrow(/status/);
  });
});

describe('what Summarize makes of the validations', () => {
  const input = (validations: unknown[]) => summarizeInputSchema.parse({
    runId: 'r', startedAt: '2024-06-02T00:00:00.000Z',
    results: [
      ...validations.map((validation, i) => ({ ...commitResult(i === 0 ? 'orders' : 'customers'), validation })),
      { table: 'gone', status: 'failed', error: 'ValueError', cause: 'x' },
    ],
  });
  const ok = { status: 'ok', runId: 'r', expectedRows: 2, seenRows: 2, mismatchedPartitions: 0, duplicateVersions: 0 };
  const mismatch = { ...ok, status: 'mismatch', seenRows: 4, mismatchedPartitions: 1 };

  it('counts the tables that mismatched and those skipped, and names each table\'s verdict in a word', async () => {
    const summary = await summarizeRun(deps, input([mismatch, { status: 'skipped', error: 'ThrottlingError' }]), new Date('2024-06-02T00:01:00.000Z'));
    expect(summary.validation).toEqual({ mismatched: 1, skipped: 1 });
    expect(summary.tables.map((t) => [t.table, t.validation])).toEqual([['orders', 'mismatch'], ['customers', 'skipped'], ['gone', undefined]]);
    expect(runMetrics(summary).filter((m) => m.name.startsWith('Validation'))).toEqual([
      { name: 'ValidationMismatch', unit: 'Count', value: 1 },
      { name: 'ValidationSkipped', unit: 'Count', value: 1 },
    ]);
  });

  it('emits zeros for a clean run, and nothing when validation is off', async () => {
    const clean = await summarizeRun(deps, input([ok, ok]));
    expect(runMetrics(clean).filter((m) => m.name.startsWith('Validation')).map((m) => m.value)).toEqual([0, 0]);
    const off = await summarizeRun({ ...deps, config: { ...config, validation: { enabled: false, bytesScannedLimitMb: 10_240 } } }, input([]));
    expect(off.validation).toBeNull();
    expect(runMetrics(off).filter((m) => m.name.startsWith('Validation'))).toEqual([]);
  });

  it('refuses a validation that is more than counts (the state must stay small)', () => {
    expect(() => input([{ ...ok, sample: ['k'] }])).toThrow(/sample/);
  });
});
