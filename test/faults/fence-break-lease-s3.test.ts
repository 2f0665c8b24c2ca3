// Breaker (HI): the conditional lease release on S3 (through the local proxy, which enforces
// If-Match on DELETE as S3 does), raced by another execution acquiring the table the moment the
// lease is gone, by the holder's own renewal (a duplicate Commit copy), and by a takeover between
// the read and the delete. The new holder's lease must stand; a release that lost to a renewal
// deletes nothing (the lease lapses on its own).
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../lambdas/adapters/s3-store.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { acquireLease, releaseLease } from '../../lambdas/core/protocol/lease.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { faultyStore, testConfig } from '../support/local-stack.ts';
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';

let s3: LocalS3Server;
beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket('fence-leases');
});
afterAll(async () => {
  await s3?.stop();
});

const config = testConfig([{ name: 'orders' }]);
let prefixes = 0;

function s3Store(): ObjectStore {
  const client = new S3Client({ endpoint: s3.address, forcePathStyle: true, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  return new S3Store(client, 'fence-leases', `lake${++prefixes}`);
}

describe('releasing a lease on S3 while others act on it', () => {
  it('an execution acquiring right after the conditional delete keeps its lease', async () => {
    const store = s3Store();
    const state = new TableState(store, 'raw', 'orders');
    expect(await acquireLease({ store, config }, state, 'A', false)).toBeNull();
    const racing = faultyStore(store, {
      deleteIf: async (key, etag) => {
        const deleted = await store.deleteIf(key, etag);
        expect(await acquireLease({ store, config }, state, 'B', false)).toBeNull();
        return deleted;
      },
      delete: async (keys) => {
        // Nothing but deleteIf may touch the lease once it is given back.
        expect(keys).not.toContain(state.leaseKey());
        return store.delete(keys);
      },
    });
    await releaseLease({ store: racing, config }, 'orders', 'A');
    expect((await state.read<Lease>(state.leaseKey()))?.value.runId).toBe('B');
    expect(await acquireLease({ store, config }, state, 'C', false)).not.toBeNull();
  });

  it("a renewal by the holder between the read and the delete: nothing deleted, the renewed lease stands", async () => {
    const store = s3Store();
    const state = new TableState(store, 'raw', 'orders');
    expect(await acquireLease({ store, config }, state, 'A', false)).toBeNull();
    const racing = faultyStore(store, {
      deleteIf: async (key, etag) => {
        // Plan retried by the same execution: the lease rewritten with a new expiry (new etag).
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(await acquireLease({ store, config }, state, 'A', false)).toBeNull();
        return store.deleteIf(key, etag);
      },
    });
    await releaseLease({ store: racing, config }, 'orders', 'A');
    expect((await state.read<Lease>(state.leaseKey()))?.value.runId).toBe('A');
    // A release after that gives it back.
    await releaseLease({ store, config }, 'orders', 'A');
    expect(await state.read<Lease>(state.leaseKey())).toBeNull();
  });

  it('a takeover between the read and the delete keeps the new holder, then its own release frees the table', async () => {
    const store = s3Store();
    const state = new TableState(store, 'raw', 'orders');
    await state.write(state.leaseKey(), { runId: 'A', expiresAt: new Date(Date.now() - 1000).toISOString() } satisfies Lease);
    const racing = faultyStore(store, {
      deleteIf: async (key, etag) => {
        expect(await acquireLease({ store, config }, state, 'B', false)).toBeNull();
        return store.deleteIf(key, etag);
      },
    });
    await releaseLease({ store: racing, config }, 'orders', 'A');
    expect((await state.read<Lease>(state.leaseKey()))?.value.runId).toBe('B');
    await releaseLease({ store, config }, 'orders', 'B');
    expect(await acquireLease({ store, config }, state, 'C', false)).toBeNull();
  });
});
