// Summarize Run: per-table outcome and EMF metrics (rows, files, bytes, staleness, failures).
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { summarizeInputSchema, summarizeRun } from '../core/workflow-io.ts';
import { lakeDeps, logger, metrics } from '../adapters/aws-runtime.ts';

export const handler = async (event: unknown) => {
  const summary = await summarizeRun(lakeDeps, summarizeInputSchema.parse(event));
  for (const table of summary.tables) {
    const perTable = metrics.singleMetric();
    perTable.addDimension('Table', table.table);
    perTable.addMetric('RowsExported', MetricUnit.Count, table.rows);
    perTable.addMetric('BytesWritten', MetricUnit.Bytes, table.bytes);
    perTable.addMetric('TableFailed', MetricUnit.Count, table.status === 'failed' ? 1 : 0);
    perTable.addMetric('NullCursorRows', MetricUnit.Count, table.nullCursorRows);
    if (table.stalenessSeconds !== null) perTable.addMetric('StalenessSeconds', MetricUnit.Seconds, table.stalenessSeconds);
    if (table.status === 'failed') logger.error('table failed', { table: table.table, error: table.error });
  }
  metrics.addMetric('TablesFailed', MetricUnit.Count, summary.failed);
  metrics.publishStoredMetrics();
  logger.info('run summary', { ...summary });
  return summary;
};
