// Compact Table: after a table's commit (and validation), rewrite the table into a new generation
// when its partitions collect small files or its granularity changed (protocol/compact.ts). The
// data is committed already: a failure here only records a warning in the workflow (Summarize
// counts it as CompactionFailed, which alarms), and the next run (or compaction) recovers
// whatever a killed compaction left.
import { z } from 'zod';
import { awsRuntime, logger, type StepRuntime } from '../adapters/aws-runtime.ts';
import { describeError } from '../core/errors.ts';
import { compactTable, type CompactResult } from '../core/protocol/compact.ts';

/** The table's commit result; only its name is read. */
export const compactInputSchema = z.object({ table: z.string().min(1) });

/**
 * What the state keeps under the result's `compaction`: the status only. Hundreds of tables'
 * results share the execution's 256 KB, and a 300-table run is at ~180 KB without it; the
 * reason, file counts and generation go to the function's log ('compaction').
 */
export type CompactionSummary = Pick<CompactResult, 'status'>;

/**
 * Time kept back from the invocation's end: a compaction that would not commit before it stops,
 * removes what it wrote and gives back the lease (a killed one would hold the lease, so the
 * state's retry would be skipped, and leave its files to the next run).
 */
const RESERVE_MILLIS = 60_000;

export function compactHandler(runtime: StepRuntime): (event: unknown, context?: { getRemainingTimeInMillis(): number }) => Promise<CompactionSummary> {
  return async (event, context) => {
    const { table } = compactInputSchema.parse(event);
    const deadline = context ? Date.now() + context.getRemainingTimeInMillis() - RESERVE_MILLIS : undefined;
    try {
      // With the catalog: the switch to the new generation updates the Glue table's location.
      const result = await compactTable(runtime.lakeDeps({ registersTables: true }), table, deadline === undefined ? {} : { deadline });
      logger.info('compaction', { ...result });
      return { status: result.status };
    } catch (error) {
      // The state's Catch keeps only the error's name (Summarize counts it as CompactionFailed): say why here.
      logger.error('compaction failed', { table, error: describeError(error) });
      throw error;
    }
  };
}

export const handler = compactHandler(awsRuntime);
