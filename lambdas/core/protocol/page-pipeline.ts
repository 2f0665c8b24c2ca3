// The overlap of reading and encoding keyset pages, kept apart from the protocol that uses them:
// the database sends page n + 2 (its keyset starts after page n + 1's last key, found by a cheap
// scan of the COPY bytes) while the encoder thread takes in page n + 1 and the caller finishes
// page n. Pages are finished strictly in order, and their memory goes round: COPY writes into a
// spare buffer, the encoder takes it and gives it back.
import { ExportError } from '../errors.ts';
import { pageBounds, type PageBounds } from '../page/encode-worker.ts';
import type { PageLayout } from '../page/page-layout.ts';

export interface PipelineSteps<T> {
  /** Read a page: the keyset after `after`, written into `spare` when given. */
  read(after: string[] | null, pageNo: number, spare: Buffer | undefined): Promise<Buffer>;
  /** Look at a page's bounds before it is encoded (throw to stop). `last`: the window ends with it. */
  check(bounds: PageBounds, pageNo: number, last: boolean): void;
  /**
   * Hand a page to the encoder (`bytes` moves: unusable afterwards). `final`: no page follows in
   * this invocation (the window ends, or the time budget does). An empty page is handed over
   * only to be final after pages that were not.
   */
  encode(bytes: Buffer, pageNo: number, final: boolean): Promise<T & { readonly spare: Buffer | null }>;
  /** Use an encoded page, strictly in page order. `last`: the window is done with it. */
  finish(encoded: T, pageNo: number, last: boolean): Promise<void>;
}

export interface PipelineStart {
  /** Keyset of the last page already done (null: the window's start) and its number. */
  readonly after: string[] | null;
  readonly page: number;
}

/**
 * Run pages through `steps` until the window is done (returns true) or the pages in hand would
 * not be done before `deadline` (epoch ms; returns false). At least one page is read, so a short
 * budget still makes progress.
 */
export async function runPagePipeline<T extends { readonly rows: number; readonly lastKey: readonly string[] }>(layout: PageLayout, steps: PipelineSteps<T>, start: PipelineStart, pageRows: number, deadline: number): Promise<boolean> {
  const spares: Buffer[] = [];
  const queue: { pageNo: number; last: boolean; bounds: PageBounds | null; encoded: Promise<T & { readonly spare: Buffer | null }> }[] = [];
  let pageMillis = 0;
  let lastFinished = Date.now();
  const finishNext = async (): Promise<void> => {
    const next = queue.shift()!;
    const encoded = await next.encoded;
    // The bounds the next page was read after (and whether one was) against the encoder's own
    // count and last key: bounds read off message boundaries that were wrong would end the
    // window early or skip rows; the page fails instead, before anything of it is journalled.
    if (next.bounds && (encoded.rows !== next.bounds.rows || encoded.lastKey.join('\u0000') !== next.bounds.lastKey.join('\u0000'))) {
      throw new ExportError(`${layout.table}: page ${next.pageNo}: the COPY stream's bounds (${next.bounds.rows} rows, last key ${next.bounds.lastKey.join(', ')}) differ from the decoded page's (${encoded.rows} rows, last key ${encoded.lastKey.join(', ')}); nothing of the page was journalled`);
    }
    if (encoded.spare) spares.push(encoded.spare);
    await steps.finish(encoded, next.pageNo, next.last);
    const now = Date.now();
    pageMillis = now - lastFinished;
    lastFinished = now;
  };
  const read = (after: string[] | null, pageNo: number) => {
    const reading = steps.read(after, pageNo, spares.pop());
    reading.catch(() => undefined); // observed here; awaited (and thrown) in order
    return reading;
  };

  let reading: Promise<Buffer> | null = read(start.after, start.page + 1);
  let pageNo = start.page;
  // Whether a page went to the encoder without being final (its files are still open).
  let open = false;
  try {
    while (reading) {
      const bytes = await reading;
      reading = null;
      const bounds = pageBounds(layout, bytes);
      if (bounds.rows === 0) {
        if (open) {
          const encoded = steps.encode(bytes, pageNo + 1, true);
          encoded.catch(() => undefined);
          queue.push({ pageNo: pageNo + 1, last: true, bounds: null, encoded });
        }
        while (queue.length) await finishNext();
        return true;
      }
      pageNo++;
      const last = bounds.rows < pageRows;
      steps.check(bounds, pageNo, last);
      // Read on while the pages in hand will be done well before the deadline.
      if (!last && Date.now() + (queue.length + 3) * pageMillis < deadline) reading = read(bounds.lastKey, pageNo + 1);
      const encoded = steps.encode(bytes, pageNo, reading === null);
      encoded.catch(() => undefined); // awaited in order by finishNext()
      open = reading !== null;
      queue.push({ pageNo, last, bounds, encoded });
      // One page stays with the encoder while the one before it is finished.
      while (queue.length > (reading ? 1 : 0)) await finishNext();
      if (last) return true;
    }
    return false;
  } finally {
    // Whatever is still in flight (deadline, failure) is dropped; the connection must be idle
    // before the caller uses or closes it.
    await reading?.catch(() => undefined);
    await Promise.all(queue.map((q) => q.encoded.catch(() => undefined)));
  }
}
