// A lake in a local directory (`file:///abs/dir`): the demo, `query` and the tests' reference.
// Writes go to a temporary file and are renamed into place, so a reader never sees half a file.
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectStore, PutOptions, StoredObject, StreamedWrite } from '../core/ports.ts';

function etagOf(body: Uint8Array): string {
  return createHash('md5').update(body).digest('hex');
}

/** How long a writer waits for a lock held by a live process before giving up, naming the lock. */
const LOCK_WAIT_MS = 30_000;

/**
 * When process `pid` started (Linux: clock ticks since boot, /proc/<pid>/stat field 22), so a
 * lock names its holder even after the pid is reused; null where there is no /proc.
 */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** What a lock file says of its holder: `<pid> <start time>`. */
const LOCK_HOLDER = `${process.pid} ${startTimeOf(process.pid) ?? ''}`.trim();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove `lock` if its holder died (its pid is gone, or now names a process started at another
 * time); re-checked just before removal. A live holder's lock is never removed, however old: a
 * process paused inside its section (Ctrl-Z, a laptop asleep) must not find on waking that
 * another wrote between its compare and its write (breaker HI: a Commit renamed its watermark
 * over a recovery's fence). Its waiters give up after LOCK_WAIT_MS, naming the lock.
 */
async function removeStaleLock(lock: string): Promise<void> {
  const before = await fs.stat(lock).catch(() => null);
  if (!before) return;
  const [pidText, started] = (await fs.readFile(lock, 'utf8').catch(() => '')).trim().split(' ');
  const pid = Number(pidText);
  const age = Date.now() - before.mtimeMs;
  // An empty file: its holder died between creating and writing it (or is writing it right now).
  const startedNow = Number.isInteger(pid) && pid > 0 && started !== undefined ? startTimeOf(pid) : null;
  const dead = Number.isInteger(pid) && pid > 0 ? !processAlive(pid) || (startedNow !== null && startedNow !== started) : age > 1_000;
  if (!dead) return;
  const now = await fs.stat(lock).catch(() => null);
  if (now && now.ino === before.ino && now.mtimeMs === before.mtimeMs) await fs.rm(lock, { force: true });
}

/** A `.tmp` file this old was left by a writer that died (a live put renames it within ms). */
const ABANDONED_TEMP_MS = 60_000;

/** `<key>.<pid>-<uuid>.tmp`: the writing process is named, so a dead one's file is known at once. */
function tempName(target: string): string {
  return `${target}.${process.pid}-${randomUUID()}.tmp`;
}

async function isAbandoned(file: string): Promise<boolean> {
  const pid = Number(/\.(\d+)-[0-9a-f-]{36}\.tmp$/.exec(file)?.[1]);
  if (Number.isInteger(pid) && pid > 0 && !processAlive(pid)) return true;
  const stat = await fs.stat(file).catch(() => null);
  return stat !== null && Date.now() - stat.mtimeMs > ABANDONED_TEMP_MS;
}

async function removeAbandonedTemps(dir: string): Promise<void> {
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  for (const name of entries.filter((n) => n.endsWith('.tmp'))) {
    const file = path.join(dir, name);
    if (await isAbandoned(file)) await fs.rm(file, { force: true });
  }
}

export class DirectoryStore implements ObjectStore {
  readonly url: string;
  readonly root: string;

  constructor(url: string) {
    this.url = url.endsWith('/') ? url : `${url}/`;
    this.root = fileURLToPath(this.url);
  }

  private file(key: string): string {
    const full = path.resolve(this.root, key);
    if (!full.startsWith(this.root)) throw new Error(`object key ${JSON.stringify(key)} escapes the lake directory`);
    return full;
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<boolean> {
    const target = this.file(key);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    const temp = tempName(target);
    await fs.writeFile(temp, bytes);
    try {
      if (options.ifNoneMatch) {
        try {
          await fs.link(temp, target);
          return true;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
          throw error;
        }
      }
      if (options.ifMatch !== undefined) {
        // Compare and replace under an exclusive lock file, so two processes cannot both win.
        return await this.withLock(target, async () => {
          const current = await this.get(key);
          if (!current || current.etag !== options.ifMatch) return false;
          await fs.rename(temp, target);
          return true;
        });
      }
      await fs.rename(temp, target);
      return true;
    } finally {
      await fs.rm(temp, { force: true });
    }
  }

  /**
   * A file written as its bytes come, into `<key>.<pid>-<uuid>.tmp` (never listed), renamed onto
   * the key when complete: a reader sees the whole file or none. A writer killed before that
   * leaves only the temporary file, which sweepAbandonedWrites removes.
   */
  openWrite(key: string): StreamedWrite {
    const target = this.file(key);
    const temp = tempName(target);
    let handle: Promise<fs.FileHandle> | null = null;
    let finished = false;
    const opened = () => (handle ??= fs.mkdir(path.dirname(target), { recursive: true }).then(() => fs.open(temp, 'w')));
    return {
      async write(bytes) {
        if (finished) throw new Error(`${key}: write after the file was completed or aborted`);
        const file = await opened();
        // FileHandle.write may write less than asked: loop until all of it is down.
        for (let at = 0; at < bytes.byteLength;) at += (await file.write(bytes, at, bytes.byteLength - at)).bytesWritten;
      },
      async complete() {
        if (finished) throw new Error(`${key}: completed twice or after abort`);
        const file = await opened();
        await file.close();
        await fs.rename(temp, target);
        finished = true;
      },
      async abort() {
        if (finished) return;
        finished = true;
        if (handle) await (await handle.catch(() => null))?.close().catch(() => undefined);
        await fs.rm(temp, { force: true });
      },
    };
  }

  /**
   * Run `work` holding `<target>.lock`, created exclusively and naming its holder (pid and start
   * time). The section it guards is one read and one rename: a lock whose holder was killed in
   * it is taken over at once, so a kill never blocks the next run; a live holder's lock is
   * waited for (LOCK_WAIT_MS, then an error naming the lock).
   */
  private async withLock<T>(target: string, work: () => Promise<T>): Promise<T> {
    const lock = `${target}.lock`;
    const waitUntil = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await fs.open(lock, 'wx');
        try {
          await handle.writeFile(`${LOCK_HOLDER}\n`);
        } finally {
          await handle.close();
        }
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        await removeStaleLock(lock);
        if (Date.now() > waitUntil) throw new Error(`${lock}: lock held for more than ${LOCK_WAIT_MS / 1000} s by a live process (pid ${(await fs.readFile(lock, 'utf8').catch(() => '?')).trim().split(' ')[0]}, paused or stuck); remove the file if that process is not a pg-lake-export writer`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    try {
      return await work();
    } finally {
      await fs.rm(lock, { force: true });
    }
  }

  /**
   * Remove the temporary files writers that died left under `prefix` (a killed put leaves
   * `<key>.<pid>-<uuid>.tmp`, which listings never show), and the folders that leaves empty.
   * A live writer's file is kept.
   */
  async sweepAbandonedWrites(prefix: string): Promise<void> {
    const walk = async (dir: string): Promise<void> => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) if (entry.isDirectory()) await walk(path.join(dir, entry.name));
      await removeAbandonedTemps(dir);
      if (dir !== this.root) await fs.rmdir(dir).catch(() => undefined); // only if empty
    };
    await walk(this.file(prefix));
  }

  async get(key: string): Promise<StoredObject | null> {
    try {
      const [body, stat] = await Promise.all([fs.readFile(this.file(key)), fs.stat(this.file(key))]);
      return { body, etag: etagOf(body), modifiedAt: stat.mtime };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (!entry.name.endsWith('.tmp') && !entry.name.endsWith('.lock')) {
          const key = path.relative(this.root, full).split(path.sep).join('/');
          if (key.startsWith(prefix)) keys.push(key);
        }
      }
    };
    // Walk from the deepest directory the prefix names.
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    await walk(path.join(this.root, dirPart));
    return keys.sort();
  }

  async move(from: string, to: string): Promise<boolean> {
    const target = this.file(to);
    await fs.mkdir(path.dirname(target), { recursive: true });
    try {
      await fs.rename(this.file(from), target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      if (await fs.stat(target).then(() => true, () => false)) return false;
      throw new Error(`cannot move ${from} to ${to}: neither exists`);
    }
    await this.delete([from]); // prunes the emptied folders
    return true;
  }

  async deleteIf(key: string, etag: string): Promise<boolean> {
    if ((await this.get(key))?.etag !== etag) return false;
    const target = this.file(key);
    // Compared and removed under the lock a conditional put takes, so a put cannot land between.
    const deleted = await this.withLock(target, async () => {
      if ((await this.get(key))?.etag !== etag) return false;
      await fs.rm(target, { force: true });
      return true;
    });
    // Only the folders are pruned after: the key may hold a new object already (breaker HI: a
    // second, unconditional delete here removed a lease created in between).
    if (deleted) await this.pruneFolders([path.dirname(target)]);
    return deleted;
  }

  async delete(keys: readonly string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      const file = this.file(key);
      await fs.rm(file, { force: true });
      dirs.add(path.dirname(file));
    }
    await this.pruneFolders(dirs);
  }

  /**
   * Empty folders are pruned, as S3 has no folders to leave behind. A temporary file a killed
   * writer left (put writes `<key>.<uuid>.tmp`, then renames) goes too once it is older than
   * any live write can be, so a folder the protocol emptied does not stay for it.
   */
  private async pruneFolders(folders: Iterable<string>): Promise<void> {
    const dirs = [...folders];
    for (const dir of dirs) await removeAbandonedTemps(dir);
    for (let dir of dirs.sort().reverse()) {
      while (dir.startsWith(this.root) && dir.length > this.root.length) {
        try {
          await fs.rmdir(dir);
        } catch {
          break;
        }
        dir = path.dirname(dir);
      }
    }
  }
}
