// Scenarios 1–3: a process killed at every protocol boundary, retried Lambda inputs, and two
// executions at once. Each ends with the lake checks (lake-checks.ts).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { TableState, type Watermark } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, exportDeps, faultyStore, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { checkLake } from './lake-checks.ts';

const CRASH_POINTS = ['mid-copy', 'mid-page-upload', 'mid-file', 'between-parts', 'before-complete', 'before-journal', 'before-publish', 'mid-publish', 'before-watermark', 'after-watermark', 'mid-cleanup', 'after-commit'];
const CHILD = path.resolve(import.meta.dirname, 'crash-child.ts');
const execute = promisify(execFile);

const db = fileDatabase();

/** 3,000 rows over 5 days, 600 a day: every 1,000-row page spans two or three days (files). */
async function createTable(name: string): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
    INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 600) * interval '1 day' + (g % 7) * interval '1 second'
    FROM generate_series(1, 3000) g`);
}

async function changeRows(name: string): Promise<void> {
  await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 10 = 0`);
  await db.query(`INSERT INTO ${name} SELECT g, 'v1-' || g, clock_timestamp() FROM generate_series(3001, 3400) g`);
}

// Tables named snapshot_* are exported in snapshot mode (whole table, replaced each run).
const tables = (name: string) => [name.startsWith('snapshot_') ? { name, mode: 'snapshot' } : { name }];

async function crashRun(lake: TestLake, name: string, point: string, request: object): Promise<void> {
  // Row groups of 400 rows: each 1,000-row page flushes some, so a file is streamed in several parts.
  const config = { lake: { rowGroupRows: 400 }, export: { pageRows: 1000, safetyLagSeconds: 0 }, tables: tables(name) };
  const result = await execute(process.execPath, [CHILD, db.url, lake.url, JSON.stringify(config), point, JSON.stringify(request)]).then(
    (r) => ({ killed: false, stdout: r.stdout }),
    (e: { signal?: string; stdout: string; stderr: string }) => ({ killed: e.signal === 'SIGKILL', stdout: `${e.stdout}${e.stderr}` }),
  );
  expect(result, `the child died at ${point}`).toEqual({ killed: true, stdout: '' });
}

async function normalRun(lake: TestLake, name: string, request: object = {}) {
  const deps = exportDeps(db, lake.store, testConfig(tables(name)));
  try {
    const outcome = await runExport(deps, request);
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
    return outcome.tables[0];
  } finally {
    await deps.close();
  }
}

describe('1. crash at every step, then run again', () => {
  it.each(CRASH_POINTS)('killed %s: a scheduled run and a console re-run converge', async (point) => {
    const name = `crash_${point.replaceAll('-', '_')}`;
    await createTable(name);
    const lake = createLake();
    // The first, scheduled run dies; the killed process still holds the table's lease, so
    // the recovery run takes it over as an operator would ({"takeOver": true}).
    await crashRun(lake, name, point, {});
    await normalRun(lake, name, { takeOver: true });
    await checkLake(db, lake, name, `${point}: scheduled run after the crash`);

    // Then a console re-run of everything dies at the same step; a window re-run recovers.
    await changeRows(name);
    await crashRun(lake, name, point, { full: true });
    await normalRun(lake, name, { takeOver: true, window: { from: '2024-01-01', to: '2100-01-01' } });
    await normalRun(lake, name);
    await checkLake(db, lake, name, `${point}: console re-run after the crash`);
    lake.remove();
  });
});

describe('1a. crash while a re-run removes the pages it replaced', () => {
  it.each([{ full: true }, { window: { from: '2024-01-01', to: '2100-01-01' } }])('killed mid-replace in %j: the next run removes every replaced file', async (request) => {
    const name = `crash_mid_replace_${'full' in request ? 'full' : 'window'}`;
    await createTable(name);
    const lake = createLake();
    await normalRun(lake, name);
    await changeRows(name);
    await normalRun(lake, name);
    // The re-run commits, rewrites the earlier manifests, and dies deleting their replaced files:
    // without a journal of what it replaces, those files stay visible, listed by no manifest.
    await crashRun(lake, name, 'mid-replace', request);
    await normalRun(lake, name, { takeOver: true });
    await checkLake(db, lake, name, `mid-replace ${JSON.stringify(request)}`);
    lake.remove();
  });
});

describe('1b. crash at every step of a snapshot table', () => {
  it.each(['mid-page-upload', 'mid-file', 'before-journal', 'mid-publish', 'before-watermark', 'after-watermark', 'mid-cleanup'])('killed %s: the next run shows one whole snapshot', async (point) => {
    const name = `snapshot_${point.replaceAll('-', '_')}`;
    await createTable(name);
    const lake = createLake();
    await normalRun(lake, name);
    await changeRows(name);
    await crashRun(lake, name, point, {});
    await normalRun(lake, name, { takeOver: true });
    const report = await checkLake(db, lake, name, `snapshot, ${point}`);
    expect(report.lakeRows).toBe(3400); // exactly the table: one snapshot, no leftovers of the others
    lake.remove();
  });
});

describe('2. retries', () => {
  it('the same Export input delivered twice keeps the first delivery\'s page and goes on after it', async () => {
    await createTable('retried');
    const lake = createLake();
    const deps = exportDeps(db, lake.store, testConfig(tables('retried')));
    const plan = await planRun(deps);
    const [task] = plan.tables;
    const budget = Date.now() - 1; // one page per invocation
    const first = await exportTable(deps, task, budget);
    const staged = async () => Promise.all((await lake.store.list(new TableState(lake.store, 'raw', 'retried').pendingPrefix())).map(async (k) => [k, (await lake.store.get(k))!.etag] as const));
    const before = await staged();
    expect(first.page).toBe(1);
    expect(before.length).toBeGreaterThan(1); // the page's journal and its staged files
    const again = await exportTable(deps, task, budget); // Step Functions retried after a timeout
    // A page journal is written once: the retry follows page 1's journal and writes page 2,
    // leaving page 1's journal and files as they were.
    expect(again.page).toBe(2);
    const after = new Map(await staged());
    for (const [key, etag] of before) expect(after.get(key), key).toBe(etag);
    let current = again;
    while (!current.done) current = await exportTable(deps, current);
    await commitTable(deps, current);
    await deps.close();
    const report = await checkLake(db, lake, 'retried', 'retried export input');
    expect(report.lakeRows).toBe(3000);
    lake.remove();
  });
});

describe('3. overlapping executions', () => {
  it('one run exports, the other skips the table with a message; the watermark never moves back', async () => {
    await createTable('overlap');
    const lake = createLake();
    // Run a journals its first chunk only once run b has finished: whichever plans first holds the
    // lease while the other plans (on a loaded machine, a could otherwise finish before b began,
    // and b would rightly succeed with nothing to export).
    let bFinished = () => {};
    const bDone = new Promise<void>((resolve) => { bFinished = resolve; });
    const gated = faultyStore(lake.store, {
      put: async (key, body, options) => {
        if (/\/pending\/[^/]+\/p\d{6}\.json$/.test(key)) await bDone;
        return lake.store.put(key, body, options);
      },
    });
    const a = exportDeps(db, gated, testConfig(tables('overlap')));
    const b = exportDeps(db, lake.store, testConfig(tables('overlap')));
    const [ra, rb] = await Promise.all([runExport(a, { runId: 'run-a' }), runExport(b, { runId: 'run-b' }).finally(bFinished)]);
    const statuses = [ra.tables[0].status, rb.tables[0].status].sort();
    expect(statuses).toEqual(['skipped', 'succeeded']);
    const skipped = [ra, rb].find((r) => r.tables[0].status === 'skipped')!;
    expect(skipped.tables[0].error).toMatch(/^public\.overlap: skipped, run run-[ab] holds its lease until \S+ \(if that run is dead, re-run with --take-over, or \{"takeOver": true\} in the console\)$/);
    const state = new TableState(lake.store, 'raw', 'overlap');
    const first = (await state.watermark()) as Watermark;
    await changeRows('overlap');
    await Promise.all([runExport(a), runExport(b)]);
    const second = (await state.watermark()) as Watermark;
    expect(second.cursor > first.cursor).toBe(true);
    await a.close();
    await b.close();
    console.log(`[overlap] checked: one of two simultaneous runs skipped with "${skipped.tables[0].error}"; watermark ${first.cursor} → ${second.cursor}`);
    await checkLake(db, lake, 'overlap', 'overlapping executions');
    lake.remove();
  });
});

describe('3b. a lease taken over mid-export', () => {
  it('the run stops at its next renewal, writes nothing more, and its pages are never published', async () => {
    await createTable('stolen');
    const lake = createLake();
    const deps = exportDeps(db, lake.store, testConfig(tables('stolen')));
    const state = new TableState(lake.store, 'raw', 'stolen');
    const [task] = (await planRun(deps)).tables;
    // After page 1 is in the chunk's file, 100 s pass (more than a quarter of the 300 s lease)
    // and an operator's re-run takes the lease over.
    const now = Date.now;
    // A lease read after the takeover began waits for it (the log callback cannot await).
    let takeover: Promise<unknown> | null = null;
    const get = lake.store.get.bind(lake.store);
    lake.store.get = async (key) => {
      if (takeover && key === state.leaseKey()) await takeover;
      return get(key);
    };
    const log = (message: string, fields?: Record<string, unknown>) => {
      if (message === 'page exported' && fields?.page === 1) {
        Date.now = () => now() + 100_000;
        takeover = state.write(state.leaseKey(), { runId: 'operator-rerun', expiresAt: new Date(Date.now() + 60_000).toISOString() });
      }
    };
    try {
      await expect(exportTable({ ...deps, log }, task)).rejects.toThrow(/^public\.stolen: run \S+ no longer holds the table's lease \(held by operator-rerun\); stopping without writing$/);
    } finally {
      Date.now = now;
      lake.store.get = get;
    }
    // Nothing journalled: the renewal before page 2 found the lease gone, and the chunk's
    // unfinished file was dropped.
    expect(await state.pendingPages(task.runId)).toEqual([]);
    expect((await lake.store.list(state.pendingPrefix(task.runId))).filter((k) => k.endsWith('.parquet'))).toEqual([]);
    await expect(commitTable(deps, { ...task, done: true, page: 1, rows: 1000 })).rejects.toThrow(/no longer holds the table's lease/);
    expect(await lake.store.list('raw/stolen/')).toEqual([]);
    await deps.close();
    lake.remove();
  });
});

describe('2b. a commit delivered twice', () => {
  it('the repeated Commit input reports success and changes nothing', async () => {
    await createTable('recommitted');
    const lake = createLake();
    const deps = exportDeps(db, lake.store, testConfig(tables('recommitted')));
    const [task] = (await planRun(deps)).tables;
    let current = task;
    while (!current.done) current = await exportTable(deps, current);
    const first = await commitTable(deps, current);
    const files = await lake.store.list('raw/recommitted/');
    const again = await commitTable(deps, current); // Step Functions retried: the first answer was lost
    await deps.close();
    expect(again).toEqual(first);
    expect(await lake.store.list('raw/recommitted/')).toEqual(files);
    await checkLake(db, lake, 'recommitted', 'commit delivered twice');
    lake.remove();
  });
});

describe('4. partitions out of cursor order (partitionBy another column)', () => {
  it('a partition that comes back within a chunk gets another file of its own; every version once, also after a kill', async () => {
    // created_at alternates between two days page by page (1,000-row pages), so each day's file
    // is finished when a page goes by without it and the day comes back in the next page.
    await db.query(`CREATE TABLE alternating (id int PRIMARY KEY, payload text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
      INSERT INTO alternating SELECT g, 'v1-' || g, timestamptz '2024-03-01 12:00:00+00' + (((g - 1) / 1000) % 2) * interval '1 day', timestamptz '2024-03-05 00:00:00+00' + g * interval '1 second'
      FROM generate_series(1, 4000) g`);
    const lake = createLake();
    const config = { export: { pageRows: 1000, safetyLagSeconds: 0 }, tables: [{ name: 'alternating', partitionBy: 'created_at' }] };
    const killed = await execute(process.execPath, [CHILD, db.url, lake.url, JSON.stringify(config), 'before-journal', '{}']).then(() => false, (e: { signal?: string }) => e.signal === 'SIGKILL');
    expect(killed, 'the child died before journalling its chunk').toBe(true);
    const deps = exportDeps(db, lake.store, testConfig(config.tables));
    try {
      const outcome = await runExport(deps, { takeOver: true });
      expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 4000, files: 4 });
    } finally {
      await deps.close();
    }
    const files = (await lake.store.list('raw/alternating/')).map((k) => k.replace(/^.*\/(day=\d+)\/\S+?-(p\d+(?:-\d)?)\.parquet$/, '$1 $2'));
    expect(files).toEqual(['day=01 p000001-2', 'day=01 p000001', 'day=02 p000001-2', 'day=02 p000001']); // listed sorted: '-' before '.'
    const report = await checkLake(db, lake, 'alternating', 'partitions out of cursor order');
    expect(report.lakeRows).toBe(4000);
    lake.remove();
  });
});

describe('5. files roll over at lake.targetFileMB', () => {
  it('a partition bigger than the target gets one file per chunk, each at least the target; killed between two chunks\' journals, the takeover converges', async () => {
    // 40,000 rows of incompressible text in one day: ~2.6 MB of Parquet, against a 1 MB target.
    await db.query(`CREATE TABLE rolling (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO rolling SELECT g, md5(g::text) || md5((g * 7)::text), timestamptz '2024-03-01 00:00:00+00' + g * interval '1 second'
      FROM generate_series(1, 40000) g`);
    const lake = createLake();
    const config = { lake: { targetFileMB: 1, rowGroupRows: 5000 }, export: { pageRows: 1000, safetyLagSeconds: 0 }, tables: [{ name: 'rolling' }] };
    // Dies writing the second chunk's journal: the first chunk is journalled, the second staged.
    const killed = await execute(process.execPath, [CHILD, db.url, lake.url, JSON.stringify(config), 'before-second-journal', '{}']).then(() => false, (e: { signal?: string }) => e.signal === 'SIGKILL');
    expect(killed, 'the child died before journalling its second chunk').toBe(true);
    const deps = exportDeps(db, lake.store, testConfig(config.tables, { lake: config.lake }));
    try {
      const outcome = await runExport(deps, { takeOver: true });
      expect(outcome.tables[0]).toMatchObject({ status: 'succeeded', rows: 40000 });
    } finally {
      await deps.close();
    }
    const files = (await lake.store.list('raw/rolling/')).filter((k) => k.endsWith('.parquet'));
    expect(files.length).toBeGreaterThanOrEqual(2);
    const sizes = await Promise.all(files.map(async (f) => (await lake.store.get(f))!.body.length));
    // Every file but the last of the run reached the target before it rolled over.
    expect(sizes.filter((n) => n >= 1048576).length).toBeGreaterThanOrEqual(files.length - 1);
    const report = await checkLake(db, lake, 'rolling', 'files rolling over at the target');
    expect(report.lakeRows).toBe(40000);
    lake.remove();
  });
});
