// The schedule that starts the workflow, and one alarm per failure mode, all notifying one
// encrypted topic.
import { App, Stack } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { ExportAlarms, ExportSchedule } from '../../lib/index.ts';
import { buildStack, FIXTURE_LAKE_TABLES, logicalIdOf, resourcesOfType, type BuiltStack } from './stack.ts';

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

  it('fire per table when StalenessSeconds exceeds maxStalenessHours or stops arriving', () => {
    const stale = alarmsOn('StalenessSeconds');
    // Exactly the dimension set Powertools emits: its `service` default dimension, then Table.
    expect(stale.map((a) => a.Dimensions)).toEqual(FIXTURE_LAKE_TABLES.map((table) => [{ Name: 'Table', Value: table }, { Name: 'service', Value: 'pg-lake-export' }]));
    for (const alarm of stale) {
      expect(alarm).toMatchObject({
        Namespace: 'PgLakeExport',
        Statistic: 'Maximum',
        Period: 3600,
        Threshold: 12 * 3600,
        ComparisonOperator: 'GreaterThanThreshold',
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

  it('have no alarm beyond those failure modes', () => {
    expect(alarms).toHaveLength(3 + 1 + FIXTURE_LAKE_TABLES.length + 4 + 1);
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
