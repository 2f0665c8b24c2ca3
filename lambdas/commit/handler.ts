// Commit Table: register the schema, move the watermark (the commit point), tidy up.
import { commitTable } from '../core/exporter.ts';
import { tableTaskSchema } from '../core/workflow-io.ts';
import { withDeps } from '../adapters/aws-runtime.ts';

export const handler = async (event: unknown) => {
  const task = tableTaskSchema.parse(event);
  return withDeps((deps) => commitTable(deps, task));
};
