// The engine the deployed steps query the lake with: Athena in the stack's workgroup
// (ATHENA_WORK_GROUP: its result location and bytes-scanned limit apply) over the config's Glue
// database. Kept apart from aws-runtime.ts so only the steps that query (Validate, Export when a
// table detects deletes) bundle the Athena client.
import { AthenaClient } from '@aws-sdk/client-athena';
import { ConfigError } from '../core/errors.ts';
import type { QueryEngine } from '../core/ports.ts';
import { VALIDATE_QUERY_TIMEOUT_MILLIS } from '../core/protocol/workflow-io.ts';
import { AthenaEngine } from './athena-engine.ts';
import { requireEnv, type StepRuntime } from './aws-runtime.ts';

/** An engine for one invocation (Athena deployed, DuckDB in the local runner); closed when it ends. */
export type OpenEngine = (table: string) => Promise<QueryEngine>;

let client: AthenaClient | undefined;

/** `needs` ends the message when the config names no Glue database: what queries it, and why. */
export function stackAthenaEngine(runtime: StepRuntime, needs: string): OpenEngine {
  return async () => {
    const database = runtime.lakeDeps().config.lake.glueDatabase;
    if (!database) throw new ConfigError(`lake.glueDatabase is not set: ${needs}`);
    client ??= new AthenaClient({});
    return new AthenaEngine({ client, workGroup: requireEnv('ATHENA_WORK_GROUP'), database, timeoutMillis: VALIDATE_QUERY_TIMEOUT_MILLIS });
  };
}
