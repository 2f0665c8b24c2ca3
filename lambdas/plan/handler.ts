// Plan Export: validate the execution input, check every table against the catalog, plan windows.
import { planRun } from '../core/protocol/plan.ts';
import { ConfigError, ThrottlingError } from '../core/errors.ts';
import { runRequestSchema } from '../core/protocol/run-model.ts';
import { executionRunId, planInputSchema } from '../core/protocol/workflow-io.ts';
import { awsRuntime, logger, type StepRuntime } from '../adapters/aws-runtime.ts';

export function planHandler(runtime: StepRuntime) {
  return async (event: unknown) => {
    const { request, execution } = planInputSchema.parse(event);
    const parsed = runRequestSchema.safeParse(request ?? {});
    if (!parsed.success) {
      throw new ConfigError(`execution input: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    }
    const plan = await runtime.withDeps((deps) => planRun(deps, { ...parsed.data, runId: executionRunId(execution) }));
    // A table that failed on a transient fault (S3 503, a dropped connection) is planned again by
    // the state's Retry: the run id is the execution's, so the leases this attempt took are its own.
    const transient = plan.failed.filter((f) => f.transient);
    if (transient.length) throw new ThrottlingError(`Plan: ${transient.map((f) => f.error).join('; ')}`);
    for (const warning of plan.warnings) logger.warn(warning);
    for (const skipped of plan.skipped) logger.warn(skipped.reason);
    // A table whose failed backfill this execution continues keeps that run's id.
    logger.info('planned', { runId: plan.runId, tables: plan.tables.map((t) => ({ table: t.table, window: t.window, kind: t.kind, ...(t.runId !== plan.runId ? { continues: t.runId } : {}) })) });
    return plan;
  };
}

export const handler = planHandler(awsRuntime);
