// Commit Table: register the schema, move the watermark (the commit point), tidy up.
import { commitTable } from '../core/protocol/commit.ts';
import { tableTaskSchema } from '../core/protocol/run-model.ts';
import { withDeps } from '../adapters/aws-runtime.ts';

export const handler = async (event: unknown) => {
  const task = tableTaskSchema.parse(event);
  return withDeps((deps) => commitTable(deps, task));
};
