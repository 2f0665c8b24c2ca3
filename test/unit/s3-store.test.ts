// The S3 lake store under faults S3 answers after the client's own retries: each request's
// response is played by a middleware (fault injection only; the requests are the real SDK's).
import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { S3Store } from '../../lambdas/adapters/s3-store.ts';
import { isTransientStoreError } from '../../lambdas/core/errors.ts';

type Answer = { output: Record<string, unknown> } | { fault: Error };

/** An S3Store whose requests are answered by `answer(command, key)`; no SDK retries. */
function storeAnswering(answer: (command: string, key: string) => Answer) {
  const calls: string[] = [];
  const client = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
  client.middlewareStack.add(
    (_next, context) => async (args) => {
      const command = context.commandName ?? '';
      const key = String((args.input as { Key?: string }).Key ?? '');
      calls.push(`${command} ${key}`);
      const result = answer(command, key);
      if ('fault' in result) throw result.fault;
      return { output: { $metadata: {}, ...result.output }, response: {} };
    },
    { step: 'initialize', name: 'playS3' },
  );
  return { store: new S3Store(client, 'lake-bucket', 'raw'), calls };
}

function s3Error(name: string, httpStatusCode: number, message: string): S3ServiceException {
  return new S3ServiceException({ name, $fault: httpStatusCode >= 500 ? 'server' : 'client', $metadata: { httpStatusCode }, message });
}

const slowDown = s3Error('SlowDown', 503, 'Please reduce your request rate.');
const internal = s3Error('InternalError', 500, 'We encountered an internal error. Please try again.');

describe('S3Store', () => {
  it.each([
    ['GET', (s: S3Store) => s.get('orders/_state/watermark.json'), 'GET orders/_state/watermark.json'],
    ['LIST', (s: S3Store) => s.list('orders/_state/pending/'), 'LIST orders/_state/pending/'],
    ['PUT', (s: S3Store) => s.put('orders/_state/lease.json', '{}', { ifNoneMatch: true }), 'PUT orders/_state/lease.json'],
    ['DELETE', (s: S3Store) => s.delete(['orders/a.parquet']), 'DELETE 1 objects from orders/a.parquet'],
  ])('surfaces a 5xx on %s as ThrottlingError, which the workflow retries, naming the request and keeping the cause', async (_verb, act, what) => {
    for (const fault of [slowDown, internal]) {
      const { store } = storeAnswering(() => ({ fault }));
      const error = (await act(store).catch((e: unknown) => e)) as Error;
      expect(error.name).toBe('ThrottlingError');
      expect(error.message).toBe(`S3 ${what} in s3://lake-bucket/raw/ failed after the client's retries: ${fault.name}: ${fault.message}`);
      expect(error.cause).toBe(fault);
      // The exporter's own classification of an upload fault still sees it as transient.
      expect(isTransientStoreError(error)).toBe(true);
    }
  });

  it('surfaces a dropped connection as ThrottlingError too', async () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const { store } = storeAnswering(() => ({ fault: reset }));
    const error = (await store.get('orders/_state/watermark.json').catch((e: unknown) => e)) as Error;
    expect(error.name).toBe('ThrottlingError');
    expect(isTransientStoreError(error)).toBe(true);
  });

  it('keeps what a retry cannot change: a missing key is null, a failed precondition false, a refusal as S3 said it', async () => {
    const { store } = storeAnswering((command) => ({
      fault: command === 'GetObjectCommand' ? s3Error('NoSuchKey', 404, 'The specified key does not exist.')
        : command === 'PutObjectCommand' ? s3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold')
        : s3Error('AccessDenied', 403, 'Access Denied'),
    }));
    expect(await store.get('orders/_state/watermark.json')).toBeNull();
    expect(await store.put('orders/_state/lease.json', '{}', { ifNoneMatch: true })).toBe(false);
    const denied = (await store.list('orders/').catch((e: unknown) => e)) as Error;
    expect(denied.name).toBe('AccessDenied');
  });

  it('does not take a 5xx on the HEAD after a missing copy source for "neither exists"', async () => {
    const { store, calls } = storeAnswering((command) => ({ fault: command === 'CopyObjectCommand' ? s3Error('NoSuchKey', 404, 'The specified key does not exist.') : slowDown }));
    const error = (await store.move('orders/_state/pending/r/a.parquet', 'orders/year=2025/a.parquet').catch((e: unknown) => e)) as Error;
    expect(calls).toEqual(['CopyObjectCommand raw/orders/year=2025/a.parquet', 'HeadObjectCommand raw/orders/year=2025/a.parquet']);
    expect(error.name).toBe('ThrottlingError');
    expect(error.message).toContain('S3 HEAD orders/year=2025/a.parquet');
  });

  it('retries per-key 5xx answers of DeleteObjects (inside a 200), and reports any other refusal plainly', async () => {
    const transient = storeAnswering(() => ({ output: { Errors: [{ Key: 'raw/orders/a.parquet', Code: 'InternalError', Message: 'We encountered an internal error.' }] } }));
    const first = (await transient.store.delete(['orders/a.parquet']).catch((e: unknown) => e)) as Error;
    expect(first.name).toBe('ThrottlingError');
    expect(first.message).toBe('S3 refused to delete 1 objects, first raw/orders/a.parquet: InternalError: We encountered an internal error.');

    const refused = storeAnswering(() => ({ output: { Errors: [{ Key: 'raw/orders/a.parquet', Code: 'AccessDenied', Message: 'Access Denied' }] } }));
    const second = (await refused.store.delete(['orders/a.parquet']).catch((e: unknown) => e)) as Error;
    expect(second.name).toBe('Error');
    expect(second.message).toBe('S3 refused to delete 1 objects, first raw/orders/a.parquet: AccessDenied: Access Denied');
  });
});

describe('S3Store.openWrite (streamed files)', () => {
  const MiB = 1024 * 1024;

  it('uploads 8 MiB parts as they fill, the rest as the last part, then completes; nothing before that', async () => {
    const bodies: number[] = [];
    const { store, calls } = storeAnswering((command) => {
      if (command === 'CreateMultipartUploadCommand') return { output: { UploadId: 'up-1' } };
      if (command === 'UploadPartCommand') return { output: { ETag: `"e${bodies.length}"` } };
      return { output: {} };
    });
    const client = (store as unknown as { client: S3Client }).client;
    client.middlewareStack.add((next) => async (args) => {
      const input = args.input as { Body?: Uint8Array; PartNumber?: number };
      if (input.PartNumber) bodies.push(input.Body!.byteLength);
      return next(args);
    }, { step: 'initialize', name: 'partSizes', priority: 'high' });
    const write = store.openWrite('orders/_state/pending/r/data/a.parquet');
    for (let i = 0; i < 5; i++) await write.write(new Uint8Array(3 * MiB));
    expect(calls).toEqual(['CreateMultipartUploadCommand raw/orders/_state/pending/r/data/a.parquet', 'UploadPartCommand raw/orders/_state/pending/r/data/a.parquet']);
    await write.complete();
    expect(calls.map((c) => c.split(' ')[0])).toEqual(['CreateMultipartUploadCommand', 'UploadPartCommand', 'UploadPartCommand', 'CompleteMultipartUploadCommand']);
    // 15 MiB: one 9 MiB part (three writes gathered past 8 MiB), then the last 6 MiB.
    expect(bodies).toEqual([9 * MiB, 6 * MiB]);
  });

  it('writes a file smaller than one part with a single PutObject at complete', async () => {
    const { store, calls } = storeAnswering(() => ({ output: {} }));
    const write = store.openWrite('orders/a.parquet');
    await write.write(new Uint8Array(1000));
    await write.write(new Uint8Array(24));
    expect(calls).toEqual([]);
    await write.complete();
    expect(calls).toEqual(['PutObjectCommand raw/orders/a.parquet']);
  });

  it('aborts the multipart upload after a failed part, so S3 keeps no parts; a later write is refused', async () => {
    const { store, calls } = storeAnswering((command) => {
      if (command === 'CreateMultipartUploadCommand') return { output: { UploadId: 'up-2' } };
      if (command === 'UploadPartCommand' && calls.filter((c) => c.startsWith('UploadPart')).length === 2) return { fault: slowDown };
      return { output: { ETag: '"e"' } };
    });
    const write = store.openWrite('orders/b.parquet');
    await write.write(new Uint8Array(8 * MiB));
    const error = (await write.write(new Uint8Array(8 * MiB)).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe('ThrottlingError');
    expect(error.message).toContain('S3 UPLOAD PART 2 of orders/b.parquet');
    await write.abort();
    expect(calls.at(-1)).toBe('AbortMultipartUploadCommand raw/orders/b.parquet');
    await expect(write.write(new Uint8Array(1))).rejects.toThrow('orders/b.parquet: write after the upload was completed or aborted');
  });
});

/** An S3Store on a fresh bucket of fauxqs (an S3 API server on loopback), stopped afterwards. */
async function withFauxqs(bucket: string, use: (store: S3Store) => Promise<void>): Promise<void> {
  const { startFauxqs } = await import('fauxqs');
  const { createS3Client } = await import('../../lambdas/adapters/s3-store.ts');
  const server = await startFauxqs({ port: 0, logger: false, host: '127.0.0.1' });
  const saved = { ...process.env };
  try {
    server.createBucket(bucket);
    Object.assign(process.env, { AWS_ENDPOINT_URL_S3: server.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
    await use(new S3Store(createS3Client(), bucket, 'raw'));
  } finally {
    process.env = saved;
    await server.stop();
  }
}

describe('S3Store.openWrite against an S3 API server (fauxqs on loopback)', () => {
  it('a 20 MiB file streamed in parts reads back byte for byte; before completion the key does not exist', () => withFauxqs('lake-stream', async (store) => {
    const body = Buffer.alloc(20 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE(i * 2654435761 >>> 0, i);
    const write = store.openWrite('orders/_state/pending/r/data/year=2024/a.parquet');
    for (let at = 0; at < body.length; at += 3_000_000) await write.write(body.subarray(at, at + 3_000_000));
    expect(await store.get('orders/_state/pending/r/data/year=2024/a.parquet')).toBeNull();
    await write.complete();
    const back = await store.get('orders/_state/pending/r/data/year=2024/a.parquet');
    expect(back!.body.equals(body)).toBe(true);

    const dropped = store.openWrite('orders/b.parquet');
    await dropped.write(body.subarray(0, 9 * 1024 * 1024));
    await dropped.abort();
    expect(await store.list('orders/')).toEqual(['orders/_state/pending/r/data/year=2024/a.parquet']);
  }), 60_000);

  it('keeps no reference to the bytes it was given: each is freed once its write resolves, and the file reads back whole', () => withFauxqs('lake-freed', async (store) => {
    // The exporter frees a page's parts once their writes resolve (encode-worker.ts releaseParts):
    // a store that kept the caller's bytes until the part was gathered would upload freed memory.
    // Small writes (the buffer doubles), one that crosses a part, one larger than a part alone,
    // and a last part smaller than the buffer it was gathered in (fauxqs takes request bodies
    // of up to 11 MiB, so no part here is larger).
    const sizes = [1, 1000, 70_000, 3_000_000, 4_000_000, 17, 2_000_000, 9_000_000, 2_500_000, 4096];
    const expected = Buffer.alloc(sizes.reduce((a, b) => a + b, 0));
    let seed = 20261201;
    for (let i = 0; i < expected.length; i++) expected[i] = (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
    const write = store.openWrite('orders/freed.parquet');
    let at = 0;
    for (const n of sizes) {
      const own = new Uint8Array(new ArrayBuffer(n));
      own.set(expected.subarray(at, at + n));
      await write.write(own);
      own.buffer.transfer(0);
      at += n;
    }
    await write.complete();
    const back = await store.get('orders/freed.parquet');
    expect(back!.body.length).toBe(expected.length);
    expect(back!.body.equals(expected)).toBe(true);
  }), 60_000);
});

describe('S3Store conditional writes against the local S3 server (test/support/s3-server.ts)', () => {
  it('If-None-Match creates once, If-Match fails on a stale ETag, and of 8 racing creates exactly one wins', async () => {
    const { startS3Server } = await import('../support/s3-server.ts');
    const { createS3Client } = await import('../../lambdas/adapters/s3-store.ts');
    const server = await startS3Server();
    const saved = { ...process.env };
    try {
      await server.createBucket('lake-cas');
      Object.assign(process.env, { AWS_ENDPOINT_URL_S3: server.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
      const store = new S3Store(createS3Client(), 'lake-cas', 'raw');
      expect(await store.put('orders/_state/lease.json', '{"runId":"a"}', { ifNoneMatch: true })).toBe(true);
      expect(await store.put('orders/_state/lease.json', '{"runId":"b"}', { ifNoneMatch: true })).toBe(false);
      const first = (await store.get('orders/_state/lease.json'))!;
      expect(first.body.toString()).toBe('{"runId":"a"}');
      // The store's own time of the write (LastModified): compaction's grace period is measured on it.
      expect(Math.abs(first.modifiedAt!.getTime() - Date.now())).toBeLessThan(60_000);
      expect(await store.put('orders/_state/lease.json', '{"runId":"a2"}', { ifMatch: first.etag })).toBe(true);
      // The ETag read before that write is stale now.
      expect(await store.put('orders/_state/lease.json', '{"runId":"c"}', { ifMatch: first.etag })).toBe(false);
      expect(await store.put('orders/_state/missing.json', '{}', { ifMatch: first.etag })).toBe(false);
      expect((await store.get('orders/_state/lease.json'))!.body.toString()).toBe('{"runId":"a2"}');
      const racing = await Promise.all(Array.from({ length: 8 }, (_, i) => store.put('orders/_state/pending/r/p000001.json', `{"writer":${i}}`, { ifNoneMatch: true })));
      expect(racing.filter(Boolean)).toHaveLength(1);
      const winner = racing.indexOf(true);
      expect((await store.get('orders/_state/pending/r/p000001.json'))!.body.toString()).toBe(`{"writer":${winner}}`);
    } finally {
      process.env = saved;
      await server.stop();
    }
  }, 60_000);
});
