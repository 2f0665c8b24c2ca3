// Validate Table: after a table's commit, count what the query engine sees against the run's
// manifest (rows per partition, duplicated versions in its window). Deployed, the engine is
// Athena in the stack's workgroup over the Glue database; the local runner gives it DuckDB.
// A mismatch is returned (Summarize turns it into the ValidationMismatch metric); an engine that
// cannot answer throws, so the state retries and then records a warning without failing the export.
import { awsRuntime, logger, type StepRuntime } from '../adapters/aws-runtime.ts';
import { stackAthenaEngine, type OpenEngine } from '../adapters/stack-athena.ts';
import { describeError } from '../core/errors.ts';
import { describeValidation } from '../core/lake/validate.ts';
import { validateCommittedTable, validateInputSchema, type TableValidation } from '../core/protocol/workflow-io.ts';

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

/** What Validate Table's Athena engine needs of the config (the e2e test opens the same one). */
export const VALIDATE_ENGINE_NEEDS = 'Validate Table queries the tables in that Glue database';

export const handler = validateHandler(awsRuntime, stackAthenaEngine(awsRuntime, VALIDATE_ENGINE_NEEDS));
