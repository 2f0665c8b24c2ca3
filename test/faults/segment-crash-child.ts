// A backfill process that kills itself (SIGKILL: no finally, no cleanup) at one step, as a Lambda
// dies mid-invocation. The backfill fault tests start it, let it die, then go on.
//
//   node test/faults/segment-crash-child.ts <job.json>
//   job: { databaseUrl, lakeUrl, config, point, nth } and either
//     item:  one Distributed Map child (one backfill segment, one chunk per invocation), or
//     runId: a whole execution — plan (which continues a failed backfill), every segment, commit.
import { readFileSync } from 'node:fs';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { parseExportInput, readSegments, segmentTask } from '../../lambdas/core/protocol/segments.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';

/**
 * before-page-journal: the nth chunk's journal entry is about to be written; before-progress: the
 * nth invocation's segment progress; mid-publish: the nth file of the commit is moved;
 * before-watermark / after-watermark: the commit point.
 */
type Point = 'before-page-journal' | 'before-progress' | 'mid-publish' | 'before-watermark' | 'after-watermark' | 'none';
const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { databaseUrl: string; lakeUrl: string; config: unknown; item?: unknown; runId?: string; point: Point; nth: number };

const die = () => process.kill(process.pid, 'SIGKILL');

function crashing(inner: ObjectStore): ObjectStore {
  let journals = 0;
  let progress = 0;
  let moves = 0;
  const store = Object.create(inner) as ObjectStore;
  store.put = async (key, body, options) => {
    if (job.point === 'before-page-journal' && /\/pending\/[^/]+\/p\d{6}\.json$/.test(key) && ++journals === job.nth) die();
    if (job.point === 'before-progress' && /\/pending\/[^/]+\/s\d{4}\.json$/.test(key) && ++progress === job.nth) die();
    if (job.point === 'before-watermark' && key.endsWith('/watermark.json')) die();
    const done = await inner.put(key, body, options);
    if (job.point === 'after-watermark' && key.endsWith('/watermark.json')) die();
    return done;
  };
  store.move = async (from, to) => {
    if (job.point === 'mid-publish' && ++moves === job.nth) die();
    return inner.move(from, to);
  };
  return store;
}

const config = validateConfig(job.config, 'fault config');
const source = new PostgresSource(job.databaseUrl);
const deps = { source, store: crashing(new DirectoryStore(job.lakeUrl)), config };
if (job.runId) {
  const [planned] = (await planRun(deps, { runId: job.runId })).tables;
  // The map's children, one chunk per invocation, then the table's task and its commit.
  for (const segment of await readSegments(new TableState(deps.store, config.lake.prefix, planned.table), planned)) {
    let child = segmentTask(planned, segment);
    do child = await exportTable(deps, child, Date.now());
    while (!child.done);
  }
  let task = planned;
  while (!task.done) task = await exportTable(deps, task);
  const result = await commitTable(deps, task);
  await source.close();
  process.stdout.write(`${JSON.stringify({ runId: task.runId, rows: result.rows })}\n`);
  process.exit(0);
}
let task = parseExportInput(job.item);
// One chunk per invocation (the budget is spent at once), as a child whose Lambda budget runs out.
task = await exportTable(deps, task, Date.now());
// Where the first invocation ended: page 1 when the segment started over, further when it resumed.
const first = task.page;
while (!task.done) task = await exportTable(deps, task, Date.now());
await source.close();
process.stdout.write(`${JSON.stringify({ segment: task.segment?.index, first, page: task.page, rows: task.rows })}\n`);
process.exit(0);
