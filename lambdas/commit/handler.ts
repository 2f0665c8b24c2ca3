// Commit Table: register the schema, move the watermark (the commit point), tidy up.
import { commitTableStep } from '../core/protocol/commit.ts';
import { tableTaskSchema } from '../core/protocol/run-model.ts';
import { awsRuntime, type StepRuntime } from '../adapters/aws-runtime.ts';

/** Leave this much of the invocation for the last moves in flight and the response. */
const RESERVE_MILLIS = 30_000;

export function commitHandler(runtime: StepRuntime) {
  return async (event: unknown, context?: { getRemainingTimeInMillis(): number }) => {
    const task = tableTaskSchema.parse(event);
    // A commit that does not fit returns the task with its progress; the workflow calls again.
    const deadline = context ? Date.now() + context.getRemainingTimeInMillis() - RESERVE_MILLIS : Number.POSITIVE_INFINITY;
    return runtime.withDeps((deps) => commitTableStep(deps, task, deadline));
  };
}

export const handler = commitHandler(awsRuntime);
