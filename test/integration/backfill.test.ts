// Backfill (issue 14) on real parts: a first load split into key-range segments exported at once
// (as the Distributed Map's children would), writers running during it, a segment resumed from
// its journal, and a Commit that resumes across invocations. DuckDB reads the lake back.
import { describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { commitTable, commitTableStep } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { parseExportInput, planSegments, readSegments, segmentTask, SEGMENT_PAGE_STRIDE } from '../../lambdas/core/protocol/segments.ts';
import { TableState, type PageEntry, type RunManifest } from '../../lambdas/core/protocol/table-state.ts';
import type { ExportDeps, TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { describeTableShape } from '../../lambdas/core/source/table-shape.ts';
import { selectTables, type LakeConfig } from '../../lambdas/core/config.ts';
import { abandonRun } from '../../lambdas/core/protocol/recovery.ts';
import type { Lease } from '../../lambdas/core/protocol/table-state.ts';
import { checkLake } from '../faults/lake-checks.ts';
import { createLake, duckdb, exportDeps, parquetGlob, testConfig, type TestLake } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';

const db = fileDatabase();

/** What the Distributed Map does: one child per segment, each with its own connection, all at once. */
async function exportSegmentsAtOnce(lake: TestLake, config: LakeConfig, task: TableTask): Promise<TableTask[]> {
  const state = new TableState(lake.store, config.lake.prefix, task.table);
  const segments = await readSegments(state, task);
  return Promise.all(segments.map(async (segment) => {
    const deps = exportDeps(db, lake.store, config);
    try {
      return await exportTable(deps, segmentTask(task, segment));
    } finally {
      await deps.close();
    }
  }));
}

/** Plan, export (segments at once when it is a backfill), commit: one table, one run. */
async function runOnce(lake: TestLake, config: LakeConfig, during?: () => Promise<void>): Promise<{ task: TableTask; rows: number }> {
  const deps = exportDeps(db, lake.store, config);
  try {
    const plan = await planRun(deps);
    expect(plan.failed).toEqual([]);
    let [task] = plan.tables;
    if (task.backfill) await Promise.all([exportSegmentsAtOnce(lake, config, task), during?.()]);
    while (!task.done) task = await exportTable(deps, task);
    const result = await commitTable(deps, task);
    return { task, rows: result.rows };
  } finally {
    await deps.close();
  }
}

describe('backfill segments', () => {
  it('splits a first load into 4 key ranges whose pages never share a number, and lands every row once', async () => {
    await db.query(`CREATE TABLE bf_lines (order_id int, line_no int, updated_at timestamptz NOT NULL, v text, PRIMARY KEY (order_id, line_no));
      INSERT INTO bf_lines SELECT o, l, timestamptz '2024-03-01 00:00:00+00' + (o % 7) * interval '1 day', 'v' || o || '-' || l FROM generate_series(1, 400) o, generate_series(1, 30) l`);
    const lake = createLake();
    const config = testConfig([{ name: 'bf_lines', backfill: { segments: 4 } }]);
    const { task, rows } = await runOnce(lake, config);
    expect(task.backfill).toMatchObject({ segments: 4 });
    expect(rows).toBe(12_000);
    const [stats] = await duckdb<{ n: string; keys: string }>(`SELECT count(*) AS n, count(DISTINCT (order_id, line_no)) AS keys FROM read_parquet(${parquetGlob(lake, 'bf_lines')})`);
    expect(stats).toEqual({ n: '12000', keys: '12000' });
    const state = new TableState(lake.store, 'raw', 'bf_lines');
    const manifest = (await state.read<RunManifest>(state.manifestKey(task.runId)))!.value;
    // Every segment exported pages, numbered in its own range.
    const segmentsSeen = new Set(manifest.pages.map((p) => Math.floor(p.page / SEGMENT_PAGE_STRIDE)));
    expect([...segmentsSeen].sort()).toEqual([0, 1, 2, 3]);
    expect(manifest.pages.reduce((n, p) => n + p.rows, 0)).toBe(12_000);
    // Nothing pending: the segment list and journals went with the run's tidying.
    expect(await lake.store.list(state.pendingPrefix())).toEqual([]);
    lake.remove();
  });

  it('cuts on the cursor histogram after ANALYZE, and on sampled full keys when the rows share one cursor', async () => {
    await db.query(`CREATE TABLE bf_spread (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO bf_spread SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 20000) g;
      ANALYZE bf_spread;
      CREATE TABLE bf_flat (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO bf_flat SELECT g, timestamptz '2024-01-01 00:00:00+00' FROM generate_series(1, 20000) g;
      ANALYZE bf_flat`);
    const config = testConfig([{ name: 'bf_spread' }, { name: 'bf_flat' }]);
    const deps = exportDeps(db, createLake().store, config);
    try {
      const window = { from: null, fromInclusive: false, to: '2030-01-01 00:00:00.000000+00' };
      const [spreadTable, flatTable] = selectTables(config);
      const spread = await planSegments(deps, await describeTableShape(deps.source, spreadTable, config), window, 4);
      expect(spread.map((s) => s.from?.length ?? null)).toEqual([null, 1, 1, 1]);
      const flat = await planSegments(deps, await describeTableShape(deps.source, flatTable, config), window, 4);
      // One cursor value: the cuts are (cursor, id) pairs, near ids 5,000 / 10,000 / 15,000.
      expect(flat.map((s) => s.from?.length ?? null)).toEqual([null, 2, 2, 2]);
      const ids = flat.slice(1).map((s) => Number(s.from![1]));
      ids.forEach((id, i) => expect(Math.abs(id - 5000 * (i + 1))).toBeLessThan(2500));
      // Each range ends where the next begins: together they cover the keyset once.
      flat.slice(0, -1).forEach((s, i) => expect(s.to).toEqual(flat[i + 1].from));
    } finally {
      await deps.close();
    }
  });

  it('splits a partitioned table on its inherited histogram and lands every row once', async () => {
    await db.query(`CREATE TABLE bf_parted (id int, updated_at timestamptz NOT NULL, PRIMARY KEY (id, updated_at)) PARTITION BY RANGE (updated_at);
      CREATE TABLE bf_parted_2024 PARTITION OF bf_parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
      CREATE TABLE bf_parted_2025 PARTITION OF bf_parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      INSERT INTO bf_parted SELECT g, timestamptz '2024-09-01 00:00:00+00' + g * interval '30 minutes' FROM generate_series(1, 9000) g;
      ANALYZE bf_parted`);
    const lake = createLake();
    const config = testConfig([{ name: 'bf_parted', backfill: { segments: 3 } }]);
    const deps = exportDeps(db, lake.store, config);
    try {
      const [table] = selectTables(config);
      const window = { from: null, fromInclusive: false, to: '2030-01-01 00:00:00.000000+00' };
      const segments = await planSegments(deps, await describeTableShape(deps.source, table, config), window, 3);
      expect(segments.map((s) => s.from?.length ?? null)).toEqual([null, 1, 1]);
    } finally {
      await deps.close();
    }
    const { task, rows } = await runOnce(lake, config);
    expect(task.backfill).toMatchObject({ segments: 3 });
    expect(rows).toBe(9000);
    const [stats] = await duckdb<{ n: string; ids: string }>(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet(${parquetGlob(lake, 'bf_parted')})`);
    expect(stats).toEqual({ n: '9000', ids: '9000' });
    lake.remove();
  });

  it('with tables[].backfill.concurrency 2, deals 4 segments into 2 lanes whose children export them in turn', async () => {
    await db.query(`CREATE TABLE bf_lanes (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO bf_lanes SELECT g, timestamptz '2024-10-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 8000) g`);
    const lake = createLake();
    const config = testConfig([{ name: 'bf_lanes', backfill: { segments: 4, concurrency: 2 } }]);
    const deps = exportDeps(db, lake.store, config);
    try {
      let [task] = (await planRun(deps)).tables;
      expect(task.backfill).toMatchObject({ segments: 4, items: expect.stringMatching(/\/lanes\.jsonl$/) });
      // The map's items: two lanes, segments 0 and 2, 1 and 3.
      const lanes = (await lake.store.get(task.backfill!.items))!.body.toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { lane: number; segments: { index: number }[] });
      expect(lanes.map((l) => l.segments.map((s) => s.index))).toEqual([[0, 2], [1, 3]]);
      const children = await Promise.all(lanes.map(async (lane) => {
        const own = exportDeps(db, lake.store, config);
        try {
          // One page per invocation, as a child whose budget runs out: the loop goes through both segments.
          let child = parseExportInput({ task, segment: lane });
          const seen = new Set<number>();
          while (!child.done) {
            child = await exportTable(own, child, Date.now());
            seen.add(child.segment!.index);
          }
          return { last: child.segment!.index, seen: [...seen].sort() };
        } finally {
          await own.close();
        }
      }));
      expect(children).toEqual([{ last: 2, seen: [0, 2] }, { last: 3, seen: [1, 3] }]);
      while (!task.done) task = await exportTable(deps, task);
      expect((await commitTable(deps, task)).rows).toBe(8000);
    } finally {
      await deps.close();
    }
    const [stats] = await duckdb<{ n: string; ids: string }>(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet(${parquetGlob(lake, 'bf_lanes')})`);
    expect(stats).toEqual({ n: '8000', ids: '8000' });
    lake.remove();
  });

  it('exports CTID block ranges when asked (by: ctid)', async () => {
    await db.query(`CREATE TABLE bf_heap (id int PRIMARY KEY, updated_at timestamptz NOT NULL, pad text);
      INSERT INTO bf_heap SELECT g, timestamptz '2024-02-01 00:00:00+00' + g * interval '1 second', repeat('x', 200) FROM generate_series(1, 6000) g`);
    const lake = createLake();
    const config = testConfig([{ name: 'bf_heap', backfill: { segments: 3, by: 'ctid' } }]);
    const { task, rows } = await runOnce(lake, config);
    expect(task.backfill).toMatchObject({ segments: 3 });
    expect(rows).toBe(6000);
    const [stats] = await duckdb<{ n: string; ids: string }>(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet(${parquetGlob(lake, 'bf_heap')})`);
    expect(stats).toEqual({ n: '6000', ids: '6000' });
    lake.remove();
  });

  it('resumes a segment from its journal when the item is delivered again, and skips a finished one', async () => {
    await db.query(`CREATE TABLE bf_resume (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO bf_resume SELECT g, timestamptz '2024-04-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 8000) g`);
    const lake = createLake();
    const config = testConfig([{ name: 'bf_resume', backfill: { segments: 2 } }]);
    const deps = exportDeps(db, lake.store, config);
    try {
      const [task] = (await planRun(deps)).tables;
      const [first] = await readSegments(new TableState(lake.store, 'raw', 'bf_resume'), task);
      // A budget already spent: one page, then the invocation returns (or dies after its journal).
      const once = await exportTable(deps, segmentTask(task, first), Date.now());
      expect(once).toMatchObject({ done: false, page: 1, rows: 1000 });
      // The same item again (a redriven Map Run, a retried child): it goes on from page 1, not from the start.
      const again = await exportTable(deps, segmentTask(task, first), Date.now());
      expect(again).toMatchObject({ done: false, page: 2, rows: 2000 });
      const finished = await exportTable(deps, segmentTask(task, first));
      expect(finished.done).toBe(true);
      const redelivered = await exportTable(deps, segmentTask(task, first), Date.now());
      expect(redelivered).toEqual(finished);
      let rest = task;
      while (!rest.done) rest = await exportTable(deps, rest);
      expect((await commitTable(deps, rest)).rows).toBe(8000);
    } finally {
      await deps.close();
    }
    const [stats] = await duckdb<{ n: string; ids: string }>(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet(${parquetGlob(lake, 'bf_resume')})`);
    expect(stats).toEqual({ n: '8000', ids: '8000' });
    lake.remove();
  });

  it('loses and duplicates nothing while writers insert and update during a 4-segment backfill and the next incremental run', async () => {
    await db.query(`CREATE TABLE bf_live (id int PRIMARY KEY, v int NOT NULL, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
      INSERT INTO bf_live SELECT g, 0, timestamptz '2024-06-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 20000) g`);
    const lake = createLake();
    const config = testConfig([{ name: 'bf_live', backfill: { segments: 4 } }], { export: { pageRows: 500, safetyLagSeconds: 0 } });
    const writer = await db.connect();
    let writing = true;
    let writes = 0;
    // Writers: new rows, and updates of random old ones (each moves the row's cursor to now()).
    const write = async () => {
      let next = 100_000;
      while (writing) {
        await writer.query(`INSERT INTO bf_live (id, v, updated_at) VALUES ($1, 1, now())`, [next++]);
        await writer.query(`UPDATE bf_live SET v = v + 1, updated_at = now() WHERE id = $1`, [1 + Math.floor(Math.random() * 20000)]);
        writes++;
      }
    };
    let running: Promise<void> | null = null;
    const first = await runOnce(lake, config, async () => {
      running = write();
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
    writing = false;
    await running;
    await writer.end();
    expect(first.task.backfill).toMatchObject({ segments: 4 });
    expect(writes).toBeGreaterThan(0);
    // The watermark is the backfill's window end: the next, incremental run picks up the rest.
    const second = await runOnce(lake, config);
    expect(second.task.backfill).toBeUndefined();
    expect(second.task.window.from).toBe(first.task.window.to);
    const expected = await db.query(`SELECT id::text AS id, v::text AS v, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS at FROM bf_live ORDER BY id`);
    const query = await LakeQuery.open(config, lake.store);
    try {
      const current = await query.query(`SELECT CAST(id AS VARCHAR) AS id, CAST(v AS VARCHAR) AS v, strftime(updated_at, '%Y-%m-%d %H:%M:%S.%f') AS at FROM bf_live_current ORDER BY id`);
      expect(current.length).toBe(expected.length);
      expect(current).toEqual(expected);
      const [dup] = await query.query(`SELECT count(*) AS n FROM (SELECT id, updated_at FROM bf_live GROUP BY ALL HAVING count(*) > 1)`);
      expect(Number(dup.n)).toBe(0);
    } finally {
      query.close();
    }
    lake.remove();
  }, 120_000);
});

describe('a full re-run as a backfill', () => {
  it('exports the segments, then carries the replaced pages\' history above them: every version once', async () => {
    await db.query(`CREATE TABLE bf_full (id int PRIMARY KEY, v int NOT NULL, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
      INSERT INTO bf_full SELECT g, 0, timestamptz '2024-08-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 6000) g`);
    const lake = createLake();
    const config = testConfig([{ name: 'bf_full', backfill: { segments: 3 } }]);
    await runOnce(lake, config);
    // New versions of 100 rows: their old versions are history Postgres no longer holds.
    await db.query(`UPDATE bf_full SET v = 1, updated_at = clock_timestamp() WHERE id % 60 = 0`);
    await runOnce(lake, config);
    const deps = exportDeps(db, lake.store, config);
    let task: TableTask;
    try {
      [task] = (await planRun(deps, { full: true })).tables;
      expect(task).toMatchObject({ kind: 'full', backfill: { segments: 3 } });
      await exportSegmentsAtOnce(lake, config, task);
      while (!task.done) task = await exportTable(deps, task);
      expect(task.carried).toBeGreaterThan(0);
      expect(task.page).toBeGreaterThan(3 * SEGMENT_PAGE_STRIDE);
      expect((await commitTable(deps, task)).rows).toBe(6000);
    } finally {
      await deps.close();
    }
    const [all] = await duckdb<{ n: string; versions: string; ids: string }>(`SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions, count(DISTINCT id) AS ids FROM read_parquet(${parquetGlob(lake, 'bf_full')})`);
    // 6,000 rows and the 100 old versions they replaced, each once.
    expect(all).toEqual({ n: '6100', versions: '6100', ids: '6000' });
    const [fresh] = await duckdb<{ n: string }>(`SELECT count(*) AS n FROM read_parquet(${parquetGlob(lake, 'bf_full')}) WHERE _lake_run_id = '${task.runId}'`);
    // Rows Postgres holds are this run's; the history keeps the run that first exported it.
    expect(fresh.n).toBe('6000');
    lake.remove();
  });
});

describe('a Commit that resumes across invocations', () => {
  it('reads journals into index objects and publishes files across invocations, then commits once', async () => {
    await db.query(`CREATE TABLE cm_steps (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO cm_steps SELECT g, timestamptz '2024-07-01 00:00:00+00' + g * interval '1 hour' FROM generate_series(1, 1200) g`);
    const lake = createLake();
    const config = testConfig([{ name: 'cm_steps' }], { export: { pageRows: 100, safetyLagSeconds: 0 } });
    const deps: ExportDeps & { close(): Promise<void> } = exportDeps(db, lake.store, config);
    try {
      let [task] = (await planRun(deps)).tables;
      while (!task.done) task = await exportTable(deps, task);
      expect(task.files).toBeGreaterThan(12);
      const state = new TableState(lake.store, 'raw', 'cm_steps');
      // Every invocation's budget already spent: each does its least (one file) and returns its progress.
      let steps = 0;
      let step: Awaited<ReturnType<typeof commitTableStep>> = task;
      const seen: number[] = [];
      while (!('status' in step)) {
        step = await commitTableStep(deps, step, Date.now() - 1);
        steps++;
        if (!('status' in step)) {
          seen.push(step.commit!.published);
          // Not committed yet: the watermark has not moved.
          expect(await state.watermark()).toBeNull();
        }
      }
      expect(steps).toBe(task.files);
      expect(seen).toEqual(Array.from({ length: task.files - 1 }, (_, i) => i + 1));
      expect(step).toMatchObject({ status: 'succeeded', rows: 1200 });
      expect((await state.watermark())?.runId).toBe(task.runId);
      expect(await lake.store.list(state.pendingPrefix())).toEqual([]);
    } finally {
      await deps.close();
    }
    const [stats] = await duckdb<{ n: string; ids: string }>(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet(${parquetGlob(lake, 'cm_steps')})`);
    expect(stats).toEqual({ n: '1200', ids: '1200' });
    lake.remove();
  });
});

/** Deps whose source counts its COPY queries (each is one page read). */
function counting(deps: ExportDeps & { close(): Promise<void> }): ExportDeps & { close(): Promise<void>; copies: () => number } {
  let copies = 0;
  const source = deps.source;
  return {
    ...deps,
    source: { ...source, describeTable: (t) => source.describeTable(t), readClock: (l) => source.readClock(l), queryText: (q, p) => source.queryText(q, p), close: () => source.close(), copyBinary: (select, reuse) => { copies++; return source.copyBinary(select, reuse); } },
    copies: () => copies,
  };
}

/** Run ids as executions give them (sorted by start). */
const R1 = '20260101T000000Z-aaaaaaa1';
const R2 = '20260101T010000Z-aaaaaaa2';
const R3 = '20260101T020000Z-aaaaaaa3';

/** The page journals a run has so far. */
async function journals(lake: TestLake, table: string, runId: string): Promise<PageEntry[]> {
  return new TableState(lake.store, 'raw', table).pendingPages(runId);
}

/** Every segment's child at once (the map), each with its own counted connection; then gather and commit. */
async function finishRun(lake: TestLake, config: LakeConfig, task: TableTask): Promise<{ copies: number[]; rows: number }> {
  const state = new TableState(lake.store, config.lake.prefix, task.table);
  const segments = await readSegments(state, task);
  const copies = await Promise.all(segments.map(async (segment) => {
    const own = counting(exportDeps(db, lake.store, config));
    try {
      expect((await exportTable(own, segmentTask(task, segment))).done).toBe(true);
      return own.copies();
    } finally {
      await own.close();
    }
  }));
  const deps = exportDeps(db, lake.store, config);
  try {
    let table = task;
    while (!table.done) table = await exportTable(deps, table);
    return { copies, rows: (await commitTable(deps, table)).rows };
  } finally {
    await deps.close();
  }
}

/** A 2-segment first load whose execution fails after segment 0 finished and segment 1 exported one chunk. */
async function failedBackfill(lake: TestLake, config: LakeConfig, table: string, options: { release: boolean }): Promise<TableTask> {
  const deps = exportDeps(db, lake.store, config);
  try {
    const [task] = (await planRun(deps, { runId: R1 })).tables;
    expect(task.backfill).toMatchObject({ segments: 2 });
    const segments = await readSegments(new TableState(lake.store, 'raw', table), task);
    expect((await exportTable(deps, segmentTask(task, segments[0]))).done).toBe(true);
    expect((await exportTable(deps, segmentTask(task, segments[1]), Date.now())).done).toBe(false);
    // The failure path (Summarize, or the CLI) releases the lease; an execution that died does not.
    if (options.release) await abandonRun(deps, table, task.runId);
    return task;
  } finally {
    await deps.close();
  }
}

describe('a new run continues a failed backfill', () => {
  it('exports only the unfinished segments, as the same run, and commits it once: every row once', async () => {
    await db.query(`CREATE TABLE bf_adopt (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO bf_adopt SELECT g, 'p' || g, timestamptz '2024-09-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 8000) g`);
    const lake = createLake();
    // A chunk (one journal) per page: 500-row row groups.
    const config = testConfig([{ name: 'bf_adopt', backfill: { segments: 4 } }], { export: { pageRows: 500, safetyLagSeconds: 0 }, lake: { rowGroupRows: 500 } });
    const state = new TableState(lake.store, 'raw', 'bf_adopt');
    const logs: { message: string; fields?: Record<string, unknown> }[] = [];
    const deps = { ...exportDeps(db, lake.store, config), log: (message: string, fields?: Record<string, unknown>) => logs.push({ message, fields }) };
    let first: TableTask;
    try {
      [first] = (await planRun(deps, { runId: R1 })).tables;
      const segments = await readSegments(state, first);
      // Segments 0 and 1 finish, segment 2 exports one chunk, then the execution fails.
      for (const segment of segments.slice(0, 2)) expect((await exportTable(deps, segmentTask(first, segment))).done).toBe(true);
      expect((await exportTable(deps, segmentTask(first, segments[2]), Date.now())).page).toBe(2 * SEGMENT_PAGE_STRIDE + 1);
      await abandonRun(deps, 'bf_adopt', first.runId);
    } finally {
      await deps.close();
    }
    // Kept staged, invisible: no data file published, no lease, the run's journals still there.
    expect(await state.read(state.leaseKey())).toBeNull();
    expect((await lake.store.list('raw/bf_adopt/')).filter((k) => k.endsWith('.parquet'))).toEqual([]);
    const before = await journals(lake, 'bf_adopt', first.runId);
    const segmentOf = (p: PageEntry) => Math.floor(p.page / SEGMENT_PAGE_STRIDE);
    expect(new Set(before.map(segmentOf))).toEqual(new Set([0, 1, 2]));
    expect(before.filter((p) => segmentOf(p) === 2)).toHaveLength(1);
    // A new execution (its own run id) continues the same run: same id, window, segments.
    const planner = { ...counting(exportDeps(db, lake.store, config)), log: deps.log };
    let adopted: TableTask;
    try {
      const plan = await planRun(planner, { runId: R2 });
      expect(plan.skipped).toEqual([]);
      [adopted] = plan.tables;
    } finally {
      await planner.close();
    }
    expect(adopted).toMatchObject(first);
    expect(logs.map((l) => l.message)).toContain('continuing a failed backfill: only its unfinished segments are exported');
    expect(((await state.read<Lease>(state.leaseKey()))!.value).runId).toBe(first.runId);
    const { copies, rows } = await finishRun(lake, config, adopted);
    // Finished segments read nothing again; segment 2 goes on from its journal; segment 3 from its start.
    expect(copies[0]).toBe(0);
    expect(copies[1]).toBe(0);
    expect(copies[2]).toBeGreaterThan(0);
    expect(copies[3]).toBeGreaterThan(copies[2]);
    expect(rows).toBe(8000);
    // The run's pages: those journalled before it failed, as they were (same files), and segments 2 and 3's others.
    const manifest = (await state.read<RunManifest>(state.manifestKey(first.runId)))!.value;
    expect(manifest.pages.filter((p) => before.some((b) => b.page === p.page))).toEqual(before);
    expect(new Set(manifest.pages.filter((p) => !before.includes(p) && !before.some((b) => b.page === p.page)).map(segmentOf))).toEqual(new Set([2, 3]));
    expect((await state.watermark())?.runId).toBe(first.runId);
    await checkLake(db, lake, 'bf_adopt', 'adopted backfill');
    expect(await lake.store.list(state.pendingPrefix())).toEqual([]);
    lake.remove();
  }, 60_000);

  const refusals: { name: string; why: RegExp; change?: (table: string, lake: TestLake, task: TableTask) => Promise<void>; config?: Record<string, unknown>; table?: Record<string, unknown>; release?: boolean; request?: object }[] = [
    { name: 'its tables[] entry changed (2 segments → 3)', why: /tables\[\] entry/, table: { backfill: { segments: 3 } } },
    { name: 'a column was added to the table', why: /columns/, change: async (table) => { await db.query(`ALTER TABLE ${table} ADD COLUMN extra int`); } },
    { name: 'export.backfillAdoptHours passed', why: /export\.backfillAdoptHours is 0/, config: { backfillAdoptHours: 0 } },
    { name: 'its segment list is missing', why: /segment list .* is missing/, change: async (table, lake, task) => { await lake.store.delete([`raw/_state/${table}/pending/${task.runId}/segments.jsonl`]); } },
    { name: 'its live lease is taken over', why: /taken over/, release: false, request: { takeOver: true } },
    { name: 'its where changed', why: /tables\[\] entry/, table: { where: 'id > 0' } },
    { name: 'its primaryKey was written out', why: /tables\[\] entry/, table: { primaryKey: ['id'] } },
    { name: 'its segment list is partial', why: /holds 1 of 2 segments/, change: async (table, lake, task) => {
      const key = `raw/_state/${table}/pending/${task.runId}/segments.jsonl`;
      const [line] = (await lake.store.get(key))!.body.toString('utf8').split('\n');
      await lake.store.put(key, `${line}\n`);
    } },
  ];
  for (const [i, c] of refusals.entries()) {
    it(`starts over when ${c.name}, saying why`, async () => {
      const table = `bf_refuse_${i}`;
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
        INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-10-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 2000) g`);
      const lake = createLake();
      const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 } });
      const dead = await failedBackfill(lake, config, table, { release: c.release ?? true });
      await c.change?.(table, lake, dead);
      const next = testConfig([{ name: table, backfill: { segments: 2 }, ...c.table }], { export: { pageRows: 250, safetyLagSeconds: 0, ...c.config }, lake: { rowGroupRows: 250 } });
      const logs: { message: string; fields?: Record<string, unknown> }[] = [];
      const deps = { ...exportDeps(db, lake.store, next), log: (message: string, fields?: Record<string, unknown>) => logs.push({ message, fields }) };
      let task: TableTask;
      try {
        [task] = (await planRun(deps, { runId: R2, ...c.request })).tables;
      } finally {
        await deps.close();
      }
      expect(task.runId).toBe(R2);
      const refused = logs.find((l) => l.message.startsWith('a failed backfill cannot be continued'));
      expect(refused?.fields).toMatchObject({ table: `public.${table}`, runId: R1 });
      expect(String(refused?.fields?.why)).toMatch(c.why);
      const state = new TableState(lake.store, 'raw', table);
      expect(await lake.store.list(state.pendingPrefix(R1))).toEqual([]);
      expect((await finishRun(lake, next, task)).rows).toBe(2000);
      await checkLake(db, lake, table, c.name);
      lake.remove();
    }, 60_000);
  }

  it('waits for a dead execution\'s lease to lapse, is adopted again by a retried plan, survives a failed adopter, and a {"full": true} run adopts it too', async () => {
    const table = 'bf_lapse';
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-10-05 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 2000) g`);
    const lake = createLake();
    const config = testConfig([{ name: table, backfill: { segments: 2 } }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 } });
    const state = new TableState(lake.store, 'raw', table);
    // The execution died: nothing released its lease.
    const dead = await failedBackfill(lake, config, table, { release: false });
    let fullAdopter: TableTask;
    const deps = exportDeps(db, lake.store, config);
    try {
      const held = await planRun(deps, { runId: R2 });
      expect(held.tables).toEqual([]);
      expect(held.skipped[0].reason).toMatch(`run ${R1} holds its lease`);
      // The lease lapses (time passes): the next plan adopts the run.
      const lease = (await state.read<Lease>(state.leaseKey()))!;
      await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
      expect((await planRun(deps, { runId: R2 })).tables[0]).toMatchObject(dead);
      // Plan retried (same execution): the lease is the adopted run's, and the plan knows it as its own.
      expect((await planRun(deps, { runId: R2 })).tables[0]).toMatchObject(dead);
      // The adopting execution fails too: its Summarize abandons with its own run id.
      await abandonRun(deps, table, R2);
      expect(await state.read(state.leaseKey())).toBeNull();
      expect((await lake.store.list(state.pendingPrefix(R1))).length).toBeGreaterThan(0);
      // A console re-run with {"full": true} continues it as well (its window ends where the backfill's does).
      [fullAdopter] = (await planRun(deps, { runId: R3, full: true })).tables;
      expect(fullAdopter).toMatchObject(dead);
    } finally {
      await deps.close();
    }
    expect((await finishRun(lake, config, fullAdopter)).rows).toBe(2000);
    await checkLake(db, lake, table, 'adopted after lapse');
    lake.remove();
  }, 60_000);

  it('an incremental run that failed is removed as before (only a backfill is kept)', async () => {
    const table = 'bf_incremental';
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${table} SELECT g, 'p' || g, timestamptz '2024-10-07 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 1000) g`);
    const lake = createLake();
    const config = testConfig([{ name: table }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 } });
    const state = new TableState(lake.store, 'raw', table);
    await runOnce(lake, config);
    await db.query(`INSERT INTO ${table} SELECT g, 'n' || g, clock_timestamp() FROM generate_series(1001, 2000) g`);
    const deps = exportDeps(db, lake.store, config);
    try {
      const [task] = (await planRun(deps, { runId: R2 })).tables;
      expect(task.backfill).toBeUndefined();
      expect((await exportTable(deps, task, Date.now())).done).toBe(false);
      await abandonRun(deps, table, R2);
      expect(await lake.store.list(state.pendingPrefix(R2))).toEqual([]);
    } finally {
      await deps.close();
    }
    await runOnce(lake, config);
    await checkLake(db, lake, table, 'incremental after a failed one');
    lake.remove();
  }, 60_000);
});

describe('a failed full re-run as a backfill', () => {
  it('is continued by the next scheduled run: the replaced pages\' history carried once, every version once', async () => {
    await db.query(`CREATE TABLE bf_full_adopt (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
      INSERT INTO bf_full_adopt SELECT g, 'p' || g, timestamptz '2024-08-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 4000) g`);
    const lake = createLake();
    const config = testConfig([{ name: 'bf_full_adopt', backfill: { segments: 2 } }], { export: { pageRows: 250, safetyLagSeconds: 0 }, lake: { rowGroupRows: 250 } });
    const state = new TableState(lake.store, 'raw', 'bf_full_adopt');
    await runOnce(lake, config);
    // New versions of 100 rows: their old versions are history Postgres no longer holds.
    await db.query(`UPDATE bf_full_adopt SET payload = 'v2', updated_at = clock_timestamp() WHERE id % 40 = 0`);
    await runOnce(lake, config);
    const deps = exportDeps(db, lake.store, config);
    let full: TableTask;
    let next: TableTask;
    try {
      [full] = (await planRun(deps, { runId: '20991231T000000Z-ffffffff', full: true })).tables;
      expect(full).toMatchObject({ kind: 'full', backfill: { segments: 2 } });
      const [first] = await readSegments(state, full);
      expect((await exportTable(deps, segmentTask(full, first))).done).toBe(true);
      await abandonRun(deps, 'bf_full_adopt', full.runId);
      // The next scheduled run continues the full re-run (its kind, window and replaced pages).
      [next] = (await planRun(deps)).tables;
      expect(next).toMatchObject(full);
    } finally {
      await deps.close();
    }
    const { copies, rows } = await finishRun(lake, config, next);
    expect(copies[0]).toBe(0);
    expect(rows).toBe(4000);
    const [all] = await duckdb<{ n: string; versions: string; ids: string }>(`SELECT count(*) AS n, count(DISTINCT (id, updated_at)) AS versions, count(DISTINCT id) AS ids FROM read_parquet(${parquetGlob(lake, 'bf_full_adopt')})`);
    // 4,000 rows and the 100 old versions they replaced, each once.
    expect(all).toEqual({ n: '4100', versions: '4100', ids: '4000' });
    await checkLake(db, lake, 'bf_full_adopt', 'full re-run continued by a scheduled run');
    expect((await state.manifests()).map((m) => m.runId)).toContain(full.runId);
    lake.remove();
  }, 60_000);
});
