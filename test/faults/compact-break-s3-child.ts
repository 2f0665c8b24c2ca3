// Breaker (HG): a process that compacts one table on an S3 lake (the production S3 adapter and
// client, pointed at the local S3 API server) and SIGKILLs itself at one step: before or after a
// named write, or half-way through a batch delete. compact-break-s3-crash.test.ts starts it.
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import type { ObjectStore, PutOptions } from '../../lambdas/core/ports.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';

export const S3_CRASH_POINTS = [
  'after-lease', 'mid-retire-delete', 'after-plan', 'after-first-journal', 'mid-build', 'before-switch', 'after-switch',
  'after-schema', 'after-manifest', 'after-retired', 'mid-manifest-delete', 'mid-cleanup', 'before-release',
] as const;
export type S3CrashPoint = (typeof S3_CRASH_POINTS)[number];

const die = (): never => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
};

function crashingStore(inner: S3Store, point: S3CrashPoint): ObjectStore {
  let generationPuts = 0;
  const state = (key: string, tail: RegExp) => key.includes('/_state/') && tail.test(key);
  const live = (key: string, name: string) => state(key, new RegExp(`/_state/[^/]+/${name}$`));
  return {
    url: inner.url,
    async put(key: string, body: Uint8Array | string, options?: PutOptions) {
      if (point === 'mid-build' && key.includes('/generation=') && key.endsWith('.parquet') && ++generationPuts === 2) die();
      if (point === 'before-switch' && live(key, 'watermark\\.json')) die();
      const done = await inner.put(key, body, options);
      if (point === 'after-lease' && live(key, 'lease\\.json')) die();
      if (point === 'after-plan' && state(key, /\/pending\/[^/]+\/compaction\.json$/)) die();
      if (point === 'after-first-journal' && state(key, /\/pending\/[^/]+\/p000001\.json$/)) die();
      if (point === 'after-switch' && live(key, 'watermark\\.json')) die();
      if (point === 'after-schema' && live(key, 'schema\\.json')) die();
      if (point === 'after-manifest' && state(key, /\/runs\/[^/]+\.json$/)) die();
      if (point === 'after-retired' && state(key, /\/retired\/[^/]+\.json$/)) die();
      return done;
    },
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
    async delete(keys) {
      const half = async () => {
        await inner.delete(keys.slice(0, Math.ceil(keys.length / 2)));
        die();
      };
      // The previous generation's files, deleted at the start (graceMinutes 0).
      if (point === 'mid-retire-delete' && keys.length > 1 && keys.every((k) => k.endsWith('.parquet'))) await half();
      if (point === 'mid-manifest-delete' && keys.some((k) => /\/_state\/[^/]+\/runs\//.test(k))) await half();
      if (point === 'mid-cleanup' && keys.some((k) => /\/pending\/[^/]+\/p\d{6}\.json$/.test(k))) await half();
      if (point === 'before-release' && keys.some((k) => k.endsWith('/lease.json'))) die();
      return inner.delete(keys);
    },
    async deleteIf(key, etag) {
      if (point === 'before-release' && key.endsWith('/lease.json')) die();
      return inner.deleteIf(key, etag);
    },
    move: (from, to) => inner.move(from, to),
  };
}

if (process.argv[1] === import.meta.filename) {
  const [endpoint, bucket, configJson, table, point] = process.argv.slice(2);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  const store = crashingStore(new S3Store(createS3Client(), bucket), point as S3CrashPoint);
  const result = await compactTable({ store, config: validateConfig(JSON.parse(configJson)) }, table, { force: true });
  // Reaching here means the crash point was never hit: the test must notice.
  process.stdout.write(`no crash: ${JSON.stringify(result)}\n`);
}
