// The lake's own state, beside the data under `<prefix>/_state/<table>/` where no table reads:
//   schema.json                 the columns of the last commit (what Glue / local views declare)
//   watermark.json              the commit point: cursor reached + the run that reached it
//   lease.json                  who is exporting this table now, until when
//   pending/<runId>/run.json    a run in flight: its window and the pages it will replace
//   pending/<runId>/p<n>.json   one page: its files, written before they are uploaded
//   pending/<runId>/replace.json  after commit: the earlier pages a re-run replaces, until removed
//   pending/<runId>/data/…      the page files themselves, until commit publishes them
//   runs/<runId>.json           a committed run's manifest (pages, key ranges, files)
//   pending/<id>/compaction.json  a compaction in flight: the files each new page merges (protocol/compact.ts)
//   retired/<id>.json           an old generation's files, deleted after the grace period
//   removed/<id>.json           a removed run's data keys, deleted again by later recoveries (a copy landing late)
import type { ObjectStore } from '../ports.ts';
import { StateError } from '../errors.ts';
import { tableStatePrefix } from '../lake/keys.ts';

export interface Window {
  /** Lower cursor bound (text, µs); null = from the beginning. */
  readonly from: string | null;
  readonly fromInclusive: boolean;
  /** Upper cursor bound, inclusive. */
  readonly to: string;
}

export interface Watermark {
  readonly cursor: string;
  readonly runId: string;
  readonly committedAt: string;
  /** cursorTimeZone when it was written (absent before the option existed: UTC). */
  readonly cursorTimeZone?: string;
  /** When a recovery last fenced it (protocol/recovery.ts fenceWatermark): a new content, so a new etag. */
  readonly fencedAt?: string;
}

/**
 * watermark.json before a table's first commit, once a recovery fenced it (protocol/recovery.ts
 * fenceWatermark): no run, no cursor. Its etag is what a first Commit's write must match, so a
 * first Commit that stalled past its lease cannot create the watermark over files removed since.
 */
export interface WatermarkFence {
  readonly fencedAt: string;
}

export interface FileEntry {
  readonly key: string;
  /** Where it waits until commit, when not at stagedKey(run, key): each export invocation stages under its own folder. */
  readonly staged?: string;
  readonly rows: number;
  readonly bytes: number;
}

export interface PageEntry {
  readonly page: number;
  readonly rows: number;
  /** (cursor, pk…) of the page's first and last row, as text. */
  readonly first: string[];
  readonly last: string[];
  readonly files: FileEntry[];
  /**
   * Set on a re-run's page that carries history: the earlier run's page whose other versions it
   * keeps (`first`/`last` are that page's). Its rows are not rows the run exported.
   */
  readonly carriedFrom?: { readonly runId: string; readonly page: number };
}

/** Pages of earlier runs a window/full re-run replaces, by run. */
export interface Supersede {
  readonly runId: string;
  readonly pages: number[];
}

export interface PendingRun {
  readonly runId: string;
  readonly kind: 'scheduled' | 'window' | 'full';
  readonly window: Window;
  readonly supersede: Supersede[];
  readonly startedAt: string;
  /** Run id of the watermark this window was planned from (null: none); commit is fenced on it. */
  readonly basedOn?: string | null;
  /**
   * Claims on a run nobody is running any more, each written over the run.json its writer read
   * (If-Match), so that only one wins: a removal (recovery.ts removeRun) marks it `removing`, an
   * adoption of a failed backfill (adopt-backfill.ts) names the plan that continues it.
   */
  readonly removing?: boolean;
  readonly adoptedBy?: string;
  /** A fresh value at each adoption: run.json never returns to bytes (an etag) a removal read. */
  readonly claim?: string;
}

/** What a committed re-run removes from earlier runs, journalled before any manifest changes. */
export interface Replacement {
  readonly supersede: Supersede[];
  /** Data files of the replaced pages. */
  readonly files: string[];
}

export interface RunManifest {
  readonly runId: string;
  readonly kind: PendingRun['kind'];
  readonly window: Window;
  readonly committedAt: string;
  readonly pages: PageEntry[];
}

export interface Lease {
  readonly runId: string;
  /** The execution (its plan's run id) holding the lease of a run it adopted; absent: the run's own. */
  readonly holder?: string;
  readonly expiresAt: string;
}

/** State objects read at once: S3 answers each GET in ~10–30 ms, so 16 in flight keep a commit of 20,000 journals to seconds. */
const READ_CONCURRENCY = 16;

export class TableState {
  readonly store: ObjectStore;
  readonly root: string;
  readonly lakeTable: string;
  constructor(store: ObjectStore, prefix: string, lakeTable: string) {
    this.store = store;
    this.lakeTable = lakeTable;
    this.root = tableStatePrefix(prefix, lakeTable);
  }

  schemaKey() { return `${this.root}schema.json`; }
  watermarkKey() { return `${this.root}watermark.json`; }
  leaseKey() { return `${this.root}lease.json`; }
  pendingPrefix(runId?: string) { return runId ? `${this.root}pending/${runId}/` : `${this.root}pending/`; }
  /** Where a data file waits, invisible to every table, until its run commits. */
  stagedKey(runId: string, dataKey: string) { return `${this.stagedPrefix(runId)}${dataKey}`; }
  /** Where all of a run's data files wait (stagedKey, writerStagedKey). */
  stagedPrefix(runId: string) { return `${this.pendingPrefix(runId)}data/`; }
  /** Where one Export invocation (`writer`, its own random id) stages a data file: never where another invocation of the same pages does. */
  writerStagedKey(runId: string, writer: string, dataKey: string) { return this.stagedKey(runId, `${writer}/${dataKey}`); }
  /** Where a journalled file is staged. */
  stagedOf(runId: string, file: FileEntry) { return file.staged ?? this.stagedKey(runId, file.key); }
  /** The schema a run publishes, applied after its commit point (pending until then). */
  pendingSchemaKey(runId: string) { return `${this.pendingPrefix(runId)}schema.json`; }
  pendingRunKey(runId: string) { return `${this.pendingPrefix(runId)}run.json`; }
  replacementKey(runId: string) { return `${this.pendingPrefix(runId)}replace.json`; }
  pendingPageKey(runId: string, page: number) { return `${this.pendingPrefix(runId)}p${String(page).padStart(6, '0')}.json`; }
  manifestPrefix() { return `${this.root}runs/`; }
  manifestKey(runId: string) { return `${this.manifestPrefix()}${runId}.json`; }
  /** A compaction's plan; under pending/, so a plan that finds it uncommitted removes it with the run. */
  compactionKey(runId: string) { return `${this.pendingPrefix(runId)}compaction.json`; }
  retiredPrefix() { return `${this.root}retired/`; }
  retiredKey(runId: string) { return `${this.retiredPrefix()}${runId}.json`; }
  removedPrefix() { return `${this.root}removed/`; }
  removedKey(runId: string) { return `${this.removedPrefix()}${runId}.json`; }

  async read<T>(key: string): Promise<{ value: T; etag: string; modifiedAt?: Date } | null> {
    const object = await this.store.get(key);
    if (!object) return null;
    try {
      return { value: JSON.parse(object.body.toString('utf8')) as T, etag: object.etag, ...(object.modifiedAt ? { modifiedAt: object.modifiedAt } : {}) };
    } catch (error) {
      throw new StateError(`${this.store.url}${key} is not valid JSON; the lake state is damaged`, { cause: error });
    }
  }

  async write(key: string, value: unknown, options?: { ifNoneMatch?: boolean; ifMatch?: string }): Promise<boolean> {
    return this.store.put(key, `${JSON.stringify(value, null, 1)}\n`, options);
  }

  /** The committed watermark (without the fence's time); null before the table's first commit. */
  async watermark(): Promise<Watermark | null> {
    return (await this.watermarkObject())?.value ?? null;
  }

  /**
   * watermark.json and its etag, for a write conditional on it: `value` is the committed
   * watermark without the fence's time, null while the object holds only a fence (no run
   * committed yet); null when there is no such object.
   */
  async watermarkObject(): Promise<{ value: Watermark | null; etag: string } | null> {
    const stored = await this.read<Watermark | WatermarkFence>(this.watermarkKey());
    if (!stored) return null;
    if (!('runId' in stored.value)) return { value: null, etag: stored.etag };
    const { fencedAt: _fence, ...watermark } = stored.value;
    return { value: watermark, etag: stored.etag };
  }

  /** Run ids with a pending directory. */
  async pendingRuns(): Promise<string[]> {
    const keys = await this.store.list(this.pendingPrefix());
    const ids = new Set(keys.map((k) => k.slice(this.pendingPrefix().length).split('/')[0]));
    return [...ids].sort();
  }

  /** `listed`: the run's pending/ keys when the caller has listed them already. */
  async pendingPages(runId: string, listed?: Iterable<string>): Promise<PageEntry[]> {
    const keys = [...(listed ?? await this.store.list(this.pendingPrefix(runId)))].filter((k) => /\/p\d{6}\.json$/.test(k));
    return (await this.readAll<PageEntry>(keys)).sort((a, b) => a.page - b.page);
  }

  async manifests(): Promise<RunManifest[]> {
    return this.readAll<RunManifest>(await this.store.list(this.manifestPrefix()));
  }

  /** Many small state objects, READ_CONCURRENCY at a time (a large run has thousands of journals), in key order. */
  async readAll<T>(keys: readonly string[]): Promise<T[]> {
    const values: (T | null)[] = new Array(keys.length).fill(null);
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const i = next++;
        values[i] = (await this.read<T>(keys[i]))?.value ?? null;
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, keys.length) }, worker));
    return values.filter((v): v is T => v !== null);
  }
}
