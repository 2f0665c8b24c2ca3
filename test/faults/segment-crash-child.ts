// A Distributed Map child (one backfill segment, one chunk per invocation) that kills itself
// (SIGKILL: no finally, no cleanup) at one step, as a Lambda dies mid-invocation. The backfill
// fault test starts it, lets it die, then delivers the same item again.
//
//   node test/faults/segment-crash-child.ts <job.json>   job: { databaseUrl, lakeUrl, config, item, point, nth }
import { readFileSync } from 'node:fs';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { parseExportInput } from '../../lambdas/core/protocol/segments.ts';

/** before-page-journal: the nth chunk's journal entry is about to be written; before-progress: the nth invocation's segment progress. */
type Point = 'before-page-journal' | 'before-progress' | 'none';
const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { databaseUrl: string; lakeUrl: string; config: unknown; item: unknown; point: Point; nth: number };

function crashing(inner: ObjectStore): ObjectStore {
  let journals = 0;
  let progress = 0;
  const store = Object.create(inner) as ObjectStore;
  store.put = async (key, body, options) => {
    if (job.point === 'before-page-journal' && /\/pending\/[^/]+\/p\d{6}\.json$/.test(key) && ++journals === job.nth) process.kill(process.pid, 'SIGKILL');
    if (job.point === 'before-progress' && /\/pending\/[^/]+\/s\d{4}\.json$/.test(key) && ++progress === job.nth) process.kill(process.pid, 'SIGKILL');
    return inner.put(key, body, options);
  };
  return store;
}

const config = validateConfig(job.config, 'fault config');
const source = new PostgresSource(job.databaseUrl);
const deps = { source, store: crashing(new DirectoryStore(job.lakeUrl)), config };
let task = parseExportInput(job.item);
// One chunk per invocation (the budget is spent at once), as a child whose Lambda budget runs out.
task = await exportTable(deps, task, Date.now());
// Where the first invocation ended: page 1 when the segment started over, further when it resumed.
const first = task.page;
while (!task.done) task = await exportTable(deps, task, Date.now());
await source.close();
process.stdout.write(`${JSON.stringify({ segment: task.segment?.index, first, page: task.page, rows: task.rows })}\n`);
process.exit(0);
