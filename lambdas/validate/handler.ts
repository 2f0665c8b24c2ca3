// Validate Table: after a table's commit, count what the query engine sees against the run's
// manifest (rows per partition, duplicated versions in its window). Deployed, the engine is
// Athena in the stack's workgroup over the Glue database; the local runner gives it DuckDB.
// A mismatch is returned (Summarize turns it into the ValidationMismatch metric); an engine that
// cannot answer throws, so the state retries and then records a warning without failing the export.
import { AthenaClient } from '@aws-sdk/client-athena';
import { AthenaEngine } from '../adapters/athena-engine.ts';
import { awsRuntime, logger, requireEnv, type StepRuntime } from '../adapters/aws-runtime.ts';
import { ConfigError, describeError } from '../core/errors.ts';
import type { QueryEngine } from '../core/ports.ts';
import { describeValidation } from '../core/lake/validate.ts';
import { VALIDATE_QUERY_TIMEOUT_MILLIS, validateCommittedTable, validateInputSchema, type TableValidation } from '../core/protocol/workflow-io.ts';

/** An engine for one invocation; closed when it ends. */
export type OpenEngine = (table: string) => Promise<QueryEngine>;

/** The handler over any runtime and engine: Athena when deployed (below), DuckDB in the local runner. */
export function validateHandler(runtime: StepRuntime, openEngine: OpenEngine): (event: unknown) => Promise<TableValidation> {
  return async (event) => {
    const { table } = validateInputSchema.parse(event);
    try {
      const engine = await openEngine(table);
      try {
        const { result, validation } = await validateCommittedTable(engine, runtime.lakeDeps(), table);
        const lines = result ? describeValidation(result) : [validation.status === 'skipped' ? validation.error : table];
        if (validation.status === 'mismatch') logger.error('validation found a mismatch', { table, engine: engine.description, details: lines, queries: result?.queries });
        else logger.info('validation', { table, engine: engine.description, details: lines });
        return validation;
      } finally {
        await engine.close();
      }
    } catch (error) {
      // The state's Catch keeps only the error's name (the state must stay small): say why here.
      logger.warn('validation could not run', { table, error: describeError(error) });
      throw error;
    }
  };
}

const athena = new AthenaClient({});

/** Athena in the stack's workgroup (ATHENA_WORK_GROUP) over the runtime's Glue database (the config's lake.glueDatabase). */
export function athenaEngine(runtime: StepRuntime): OpenEngine {
  return async () => {
    const database = runtime.lakeDeps().config.lake.glueDatabase;
    if (!database) throw new ConfigError('lake.glueDatabase is not set: Validate Table queries the tables in that Glue database');
    return new AthenaEngine({ client: athena, workGroup: requireEnv('ATHENA_WORK_GROUP'), database, timeoutMillis: VALIDATE_QUERY_TIMEOUT_MILLIS });
  };
}

export const handler = validateHandler(awsRuntime, athenaEngine(awsRuntime));
