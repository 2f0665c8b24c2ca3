// A process that runs an export and kills itself (SIGKILL: no finally, no cleanup) at one
// boundary of the protocol. The fault tests start it, let it die, then recover.
import { validateConfig } from '../../lambdas/core/config.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import type { ObjectStore, PutOptions, RowSource, StreamedWrite } from '../../lambdas/core/ports.ts';
import { runExport } from '../../bin/local/run-export.ts';

// The streamed files' own steps: mid-file (inside a part's write, some bytes down), between-parts
// (a part written, the next not begun), before-complete (every byte written, the object not yet
// made whole), before-journal (the chunk's files complete, its journal entry not written).
type CrashPoint = 'mid-copy' | 'mid-page-upload' | 'mid-file' | 'between-parts' | 'before-complete' | 'before-journal' | 'before-second-journal' | 'before-publish' | 'mid-publish' | 'before-watermark' | 'after-watermark' | 'mid-replace' | 'mid-cleanup' | 'after-commit';

const die = (): never => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
};

function crashingStore(inner: ObjectStore, point: CrashPoint): ObjectStore {
  let stagedPuts = 0;
  let moves = 0;
  let partWrites = 0;
  return {
    url: inner.url,
    openWrite(key: string): StreamedWrite {
      const write = inner.openWrite!(key);
      return {
        async write(bytes) {
          partWrites++;
          // Before the second part (a snapshot's single file may have only three).
          if (point === 'mid-page-upload' && partWrites === 2) die();
          if (point === 'mid-file' && partWrites === 3) {
            // Half the part reaches the file, then the process dies inside the write.
            await write.write(bytes.subarray(0, bytes.byteLength >> 1));
            die();
          }
          await write.write(bytes);
          if (point === 'between-parts' && partWrites === 2) die();
        },
        async complete() {
          if (point === 'before-complete') die();
          await write.complete();
        },
        abort: () => write.abort(),
      };
    },
    async put(key: string, body: Uint8Array | string, options?: PutOptions) {
      if (point === 'mid-page-upload' && key.includes('/pending/') && key.endsWith('.parquet') && ++stagedPuts === 4) die();
      if (point === 'before-journal' && /\/pending\/[^/]+\/p\d{6}\.json$/.test(key)) die();
      if (point === 'before-second-journal' && /\/pending\/[^/]+\/p000002\.json$/.test(key)) die();
      if (point === 'before-watermark' && key.endsWith('/watermark.json')) die();
      const done = await inner.put(key, body, options);
      if (point === 'after-watermark' && key.endsWith('/watermark.json')) die();
      return done;
    },
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
    async delete(keys) {
      // Dies removing the data files a re-run replaced, after the earlier manifests were rewritten.
      if (point === 'mid-replace' && keys.some((k) => k.endsWith('.parquet') && !k.includes('/_state/'))) die();
      // Dies halfway through clearing a committed run's journals (S3 batch deletes can also fail part-way).
      if (point === 'mid-cleanup' && keys.some((k) => /\/pending\/[^/]+\/p\d{6}\.json$/.test(k))) {
        await inner.delete(keys.slice(0, Math.floor(keys.length / 2)));
        die();
      }
      return inner.delete(keys);
    },
    deleteIf: (key, etag) => inner.deleteIf(key, etag),
    async move(from, to) {
      if (point === 'before-publish') die();
      const moved = await inner.move(from, to);
      // Once the first file is published (a snapshot run may publish a single file): the others
      // in flight or not yet moved, the watermark not written.
      if (point === 'mid-publish' && ++moves === 1) die();
      return moved;
    },
  };
}

function crashingSource(inner: RowSource, point: CrashPoint): RowSource {
  let copies = 0;
  return {
    describeTable: (t) => inner.describeTable(t),
    readClock: (lag) => inner.readClock(lag),
    queryText: (sql, params) => inner.queryText(sql, params),
    close: () => inner.close(),
    async copyBinary(select) {
      if (point === 'mid-copy' && ++copies === 2) setTimeout(die, 1); // dies while the COPY streams
      return inner.copyBinary(select);
    },
  };
}

const [databaseUrl, lakeUrl, configJson, point, requestJson] = process.argv.slice(2);
const source = new PostgresSource(databaseUrl);
await runExport({
  source: crashingSource(source, point as CrashPoint),
  store: crashingStore(new DirectoryStore(lakeUrl), point as CrashPoint),
  config: validateConfig(JSON.parse(configJson)),
}, JSON.parse(requestJson));
if (point === 'after-commit') die();
await source.close();
// Reaching here means the crash point was never hit: the test must notice.
process.stdout.write('no crash\n');
