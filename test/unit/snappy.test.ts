// Snappy compression of the pages the splicer writes itself (page/snappy.ts), read back by two
// decompressors that share no code with it: hyparquet's and hyparquet-compressors' (hysnappy, in
// wasm). Seeded inputs of every shape the compressor branches on: incompressible bytes, short
// and long repeats, matches near and far (1- and 2-byte offsets), copies longer than 64 bytes,
// and lengths around its 15-byte margin and 64 KiB fragments.
import { snappyUncompress } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { describe, expect, it } from 'vitest';
import { snappyCompress } from '../../lambdas/core/page/snappy.ts';
import { random } from '../fuzz/random.ts';

const LENGTHS = [0, 1, 2, 4, 14, 15, 16, 17, 60, 61, 255, 256, 4096, 65535, 65536, 65537, 131072, 200003];

function input(seed: number, length: number, shape: number): Uint8Array {
  const r = random(seed);
  const out = new Uint8Array(length);
  const alphabet = 1 + Math.floor(r() * [256, 4, 16, 2][shape % 4]);
  for (let i = 0; i < length;) {
    const kind = r();
    if (kind < 0.4 || i < 8) out[i++] = Math.floor(r() * alphabet);
    else if (kind < 0.7) {
      // A repeat of earlier bytes: near (under 2 KiB back), far (up to 64 KiB), or long.
      const back = 1 + Math.floor(r() * Math.min(i, r() < 0.5 ? 2048 : 65536));
      const n = Math.min(length - i, 4 + Math.floor(r() * (r() < 0.2 ? 300 : 20)));
      for (let k = 0; k < n; k++, i++) out[i] = out[i - back];
    } else {
      const n = Math.min(length - i, 1 + Math.floor(r() * 100));
      out.fill(Math.floor(r() * alphabet), i, i + n);
      i += n;
    }
  }
  return out;
}

/**
 * Shapes 0–3: input(); 4: uniformly random bytes (incompressible); 5: one byte repeated;
 * 6: random stretches of up to 600 bytes between short repeats (literals of every length tag).
 */
const SHAPES = 7;

function noise(seed: number, length: number, stretch: number): Uint8Array {
  const r = random(seed);
  const out = Uint8Array.from({ length }, () => Math.floor(r() * 256));
  if (stretch === 0) return out;
  for (let i = 64 + Math.floor(r() * stretch); i + 40 < length; i += 40 + Math.floor(r() * stretch)) out.copyWithin(i, i - 64, i - 64 + 8 + Math.floor(r() * 24));
  return out;
}

describe('Snappy compression', () => {
  it('round-trips through two independent decompressors, at every length and shape', () => {
    let cases = 0;
    for (const length of LENGTHS) {
      for (let shape = 0; shape < SHAPES; shape++) {
        const seed = 5301130 + length * 7 + shape;
        const bytes = shape === 4 ? noise(seed, length, 0) : shape === 5 ? new Uint8Array(length).fill(7) : shape === 6 ? noise(seed, length, 600) : input(seed, length, shape);
        const compressed = snappyCompress(bytes);
        const a = new Uint8Array(length);
        snappyUncompress(compressed, a);
        expect(Buffer.from(a).equals(Buffer.from(bytes)), `hyparquet, ${length} bytes, shape ${shape}`).toBe(true);
        const b = compressors.SNAPPY!(compressed, length);
        expect(Buffer.from(b).equals(Buffer.from(bytes)), `hysnappy, ${length} bytes, shape ${shape}`).toBe(true);
        // Never more than Snappy's bound; repeats do compress.
        expect(compressed.length).toBeLessThanOrEqual(32 + length + Math.ceil(length / 6));
        if (shape === 5 && length >= 4096) expect(compressed.length).toBeLessThan(length / 10);
        cases++;
      }
    }
    expect(cases).toBe(LENGTHS.length * SHAPES);
  });
});
