// Page encoding off the main thread. The main thread only receives COPY bytes (and issues the
// next keyset page); a worker frames, decodes and appends the rows to the chunk's growing
// Parquet files (encode-page.ts ChunkWriter). The COPY buffer is transferred to the worker and
// back (to receive a later page), the files' bytes to the main thread as row groups are flushed:
// no page is copied between threads.
//
//   const encoder = sharedPageEncoder();            // starts the worker once (wasm init overlaps the first COPY)
//   const chunks = encoder.openChunks({ layout, stamp, settings, hashSalt });   // sent with the first page only
//   const bounds = pageBounds(layout, copyBytes);   // rows, first/last key: enough for the next page's query
//   const page = await chunks.append(copyBytes, close);   // copyBytes is detached after this call
//   upload(page.parts); if (page.closed) journal(page.closed);
//   reuse(page.spare);                              // the page's memory, back whole
//
// The worker runs this same file (or, beside a Lambda bundle, the encoder's own bundle of it:
// the module checks for its marker in workerData). With `{ worker: false }`, or where threads are
// unavailable, encoding runs inline with the same results: files are identical either way.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { boundsFromMessages, copyMessages, fieldOffset, scanCopyBinary } from './copy-binary.ts';
import { ExportError, StateError, reviveError } from '../errors.ts';
import { rowKeyText, type AppendedPage, type ChunkSettings, type PageLayout, type RunStamp } from './page-layout.ts';
import type { ChunkWriter } from './encode-page.ts';

// Decoding and Parquet (apache-arrow, parquet-wasm) load only where pages are encoded: in the
// worker thread, or in this thread for the inline encoder.
let pageModule: Promise<typeof import('./encode-page.ts')> | null = null;
// A failed load is not remembered: the next page tries again.
const loadPage = () => (pageModule ??= import('./encode-page.ts').catch((error: unknown) => { pageModule = null; throw error; }));

const MARK = 'pg-lake-export:encode-worker';
/** This thread is an encoder (it runs the whole Lambda bundle, handler modules included). */
const ENCODER_THREAD = !isMainThread && parentPort !== null && (workerData as Record<string, unknown> | null)?.[MARK] === true;

export interface PageBounds {
  readonly rows: number;
  /** (cursor, pk…) of the first and last row as text; empty when the page has no rows. */
  readonly firstKey: string[];
  readonly lastKey: string[];
  /** Key columns that are NULL in the last row (a nullable user-asserted key): no keyset can resume after it. */
  readonly lastKeyNulls: string[];
}

/**
 * Rows and first/last key of a binary COPY page, without decoding it: read off the stream's
 * message boundaries when its receiver recorded them and they fit (boundsFromMessages), else
 * by scanning every field of every row (~5 ms per 100k rows).
 */
export function pageBounds(layout: PageLayout, copy: Buffer): PageBounds {
  const messages = copyMessages.get(copy);
  const scan = (messages && boundsFromMessages(copy, layout.columns.length, messages)) ?? scanCopyBinary(copy, layout.columns.length);
  if (scan.rowCount === 0) return { rows: 0, firstKey: [], lastKey: [], lastKeyNulls: [] };
  const lastKeyNulls = layout.keyFields.filter((f) => copy.readInt32BE(fieldOffset(copy, scan.lastRowStart, f)) < 0).map((f) => layout.columns[f].name);
  return { rows: scan.rowCount, firstKey: rowKeyText(layout, copy, scan.firstRowStart), lastKey: rowKeyText(layout, copy, scan.lastRowStart), lastKeyNulls };
}

/** One export's chunks: pages appended in keyset order to the files of the open chunk. */
export interface ChunkSession {
  /**
   * Frame, decode and append one binary COPY page to the open chunk (`close`: the chunk ends
   * with it). The page's memory is handed over: `copy` must not be used after this call; `spare`
   * gives its memory back whole, for the next page's COPY to be written into (null when it was
   * not the page's own). Pages are appended one at a time, in call order. A failed append drops
   * the open chunk.
   */
  append(copy: Buffer, close: boolean): Promise<AppendedPage & { readonly spare: Buffer | null }>;
  /** Drop the open chunk, if any, and end the session. */
  end(): Promise<void>;
}

/** What stays the same for all of a session's pages: sent to the encoder once, with its first page. */
export interface ChunkSessionOpen {
  readonly layout: PageLayout;
  readonly stamp: RunStamp;
  readonly settings: ChunkSettings;
  /** Salt of columns.hash (required when the layout hashes a column); never logged. */
  readonly hashSalt?: string;
}

export interface PageEncoder {
  openChunks(open: ChunkSessionOpen): ChunkSession;
  /** True once the worker thread is gone: every later encode fails. */
  failed(): boolean;
  close(): Promise<void>;
}

export interface PageEncoderOptions {
  /** Encode in a worker thread (default true). */
  readonly worker?: boolean;
}

// ---------------------------------------------------------------- inline

/** The open chunks of this thread, by session (several tables may export at once), with their field count. */
const writers = new Map<number, { readonly writer: ChunkWriter; readonly fields: number }>();

/** `open`: the session's constants, given with its first page (and again after a failed one). */
async function appendInline(session: number, open: ChunkSessionOpen | undefined, copy: Buffer, close: boolean): Promise<AppendedPage> {
  const { ChunkWriter } = await loadPage();
  let chunk = writers.get(session);
  if (!chunk) {
    if (!open) throw new StateError(`page encoder: chunk session ${session} was given a page before its layout`);
    chunk = { writer: new ChunkWriter(open.layout, open.stamp, open.settings, open.hashSalt), fields: open.layout.columns.length };
    writers.set(session, chunk);
  }
  try {
    return await chunk.writer.append(copy, close);
  } catch (error) {
    await endInline(session);
    throw error;
  }
}

async function endInline(session: number): Promise<void> {
  const chunk = writers.get(session);
  writers.delete(session);
  await chunk?.writer.abort();
}

let nextSession = 0;

function inlineEncoder(): PageEncoder {
  return {
    failed: () => false,
    openChunks(open) {
      const session = nextSession++;
      // One at a time, in call order (as the worker serves them).
      let last: Promise<unknown> = Promise.resolve();
      const serial = <T>(work: () => Promise<T>): Promise<T> => {
        const run = last.then(work, work);
        last = run.catch(() => undefined);
        return run;
      };
      return {
        append: (copy, close) => serial(async () => ({ ...(await appendInline(session, open, copy, close)), spare: ownedMemory(copy) })),
        end: () => serial(() => endInline(session)),
      };
    },
    close: async () => undefined,
  };
}

// ---------------------------------------------------------------- worker protocol

type Request =
  | {
    readonly id: number;
    readonly kind: 'append';
    readonly session: number;
    /** With the session's first page, and again after a failed append (which dropped its chunk). */
    readonly open?: ChunkSessionOpen;
    /** The page is `copy[0, length)`; the whole buffer moves to the worker and back. */
    readonly copy: ArrayBuffer;
    readonly length: number;
    readonly close: boolean;
  }
  | { readonly id: number; readonly kind: 'end'; readonly session: number };

type Reply =
  | { readonly id: number; readonly ok: true; readonly page: AppendedPage | null; readonly spare: ArrayBuffer | null }
  | { readonly id: number; readonly ok: false; readonly error: { name: string; message: string; stack?: string } };

/**
 * The whole memory under a page (usually a view at the start of a larger reused buffer), when
 * the page owns it: small Buffers share Node's pool slab, which must never move or be reused.
 */
export function ownedMemory(bytes: Buffer): Buffer | null {
  const memory = bytes.buffer;
  if (!(memory instanceof ArrayBuffer) || bytes.byteOffset !== 0 || memory.byteLength <= Buffer.poolSize) return null;
  return Buffer.from(memory, 0, memory.byteLength);
}

/**
 * A page in memory it does not own (Node's pool slab, which must never move) copied once into
 * memory that can move and be reused: larger than the pool, so never taken from it.
 */
function ownCopy(bytes: Buffer): Buffer {
  const own = Buffer.allocUnsafeSlow(Math.max(bytes.length, Buffer.poolSize + 1));
  own.set(bytes);
  return own;
}

/**
 * Whether a part's memory is its page's own, to move to another thread or give back: a view into
 * Node's shared pool (never its own memory) is not.
 */
function movable(memory: ArrayBufferLike): memory is ArrayBuffer {
  return memory instanceof ArrayBuffer && memory.byteLength > Buffer.poolSize;
}

/**
 * The parts' memory, to be moved rather than copied: a file's parts are views (a row group is
 * spliced from the column chunks of small encodes), several into one buffer, each buffer moved
 * once. A view into Node's shared pool (never its own memory) is copied instead.
 */
function transferParts<P extends { readonly bytes: Uint8Array }>(parts: readonly P[], transfer: ArrayBuffer[]): P[] {
  const moving = new Set<ArrayBuffer>();
  const out = parts.map((p) => {
    const memory = p.bytes.buffer;
    if (!movable(memory)) return { ...p, bytes: new Uint8Array(p.bytes) };
    moving.add(memory);
    return p;
  });
  transfer.push(...moving);
  return out;
}

/**
 * Frees the parts' memory now (ArrayBuffer#transfer(0) detaches it), once they are written: the
 * store is done with bytes when its write resolves (ports.ts StreamedWrite). Left to the garbage
 * collector, a part that waited through two young collections before it was written dies in the
 * old generation, where only a full collection frees it: at 10M rows the main thread held up to
 * ~50 MiB more of them (bench, --initial-old-space-size=64: peak RSS 329–358 → 297–317 MiB;
 * README, Performance). The same memory transferParts would move (never Node's pool).
 */
export function releaseParts(parts: readonly { readonly bytes: Uint8Array }[]): void {
  for (const { bytes } of parts) {
    const memory = bytes.buffer;
    if (movable(memory) && !memory.detached) memory.transfer(0);
  }
}

/**
 * The encoder thread's own bundle, shipped beside a Lambda bundle that encodes (lib/encoder-bundle.ts):
 * it holds this module and what encoding needs, nothing of the handler. Run as the thread's
 * file instead of the handler's bundle, it spares every cold start loading the AWS SDK clients,
 * Powertools and pg a second time (measured: ~0.3 s of CPU and ~45 MiB).
 */
export const ENCODER_BUNDLE = 'encoder.js';

function workerFile(): string {
  // ESM source runs this file; a CommonJS bundle its encoder bundle, or, where none was shipped
  // beside it (a bundle made by hand), the bundle itself.
  if (typeof __filename !== 'string') return fileURLToPath(import.meta.url);
  const own = join(dirname(__filename), ENCODER_BUNDLE);
  return __filename !== own && existsSync(own) ? own : __filename;
}

/**
 * The encoder's young generation (V8 default: grows to 3 × 16 MiB and stays). A page's garbage
 * is a few small objects around multi-MB buffers that live outside the heap, so a small young
 * generation costs no speed and keeps peak RSS flat (10M rows: 307 → 254 MiB, both threads
 * limited; the Lambdas limit the main thread with NODE_OPTIONS=--max-semi-space-size=4).
 */
const YOUNG_GENERATION_MIB = 12;

function workerEncoder(): PageEncoder {
  const worker = new Worker(workerFile(), { workerData: { [MARK]: true }, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MIB } });
  const waiting = new Map<number, { resolve: (p: AppendedPage & { spare: Buffer | null }) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let failure: Error | null = null;
  const failAll = (error: Error) => {
    failure ??= error;
    for (const w of waiting.values()) w.reject(error);
    waiting.clear();
  };
  worker.on('message', (reply: Reply) => {
    const w = waiting.get(reply.id);
    if (!w) return;
    waiting.delete(reply.id);
    if (reply.ok) w.resolve({ ...(reply.page ?? { rows: 0, parts: [], finished: [], closed: null, firstKey: [], lastKey: [] }), spare: reply.spare ? Buffer.from(reply.spare) : null });
    // The exporter's named errors keep their class across the thread boundary (Retry/Catch match on name).
    else w.reject(reviveError(reply.error));
  });
  worker.on('error', (error) => failAll(error));
  worker.on('exit', (code) => failAll(new ExportError(`the page encoder's worker thread exited (code ${code})`)));
  // An idle encoder must not keep the process alive.
  worker.unref();
  return {
    failed: () => failure !== null,
    openChunks(open) {
      const session = nextSession++;
      let opened = false;
      const send = (request: Request, transfer: ArrayBuffer[]) => {
        if (failure) return Promise.reject(failure);
        return new Promise<AppendedPage & { spare: Buffer | null }>((resolve, reject) => {
          waiting.set(request.id, { resolve, reject });
          worker.ref();
          worker.postMessage(request, transfer);
        }).finally(() => { if (waiting.size === 0) worker.unref(); });
      };
      return {
        append(copy, close) {
          const memory = ownedMemory(copy) ?? ownCopy(copy);
          const request: Request = { id: nextId++, kind: 'append', session, ...(opened ? {} : { open }), copy: memory.buffer as ArrayBuffer, length: copy.length, close };
          opened = true;
          return send(request, [request.copy]).catch((error: unknown) => { opened = false; throw error; });
        },
        async end() {
          // A worker that is gone holds no chunk any more.
          await send({ id: nextId++, kind: 'end', session }, []).catch(() => undefined);
        },
      };
    },
    async close() {
      worker.removeAllListeners('exit');
      failAll(new ExportError('the page encoder was closed'));
      await worker.terminate();
    },
  };
}

let shared: (PageEncoder) | null = null;

/**
 * One encoder for the whole process, started on first use and kept (its thread does not keep
 * the process alive): a thread and its wasm take ~0.3 s to start, more than a small table takes
 * to encode, and a warm Lambda container keeps it between invocations. Replaced if it fails.
 */
export function sharedPageEncoder(): PageEncoder {
  if (!shared || shared.failed()) shared = createPageEncoder();
  return shared;
}

/** Start the shared encoder ahead of the first page (a no-op inside an encoder thread). */
export function warmPageEncoder(): void {
  if (!ENCODER_THREAD) sharedPageEncoder();
}

export function createPageEncoder(options: PageEncoderOptions = {}): PageEncoder {
  if (options.worker === false) return inlineEncoder();
  try {
    return workerEncoder();
  } catch {
    return inlineEncoder();
  }
}

// ---------------------------------------------------------------- worker side

if (ENCODER_THREAD) {
  const port = parentPort!;
  // Requests wait in the port until the listener is added; the modules load meanwhile.
  void loadPage();
  const serve = async (request: Request): Promise<void> => {
    let reply: Reply;
    const transfer: ArrayBuffer[] = [];
    try {
      if (request.kind === 'end') {
        await endInline(request.session);
        reply = { id: request.id, ok: true, page: null, spare: null };
      } else {
        const page = await appendInline(request.session, request.open, Buffer.from(request.copy, 0, request.length), request.close);
        const parts = transferParts(page.parts, transfer);
        transfer.push(request.copy);
        reply = { id: request.id, ok: true, page: { ...page, parts }, spare: request.copy };
      }
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      reply = { id: request.id, ok: false, error: { name: e.name, message: e.message, stack: e.stack } };
    }
    port.postMessage(reply, transfer);
    // A trap in wasm (parquet-wasm's panic, an allocation past 4 GiB) leaves its instance in an
    // undefined state, and every later page would fail with it: this thread ends after replying,
    // so the next page gets a fresh encoder (sharedPageEncoder replaces a failed one).
    if (!reply.ok && request.kind === 'append' && reply.error.name === 'RuntimeError') process.exit(70);
  };
  // Appending is asynchronous (the Parquet writer streams): requests are served strictly in
  // arrival order, each after the one before has replied.
  let serving: Promise<void> = Promise.resolve();
  port.on('message', (request: Request) => {
    serving = serving.then(() => serve(request));
  });
}
