// Commit Table: register the schema, move the watermark (the commit point), tidy up.
import { commitTable } from '../core/protocol/commit.ts';
import { tableTaskSchema } from '../core/protocol/run-model.ts';
import { awsRuntime, type StepRuntime } from '../adapters/aws-runtime.ts';

export function commitHandler(runtime: StepRuntime) {
  return async (event: unknown) => {
    const task = tableTaskSchema.parse(event);
    return runtime.withDeps((deps) => commitTable(deps, task));
  };
}

export const handler = commitHandler(awsRuntime);
