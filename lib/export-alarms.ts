// Alarms, one per failure mode, each with its rule written above it; every alarm notifies one SNS
// topic (on ALARM and on recovery). A dashboard shows the same signals side by side.
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { PropProblems } from './prop-problems.ts';

/** Namespace of the metrics the Summarize step emits (EMF, Powertools Metrics). */
export const METRICS_NAMESPACE = 'PgLakeExport';
/**
 * Powertools service name. Powertools adds it as a `service` dimension to every metric, also to
 * `singleMetric()`s, so an alarm must name it too: CloudWatch matches the exact dimension set.
 */
export const SERVICE_NAME = 'pg-lake-export';
/** Per-table metrics, dimensions `service` and `Table` (the lake name). */
export const STALENESS_METRIC = 'StalenessSeconds';
/** 1 for each run in which the table committed, 0 when it ran and did not. */
export const TABLE_SUCCEEDED_METRIC = 'TableSucceeded';
export const ROWS_EXPORTED_METRIC = 'RowsExported';
export const TABLE_DIMENSION = 'Table';
/** Per run (dimension `service` only): tables whose Validate Table found a mismatch or duplicates. */
export const VALIDATION_MISMATCH_METRIC = 'ValidationMismatch';
/** Per run: tables Validate Table could not check (the engine did not answer after its retries). */
export const VALIDATION_SKIPPED_METRIC = 'ValidationSkipped';
/** Per run, with compaction on (dimension `service` only): tables whose Compact Table failed. */
export const COMPACTION_FAILED_METRIC = 'CompactionFailed';
/** Per table with deletes.detect (dimensions `service`, `Table`): keys found deleted, tombstones written. */
export const DELETES_DETECTED_METRIC = 'DeletesDetected';

/** CloudWatch evaluates at most 7 days, and at most 1 day when the period is under an hour. */
const MAX_WINDOW_HOURS = 7 * 24;

export interface ExportAlarmsProps {
  readonly stateMachine: sfn.IStateMachine;
  /** Functions whose errors notify, keyed by the name used in the alarm's description. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** Lake names of the exported tables (the `Table` dimension of StalenessSeconds). */
  readonly lakeTables: readonly string[];
  /** A table is stale when it has not been exported successfully for this long. @default 26 */
  readonly maxStalenessHours?: number;
  /** The run is overdue when no execution succeeded within this. @default 26 */
  readonly noSuccessWithinHours?: number;
  /** Subscribed to the topic (the address must confirm). @default - no subscription */
  readonly email?: string;
  /** The schedule's dead-letter queue: a message there is a run that never started. @default - no alarm */
  readonly scheduleDeadLetterQueue?: sqs.IQueue;
  /** The workflow validates each committed table (alarm on ValidationMismatch). @default false */
  readonly validationEnabled?: boolean;
  /** The workflow compacts each committed table (alarm on CompactionFailed). @default false */
  readonly compactionEnabled?: boolean;
  /**
   * Lake names of the tables with deletes.detect: the dashboard graphs the deletes each run found
   * (no alarm: how many rows Postgres deletes is the application's business). @default - none
   */
  readonly deleteDetectingTables?: readonly string[];
}

export class ExportAlarms extends Construct {
  /** Every alarm, in the order they are declared below. */
  readonly alarms: cloudwatch.Alarm[] = [];
  /** Receives every alarm and recovery. */
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ExportAlarmsProps) {
    super(scope, id);
    const maxStalenessHours = props.maxStalenessHours ?? 26;
    const noSuccessWithinHours = props.noSuccessWithinHours ?? 26;
    const problems = new PropProblems('ExportAlarms');
    problems.check(maxStalenessHours > 0 && maxStalenessHours <= MAX_WINDOW_HOURS, 'maxStalenessHours', `must be in (0, ${MAX_WINDOW_HOURS}] (CloudWatch evaluates at most 7 days)`, maxStalenessHours);
    problems.check(noSuccessWithinHours > 0 && noSuccessWithinHours <= MAX_WINDOW_HOURS, 'noSuccessWithinHours', `must be in (0, ${MAX_WINDOW_HOURS}] (CloudWatch evaluates at most 7 days)`, noSuccessWithinHours);
    problems.check(props.lakeTables.length > 0, 'lakeTables', 'list at least one table', props.lakeTables);
    problems.check(new Set(props.lakeTables).size === props.lakeTables.length, 'lakeTables', 'must not repeat a table', props.lakeTables);
    problems.check(props.email === undefined || /^[^@\s]+@[^@\s]+$/.test(props.email), 'email', 'must be an e-mail address', props.email);
    problems.throwIfAny();

    // A customer managed key, not alias/aws/sns: CloudWatch alarms cannot publish to a topic
    // encrypted with the AWS managed key, whose policy cannot be extended to cloudwatch.amazonaws.com.
    const key = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts pg-lake-export alarm notifications',
      enableKeyRotation: true,
      // It only protects notifications in flight; nothing is lost with it.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Only on behalf of this account's alarms (confused-deputy guard).
    const stack = Stack.of(this);
    const fromOurAlarms = {
      StringEquals: { 'aws:SourceAccount': stack.account },
      ArnLike: { 'aws:SourceArn': stack.formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }) },
    };
    const cloudWatch = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsEncrypt',
        principals: [cloudWatch],
        // As the SNS guide for AWS service publishers documents them.
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'], // in a key policy, "*" is this key
        conditions: fromOurAlarms,
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'pg-lake-export alarms',
      masterKey: key,
      enforceSSL: true,
    });
    // enforceSSL creates a topic policy, which replaces SNS's default one: without this
    // statement CloudWatch is refused ("no resource-based policy allows the SNS:Publish action").
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [cloudWatch],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: fromOurAlarms,
      }),
    );
    if (props.email !== undefined) this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
    const notify = new actions.SnsAction(this.topic);

    const add = (alarmId: string, alarmProps: cloudwatch.AlarmProps): cloudwatch.Alarm => {
      const alarm = new cloudwatch.Alarm(this, alarmId, alarmProps);
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
      this.alarms.push(alarm);
      return alarm;
    };
    const fiveMinutes = Duration.minutes(5);
    const sm = props.stateMachine;

    // Rule: an execution ended FAILED (a step crashed, or a table failed) — at least 1 in 5 minutes.
    add('ExecutionsFailed', {
      alarmDescription: 'A pg-lake-export execution failed. Open the execution; Summarize Run lists the failed tables and why.',
      metric: sm.metricFailed({ period: fiveMinutes, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // Rule: an execution ran past the state machine timeout — at least 1 in 5 minutes.
    add('ExecutionsTimedOut', {
      alarmDescription: 'A pg-lake-export execution timed out. A table may be far behind, or the database slow.',
      metric: sm.metricTimedOut({ period: fiveMinutes, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // Rule: Step Functions throttled an execution start — at least 1 in 5 minutes.
    add('ExecutionsThrottled', {
      alarmDescription: 'Starting a pg-lake-export execution was throttled by Step Functions.',
      metric: sm.metricThrottled({ period: fiveMinutes, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // Rule: no execution succeeded within noSuccessWithinHours. Hourly sums of ExecutionsSucceeded
    // must all be < 1 (no data counts as < 1) across that many hours, so one success anywhere in
    // the window keeps it OK. Catches a disabled schedule or runs that never finish.
    const noSuccess = hourlyWindow(noSuccessWithinHours);
    add('NoRecentSuccess', {
      alarmDescription: `No pg-lake-export execution succeeded in the last ${noSuccess.evaluationPeriods} hours.`,
      metric: sm.metricSucceeded({ period: Duration.hours(1), statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: noSuccess.evaluationPeriods,
      datapointsToAlarm: noSuccess.evaluationPeriods,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });

    // Rule, per table: no successful export of the table within maxStalenessHours. Hourly sums of
    // TableSucceeded must all be < 1 (no data counts as < 1) across that many hours, so it fires
    // that long (rounded up to the hour) after the last success, whatever the schedule. A value
    // such as StalenessSeconds cannot say this: a daily schedule measures once a day, and the
    // measurement of a run that failed 24 h after the last success would keep the alarm OK
    // for another full window (~50 h on a daily schedule with 26 h).
    const stale = hourlyWindow(maxStalenessHours);
    for (const table of props.lakeTables) {
      add(`Stale-${table}`, {
        alarmDescription: `Lake table ${table} has not been exported successfully for ${stale.evaluationPeriods} h.`,
        metric: tableMetric(TABLE_SUCCEEDED_METRIC, table, cloudwatch.Stats.SUM),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: stale.evaluationPeriods,
        datapointsToAlarm: stale.evaluationPeriods,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
    }

    // Rule, per function: the function reported an error (including retried ones) — at least 1 in 5 minutes.
    for (const [name, fn] of Object.entries(props.functions)) {
      add(`${name}FunctionErrors`, {
        alarmDescription: `The pg-lake-export ${name} function failed. Its log group has the error with table and key.`,
        metric: fn.metricErrors({ period: fiveMinutes, statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    // Rule: the schedule could not start an execution after its retries — any message in its
    // dead-letter queue (a run that never happened; the message says why).
    if (props.scheduleDeadLetterQueue) {
      add('ScheduleDeliveryFailed', {
        alarmDescription: 'EventBridge Scheduler could not start the pg-lake-export workflow; see the dead-letter queue message.',
        metric: props.scheduleDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: fiveMinutes, statistic: cloudwatch.Stats.MAXIMUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    // Rule: a run's Validate Table found, in at least one table, partitions whose rows the query
    // engine counts differently from the run's manifest, or versions (key, cursor) held twice —
    // ValidationMismatch ≥ 1 in 5 minutes (Summarize emits it once per run).
    if (props.validationEnabled) {
      add('ValidationMismatch', {
        alarmDescription: 'Athena sees a committed table differently from its run manifest (rows per partition, or duplicated versions). The Validate function\'s log names table, partition, counts and keys; see the README runbook.',
        metric: runMetric(VALIDATION_MISMATCH_METRIC),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    // Rule: a run's Compact Table failed for at least one table after its retries — CompactionFailed
    // ≥ 1 in 5 minutes (Summarize emits it once per run). The export stands, but the table keeps
    // its small files, and a compaction that fails once (too big for one invocation, a file
    // missing) tends to fail at every run, each time reading the table in full.
    if (props.compactionEnabled) {
      add('CompactionFailed', {
        alarmDescription: 'Compact Table failed for a committed table (its data is exported; its small files stay). Summarize Run\'s log names the table; the Compact function\'s log says why; see the README runbook.',
        metric: runMetric(COMPACTION_FAILED_METRIC),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.days(7) });
    const hourly = { period: Duration.hours(1), statistic: cloudwatch.Stats.SUM };
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Executions (per hour)',
        width: 12,
        left: [sm.metricStarted(hourly), sm.metricSucceeded(hourly), sm.metricFailed(hourly), sm.metricTimedOut(hourly), sm.metricThrottled(hourly)],
      }),
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', width: 12, alarms: this.alarms }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Seconds since each table\'s last success',
        width: 12,
        left: props.lakeTables.map((table) => stalenessMetric(table).with({ label: table })),
        leftAnnotations: [{ value: maxStalenessHours * 3600, label: `${maxStalenessHours} h` }],
      }),
      new cloudwatch.GraphWidget({
        title: 'Rows exported per table (per hour)',
        width: 12,
        left: props.lakeTables.map((table) => tableMetric(ROWS_EXPORTED_METRIC, table, cloudwatch.Stats.SUM).with({ label: table })),
      }),
    );
    const functions = Object.entries(props.functions);
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Function errors',
        width: 12,
        left: functions.map(([name, fn]) => fn.metricErrors({ period: fiveMinutes, statistic: cloudwatch.Stats.SUM, label: name })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Function duration (p99)',
        width: 12,
        left: functions.map(([name, fn]) => fn.metricDuration({ period: fiveMinutes, statistic: cloudwatch.Stats.p(99), label: name })),
      }),
    );
    if (props.validationEnabled) {
      this.dashboard.addWidgets(new cloudwatch.GraphWidget({
        title: 'Tables whose validation found a mismatch / could not run (per hour)',
        width: 24,
        left: [VALIDATION_MISMATCH_METRIC, VALIDATION_SKIPPED_METRIC].map((name) => runMetric(name).with({ period: Duration.hours(1), label: name })),
      }));
    }
    if (props.compactionEnabled) {
      this.dashboard.addWidgets(new cloudwatch.GraphWidget({
        title: 'Tables whose compaction failed (per hour)',
        width: 24,
        left: [runMetric(COMPACTION_FAILED_METRIC).with({ period: Duration.hours(1), label: COMPACTION_FAILED_METRIC })],
      }));
    }
    const detecting = props.deleteDetectingTables ?? [];
    if (detecting.length > 0) {
      this.dashboard.addWidgets(new cloudwatch.GraphWidget({
        title: 'Deleted keys found per table (tombstones written, per hour)',
        width: 24,
        left: detecting.map((table) => tableMetric(DELETES_DETECTED_METRIC, table, cloudwatch.Stats.SUM).with({ label: table })),
      }));
    }
  }
}

/** A per-run metric exactly as Powertools emits it from the Summarize step (dimension `service`). */
function runMetric(metricName: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service: SERVICE_NAME },
    statistic: cloudwatch.Stats.SUM,
    period: Duration.minutes(5),
  });
}

/** A per-table metric exactly as Powertools emits it from the Summarize step. */
function tableMetric(metricName: string, table: string, statistic: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service: SERVICE_NAME, [TABLE_DIMENSION]: table },
    statistic,
    period: Duration.hours(1),
  });
}

function stalenessMetric(table: string): cloudwatch.Metric {
  return tableMetric(STALENESS_METRIC, table, cloudwatch.Stats.MAXIMUM);
}

/** Hourly periods covering `hours` (rounded up): a period may not exceed one day. */
function hourlyWindow(hours: number): { evaluationPeriods: number } {
  return { evaluationPeriods: Math.max(1, Math.ceil(hours)) };
}
