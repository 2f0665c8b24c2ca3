// A process that compacts one table and kills itself (SIGKILL: no finally, no cleanup) at one
// step of the compaction. test/faults/compact-crash.test.ts starts it, lets it die, recovers.
import { validateConfig } from '../../lambdas/core/config.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import type { ObjectStore, PutOptions } from '../../lambdas/core/ports.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';

export const COMPACTION_CRASH_POINTS = [
  'mid-build', 'before-switch', 'after-switch', 'before-schema', 'after-schema', 'before-retire', 'mid-cleanup', 'before-release',
] as const;
type CrashPoint = (typeof COMPACTION_CRASH_POINTS)[number];

const die = (): never => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
};

/** The directory store, dying at `point`: the operation named is not done (or, for after-*, done). */
function crashingStore(inner: DirectoryStore, point: CrashPoint): ObjectStore {
  let generationPuts = 0;
  const isState = (key: string, tail: RegExp) => key.includes('/_state/') && tail.test(key);
  const store: ObjectStore = {
    url: inner.url,
    async put(key: string, body: Uint8Array | string, options?: PutOptions) {
      if (point === 'mid-build' && key.includes('/generation=') && ++generationPuts === 3) die();
      if (point === 'before-switch' && isState(key, /\/watermark\.json$/)) die();
      if (point === 'before-schema' && isState(key, /\/[^/]+\/schema\.json$/) && !key.includes('/pending/')) die();
      if (point === 'before-retire' && isState(key, /\/retired\//)) die();
      const done = await inner.put(key, body, options);
      if (point === 'after-switch' && isState(key, /\/watermark\.json$/)) die();
      if (point === 'after-schema' && isState(key, /\/[^/]+\/schema\.json$/) && !key.includes('/pending/')) die();
      return done;
    },
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
    async delete(keys) {
      if (point === 'mid-cleanup' && keys.some((k) => /\/pending\/[^/]+\/p\d{6}\.json$/.test(k))) {
        await inner.delete(keys.slice(0, Math.floor(keys.length / 2)));
        die();
      }
      if (point === 'before-release' && keys.some((k) => k.endsWith('/lease.json'))) die();
      return inner.delete(keys);
    },
    async deleteIf(key, etag) {
      if (point === 'before-release' && key.endsWith('/lease.json')) die();
      return inner.deleteIf(key, etag);
    },
    move: (from, to) => inner.move(from, to),
    sweepAbandonedWrites: (prefix) => inner.sweepAbandonedWrites(prefix),
  };
  return store;
}

if (process.argv[1] === import.meta.filename) {
  const [lakeUrl, configJson, table, point] = process.argv.slice(2);
  // Forced: the crash points are the same whatever the thresholds say.
  const result = await compactTable({ store: crashingStore(new DirectoryStore(lakeUrl), point as CrashPoint), config: validateConfig(JSON.parse(configJson)) }, table, { force: true });
  // Reaching here means the crash point was never hit: the test must notice.
  process.stdout.write(`no crash: ${JSON.stringify(result)}\n`);
}
