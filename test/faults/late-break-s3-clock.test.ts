// Breaker (HJ): fence-break-late-copy's graceMinutes 0 case on an S3 lake (the local S3 server,
// the production S3Store). gracePassed compares the list's LastModified with the lease's; S3
// gives LastModified to the second (an HTTP date on GET). The interleaving:
//   1. The table is committed; 133 rows are updated; run R exports them and its Commit's copies
//      are in flight (sources read); R's lease lapses.
//   2. E2's plan takes the lease and, a few milliseconds later in the same second, removes R:
//      removed/R.json lists R's data keys. Its recovery's sweep then finds the list's
//      LastModified equal to the lease's: "0 minutes have passed", and drops the list at once.
//   3. R's copies land (before E2 exports; on a directory lake, whose mtimes have milliseconds,
//      the list survives this far and E2's commit deletes them: fence-break-late-copy).
//   4. E2 exports the 133 rows again and commits; E3 runs.
// Expected (as on a directory lake): no file of R visible after E2's commit. On S3 R's late file
// stays for good beside E2's rows (133 versions seen twice), named by no manifest.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../lambdas/adapters/s3-store.ts';
import { runExport } from '../../bin/local/run-export.ts';
import { commitTable } from '../../lambdas/core/protocol/commit.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { exportDeps } from '../support/local-stack.ts';
import { fileDatabase } from '../support/file-database.ts';
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { createTable, dataFilesOf, expireLease, lateConfig, stallCommit } from './late-break-copies.ts';

const db = fileDatabase();
const BUCKET = 'late-break';
let s3: LocalS3Server;
beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
}, 60_000);
afterAll(async () => {
  await s3?.stop();
});

function s3Store(prefix: string): S3Store {
  const client = new S3Client({ endpoint: s3.address, forcePathStyle: true, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  return new S3Store(client, BUCKET, prefix);
}

async function exportRun(store: S3Store, config: LakeConfig): Promise<string[]> {
  const deps = exportDeps(db, store, config);
  try {
    return (await runExport(deps, {})).tables.map((t) => t.error ?? t.status);
  } finally {
    await deps.close();
  }
}

describe('late copies on an S3 lake with compaction.graceMinutes 0', () => {
  it('are gone once the next execution commits the same rows', async () => {
    const name = 'late_s3_clock';
    const config = lateConfig(name, 0);
    const store = s3Store('clock');
    const lake = { store };
    await createTable(db, name);
    expect(await exportRun(store, config)).toEqual(['succeeded']);
    await db.query(`UPDATE ${name} SET payload = 'v2-' || id, updated_at = clock_timestamp() WHERE id % 3 = 0`);
    const stalled = await stallCommit(db, lake, config, name);
    const { state, task } = stalled;
    await expireLease(state);

    // E2's plan, started just after a second begins (its lease and the list fall in one second).
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
    const e2 = exportDeps(db, store, config);
    let next = (await planRun(e2, {})).tables[0];
    expect(await store.get(state.pendingRunKey(task.runId)), 'R was removed').toBeNull();
    const lease = await store.get(state.leaseKey());
    const list = await store.get(state.removedKey(task.runId));
    console.log(`E2's lease LastModified ${lease?.modifiedAt?.toISOString()}; removed/R.json after E2's plan: ${list ? `kept (${list.modifiedAt?.toISOString()})` : 'dropped'}`);

    stalled.land.open();
    const outcome = await stalled.outcome;
    expect(outcome instanceof Error ? outcome.name : outcome.status).not.toBe('succeeded');
    expect(await dataFilesOf(lake, 'raw', name, task.runId), 'the late copies landed').toHaveLength(stalled.keys.length);

    while (!next.done) next = await exportTable(e2, next);
    expect((await commitTable(e2, next)).status).toBe('succeeded');
    await e2.close();
    const afterE2 = await dataFilesOf(lake, 'raw', name, task.runId);
    expect(await exportRun(store, config)).toEqual(['succeeded']);
    const afterE3 = await dataFilesOf(lake, 'raw', name, task.runId);
    console.log(`late files of R visible (${stalled.keys.length} landed, holding R's 133 versions, which E2 committed again): after E2's commit ${afterE2.length}, after E3 ${afterE3.length}`);
    expect(afterE2, "late copies visible beside E2's rows").toEqual([]);
  }, 120_000);
});
