// Commit at scale (issue 14): a synthetic 1-billion-row run — 20,000 journalled pages of 50,000
// rows, one staged file each — generated against a real S3 API server (fauxqs) on loopback, then
// committed by the real Commit step with its invocation deadline (export.commitTimeoutSeconds less
// the handler's 30 s reserve): every journal read (into index objects), every file published, the
// watermark written, the manifest written and pending/ cleared. Returns the time of each phase,
// and how many invocations the commit took; fails when one invocation overran the timeout.
import { startS3Server } from '../support/s3-server.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { commitTableStep } from '../../lambdas/core/protocol/commit.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { dataFileKey } from '../../lambdas/core/lake/keys.ts';
import { TableState, type PageEntry } from '../../lambdas/core/protocol/table-state.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { startLocalPostgres } from '../../bin/local/embedded-postgres.ts';

export interface CommitScaleResult {
  readonly pages: number;
  readonly rowsPerPage: number;
  readonly generatedSeconds: number;
  readonly committedSeconds: number;
  readonly invocations: number;
  readonly longestInvocationSeconds: number;
  readonly limitSeconds: number;
  readonly published: number;
  readonly pendingLeft: number;
}

export async function runCommitScale(pages: number, rowsPerPage: number, commitTimeoutSeconds = 300): Promise<CommitScaleResult> {
  const server = await startLocalPostgres();
  const s3 = await startS3Server();
  try {
    s3.createBucket('scale');
    Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' });
    const url = await server.createDatabase('scale');
    const source = new PostgresSource(url);
    await source.queryText(`CREATE TABLE big (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT '2024-01-01')`);
    const config = validateConfig({ export: { safetyLagSeconds: 0, commitTimeoutSeconds }, tables: [{ name: 'big' }] }, 'scale config');
    const store = new S3Store(createS3Client(), 'scale', '');
    const deps = { source, store, config };
    const plan = await planRun(deps);
    const [planned] = plan.tables;
    const state = new TableState(store, config.lake.prefix, 'big');

    // What 20,000 Export invocations would have left: a journal per page, then its staged file.
    let started = Date.now();
    let next = 0;
    const generate = async () => {
      while (next < pages) {
        const page = ++next;
        const day = { year: 2024, month: 1 + (page % 12), day: 1 + (page % 28) };
        const key = dataFileKey(config.lake.prefix, 'big', day, planned.runId, page);
        const entry: PageEntry = { page, rows: rowsPerPage, first: [`2024-01-01 00:00:00.000000+00`, String(page * rowsPerPage)], last: [`2024-01-01 00:00:00.000000+00`, String((page + 1) * rowsPerPage - 1)], files: [{ key, rows: rowsPerPage, bytes: 8 }] };
        await state.write(state.pendingPageKey(planned.runId, page), entry);
        await store.put(state.stagedKey(planned.runId, key), 'PAR1PAR1');
      }
    };
    await Promise.all(Array.from({ length: 32 }, generate));
    const generatedIn = (Date.now() - started) / 1000;

    started = Date.now();
    const limit = config.export.commitTimeoutSeconds;
    // As the Commit handler runs it: each invocation stops 30 s before its timeout and returns its progress.
    let step: Awaited<ReturnType<typeof commitTableStep>> = { ...planned, page: pages, rows: pages * rowsPerPage, files: pages, bytes: pages * 8, done: true, after: null } satisfies TableTask;
    let invocations = 0;
    let longest = 0;
    while (!('status' in step)) {
      const began = Date.now();
      step = await commitTableStep(deps, step, began + (limit - 30) * 1000);
      invocations++;
      longest = Math.max(longest, (Date.now() - began) / 1000);
    }
    const committedIn = (Date.now() - started) / 1000;
    const published = (await store.list(`${config.lake.prefix}/big/`)).length;
    const pending = (await store.list(state.pendingPrefix())).length;
    await source.close();

    if (published !== pages || pending !== 0) throw new Error(`expected ${pages} visible files and nothing pending, found ${published} and ${pending}`);
    if (longest > limit) throw new Error(`a Commit invocation took ${longest.toFixed(1)} s, over the ${limit} s Commit timeout`);
    return { pages, rowsPerPage, generatedSeconds: generatedIn, committedSeconds: committedIn, invocations, longestInvocationSeconds: longest, limitSeconds: limit, published, pendingLeft: pending };
  } finally {
    await s3.stop();
    await server.stop();
  }
}
