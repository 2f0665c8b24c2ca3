// The spliced writer's point (issue 13: peak RSS ≤ 350 MiB with 64 MB row groups): parquet-wasm's
// memory, which never shrinks, stays at about one page's encode however big the row group grows.
// parquet-wasm's streaming writer held the open row group in wasm memory and copied it twice on
// flushing (a 50 MiB row group took 182 MiB). Its own file: wasm memory is per worker and only
// grows, so earlier encodes in the same file would hide the growth.
import * as arrow from 'apache-arrow';
import { wasmMemory } from 'parquet-wasm/node';
import { expect, it } from 'vitest';
import { SplicedParquetFile } from '../../lambdas/core/page/parquet-splice.ts';
import type { LakeType } from '../../lambdas/core/source/type-map.ts';

const PAGE_ROWS = 5_000;
const PAGES = 40;
const TYPES = new Map<string, LakeType>([['id', { kind: 'int64' }], ['text', { kind: 'string' }]]);

/** A page of 5,000 rows: a key and ~100 bytes of text that does not compress (a 32-bit LCG's hex). */
function page(n: number): arrow.Table {
  let x = n * 2654435761 >>> 0;
  const text = Array.from({ length: PAGE_ROWS }, () => {
    let s = '';
    for (let i = 0; i < 12; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      s += x.toString(16).padStart(8, '0');
    }
    return s;
  });
  return new arrow.Table({
    id: arrow.vectorFromArray(Array.from({ length: PAGE_ROWS }, (_, i) => BigInt(n * PAGE_ROWS + i)), new arrow.Int64()),
    text: arrow.vectorFromArray(text, new arrow.Utf8()),
  });
}

it('keeps wasm memory near one page\'s encode while an 18 MB row group fills', async () => {
  const settings = { rowGroupRows: PAGE_ROWS * PAGES, rowGroupBytes: 1 << 30 };
  // Warm-up: the first encodes size wasm memory for one page.
  const warm = new SplicedParquetFile(page(0), TYPES, settings);
  await warm.append(page(0));
  await warm.close();
  const before = wasmMemory().buffer.byteLength;

  const file = new SplicedParquetFile(page(1), TYPES, settings);
  let bytes = 0;
  for (let n = 1; n <= PAGES; n++) {
    await file.append(page(n));
    for (const part of file.take()) bytes += part.length;
  }
  for (const part of await file.close()) bytes += part.length;
  const grown = wasmMemory().buffer.byteLength - before;

  // One row group of 200,000 rows, ~18 MB.
  expect(bytes).toBeGreaterThan(16 * 2 ** 20);
  // A streaming writer grows wasm memory by more than the row group (it holds it, then copies it).
  expect(grown, `wasm memory grew ${(grown / 2 ** 20).toFixed(1)} MiB for a ${(bytes / 2 ** 20).toFixed(1)} MiB row group`).toBeLessThan(bytes / 4);
}, 120_000);
