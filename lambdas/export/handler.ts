// Export Table Page: export pages until the invocation's time budget runs low; return the cursor.
// A table with deletes.detect also compares its keys with the lake's once its window is exported
// (protocol/reconcile.ts): deployed through Athena in the stack's workgroup, locally through DuckDB.
import { awsRuntime, type StepRuntime } from '../adapters/aws-runtime.ts';
import { stackAthenaEngine, type OpenEngine } from '../adapters/stack-athena.ts';
import { selectTables } from '../core/config.ts';
import { warmPageEncoder } from '../core/page/encode-worker.ts';
import { exportTable } from '../core/protocol/export-pages.ts';
import { parseExportInput } from '../core/protocol/segments.ts';

// The encoder's thread (apache-arrow, parquet-wasm) starts during the cold start and stays
// with the container: it loads while the first invocation reads its secret and first page.
warmPageEncoder();

/** Leave this much of the invocation for the last page's upload and the response. */
const RESERVE_MILLIS = 60_000;

/**
 * The handler over any runtime. `openEngine` is asked only for a table with deletes.detect, and
 * not for a backfill segment (segments never detect); without it such a table fails by name
 * (ConfigError).
 */
export function exportHandler(runtime: StepRuntime, openEngine?: OpenEngine) {
  return async (event: unknown, context?: { getRemainingTimeInMillis(): number }) => {
    // A table's task, or a backfill segment's (a Distributed Map child starts with its item).
    const task = parseExportInput(event);
    const deadline = context ? Date.now() + context.getRemainingTimeInMillis() - RESERVE_MILLIS : Number.POSITIVE_INFINITY;
    const detects = !task.segment && selectTables(runtime.lakeDeps().config).some((t) => t.lakeName === task.table && t.config.deletes?.detect === true);
    const engine = detects && openEngine ? await openEngine(task.table) : undefined;
    try {
      // The only step that hashes: the only one given the salt.
      return await runtime.withDeps((deps) => exportTable({ ...deps, ...(engine ? { engine } : {}) }, task, deadline), { readsHashSalt: true });
    } finally {
      await engine?.close();
    }
  };
}

// ATHENA_WORK_GROUP is set on Export only when some table detects deletes.
export const handler = exportHandler(awsRuntime, stackAthenaEngine(awsRuntime, 'delete detection queries <table>_current in that Glue database'));
