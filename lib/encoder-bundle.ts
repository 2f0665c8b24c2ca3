// The page encoder's own bundle, shipped beside the bundles that encode (Export, Compact) as
// `encoder.js`: the encoder's worker thread runs it (lambdas/core/page/encode-worker.ts) rather
// than the handler's whole bundle, which would load the AWS SDK clients, Powertools and pg into
// the thread at every cold start. Built with the options the functions' own bundles use.
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { ENCODER_BUNDLE } from '../lambdas/core/page/encode-worker.ts';

/** How every function bundle is built (lambda-factory.ts gives the same to NodejsFunction). */
export const BUNDLE_OPTIONS = {
  // CJS: parquet-wasm's node build locates its .wasm through __dirname.
  format: 'cjs',
  target: 'node24',
  minify: true,
  sourceMap: true,
  sourcesContent: false,
} as const;

const built = new Map<string, Readonly<Record<string, string>>>();

/**
 * `encoder.js` and its source map (file name → content), bundled from the encoder's module under
 * `projectRoot`; the source map names the files relative to it. Built once per project root.
 */
export function encoderBundleFiles(projectRoot: string): Readonly<Record<string, string>> {
  let files = built.get(projectRoot);
  if (!files) {
    const result = buildSync({
      absWorkingDir: projectRoot,
      entryPoints: [join(projectRoot, 'lambdas/core/page/encode-worker.ts')],
      outfile: join(projectRoot, ENCODER_BUNDLE),
      bundle: true,
      platform: 'node',
      format: BUNDLE_OPTIONS.format,
      target: BUNDLE_OPTIONS.target,
      minify: BUNDLE_OPTIONS.minify,
      sourcemap: BUNDLE_OPTIONS.sourceMap,
      sourcesContent: BUNDLE_OPTIONS.sourcesContent,
      // The nodejs24.x runtime ships AWS SDK v3 (the encoder never reaches it).
      external: ['@aws-sdk/*'],
      write: false,
      logLevel: 'silent',
    });
    files = Object.fromEntries(result.outputFiles.map((f) => [f.path.slice(f.path.lastIndexOf('/') + 1), f.text]));
    built.set(projectRoot, files);
  }
  return files;
}
