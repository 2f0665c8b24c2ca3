// Summarize Run: per-table outcome and EMF metrics (rows, bytes, successes, failures, staleness,
// and per run the tables whose validation found a mismatch or could not run, or whose compaction failed).
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { runMetrics, summarizeInputSchema, summarizeRun } from '../core/protocol/summarize.ts';
import { awsRuntime, logger, metrics, type StepRuntime } from '../adapters/aws-runtime.ts';

export function summarizeHandler(runtime: StepRuntime) {
  return async (event: unknown) => {
    const input = summarizeInputSchema.parse(event);
    const summary = await summarizeRun(runtime.lakeDeps(), input);
    // Per table, with its own dimension (CloudWatch matches an alarm's exact dimension set: service,
    // Table); a single metric is written out as it is added.
    const perTable = new Map<string, ReturnType<typeof metrics.singleMetric>>();
    for (const metric of runMetrics(summary)) {
      if (metric.table === undefined) {
        metrics.addMetric(metric.name, MetricUnit[metric.unit], metric.value);
        continue;
      }
      let single = perTable.get(metric.table);
      if (!single) {
        single = metrics.singleMetric();
        single.addDimension('Table', metric.table);
        perTable.set(metric.table, single);
      }
      single.addMetric(metric.name, MetricUnit[metric.unit], metric.value);
    }
    for (const table of summary.tables) if (table.status === 'failed') logger.error('table failed', { table: table.table, error: table.error });
    for (const result of input.results) {
      if (result.status !== 'succeeded' || !result.validation) continue;
      if (result.validation.status === 'mismatch') logger.error('validation found a mismatch (the Validate function\'s log names partitions and keys)', { table: result.table, validation: result.validation });
      if (result.validation.status === 'skipped') logger.warn('validation could not run (the Validate function\'s log says why)', { table: result.table, error: result.validation.error });
    }
    for (const result of input.results) {
      if (result.status === 'succeeded' && result.compaction?.status === 'failed') logger.error('compaction failed; the export stands (the Compact function\'s log says why)', { table: result.table, error: result.compaction.error });
    }
    metrics.publishStoredMetrics();
    logger.info('run summary', { ...summary });
    return summary;
  };
}

export const handler = summarizeHandler(awsRuntime);
