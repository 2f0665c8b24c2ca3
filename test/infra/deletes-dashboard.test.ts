// The dashboard graphs DeletesDetected for the tables that look for deletes, under the metric
// name and dimensions Summarize emits it with; no widget when no table does.
import { App, Stack } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { DELETES_DETECTED_METRIC, ExportAlarms, METRICS_NAMESPACE, SERVICE_NAME, TABLE_DIMENSION } from '../../lib/export-alarms.ts';
import { runMetrics } from '../../lambdas/core/protocol/summarize.ts';

/** The dashboard's body as CloudFormation holds it (Fn::Join of strings and tokens), as text. */
function dashboardBody(stack: Stack): string {
  const [dashboard] = Object.values(Template.fromStack(stack).findResources('AWS::CloudWatch::Dashboard')) as { Properties: { DashboardBody: unknown } }[];
  return JSON.stringify(dashboard.Properties.DashboardBody);
}

describe('deletes on the dashboard', () => {
  it('graphs each detecting table\'s DeletesDetected as Summarize emits it', () => {
    const stack = new Stack(new App(), 'Deletes');
    const stateMachine = sfn.StateMachine.fromStateMachineName(stack, 'Machine', 'm');
    new ExportAlarms(stack, 'Alarms', { stateMachine, functions: {}, lakeTables: ['orders', 'customers'], deleteDetectingTables: ['orders'] });
    const body = dashboardBody(stack);
    expect(body).toContain('Deleted keys found per table');
    expect(body).toContain(`[\\"${METRICS_NAMESPACE}\\",\\"${DELETES_DETECTED_METRIC}\\",\\"${TABLE_DIMENSION}\\",\\"orders\\",\\"service\\",\\"${SERVICE_NAME}\\",{\\"label\\":\\"orders\\"`);
    expect(body).not.toContain(`\\"${DELETES_DETECTED_METRIC}\\",\\"${TABLE_DIMENSION}\\",\\"customers\\"`);
    const metrics = runMetrics({ runId: 'r', succeeded: 1, failed: 0, durationSeconds: 1, stalenessSeconds: {}, validation: null, compaction: null, tables: [{ table: 'orders', status: 'succeeded', rows: 1, files: 1, bytes: 1, nullCursorRows: 0, stalenessSeconds: 0, deletes: 3 }] });
    expect(metrics).toContainEqual({ table: 'orders', name: DELETES_DETECTED_METRIC, unit: 'Count', value: 3 });
  });

  it('has no deletes widget when no table detects', () => {
    const stack = new Stack(new App(), 'NoDeletes');
    const stateMachine = sfn.StateMachine.fromStateMachineName(stack, 'Machine', 'm');
    new ExportAlarms(stack, 'Alarms', { stateMachine, functions: {}, lakeTables: ['orders'] });
    expect(dashboardBody(stack)).not.toContain(DELETES_DETECTED_METRIC);
  });
});
