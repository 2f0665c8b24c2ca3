// Breaker (HE): one whole execution of the export (plan — which may continue a failed backfill —
// every segment at once, one chunk per invocation as a Lambda whose budget runs out, the table's
// gather, commit) that kills itself (SIGKILL: no finally, no cleanup) at its nth store mutation
// (put, move, delete, a streamed write's completion), before or after it. 0: never.
//
//   node test/faults/adopt-break-kill-child.ts <job.json>
//   job: { databaseUrl, lakeUrl, config, runId, request, killAt, after, moves? }
//   moves: count only moves (a commit's publishing) instead of every mutation.
// Prints { runId, rows, mutations } when it finished.
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
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { databaseUrl: string; lakeUrl: string; config: unknown; runId: string; request: RunRequest; killAt: number; after: boolean; moves?: boolean };

let mutations = 0;
const die = () => process.kill(process.pid, 'SIGKILL');

/** Count a mutation around `work`: die before or after the nth. */
async function mutation<T>(work: () => Promise<T>, move = false): Promise<T> {
  if (job.moves && !move) return work();
  const n = ++mutations;
  if (n === job.killAt && !job.after) die();
  const result = await work();
  if (n === job.killAt && job.after) die();
  return result;
}

function killing(inner: DirectoryStore): ObjectStore {
  const store = Object.create(inner) as ObjectStore;
  store.put = (key, body, options) => mutation(() => inner.put(key, body, options));
  store.move = (from, to) => mutation(() => inner.move(from, to), true);
  store.delete = (keys) => mutation(() => inner.delete(keys));
  store.deleteIf = (key, etag) => mutation(() => inner.deleteIf(key, etag));
  store.openWrite = (key) => {
    const write = inner.openWrite(key);
    return { ...write, complete: () => mutation(() => write.complete()) };
  };
  return store;
}

const config = validateConfig(job.config, 'fault config');
const source = new PostgresSource(job.databaseUrl);
const deps = { source, store: killing(new DirectoryStore(job.lakeUrl)), config };
const plan = await planRun(deps, { ...job.request, runId: job.runId });
if (plan.failed.length) throw new Error(`plan failed: ${JSON.stringify(plan.failed)}`);
if (plan.skipped.length) {
  await source.close();
  process.stdout.write(`${JSON.stringify({ skipped: plan.skipped[0].reason, mutations })}\n`);
  process.exit(0);
}
const [planned] = plan.tables;
if (planned.backfill?.items.endsWith('/lanes.jsonl')) {
  // The Distributed Map over lanes (tables[].backfill.concurrency): each child exports its lane's segments in turn.
  const lines = (await deps.store.get(planned.backfill.items))!.body.toString('utf8').split('\n').filter((l) => l.trim() !== '');
  await Promise.all(lines.map(async (line) => {
    let child = parseExportInput({ task: planned, segment: JSON.parse(line) });
    do child = await exportTable(deps, child, Date.now());
    while (!child.done);
  }));
} else if (planned.backfill) {
  // The Distributed Map: every segment's child at once, each invocation one chunk.
  const segments = await readSegments(new TableState(deps.store, config.lake.prefix, planned.table), planned);
  await Promise.all(segments.map(async (segment) => {
    let child = segmentTask(planned, segment);
    do child = await exportTable(deps, child, Date.now());
    while (!child.done);
  }));
}
let task = planned;
while (!task.done) task = await exportTable(deps, task, Date.now());
const result = await commitTable(deps, task);
await source.close();
process.stdout.write(`${JSON.stringify({ runId: task.runId, kind: task.kind, backfill: task.backfill !== undefined, rows: result.rows, mutations })}\n`);
process.exit(0);
