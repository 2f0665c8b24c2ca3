// The schedule that starts the workflow, and one alarm per failure mode, all notifying one
// encrypted topic.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { TableState } from '../../lambdas/core/protocol/table-state.ts';
import { runMetrics, summarizeRun, type RunMetric } from '../../lambdas/core/protocol/summarize.ts';
import { ExportAlarms, ExportSchedule, PgLakeExportStack, VALIDATION_MISMATCH_METRIC, VALIDATION_SKIPPED_METRIC } from '../../lib/index.ts';
import { buildStack, ENV, fixtureConfig, FIXTURE_CONFIG_YAML, FIXTURE_LAKE_TABLES, FIXTURE_PREFIX, logicalIdOf, resourcesOfType, type BuiltStack } from './stack.ts';

interface AlarmProps {
  Namespace: string;
  MetricName: string;
  Dimensions?: Array<{ Name: string; Value: unknown }>;
  Statistic: string;
  Period: number;
  Threshold: number;
  ComparisonOperator: string;
  EvaluationPeriods: number;
  DatapointsToAlarm?: number;
  TreatMissingData: string;
  AlarmActions: unknown[];
  OKActions: unknown[];
}

let built: BuiltStack;
let alarms: AlarmProps[];
let ids: Record<string, string>;

beforeAll(() => {
  built = buildStack();
  alarms = Object.values(resourcesOfType<AlarmProps>(built.template, 'AWS::CloudWatch::Alarm')).map((a) => a.Properties);
  const { stack } = built;
  ids = {
    stateMachine: logicalIdOf(stack, stack.workflow.stateMachine),
    deadLetterQueue: logicalIdOf(stack, stack.schedule.deadLetterQueue),
    scheduleRole: logicalIdOf(stack, stack.schedule.role),
    topic: logicalIdOf(stack, stack.alarms.topic),
  };
}, 180_000);

function alarmsOn(metricName: string): AlarmProps[] {
  return alarms.filter((a) => a.MetricName === metricName);
}

function stateMachineDimension() {
  return [{ Name: 'StateMachineArn', Value: { Ref: ids.stateMachine } }];
}

describe('export schedule', () => {
  it('starts the state machine with {} in the configured time zone, through its own role', () => {
    built.template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(30 3 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Dublin',
      State: 'DISABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        Arn: { Ref: ids.stateMachine },
        RoleArn: { 'Fn::GetAtt': [ids.scheduleRole, 'Arn'] },
        Input: '{}',
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [ids.deadLetterQueue, 'Arn'] } },
      },
    });
  });

  it('has an encrypted, TLS-only dead-letter queue', () => {
    built.template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
    built.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: ids.deadLetterQueue }],
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  it('can be assumed only by Scheduler on behalf of this account', () => {
    built.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({
          Principal: { Service: 'scheduler.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': '123456789012', 'aws:SourceArn': 'arn:aws:scheduler:eu-west-1:123456789012:schedule-group/default' } },
        })],
      },
    });
  });

  it('reports every invalid prop at once', () => {
    const stack = new Stack(new App(), 'Invalid');
    const stateMachine = sfn.StateMachine.fromStateMachineName(stack, 'Machine', 'm');
    expect(() => new ExportSchedule(stack, 'Schedule', { stateMachine, expression: 'daily', timeZone: 'Mars/Olympus', maxRetryAttempts: -1 })).toThrowError(
      /expression: must be cron[\s\S]*timeZone: must be an IANA time zone[\s\S]*maxRetryAttempts/,
    );
  });
});

describe('export alarms', () => {
  it('notify one KMS-encrypted, TLS-only topic on alarm and on recovery, with the configured e-mail', () => {
    built.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    const fromOurAlarms = {
      StringEquals: { 'aws:SourceAccount': '123456789012' },
      ArnLike: { 'aws:SourceArn': 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*' },
    };
    // The topic policy replaces SNS's default one, so it must let CloudWatch publish.
    built.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: ids.topic }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Effect: 'Allow', Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish', Resource: { Ref: ids.topic }, Condition: fromOurAlarms }),
        ]),
      },
    });
    built.template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'], Condition: fromOurAlarms })]) },
    });
    built.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com', TopicArn: { Ref: ids.topic } });
    expect(alarms.length).toBeGreaterThan(0);
    for (const alarm of alarms) {
      expect(alarm.AlarmActions).toEqual([{ Ref: ids.topic }]);
      expect(alarm.OKActions).toEqual([{ Ref: ids.topic }]);
    }
  });

  it('fire on a failed, timed-out or throttled execution (≥ 1 in 5 minutes)', () => {
    for (const metricName of ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionThrottled']) {
      expect(alarmsOn(metricName), metricName).toEqual([
        expect.objectContaining({
          Namespace: 'AWS/States',
          Dimensions: stateMachineDimension(),
          Statistic: 'Sum',
          Period: 300,
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          EvaluationPeriods: 1,
          TreatMissingData: 'notBreaching',
        }),
      ]);
    }
  });

  it('fire when no execution succeeded within noSuccessWithinHours (hourly, all periods, missing = breaching)', () => {
    expect(alarmsOn('ExecutionsSucceeded')).toEqual([
      expect.objectContaining({
        Namespace: 'AWS/States',
        Dimensions: stateMachineDimension(),
        Statistic: 'Sum',
        Period: 3600,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        EvaluationPeriods: 30,
        DatapointsToAlarm: 30,
        TreatMissingData: 'breaching',
      }),
    ]);
  });

  it('fire per table when it had no successful export within maxStalenessHours (hourly, all periods, missing = breaching)', () => {
    const stale = alarmsOn('TableSucceeded');
    // Exactly the dimension set Powertools emits: its `service` default dimension, then Table.
    expect(stale.map((a) => a.Dimensions)).toEqual(FIXTURE_LAKE_TABLES.map((table) => [{ Name: 'Table', Value: table }, { Name: 'service', Value: 'pg-lake-export' }]));
    for (const alarm of stale) {
      expect(alarm).toMatchObject({
        Namespace: 'PgLakeExport',
        Statistic: 'Sum',
        Period: 3600,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        EvaluationPeriods: 12,
        DatapointsToAlarm: 12,
        TreatMissingData: 'breaching',
      });
    }
  });

  it('fire on any error of each function', () => {
    const errors = alarmsOn('Errors');
    const fns = built.stack.functions.functions;
    expect(errors.map((a) => a.Dimensions).sort()).toEqual(
      ['Plan', 'Export', 'Commit', 'Summarize'].map((name) => [{ Name: 'FunctionName', Value: { Ref: logicalIdOf(built.stack, fns[name]) } }]).sort(),
    );
    for (const alarm of errors) {
      expect(alarm).toMatchObject({ Namespace: 'AWS/Lambda', Statistic: 'Sum', Period: 300, Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' });
    }
  });

  it('fire when the schedule could not start a run (a message in its dead-letter queue)', () => {
    expect(alarmsOn('ApproximateNumberOfMessagesVisible')).toEqual([
      expect.objectContaining({
        Namespace: 'AWS/SQS',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ids.deadLetterQueue, 'QueueName'] } }],
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      }),
    ]);
  });

  it('fire when a run\'s validation found a mismatch in any table (ValidationMismatch ≥ 1, the metric Summarize emits per run)', () => {
    expect(alarmsOn(VALIDATION_MISMATCH_METRIC)).toEqual([
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
    const summary = {
      runId: 'r', succeeded: 2, failed: 0, durationSeconds: 1, stalenessSeconds: {}, validation: { mismatched: 1, skipped: 1 }, compaction: null,
      tables: [],
    };
    // A per-run metric (no table): what the alarm watches, under the name it watches.
    expect(runMetrics(summary).filter((m) => m.name.startsWith('Validation'))).toEqual([
      { name: VALIDATION_MISMATCH_METRIC, unit: 'Count', value: 1 },
      { name: VALIDATION_SKIPPED_METRIC, unit: 'Count', value: 1 },
    ]);
    // No alarm on the Validate function's errors: they are retried, then recorded as ValidationSkipped.
    expect(alarms.filter((a) => a.Namespace === 'AWS/Lambda')).toHaveLength(4);
  });

  it('have no ValidationMismatch alarm when validation is off', () => {
    const stack = new Stack(new App(), 'NoValidation');
    const stateMachine = sfn.StateMachine.fromStateMachineName(stack, 'Machine', 'm');
    new ExportAlarms(stack, 'Alarms', { stateMachine, functions: {}, lakeTables: ['orders'] });
    expect(Object.values(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm')).map((a) => (a as { Properties: { MetricName?: string } }).Properties.MetricName)).not.toContain(VALIDATION_MISMATCH_METRIC);
  });

  it('have no alarm beyond those failure modes', () => {
    // Executions (3), no recent success, stale per table, function errors (4), schedule delivery, validation mismatch, compaction failed.
    expect(alarms).toHaveLength(3 + 1 + FIXTURE_LAKE_TABLES.length + 4 + 1 + 1 + 1);
  });

  it('come with a dashboard', () => {
    built.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  it('reports every invalid prop at once', () => {
    const stack = new Stack(new App(), 'Invalid');
    const stateMachine = sfn.StateMachine.fromStateMachineName(stack, 'Machine', 'm');
    expect(() => new ExportAlarms(stack, 'Alarms', { stateMachine, functions: {}, lakeTables: [], maxStalenessHours: 0, noSuccessWithinHours: 200, email: 'nobody' })).toThrowError(
      /maxStalenessHours[\s\S]*noSuccessWithinHours[\s\S]*lakeTables: list at least one table[\s\S]*email/,
    );
  });
});

// The Stale alarm as CloudWatch evaluates it, fed with exactly what the Summarize step emits
// (summarizeRun over a real lake directory, then runMetrics) for a daily schedule whose runs
// keep failing after one success: "hours since the last success" must mean what it says.
describe('the Stale alarm on a daily schedule', () => {
  type Datapoint = RunMetric & { at: number };
  const HOUR = 3_600_000;

  /** The hour (since t0) at which CloudWatch first puts the alarm in ALARM, evaluating at every hour's end. */
  function firstAlarmHour(alarm: AlarmProps, table: string, points: readonly Datapoint[], t0: number, hours: number): number | null {
    const stat = (values: number[]) => (alarm.Statistic === 'Sum' ? values.reduce((a, b) => a + b, 0) : alarm.Statistic === 'Maximum' ? Math.max(...values) : Number.NaN);
    const breaches = (value: number) => (alarm.ComparisonOperator === 'LessThanThreshold' ? value < alarm.Threshold : alarm.ComparisonOperator === 'GreaterThanThreshold' ? value > alarm.Threshold : Number.NaN > 0);
    for (let end = alarm.EvaluationPeriods; end <= hours; end++) {
      let breaching = 0;
      for (let period = end - alarm.EvaluationPeriods; period < end; period++) {
        const from = t0 + period * HOUR;
        const values = points.filter((p) => p.table === table && p.name === alarm.MetricName && p.at >= from && p.at < from + HOUR).map((p) => p.value);
        if (values.length === 0) breaching += alarm.TreatMissingData === 'breaching' ? 1 : 0;
        else if (breaches(stat(values))) breaching += 1;
      }
      if (breaching >= (alarm.DatapointsToAlarm ?? alarm.EvaluationPeriods)) return end;
    }
    return null;
  }

  it('fires within an hour of maxStalenessHours after the last success, although later runs failed and reported', async () => {
    const yamlText = FIXTURE_CONFIG_YAML.replace('maxStalenessHours: 12', 'maxStalenessHours: 26');
    const config = fixtureConfig(yamlText);
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const template = Template.fromStack(new PgLakeExportStack(app, 'PgLakeExport', { config, env: ENV }));
    const alarm = Object.values(resourcesOfType<AlarmProps>(template, 'AWS::CloudWatch::Alarm')).map((a) => a.Properties)
      .find((a) => a.Dimensions?.some((d) => d.Name === 'Table' && d.Value === 'orders'))!;

    const store = new DirectoryStore(pathToFileURL(mkdtempSync(join(tmpdir(), 'pg-lake-export-stale-'))).href);
    const deps = { store, config, log: () => undefined };
    const t0 = Date.parse('2025-03-01T00:00:00Z');
    const points: Datapoint[] = [];
    // Day 0, 02:00: every table commits. Days 1 and 2, 02:00: orders fails, the others commit.
    for (let day = 0; day < 3; day++) {
      const start = t0 + (day * 24 + 2) * HOUR;
      const committedAt = new Date(start + 20 * 60_000);
      const runId = `run-${day}`;
      const results = FIXTURE_LAKE_TABLES.map((table) => (day > 0 && table === 'orders'
        ? { table, status: 'failed' as const, error: 'ThrottlingError', cause: 'S3 GET failed' }
        : { table, status: 'succeeded' as const, rows: 1, files: 1, bytes: 1, windowFrom: null, windowTo: 'x', watermark: 'x', nullCursorRows: 0 }));
      for (const result of results.filter((r) => r.status === 'succeeded')) {
        const state = new TableState(store, FIXTURE_PREFIX, result.table);
        await state.write(state.watermarkKey(), { cursor: `2025-03-0${day + 1} 01:59:55.000000+00`, runId, committedAt: committedAt.toISOString() });
      }
      const now = new Date(start + 30 * 60_000);
      const summary = await summarizeRun(deps, { runId, startedAt: new Date(start).toISOString(), results, skipped: [], failed: [] }, now);
      // Every configured table is measured on every run, the failed one included.
      expect(Object.keys(summary.stalenessSeconds).sort()).toEqual([...FIXTURE_LAKE_TABLES].sort());
      points.push(...runMetrics(summary).map((m) => ({ ...m, at: now.getTime() })));
    }
    expect(points.find((p) => p.table === 'orders' && p.name === 'StalenessSeconds' && p.at > t0 + 48 * HOUR)?.value).toBe(48 * 3600 + 10 * 60);

    const lastSuccessHour = 2 + 20 / 60;
    const fired = firstAlarmHour(alarm, 'orders', points, t0, 96);
    expect(fired).not.toBeNull();
    expect(fired! - lastSuccessHour).toBeGreaterThanOrEqual(26);
    expect(fired! - lastSuccessHour).toBeLessThanOrEqual(27);
    // The tables that kept succeeding never alarm.
    expect(firstAlarmHour(alarm, 'customers', points, t0, 60)).toBeNull();
    // Control: the former rule (StalenessSeconds above the threshold in every hour) on the same
    // datapoints waits for the day-1 failure's 24 h value to leave its window: ~50 h.
    const former: AlarmProps = { ...alarm, MetricName: 'StalenessSeconds', Statistic: 'Maximum', Threshold: 26 * 3600, ComparisonOperator: 'GreaterThanThreshold' };
    expect(firstAlarmHour(former, 'orders', points, t0, 96)! - lastSuccessHour).toBeGreaterThan(48);
  });
});
