// A page's parts are freed once written (encode-worker.ts releaseParts): the memory the encoder
// thread moves (a buffer of the page's own), never Node's shared pool, which other Buffers use.
import { describe, expect, it } from 'vitest';
import { releaseParts } from '../../lambdas/core/page/encode-worker.ts';

describe('releaseParts', () => {
  it('frees a buffer of the page\'s own once, however many parts view it', () => {
    const memory = new ArrayBuffer(1 << 20); // larger than the pool (Buffer.poolSize: 8 KiB by default; 64 KiB under vitest)
    const parts = [{ bytes: new Uint8Array(memory, 0, 1000) }, { bytes: new Uint8Array(memory, 1000, 5000) }];
    releaseParts(parts);
    expect(memory.detached).toBe(true);
    expect(parts[1].bytes.byteLength).toBe(0);
    expect(() => releaseParts(parts)).not.toThrow();
  });

  it('leaves Node\'s pool and shared memory alone', () => {
    const pooled = Buffer.from('a small part lives in the pool slab with other Buffers');
    const neighbour = Buffer.from('a neighbour in the same slab');
    expect(pooled.buffer).toBe(neighbour.buffer);
    const shared = new Uint8Array(new SharedArrayBuffer(64 * 1024));
    shared[0] = 7;
    releaseParts([{ bytes: pooled }, { bytes: shared }]);
    expect(pooled.buffer.detached).toBe(false);
    expect(neighbour.toString()).toBe('a neighbour in the same slab');
    expect(pooled.toString()).toBe('a small part lives in the pool slab with other Buffers');
    expect(shared[0]).toBe(7);
  });
});
