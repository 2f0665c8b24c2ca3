// Breaker (HI): the conditional lease release on the directory lake. DirectoryStore.deleteIf
// compared and removed under the lock, then called delete([key]) "to prune the emptied folders";
// that delete removed the key again, unconditionally and outside the lock. A lease another
// execution created (acquireLease: create-once, which takes no lock) between the two was deleted
// from its new holder, and a third execution could then take the table beside it. deleteIf now
// prunes the folders only. The race point is kept: should anything delete the lease key after
// the conditional removal, B's lease is created just before it.
import { describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { acquireLease, releaseLease } from '../../lambdas/core/protocol/lease.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { createLake, testConfig } from '../support/local-stack.ts';

const config = testConfig([{ name: 'orders' }]);

describe('releasing a lease on a directory lake while another execution acquires it', () => {
  it("keeps a lease created between deleteIf's locked removal and its folder pruning", async () => {
    const lake = createLake();
    try {
      const plain = new TableState(lake.store, 'raw', 'orders');
      // Run A holds the lease and gives it back as it finishes.
      expect(await acquireLease({ store: lake.store, config }, plain, 'A', false)).toBeNull();
      let raced = false;
      class Racing extends DirectoryStore {
        override async delete(keys: readonly string[]): Promise<void> {
          if (!raced && keys.includes(plain.leaseKey())) {
            raced = true;
            // Execution B plans the table right then: no lease, so it creates its own.
            expect(await acquireLease({ store: lake.store, config }, plain, 'B', false)).toBeNull();
          }
          return super.delete(keys);
        }
      }
      await releaseLease({ store: new Racing(lake.url), config }, 'orders', 'A');
      // A's lease went (conditionally), and B took the free table after.
      if (!raced) expect(await acquireLease({ store: lake.store, config }, plain, 'B', false)).toBeNull();
      // B holds the table: a third execution must be told so.
      expect((await plain.read<Lease>(plain.leaseKey()))?.value.runId, "B's lease").toBe('B');
      expect(await acquireLease({ store: lake.store, config }, plain, 'C', false), 'C must not get the table').not.toBeNull();
    } finally {
      lake.remove();
    }
  });
});
