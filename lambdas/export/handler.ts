// Export Table Page: export pages until the invocation's time budget runs low; return the cursor.
// A table with deletes.detect also compares its keys with the lake's once its window is exported
// (protocol/reconcile.ts): deployed through Athena in the stack's workgroup, locally through DuckDB.
import { AthenaClient } from '@aws-sdk/client-athena';
import { AthenaEngine } from '../adapters/athena-engine.ts';
import { awsRuntime, requireEnv, type StepRuntime } from '../adapters/aws-runtime.ts';
import { selectTables } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import { warmPageEncoder } from '../core/page/encode-worker.ts';
import type { QueryEngine } from '../core/ports.ts';
import { exportTable } from '../core/protocol/export-pages.ts';
import { parseExportInput } from '../core/protocol/segments.ts';
import { VALIDATE_QUERY_TIMEOUT_MILLIS } from '../core/protocol/workflow-io.ts';

// The encoder's thread (apache-arrow, parquet-wasm) starts during the cold start and stays
// with the container: it loads while the first invocation reads its secret and first page.
warmPageEncoder();

/** Leave this much of the invocation for the last page's upload and the response. */
const RESERVE_MILLIS = 60_000;

/** The engine delete detection reads `<table>_current` with, for one invocation; closed when it ends. */
export type OpenEngine = (table: string) => Promise<QueryEngine>;

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

const athena = new AthenaClient({});

/**
 * Athena in the stack's workgroup (ATHENA_WORK_GROUP: set on Export only when some table
 * detects deletes) over the config's Glue database; its bytes-scanned cutoff applies.
 */
export function athenaEngine(runtime: StepRuntime): OpenEngine {
  return async () => {
    const database = runtime.lakeDeps().config.lake.glueDatabase;
    if (!database) throw new ConfigError('lake.glueDatabase is not set: delete detection queries <table>_current in that Glue database');
    return new AthenaEngine({ client: athena, workGroup: requireEnv('ATHENA_WORK_GROUP'), database, timeoutMillis: VALIDATE_QUERY_TIMEOUT_MILLIS });
  };
}

export const handler = exportHandler(awsRuntime, athenaEngine(awsRuntime));
