// How every function's Node.js runs; the benchmark's children run the same way (bin/local/bench.ts).

/**
 * Source-mapped stack traces, and a small V8 young generation: a page's garbage is a few small
 * objects around multi-MB buffers that live outside the heap, so 4 MiB semi-spaces cost no
 * speed and keep peak memory flat however many pages an invocation exports (10M rows:
 * 307 → 254 MiB).
 */
export const NODE_OPTIONS = '--enable-source-maps --max-semi-space-size=4';

/** Two glibc malloc arenas: with the encoder's worker thread, more arenas fragment and the
 *  resident set grows with the number of pages exported. */
export const MALLOC_ARENA_MAX = '2';
