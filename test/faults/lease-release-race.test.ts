// Giving a lease back races with a takeover: a run that finished (or failed) reads the lease,
// sees its own name, and deletes it. If its lease had lapsed (the run stalled past
// export.leaseSeconds) another execution may take it over between that read and that delete;
// an unconditional delete then removed the NEW holder's lease, and a third execution could take
// the table while the second still exported it — two writers of one table. The release must
// delete only the lease it read (S3 conditional DeleteObject, If-Match; the directory lake
// compares under its lock). On both lakes: the local S3 server (whose proxy enforces If-Match
// on DELETE as S3 does) and a directory.
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../lambdas/adapters/s3-store.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { releaseLease } from '../../lambdas/core/protocol/lease.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, faultyStore, testConfig } from '../support/local-stack.ts';
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';

let s3: LocalS3Server;
beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket('leases');
});
afterAll(async () => {
  await s3?.stop();
});

const config = testConfig([{ name: 'orders' }]);

/**
 * `inner`, where the first removal of the lease (conditional or not) is preceded by run
 * `taker` taking the lapsed lease over (If-Match on the lease as it is then): the takeover lands
 * between the releasing run's read and its delete.
 */
function takenOverBeforeRemoval(inner: ObjectStore, state: TableState, taker: string): ObjectStore {
  let done = false;
  const takeOver = async (keys: readonly string[]) => {
    if (done || !keys.includes(state.leaseKey())) return;
    done = true;
    const current = (await new TableState(inner, 'raw', 'orders').read<Lease>(state.leaseKey()))!;
    const taken: Lease = { runId: taker, expiresAt: new Date(Date.now() + 300_000).toISOString() };
    expect(await inner.put(state.leaseKey(), JSON.stringify(taken), { ifMatch: current.etag })).toBe(true);
  };
  return faultyStore(inner, {
    delete: async (keys) => { await takeOver(keys); return inner.delete(keys); },
    deleteIf: async (key, etag) => { await takeOver([key]); return inner.deleteIf(key, etag); },
  });
}

async function releaseDuringTakeover(store: ObjectStore): Promise<void> {
  const state = new TableState(store, 'raw', 'orders');
  // Run A's lease, lapsed a second ago.
  await state.write(state.leaseKey(), { runId: 'A', expiresAt: new Date(Date.now() - 1000).toISOString() } satisfies Lease);
  await releaseLease({ store: takenOverBeforeRemoval(store, state, 'B'), config }, 'orders', 'A');
  // B's lease stands: nobody else can take the table while B exports it.
  expect((await state.read<Lease>(state.leaseKey()))?.value.runId).toBe('B');
  // And B gives it back as usual.
  await releaseLease({ store, config }, 'orders', 'B');
  expect(await state.read<Lease>(state.leaseKey())).toBeNull();
}

describe('releasing a lease while another run takes it over', () => {
  it("keeps the new holder's lease on a directory lake", async () => {
    const lake = createLake();
    try {
      await releaseDuringTakeover(lake.store);
    } finally {
      lake.remove();
    }
  });

  it("keeps the new holder's lease on S3", async () => {
    const client = new S3Client({ endpoint: s3.address, forcePathStyle: true, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    await releaseDuringTakeover(new S3Store(client, 'leases', 'lake'));
  });

  it('deletes only the object it read: a stale etag or a missing key removes nothing', async () => {
    const client = new S3Client({ endpoint: s3.address, forcePathStyle: true, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    const lake = createLake();
    try {
      for (const store of [lake.store, new S3Store(client, 'leases', 'cas') as ObjectStore]) {
        await store.put('t/a.json', '{"v":1}');
        const first = (await store.get('t/a.json'))!;
        await store.put('t/a.json', '{"v":2}');
        expect(await store.deleteIf('t/a.json', first.etag), store.url).toBe(false);
        expect((await store.get('t/a.json'))?.body.toString(), store.url).toBe('{"v":2}');
        const second = (await store.get('t/a.json'))!;
        expect(await store.deleteIf('t/a.json', second.etag), store.url).toBe(true);
        expect(await store.get('t/a.json'), store.url).toBeNull();
        expect(await store.deleteIf('t/a.json', second.etag), store.url).toBe(false);
      }
    } finally {
      lake.remove();
    }
  });
});
