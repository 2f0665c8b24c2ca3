// The page pipeline reads each next page after the bounds of the one before, taken from the COPY
// stream's message boundaries when its receiver recorded them (one row per CopyData message, as
// the protocol documents). Should those ever be wrong (an earlier message holding two rows, say),
// a short count would end the window early and lose rows: the pipeline checks every page's
// bounds against the encoder's own count and last key, and fails the page before it is used.
import { describe, expect, it } from 'vitest';
import { copyMessages, frameCopyBinary } from '../../lambdas/core/page/copy-binary.ts';
import type { PageLayout } from '../../lambdas/core/page/page-layout.ts';
import { rowKeyText } from '../../lambdas/core/page/page-layout.ts';
import { runPagePipeline } from '../../lambdas/core/protocol/page-pipeline.ts';
import type { ColumnPlan } from '../../lambdas/core/source/type-map.ts';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const plan = (name: string): ColumnPlan => ({ name, select: `"${name}"`, lakeType: { kind: 'string' }, glueType: 'string' });
const layout: PageLayout = { table: 'public.t', columns: ['k', 'v'].map(plan), keyFields: [0], cursorFirst: false, partitionField: -1, years: { from: 1970, to: 2099 } };

function stream(keys: string[]): Buffer {
  return Buffer.concat([SIGNATURE, int32(0), int32(0), ...keys.flatMap((k) => [int16(2), int32(k.length), Buffer.from(k), int32(1), Buffer.from('v')]), int16(-1)]);
}

async function run(page: Buffer) {
  const encoded: number[] = [];
  await runPagePipeline(layout, {
    read: async (_after, pageNo) => (pageNo === 1 ? page : stream([])),
    check: () => undefined,
    encode: async (bytes) => {
      const framed = frameCopyBinary(bytes, 2);
      return { rows: framed.rowCount, lastKey: framed.rowCount ? rowKeyText(layout, bytes, framed.rowStarts[framed.rowCount - 1]) : [], spare: null };
    },
    finish: async (page) => { encoded.push(page.rows); },
  }, { after: null, page: 0 }, 4, Number.POSITIVE_INFINITY);
  return encoded;
}

describe('page bounds from message boundaries', () => {
  it('are checked against the encoder: a count short by a row fails the page before it is used', async () => {
    const page = stream(['a', 'b', 'c', 'd']);
    const starts = [...frameCopyBinary(page, 2).rowStarts].map((s) => s - 2);
    // Rows a and b arrived in one message: 4 messages for 4 rows and the trailer, the last two right.
    copyMessages.set(page, { count: 4, secondStart: starts[2], previousStart: starts[3], lastStart: page.length - 2 });
    await expect(run(page)).rejects.toThrow("public.t: page 1: the COPY stream's bounds (3 rows, last key d) differ from the decoded page's (4 rows, last key d); nothing of the page was journalled");
  });

  it('pass when they are right, and a page with none recorded is scanned', async () => {
    const page = stream(['a', 'b', 'c', 'd']);
    const starts = [...frameCopyBinary(page, 2).rowStarts].map((s) => s - 2);
    copyMessages.set(page, { count: 5, secondStart: starts[1], previousStart: starts[3], lastStart: page.length - 2 });
    // A full page (pageRows 4): the next is read after it, and is empty.
    expect(await run(page)).toEqual([4, 0]);
    expect(await run(stream(['a', 'b', 'c', 'd']))).toEqual([4, 0]);
  });
});
