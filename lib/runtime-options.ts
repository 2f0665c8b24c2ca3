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

/**
 * V8 flags Node takes only on its command line (NODE_OPTIONS refuses them), given to the
 * functions' node by EXEC_WRAPPER.
 * - `--single-threaded-gc`: each isolate collects its own garbage on its own thread. The
 *   exporter's two threads (COPY decoding, Parquet encoding) keep the function's vCPUs busy
 *   already; V8's concurrent marking and parallel scavenges on helper threads cost far more CPU
 *   than the collections themselves (bench, 1M rows: helper threads 0.73–0.80 → 0.30–0.37 CPU-s
 *   per 1M rows; README, Performance).
 * - `--initial-old-space-size=64` (MB): the old generation's first allocation limit, and the
 *   least it is set to after a full collection. The exporter's heap holds ~10–15 MB of code and
 *   state; with V8's own limit (~21–26 MB) the slack left after each full collection is below
 *   the point where V8 starts the next one, so the main thread marked its heap again every
 *   ~70 ms (10–20 full collections per 1M rows, --trace-gc) while the socket's garbage came and
 *   went. With 64 MB: 2 (bench, 1M rows: main thread 0.64 → 0.56–0.58 CPU-s; 10M rows: 17.50
 *   → 14.89 CPU-s; README, Performance). It bounds nothing: the heap grows past it as it would
 *   have. Garbage that only a full collection frees waits longer: the exporter frees the big
 *   kind itself (encode-worker.ts releaseParts), which keeps peak RSS where it was.
 */
export const V8_FLAGS: readonly string[] = ['--single-threaded-gc', '--initial-old-space-size=64'];

/**
 * A flag node does not know stops it from starting (`node: bad option`, exit 9): the infra test
 * starts every synthesized bundle through the wrapper, and the chaos suite's and the scale test's
 * exporter children run with these flags too.
 *
 * The script Lambda starts each function's runtime through (`AWS_LAMBDA_EXEC_WRAPPER`, set by
 * lib/lambda-factory.ts): Lambda passes it node's path and node's own arguments, and it adds
 * V8_FLAGS right after the path. Shipped in every bundle, executable (CDK's zip keeps file modes).
 */
export const EXEC_WRAPPER = 'node-v8-flags';

export const EXEC_WRAPPER_SCRIPT = [
  '#!/bin/bash',
  '# Lambda starts the runtime through this script (AWS_LAMBDA_EXEC_WRAPPER): $1 is node, the rest',
  '# are its arguments. V8 flags that NODE_OPTIONS refuses go here (lib/runtime-options.ts).',
  'node="$1"',
  'shift',
  `exec "$node" ${V8_FLAGS.join(' ')} "$@"`,
  '',
].join('\n');
