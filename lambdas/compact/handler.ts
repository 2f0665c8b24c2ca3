// Compact Table: after a table's commit (and validation), rewrite the table into a new generation
// when its partitions collect small files or its granularity changed (protocol/compact.ts). The
// data is committed already: a failure here only records a warning in the workflow, and the
// next run (or compaction) recovers whatever a killed compaction left.
import { z } from 'zod';
import { awsRuntime, logger, type StepRuntime } from '../adapters/aws-runtime.ts';
import { compactTable, type CompactResult } from '../core/protocol/compact.ts';

/** The table's commit result; only its name is read. */
export const compactInputSchema = z.object({ table: z.string().min(1) });

/** What the state keeps under the result's `compaction` (small: hundreds of tables share 256 KB). */
export type CompactionSummary = Pick<CompactResult, 'status' | 'reason' | 'filesBefore' | 'filesAfter' | 'retiredFilesDeleted'> & { readonly generation?: string };

export function compactHandler(runtime: StepRuntime): (event: unknown) => Promise<CompactionSummary> {
  return async (event) => {
    const { table } = compactInputSchema.parse(event);
    const result = await runtime.withDeps((deps) => compactTable(deps, table));
    logger.info('compaction', { ...result });
    const { status, reason, filesBefore, filesAfter, retiredFilesDeleted, generation } = result;
    return { status, reason, filesBefore, filesAfter, retiredFilesDeleted, ...(generation ? { generation } : {}) };
  };
}

export const handler = compactHandler(awsRuntime);
