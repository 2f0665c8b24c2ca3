// A compaction must finish in one invocation: a generation cannot be continued by the next (runs
// may commit in between, and its commit point is fenced on the watermark it read). Killed by the
// Lambda timeout, it would keep the table's lease (the state's retry is then skipped, reported
// as such) and leave its files to the next run, and try again, in full, at every run. So the
// Compact handler gives it the invocation's time less a reserve; at its own rate it stops before
// a page it could not finish: it removes what it wrote, gives back the lease, and fails naming
// the table, how far it got and compaction.maxTableMB. The lake is as it was; with time enough,
// the same compaction then succeeds.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localStepRuntime } from '../../bin/local/local-runtime.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { createDatabase, createLake, exportDeps, faultyStore, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

// Five day partitions of three files each (one per run): five pages, more than minFiles (2).
const config = validateConfig({
  export: { pageRows: 100, safetyLagSeconds: 0 },
  compaction: { minFiles: 2 },
  tables: [{ name: 'public.orders', partitionBy: 'placed_on' }],
});

let db: TestDatabase;
let lake: TestLake;
let compactHandler: typeof import('../../lambdas/compact/handler.ts').compactHandler;

const dataFiles = () => (readdirSync(path.join(lake.dir, 'raw', 'orders'), { recursive: true }) as string[]).filter((f) => f.endsWith('.parquet')).sort();
const stateKeys = async () => (await lake.store.list('raw/_state/orders/')).sort();

beforeAll(async () => {
  // The handler's logger reads its level when its module loads: its error line stays out of the test output.
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
  ({ compactHandler } = await import('../../lambdas/compact/handler.ts'));
  db = await createDatabase();
  lake = createLake();
  await db.query('CREATE TABLE orders (id int PRIMARY KEY, payload text, placed_on date NOT NULL, updated_at timestamptz NOT NULL)');
  for (let run = 0; run < 3; run++) {
    await db.query(`INSERT INTO orders SELECT ${run} * 1000 + g, md5(g::text), date '2024-03-01' + g % 5, clock_timestamp() FROM generate_series(1, 500) g`);
    const deps = exportDeps(db, lake.store, config);
    try {
      expect((await runExport(deps)).tables.map((t) => t.status)).toEqual(['succeeded']);
    } finally {
      await deps.close();
    }
  }
}, 120_000);

afterAll(async () => {
  await db?.close();
  lake?.remove();
  await stopPostgres();
});

describe('a compaction whose store fails', () => {
  it('rejects with the store\'s error (what the state\'s Catch records, and Summarize counts as CompactionFailed), and leaves the lake as it was', async () => {
    const files = dataFiles();
    const state = await stateKeys();
    // S3 refuses the new generation's third file, after two pages were written.
    let written = 0;
    const store: ObjectStore = faultyStore(lake.store, {
      put: async (key, body, options) => {
        if (key.includes('/generation=') && ++written === 3) throw Object.assign(new Error(`S3 PUT ${key} refused (injected)`), { name: 'ServiceUnavailable' });
        return lake.store.put(key, body, options);
      },
    });
    const runtime = localStepRuntime({ config, lake: lake.url });
    const compact = compactHandler({ ...runtime, lakeDeps: () => ({ ...runtime.lakeDeps(), store }) });
    await expect(compact({ table: 'orders' }, { getRemainingTimeInMillis: () => 15 * 60_000 })).rejects.toThrowError(/S3 PUT raw\/orders\/generation=.* refused \(injected\)/);
    expect(written).toBe(3);
    expect(dataFiles()).toEqual(files);
    expect(await stateKeys()).toEqual(state);
  });
});

describe('a compaction out of time', () => {
  it('stops before a page it could not finish, leaves the lake as it was, and names maxTableMB; with time enough it compacts', async () => {
    const compact = compactHandler(localStepRuntime({ config, lake: lake.url }));
    const files = dataFiles();
    const state = await stateKeys();
    expect(files).toHaveLength(15);
    // Nothing of the invocation left beyond the handler's reserve: one page, then no time for the next.
    await expect(compact({ table: 'orders' }, { getRemainingTimeInMillis: () => 60_000 })).rejects.toThrowError(
      /^public\.orders: compaction stopped before its invocation's time ran out, after 1 of 5 pages \([\d.]+ of [\d.]+ MB in [\d.]+ s\); what it wrote is removed and the table is as it was\. A generation is written in one invocation, which at this rate rewrites about [\d.]+ MB: set compaction\.maxTableMB \(10000\) below [\d.]+ so the step skips this table, and run pg-lake-export compact --force --tables orders where no time limit applies$/,
    );
    expect(dataFiles()).toEqual(files);
    // No generation, journal, pending run or lease left: the next run or compaction starts at once.
    expect(await stateKeys()).toEqual(state);
    expect(state.filter((k) => k.includes('/pending/') || k.endsWith('lease.json'))).toEqual([]);
    expect((await new TableState(lake.store, 'raw', 'orders').read<{ generation?: string }>('raw/_state/orders/schema.json'))!.value.generation).toBeUndefined();

    await expect(compact({ table: 'orders' }, { getRemainingTimeInMillis: () => 15 * 60_000 })).resolves.toEqual({ status: 'compacted' });
    expect(dataFiles().filter((f) => f.startsWith('generation='))).toHaveLength(5);
  });
});
