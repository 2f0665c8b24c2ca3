// The directory lake's compare-and-replace lock: a lock left by a killed process never blocks
// the next writer for longer than it takes to see its holder is gone.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';

let dir: string;
let store: DirectoryStore;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'dirstore-'));
  store = new DirectoryStore(pathToFileURL(dir).href);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

async function replaceTimed(lockBody: string, ageSeconds: number): Promise<{ written: boolean; millis: number }> {
  await store.put('state/watermark.json', 'v1');
  const etag = (await store.get('state/watermark.json'))!.etag;
  const lock = path.join(dir, 'state', 'watermark.json.lock');
  writeFileSync(lock, lockBody);
  const then = (Date.now() - ageSeconds * 1000) / 1000;
  utimesSync(lock, then, then);
  const started = Date.now();
  const written = await store.put('state/watermark.json', 'v2', { ifMatch: etag });
  return { written, millis: Date.now() - started };
}

describe('DirectoryStore lock', () => {
  it('takes over at once a lock whose holder was killed inside it', async () => {
    const { written, millis } = await replaceTimed(`${deadPid()}\n`, 0);
    expect(written).toBe(true);
    expect(millis).toBeLessThan(2_000);
    expect((await store.get('state/watermark.json'))!.body.toString()).toBe('v2');
  });

  it('takes over an empty lock (killed between creating and writing it) after a second', async () => {
    const { written, millis } = await replaceTimed('', 2);
    expect(written).toBe(true);
    expect(millis).toBeLessThan(2_000);
  });

  it('waits for a live holder\'s lock however old (a paused process), and writes once it is given back', async () => {
    // This process's own pid and start time: a live holder, its lock 11 s old. Before, a lock
    // older than 10 s was taken whoever held it, and a writer paused inside its section then
    // wrote over what was written meanwhile (breaker HI).
    const holder = readFileSync('/proc/self/stat', 'utf8');
    const started = holder.slice(holder.lastIndexOf(')') + 2).split(' ')[19];
    const lock = path.join(dir, 'state', 'watermark.json.lock');
    setTimeout(() => rmSync(lock, { force: true }), 1_500);
    const { written, millis } = await replaceTimed(`${process.pid} ${started}\n`, 11);
    expect(written).toBe(true);
    expect(millis).toBeGreaterThanOrEqual(1_400);
  });

  it('takes over at once a lock whose pid now names another process (the holder died, its pid reused)', async () => {
    const { written, millis } = await replaceTimed(`${process.pid} 1\n`, 0);
    expect(written).toBe(true);
    expect(millis).toBeLessThan(2_000);
  });

  it('a compare-and-replace with a stale etag still fails after taking a dead lock over', async () => {
    await store.put('state/watermark.json', 'v1');
    const lock = path.join(dir, 'state', 'watermark.json.lock');
    writeFileSync(lock, `${deadPid()}\n`);
    expect(await store.put('state/watermark.json', 'v2', { ifMatch: 'not-the-etag' })).toBe(false);
    expect((await store.get('state/watermark.json'))!.body.toString()).toBe('v1');
  });
});

describe('DirectoryStore temporary files', () => {
  it('deleting the last key of a folder removes a temporary file a killed writer left there, and the folder', async () => {
    await store.put('pending/run/run.json', '{}');
    const temp = path.join(dir, 'pending', 'run', 'p000001.json.0b0e.tmp');
    writeFileSync(temp, 'half a journal');
    const then = (Date.now() - 120_000) / 1000;
    utimesSync(temp, then, then);
    await store.delete(['pending/run/run.json']);
    expect(existsSync(path.join(dir, 'pending'))).toBe(false);
  });

  it('leaves a fresh temporary file alone (a write in progress)', async () => {
    await store.put('pending/run/run.json', '{}');
    const temp = path.join(dir, 'pending', 'run', 'p000001.json.0b0e.tmp');
    writeFileSync(temp, 'being written');
    await store.delete(['pending/run/run.json']);
    expect(existsSync(temp)).toBe(true);
  });
});

describe('DirectoryStore.sweepAbandonedWrites', () => {
  it('removes a dead writer\'s temporary file at once, anywhere under the prefix, and keeps a live one', async () => {
    await store.put('state/runs/a.json', '{}');
    const dead = path.join(dir, 'state', 'runs', `b.json.${deadPid()}-0b0e6d1c-7e55-4b1f-9f0b-1b2c3d4e5f60.tmp`);
    const live = path.join(dir, 'state', 'runs', `c.json.${process.pid}-0b0e6d1c-7e55-4b1f-9f0b-1b2c3d4e5f61.tmp`);
    writeFileSync(dead, 'killed mid-write');
    writeFileSync(live, 'being written');
    await store.sweepAbandonedWrites('state/');
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(await store.list('state/')).toEqual(['state/runs/a.json']);
  });
});

describe('DirectoryStore.openWrite (streamed files)', () => {
  it('shows the file only once complete, whole; before that only a temporary file a listing never shows', async () => {
    const write = store.openWrite('raw/t/year=2024/a.parquet');
    await write.write(Buffer.from('PAR1 first row group '));
    await write.write(Buffer.from('second row group PAR1'));
    expect(await store.list('raw/t/')).toEqual([]);
    expect(await store.get('raw/t/year=2024/a.parquet')).toBeNull();
    await write.complete();
    expect((await store.get('raw/t/year=2024/a.parquet'))!.body.toString()).toBe('PAR1 first row group second row group PAR1');
    expect(await store.list('raw/t/')).toEqual(['raw/t/year=2024/a.parquet']);
  });

  it('is done with the bytes it was given once a write resolves: freed then, the file is still whole', async () => {
    // The exporter frees a page's parts once their writes resolve (encode-worker.ts releaseParts).
    const write = store.openWrite('raw/t/year=2024/freed.parquet');
    for (const text of ['PAR1 row group one ', 'row group two PAR1']) {
      const own = new Uint8Array(new ArrayBuffer(text.length));
      own.set(Buffer.from(text));
      await write.write(own);
      own.buffer.transfer(0);
    }
    await write.complete();
    expect((await store.get('raw/t/year=2024/freed.parquet'))!.body.toString()).toBe('PAR1 row group one row group two PAR1');
  });

  it('abort leaves nothing, not even the temporary file', async () => {
    const write = store.openWrite('raw/t/b.parquet');
    await write.write(Buffer.alloc(1000, 1));
    await write.abort();
    await write.abort();
    expect(await store.get('raw/t/b.parquet')).toBeNull();
    const left = spawnSync('find', [dir, '-name', '*.tmp']).stdout.toString().trim();
    expect(left).toBe('');
  });

  it('a writer killed mid-file leaves only its temporary file, which the sweep removes', async () => {
    const script = `import { DirectoryStore } from ${JSON.stringify(path.resolve('lambdas/adapters/directory-store.ts'))};
      const w = new DirectoryStore(${JSON.stringify(pathToFileURL(dir).href)}).openWrite('raw/t/c.parquet');
      await w.write(Buffer.alloc(4096, 7));
      process.kill(process.pid, 'SIGKILL');`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script]);
    expect(child.signal).toBe('SIGKILL');
    expect(spawnSync('find', [dir, '-name', 'c.parquet.*.tmp']).stdout.toString().trim()).not.toBe('');
    expect(await store.list('raw/')).toEqual([]);
    await store.sweepAbandonedWrites('raw/');
    expect(spawnSync('find', [dir, '-name', '*.tmp']).stdout.toString().trim()).toBe('');
  });
});
