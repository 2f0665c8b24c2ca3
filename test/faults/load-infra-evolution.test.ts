// Scenarios 4–8: concurrent writers, injected infrastructure faults (S3 throttling and resets,
// a dropped database connection, statement_timeout), schema changes, data-quality checks and
// rows with a NULL cursor.
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../lambdas/adapters/s3-store.ts';
import { TableState, type Watermark } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkLake } from './lake-checks.ts';

const db = fileDatabase();

async function run(lake: TestLake, tables: unknown[], request: object = {}) {
  const deps = exportDeps(db, lake.store, testConfig(tables));
  try {
    return await runExport(deps, request);
  } finally {
    await deps.close();
  }
}

describe('4. concurrent writers', () => {
  it('three runs during inserts and updates (shared timestamps, long transactions), then a final run', async () => {
    await db.query(`CREATE TABLE busy (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO busy (id, payload) SELECT g, 'v0' FROM generate_series(1, 2000) g`);
    const lake = createLake();
    let stop = false;
    let writes = 0;
    const writer = async (seed: number) => {
      const client = await db.connect();
      let n = seed;
      while (!stop) {
        n = (n * 1103515245 + 12345) % 2147483648;
        await client.query('BEGIN');
        // several rows share this transaction's now(); some transactions stay open a while
        await client.query(`UPDATE busy SET payload = 'w${seed}-' || ${n}, updated_at = now() WHERE id % 97 = ${n % 97}`);
        await client.query(`INSERT INTO busy (id, payload) VALUES (${100000 + seed * 100000 + (n % 90000)}, 'new') ON CONFLICT (id) DO UPDATE SET payload = 'again', updated_at = now()`);
        if (n % 5 === 0) await client.query('SELECT pg_sleep(0.3)');
        await client.query('COMMIT');
        writes++;
      }
      await client.end();
    };
    const writers = [1, 2, 3].map(writer);
    for (let i = 0; i < 3; i++) {
      const outcome = await run(lake, [{ name: 'busy' }]);
      expect(outcome.tables[0].status).toBe('succeeded');
      await new Promise((r) => setTimeout(r, 400));
    }
    stop = true;
    await Promise.all(writers);
    await run(lake, [{ name: 'busy' }]);
    console.log(`[concurrent writers] ${writes} write transactions during 3 runs`);
    expect(writes).toBeGreaterThan(10);
    await checkLake(db, lake, 'busy', 'concurrent writers');
    lake.remove();
  });
});

/** A loopback proxy in front of the S3 API server that throttles or resets while told to. */
async function faultyProxy(target: string, fault: (n: number, req: http.IncomingMessage) => 'slowdown' | 'reset' | 'pass') {
  const counts = { slowdown: 0, reset: 0, pass: 0 };
  let n = 0;
  const server = http.createServer((req, res) => {
    const kind = fault(++n, req);
    counts[kind]++;
    if (kind === 'reset') return req.socket.destroy();
    if (kind === 'slowdown') {
      req.resume();
      res.writeHead(503, { 'content-type': 'application/xml' });
      return res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
    }
    const url = new URL(req.url ?? '/', target);
    const upstream = http.request(url, { method: req.method, headers: req.headers }, (response) => {
      res.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(res);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, counts, close: () => new Promise((r) => server.close(r)) };
}

describe('5. injected infrastructure faults', () => {
  let s3: LocalS3Server;
  beforeAll(async () => {
    s3 = await startS3Server();
    s3.createBucket('faults');
    await db.query(`CREATE TABLE shaky (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO shaky SELECT g, 'p' || g, timestamptz '2024-04-01' + (g % 3) * interval '1 day' FROM generate_series(1, 3000) g`);
  });
  afterAll(async () => {
    await s3?.stop();
  });

  const client = (endpoint: string, maxAttempts: number) => new S3Client({
    endpoint, forcePathStyle: true, region: 'us-east-1', maxAttempts, credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });

  it('S3 throttling (503 SlowDown) and connection resets for a while: retried with backoff, then exact', async () => {
    // Every third request of the first 60 fails, alternating throttles and resets.
    const proxy = await faultyProxy(s3.address, (n) => (n <= 60 && n % 3 === 0 ? (n % 2 ? 'slowdown' : 'reset') : 'pass'));
    const store = new S3Store(client(proxy.url, 6), 'faults', 'throttled');
    const deps = { ...exportDeps(db, store, testConfig([{ name: 'shaky' }])) };
    const outcome = await runExport(deps);
    await deps.close();
    await proxy.close();
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 3000 });
    expect(proxy.counts.slowdown).toBeGreaterThan(0);
    expect(proxy.counts.reset).toBeGreaterThan(0);
    console.log(`[S3 faults] ${proxy.counts.slowdown} SlowDown answers and ${proxy.counts.reset} connection resets absorbed; ${proxy.counts.pass} requests passed; 3000 rows committed`);
  });

  it('S3 throttling that never stops: the table fails with a named error and nothing is committed', async () => {
    // every upload of a data file is throttled, for good
    const proxy = await faultyProxy(s3.address, (_n, req) => (req.method === 'PUT' && req.url?.includes('.parquet') ? 'slowdown' : 'pass'));
    const store = new S3Store(client(proxy.url, 3), 'faults', 'down');
    const deps = exportDeps(db, store, testConfig([{ name: 'shaky' }]));
    const outcome = await runExport(deps);
    await deps.close();
    await proxy.close();
    expect(outcome.tables[0].status).toBe('failed');
    // named as transient: the workflow's Retry on ThrottlingError tries the chunk again later
    expect(outcome.tables[0].error).toMatch(/^ThrottlingError: public\.shaky: chunk 1: (upload to s3:\/\/faults\/down\/ failed|S3 PUT \S+\.parquet in s3:\/\/faults\/down\/ failed after the client's retries): SlowDown: Please reduce your request rate\.$/);
    const direct = new S3Store(client(s3.address, 1), 'faults', 'down');
    expect((await direct.list('raw/shaky/')).filter((k) => k.endsWith('.parquet'))).toEqual([]);
    expect(await direct.get('raw/_state/shaky/watermark.json')).toBeNull();
  });

  it('a database connection dropped mid-COPY is reconnected and the page read again', async () => {
    const lake = createLake();
    // a slow page query, so there is a COPY in flight to cut
    const tables = [{ name: 'shaky', where: '(id % 100 <> 0 OR pg_sleep(0.01) IS NOT NULL)' }];
    const deps = exportDeps(db, lake.store, testConfig(tables));
    const killer = (async () => {
      for (let i = 0; i < 200; i++) {
        const [row] = await db.query(`SELECT count(pg_terminate_backend(pid))::text AS n FROM pg_stat_activity WHERE application_name = 'pg-lake-export' AND query LIKE 'COPY%' AND state = 'active'`);
        if (row.n !== '0') return Number(row.n);
        await new Promise((r) => setTimeout(r, 10));
      }
      return 0;
    })();
    const outcome = await runExport(deps);
    await deps.close();
    expect(await killer).toBe(1);
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 3000 });
    await checkLake(db, lake, 'shaky', 'connection dropped mid-COPY');
    lake.remove();
  });

  it('statement_timeout cancelling the page query fails the table by name', async () => {
    const lake = createLake();
    const source = new PostgresSource({ connectionString: db.url, options: '-c statement_timeout=50' });
    const config = testConfig([{ name: 'shaky', where: 'pg_sleep(0.001) IS NOT NULL' }]);
    const outcome = await runExport({ source, store: lake.store, config });
    await source.close();
    expect(outcome.tables[0].error).toBe("ExportError: public.shaky: page 1: page query cancelled (canceling statement due to statement timeout); lower export.pageRows or raise statement_timeout for the exporter's role");
    expect(await lake.store.list('')).toEqual([]);
    lake.remove();
  });
});

describe('6–8. schema changes, checks, NULL cursors', () => {
  it('6. an added column appears in new files (old ones read NULL); an incompatible type change fails the table', async () => {
    await db.query(`CREATE TABLE evolving (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO evolving (id, payload) SELECT g, 'a' FROM generate_series(1, 10) g`);
    const lake = createLake();
    const tables = [{ name: 'evolving' }];
    await run(lake, tables);
    await db.query(`ALTER TABLE evolving ADD COLUMN region text; INSERT INTO evolving (id, payload, region) VALUES (11, 'b', 'eu')`);
    expect((await run(lake, tables)).tables[0]).toMatchObject({ status: 'succeeded', rows: 1 });
    const query = await LakeQuery.open(testConfig(tables), lake.store);
    expect(await query.query('SELECT region, count(*) AS n FROM evolving GROUP BY ALL ORDER BY ALL')).toEqual([{ region: 'eu', n: '1' }, { region: null, n: '10' }]);
    query.close();

    const state = new TableState(lake.store, 'raw', 'evolving');
    const before = { watermark: (await state.watermark()) as Watermark, files: await lake.store.list('raw/evolving/') };
    await db.query(`ALTER TABLE evolving ALTER COLUMN payload TYPE int USING length(payload); UPDATE evolving SET updated_at = now() WHERE id = 1`);
    const outcome = await run(lake, tables);
    expect(outcome.tables[0].error).toBe('SchemaMismatchError: public.evolving.payload: type changed from string to int since the last export; files already in the lake cannot be read as int (re-export the table with {"full": true} after renaming the column, or exclude it)');
    expect(await state.watermark()).toEqual(before.watermark);
    expect(await lake.store.list('raw/evolving/')).toEqual(before.files);
    console.log('[schema change] added column readable (old rows NULL); incompatible change failed the table, watermark and files unchanged');
    lake.remove();
  });

  it('7. a failing data-quality check fails the table and leaves the lake as it was', async () => {
    await db.query(`CREATE TABLE people (id int PRIMARY KEY, email text, updated_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO people VALUES (1, 'a@x', now()), (2, 'b@x', now())`);
    const lake = createLake();
    const tables = [{ name: 'people', checks: { notNull: ['email'], unique: ['email'], minRows: 1 } }];
    expect((await run(lake, tables)).tables[0]).toMatchObject({ status: 'succeeded', rows: 2 });
    const state = new TableState(lake.store, 'raw', 'people');
    const before = { watermark: await state.watermark(), files: await lake.store.list('') };
    await db.query(`INSERT INTO people VALUES (3, NULL, now()), (4, 'a@x', now()), (5, 'a@x', now())`);
    const outcome = await run(lake, tables);
    expect(outcome.tables[0].error).toBe('CheckFailedError: public.people: check failed, nothing published: notNull email: NULL in rows with key 3; unique email: "a@x" ×2');
    expect(await state.watermark()).toEqual(before.watermark);
    expect(await lake.store.list('')).toEqual(before.files);
    const empty = await run(lake, [{ name: 'people', checks: { minRows: 10 } }], {});
    expect(empty.tables[0].error).toMatch(/^CheckFailedError: public\.people: check failed, nothing published: minRows: the run exported 3 rows, at least 10 required$/);
    console.log('[checks] notNull, unique and minRows failures each failed the table; watermark and files unchanged');
    lake.remove();
  });

  it('8. rows with a NULL cursor are counted and reported with their keys, not silently skipped', async () => {
    await db.query(`CREATE TABLE sloppy (id int PRIMARY KEY, updated_at timestamptz);
      INSERT INTO sloppy VALUES (1, '2024-01-01'), (2, NULL), (3, '2024-01-02'), (4, NULL)`);
    const lake = createLake();
    const events: [string, Record<string, unknown> | undefined][] = [];
    const deps = { ...exportDeps(db, lake.store, testConfig([{ name: 'sloppy' }])), log: (m: string, f?: Record<string, unknown>) => { events.push([m, f]); } };
    const outcome = await runExport(deps);
    await deps.close();
    expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 2, nullCursorRows: 2 });
    expect(events).toContainEqual(['rows with a NULL or infinity cursor are not exported', { table: 'public.sloppy', cursor: 'updated_at', rows: 2, sampleKeys: ['2', '4'] }]);
    lake.remove();
  });
});
