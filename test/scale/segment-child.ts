// One backfill segment exported in its own process, as a Distributed Map child runs in its own
// Lambda (its own connection and encoder thread): the backfill scale test starts one per segment.
//
//   node test/scale/segment-child.ts <job.json>   job: { databaseUrl, lakeUrl, config, task, segment }
import { readFileSync } from 'node:fs';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { exportTable } from '../../lambdas/core/protocol/export-pages.ts';
import { segmentItemSchema } from '../../lambdas/core/protocol/run-model.ts';
import { segmentTask } from '../../lambdas/core/protocol/segments.ts';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { databaseUrl: string; lakeUrl: string; config: unknown; item: unknown };
const config = validateConfig(job.config, 'scale config');
const { task, segment } = segmentItemSchema.parse(job.item);
const source = new PostgresSource(job.databaseUrl);
try {
  let child = segmentTask(task, segment);
  while (!child.done) child = await exportTable({ source, store: new DirectoryStore(job.lakeUrl), config }, child);
  process.stdout.write(`${JSON.stringify({ segment: segment.index, rows: child.rows, pages: child.page - segment.index * 10_000 })}\n`);
} finally {
  await source.close();
}
process.exit(0);
