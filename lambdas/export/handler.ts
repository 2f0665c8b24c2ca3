// Export Table Page: export pages until the invocation's time budget runs low; return the cursor.
import { warmPageEncoder } from '../core/page/encode-worker.ts';
import { exportTable } from '../core/protocol/export-pages.ts';
import { parseExportInput } from '../core/protocol/segments.ts';
import { awsRuntime, type StepRuntime } from '../adapters/aws-runtime.ts';

// The encoder's thread (apache-arrow, parquet-wasm) starts during the cold start and stays
// with the container: it loads while the first invocation reads its secret and first page.
warmPageEncoder();

/** Leave this much of the invocation for the last page's upload and the response. */
const RESERVE_MILLIS = 60_000;

export function exportHandler(runtime: StepRuntime) {
  return async (event: unknown, context?: { getRemainingTimeInMillis(): number }) => {
    // A table's task, or a backfill segment's (a Distributed Map child starts with its item).
    const task = parseExportInput(event);
    const deadline = context ? Date.now() + context.getRemainingTimeInMillis() - RESERVE_MILLIS : Number.POSITIVE_INFINITY;
    // The only step that hashes: the only one given the salt.
    return runtime.withDeps((deps) => exportTable(deps, task, deadline), { readsHashSalt: true });
  };
}

export const handler = exportHandler(awsRuntime);
