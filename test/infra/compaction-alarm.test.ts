// A failed Compact Table does not fail the export (the Catch records a warning), so without a
// metric of its own nobody would hear of it. Summarize counts the tables whose compaction failed
// (CompactionFailed, per run); one alarm fires on any, and the dashboard graphs it. With
// compaction off there is neither metric, alarm nor widget.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { runMetrics, summarizeInputSchema, summarizeRun } from '../../lambdas/core/protocol/summarize.ts';
import { COMPACTION_FAILED_METRIC, ExportAlarms, METRICS_NAMESPACE, SERVICE_NAME } from '../../lib/index.ts';
import { buildStack, logicalIdOf, resourcesOfType, type BuiltStack } from './stack.ts';

interface AlarmProps {
  Namespace: string;
  MetricName: string;
  Dimensions?: Array<{ Name: string; Value: unknown }>;
  AlarmActions: unknown[];
  OKActions: unknown[];
}

let built: BuiltStack;
const dir = mkdtempSync(join(tmpdir(), 'compaction-alarm-'));

beforeAll(() => {
  built = buildStack();
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function alarmsOf(template: Template): Array<{ id: string; props: AlarmProps }> {
  return Object.entries(resourcesOfType<AlarmProps>(template, 'AWS::CloudWatch::Alarm')).map(([id, a]) => ({ id, props: a.Properties }));
}

function dashboardBody(template: Template): string {
  const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as { Properties: { DashboardBody: unknown } }[];
  return JSON.stringify(dashboard.Properties.DashboardBody);
}

/** The per-run metric as the dashboard's JSON spells it (dimension `service` only). */
const GRAPHED = `[\\"${METRICS_NAMESPACE}\\",\\"${COMPACTION_FAILED_METRIC}\\",\\"service\\",\\"${SERVICE_NAME}\\"`;

describe('the CompactionFailed alarm', () => {
  it('fires when a run\'s Compact Table failed for any table (CompactionFailed ≥ 1, the metric Summarize emits per run), and notifies the topic', () => {
    const onMetric = alarmsOf(built.template).filter((a) => a.props.MetricName === COMPACTION_FAILED_METRIC);
    expect(onMetric.map((a) => a.props)).toEqual([
      expect.objectContaining({
        Namespace: 'PgLakeExport',
        // Exactly the dimension set Powertools gives a run metric: its `service` default only.
        Dimensions: [{ Name: 'service', Value: 'pg-lake-export' }],
        Statistic: 'Sum',
        Period: 300,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        EvaluationPeriods: 1,
        TreatMissingData: 'notBreaching',
      }),
    ]);
    const topic = { Ref: logicalIdOf(built.stack, built.stack.alarms.topic) };
    expect(onMetric[0].props.AlarmActions).toEqual([topic]);
    expect(onMetric[0].props.OKActions).toEqual([topic]);
    expect(built.stack.alarms.alarms.map((a) => logicalIdOf(built.stack, a))).toContain(onMetric[0].id);
  });

  it('is graphed on the dashboard', () => {
    const body = dashboardBody(built.template);
    expect(body).toContain('Tables whose compaction failed (per hour)');
    expect(body).toContain(GRAPHED);
  });

  it('is absent, with its widget, when the workflow does not compact', () => {
    const stack = new Stack(new App(), 'NoCompaction');
    const stateMachine = sfn.StateMachine.fromStateMachineName(stack, 'Machine', 'm');
    new ExportAlarms(stack, 'Alarms', { stateMachine, functions: {}, lakeTables: ['orders'] });
    const template = Template.fromStack(stack);
    expect(alarmsOf(template).map((a) => a.props.MetricName)).not.toContain(COMPACTION_FAILED_METRIC);
    expect(dashboardBody(template)).not.toContain(COMPACTION_FAILED_METRIC);
  });
});

describe('CompactionFailed, as Summarize emits it', () => {
  const window = { from: null, to: '2024-06-02 00:00:00.000000+00' };
  const committed = (table: string, compaction?: unknown) => ({
    table, status: 'succeeded', rows: 1, files: 1, bytes: 1, windowFrom: window.from, windowTo: window.to, watermark: window.to, nullCursorRows: 0,
    ...(compaction ? { compaction } : {}),
  });
  /** What the Map hands Summarize: compacted, skipped, a failure the Catch recorded, and a failed table (no compaction). */
  const input = summarizeInputSchema.parse({
    runId: 'r', startedAt: '2024-06-02T00:00:00.000Z',
    results: [
      committed('orders', { status: 'compacted' }),
      committed('customers', { status: 'skipped' }),
      committed('order_items', { status: 'failed', error: 'StateError' }),
      { table: 'fragile', status: 'failed', error: 'ExportError', cause: 'boom' },
    ],
  });
  const config = (enabled: boolean) => validateConfig({
    validation: { enabled: false }, compaction: { enabled },
    tables: ['public.orders', 'public.customers', 'public.order_items', 'public.fragile'].map((name) => ({ name })),
  });

  it('counts the tables whose compaction failed, once per run', async () => {
    const summary = await summarizeRun({ store: new DirectoryStore(pathToFileURL(dir).href), config: config(true) }, input);
    expect(summary.compaction).toEqual({ failed: 1 });
    expect(runMetrics(summary).filter((m) => m.name === COMPACTION_FAILED_METRIC)).toEqual([{ name: COMPACTION_FAILED_METRIC, unit: 'Count', value: 1 }]);
  });

  it('is not emitted when the workflow does not compact', async () => {
    const summary = await summarizeRun({ store: new DirectoryStore(pathToFileURL(dir).href), config: config(false) }, input);
    expect(summary.compaction).toBeNull();
    expect(runMetrics(summary).map((m) => m.name)).not.toContain(COMPACTION_FAILED_METRIC);
  });
});
