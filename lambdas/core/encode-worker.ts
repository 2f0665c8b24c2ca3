// Page encoding off the main thread. The main thread only receives COPY bytes (and issues the
// next keyset page); a worker frames, decodes and writes the Parquet files. The COPY buffer is
// transferred to the worker and the Parquet files back, so no page is copied between threads.
//
//   const encoder = createPageEncoder();            // starts the worker (wasm init overlaps the first COPY)
//   const bounds = pageBounds(layout, copyBytes);   // rows, first/last key: enough for the next page's query
//   const encoded = await encoder.encode(layout, copyBytes, stamp);   // copyBytes is detached after this call
//   await encoder.close();
//
// The worker runs this same file (or, in a single-file Lambda bundle, the bundle itself: the
// module checks for its marker in workerData). With `{ worker: false }`, or where threads are
// unavailable, encoding runs inline with the same results: files are identical either way.
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { FrameScratch, frameCopyBinary, scanCopyBinary } from './copy-binary.ts';
import { CheckFailedError, ConfigError, ExportError, SchemaMismatchError, StateError, ThrottlingError, UnsupportedTypeError, ValueError, WindowConflictError } from './errors.ts';
import { encodePage, rowKeyText, type EncodedPage, type PageLayout, type RunStamp } from './page.ts';

const MARK = 'pg-lake-export:encode-worker';

export interface PageBounds {
  readonly rows: number;
  /** (cursor, pk…) of the first and last row as text; empty when the page has no rows. */
  readonly firstKey: string[];
  readonly lastKey: string[];
}

/** Rows and first/last key of a binary COPY page, without decoding it (~5 ms per 100k rows). */
export function pageBounds(layout: PageLayout, copy: Buffer): PageBounds {
  const scan = scanCopyBinary(copy, layout.columns.length);
  if (scan.rowCount === 0) return { rows: 0, firstKey: [], lastKey: [] };
  return { rows: scan.rowCount, firstKey: rowKeyText(layout, copy, scan.firstRowStart), lastKey: rowKeyText(layout, copy, scan.lastRowStart) };
}

export interface PageEncoder {
  /**
   * Frame, decode and encode one binary COPY page. The page's memory is handed over: `copy`
   * must not be used after this call. Pages are encoded one at a time, in call order.
   */
  encode(layout: PageLayout, copy: Buffer, stamp: RunStamp): Promise<EncodedPage>;
  close(): Promise<void>;
}

export interface PageEncoderOptions {
  /** Encode in a worker thread (default true). */
  readonly worker?: boolean;
}

// ---------------------------------------------------------------- inline

const scratch = new FrameScratch();

function encodeInline(layout: PageLayout, copy: Buffer, stamp: RunStamp): EncodedPage {
  return encodePage(layout, frameCopyBinary(copy, layout.columns.length, scratch), stamp);
}

function inlineEncoder(): PageEncoder {
  return {
    encode: async (layout, copy, stamp) => encodeInline(layout, copy, stamp),
    close: async () => undefined,
  };
}

// ---------------------------------------------------------------- worker protocol

interface Request {
  readonly id: number;
  readonly layout: PageLayout;
  readonly copy: Uint8Array;
  readonly stamp: RunStamp;
}

type Reply =
  | { readonly id: number; readonly ok: true; readonly page: EncodedPage }
  | { readonly id: number; readonly ok: false; readonly error: { name: string; message: string; stack?: string } };

const ERRORS: Record<string, new (message: string) => Error> = {
  ExportError, ConfigError, SchemaMismatchError, UnsupportedTypeError, ValueError, WindowConflictError, StateError, ThrottlingError, CheckFailedError,
};

/** The exporter's named errors keep their class across the thread boundary (Retry/Catch match on name). */
function revive(error: { name: string; message: string; stack?: string }): Error {
  const Kind = ERRORS[error.name];
  const revived = Kind ? new Kind(error.message) : Object.assign(new Error(error.message), { name: error.name });
  if (error.stack) revived.stack = error.stack;
  return revived;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Whole-buffer views can be transferred; a view into a shared pool must be copied once. */
function transferable(bytes: Uint8Array): Uint8Array {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes;
  return new Uint8Array(bytes);
}

function workerFile(): string {
  // A CommonJS bundle (the Lambdas) runs the bundle itself; ESM source runs this file.
  return typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
}

function workerEncoder(): PageEncoder {
  const worker = new Worker(workerFile(), { workerData: { [MARK]: true } });
  const waiting = new Map<number, { resolve: (p: EncodedPage) => void; reject: (e: Error) => void }>();
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
    if (reply.ok) w.resolve(reply.page);
    else w.reject(revive(reply.error));
  });
  worker.on('error', (error) => failAll(error));
  worker.on('exit', (code) => failAll(new ExportError(`the page encoder's worker thread exited (code ${code})`)));
  // An idle encoder must not keep the process alive.
  worker.unref();
  return {
    encode(layout, copy, stamp) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      const bytes = transferable(copy);
      return new Promise<EncodedPage>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.ref();
        const request: Request = { id, layout, copy: bytes, stamp };
        worker.postMessage(request, [bytes.buffer as ArrayBuffer]);
      }).finally(() => { if (waiting.size === 0) worker.unref(); });
    },
    async close() {
      worker.removeAllListeners('exit');
      failAll(new ExportError('the page encoder was closed'));
      await worker.terminate();
    },
  };
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

if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[MARK]) {
  const port = parentPort;
  port.on('message', (request: Request) => {
    let reply: Reply;
    const transfer: ArrayBuffer[] = [];
    try {
      const page = encodeInline(request.layout, asBuffer(request.copy), request.stamp);
      const files = page.files.map((f) => ({ ...f, parquet: transferable(f.parquet) }));
      for (const f of files) transfer.push(f.parquet.buffer as ArrayBuffer);
      reply = { id: request.id, ok: true, page: { ...page, files } };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      reply = { id: request.id, ok: false, error: { name: e.name, message: e.message, stack: e.stack } };
    }
    port.postMessage(reply, transfer);
  });
}
