// A lake in a local directory (`file:///abs/dir`): the demo, `query` and the tests' reference.
// Writes go to a temporary file and are renamed into place, so a reader never sees half a file.
import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectStore, PutOptions, StoredObject } from '../core/ports.ts';

function etagOf(body: Uint8Array): string {
  return createHash('md5').update(body).digest('hex');
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
    const temp = `${target}.${randomUUID()}.tmp`;
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

  private async withLock<T>(target: string, work: () => Promise<T>): Promise<T> {
    const lock = `${target}.lock`;
    for (let attempt = 0; ; attempt++) {
      try {
        await (await fs.open(lock, 'wx')).close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        // A lock older than 30 s belongs to a process that died holding it.
        const stat = await fs.stat(lock).catch(() => null);
        if (stat && Date.now() - stat.mtimeMs > 30_000) await fs.rm(lock, { force: true });
        if (attempt > 3000) throw new Error(`${lock}: lock held for too long`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    try {
      return await work();
    } finally {
      await fs.rm(lock, { force: true });
    }
  }

  async get(key: string): Promise<StoredObject | null> {
    try {
      const body = await fs.readFile(this.file(key));
      return { body, etag: etagOf(body) };
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

  async delete(keys: readonly string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      const file = this.file(key);
      await fs.rm(file, { force: true });
      dirs.add(path.dirname(file));
    }
    // Empty folders are pruned, as S3 has no folders to leave behind.
    for (let dir of [...dirs].sort().reverse()) {
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
