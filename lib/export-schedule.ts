// Starts the export workflow on a schedule (EventBridge Scheduler, in the user's time zone).
// A start that cannot be delivered after the retries lands in a dead-letter queue, never silently.
import { Duration, Stack, TimeZone, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { isPositiveInteger, PropProblems } from './prop-problems.ts';

export interface ExportScheduleProps {
  /** The workflow to start. */
  readonly stateMachine: sfn.IStateMachine;
  /** Scheduler expression, `cron(…)` or `rate(…)`. */
  readonly expression: string;
  /** IANA time zone the cron expression is read in. @default 'UTC' */
  readonly timeZone?: string;
  /** Whether the schedule starts executions. @default true */
  readonly enabled?: boolean;
  /** Delivery retries before the start goes to the dead-letter queue. @default 2 */
  readonly maxRetryAttempts?: number;
  /** A start older than this is dropped into the dead-letter queue. @default Duration.hours(1) */
  readonly maxEventAge?: Duration;
}

export class ExportSchedule extends Construct {
  readonly schedule: scheduler.Schedule;
  /** Receives the starts Scheduler could not deliver. */
  readonly deadLetterQueue: sqs.Queue;
  /** The role Scheduler assumes: start this state machine, write to the dead-letter queue. */
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: ExportScheduleProps) {
    super(scope, id);
    const timeZone = props.timeZone ?? 'UTC';
    const maxRetryAttempts = props.maxRetryAttempts ?? 2;
    const maxEventAge = props.maxEventAge ?? Duration.hours(1);
    const problems = new PropProblems('ExportSchedule');
    problems.check(/^(cron|rate)\(.+\)$/.test(props.expression), 'expression', 'must be cron(…) or rate(…)', props.expression);
    problems.check(isValidTimeZone(timeZone), 'timeZone', 'must be an IANA time zone such as "Europe/Dublin"', timeZone);
    problems.check(Number.isInteger(maxRetryAttempts) && maxRetryAttempts >= 0 && maxRetryAttempts <= 185, 'maxRetryAttempts', 'must be a whole number in 0..185', maxRetryAttempts);
    problems.check(maxEventAge.toSeconds() >= 60 && maxEventAge.toSeconds() <= 86_400, 'maxEventAge', 'must be 1 minute..24 hours', maxEventAge.toHumanString());
    problems.throwIfAny();

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the schedule; nothing consumes it automatically (an alarm watches its depth).',
    });

    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', {
      // Confused-deputy guard: only schedules of this account's default group may assume it.
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: {
            'aws:SourceAccount': stack.account,
            'aws:SourceArn': stack.formatArn({ service: 'scheduler', resource: 'schedule-group', resourceName: 'default' }),
          },
        },
      }),
      description: 'EventBridge Scheduler: start the pg-lake-export workflow',
    });

    const target = new targets.StepFunctionsStartExecution(props.stateMachine, {
      role: this.role,
      input: scheduler.ScheduleTargetInput.fromObject({}),
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: maxRetryAttempts,
      maxEventAge,
    });
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Starts the pg-lake-export workflow',
      schedule: scheduler.ScheduleExpression.expression(props.expression, TimeZone.of(timeZone)),
      target,
      enabled: props.enabled ?? true,
    });
  }
}

function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone });
    return true;
  } catch {
    return false;
  }
}
