// The export workflow (Step Functions, JSONPath — the local runner ignores JSONata silently):
//
//   Plan Export → Export Tables (Map over the plan's tables, bounded concurrency)
//                   └ Backfill? ─ yes → Export Segments (starts the Segments state machine and waits:
//                   │                     its Distributed Map over the plan's segment list runs
//                   │                     Export Segment Page ⟲ More Segment Pages? per segment)
//                   └ Export Table Page ⟲ More Pages? → Commit Table ⟲ Committed?   (any error → Record Table Failure)
//                       → Validate Table   (after its retries → Record Validation Warning; the export stands)
//                       → Compact Table    (after its retries → Record Compaction Warning; the export stands)
//               → Summarize Run → Any Table Failed? → Run Failed | Run Succeeded
//
// Only small cursors travel between states; rows go straight from Postgres to S3.
import { Duration, Fn, Stack, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { TERMINAL_ERROR_NAMES } from '../lambdas/core/errors.ts';
import { isPositiveInteger, PropProblems } from './prop-problems.ts';

/** State names, as they appear in the console and in the definition. */
export const WORKFLOW_STATES = {
  plan: 'Plan Export',
  exportTables: 'Export Tables',
  backfill: 'Backfill?',
  exportSegments: 'Export Segments',
  exportSegmentPage: 'Export Segment Page',
  moreSegmentPages: 'More Segment Pages?',
  segmentExported: 'Segment Exported',
  exportPage: 'Export Table Page',
  morePages: 'More Pages?',
  commit: 'Commit Table',
  committed: 'Committed?',
  recordFailure: 'Record Table Failure',
  validate: 'Validate Table',
  recordValidationWarning: 'Record Validation Warning',
  summarize: 'Summarize Run',
  anyFailed: 'Any Table Failed?',
  runFailed: 'Run Failed',
  runSucceeded: 'Run Succeeded',
} as const;

/** States of the table branch that exist only when the workflow is given `functions.compact`. */
export const COMPACTION_STATES = {
  compact: 'Compact Table',
  recordCompactionWarning: 'Record Compaction Warning',
} as const;

/** Errors of the Lambda service itself (not of our code): always worth retrying. */
export const TRANSIENT_LAMBDA_ERRORS: readonly string[] = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
];

/** Error name the handlers reserve for transient S3 / Glue / database faults (slow down, then retry). */
export const THROTTLING_ERROR = 'ThrottlingError';

/**
 * Attempts after the first that Validate Table gives a ThrottlingError (5, 10, 20 s apart, full
 * jitter), fewer than the export's steps: it holds one of the Map's slots while it waits, and with
 * Athena down for every table, six attempts each would hold up the whole run for hours.
 */
export const VALIDATE_THROTTLING_ATTEMPTS = 3;

/**
 * An invocation that ended without an answer from our code: the task outlived its TimeoutSeconds
 * (`States.Timeout`), the function hit its own timeout (`Sandbox.Timedout`), or it died
 * unhandled — out of memory, timed out, crashed (Step Functions reports `Lambda.Unknown`).
 * Retrying is safe: every step starts again from its input (Plan with the execution's run id,
 * Export from the last journalled page, Commit and Summarize idempotently).
 */
export const INTERRUPTED_INVOCATION_ERRORS: readonly string[] = ['States.Timeout', 'Sandbox.Timedout', 'Lambda.Unknown'];

/** A task waits this much longer than its function's timeout before `States.Timeout`: Lambda has stopped the function by then. */
export const TASK_TIMEOUT_MARGIN = Duration.seconds(60);

/**
 * Errors that a retry cannot fix: the same input fails the same way. They fail the table at
 * once (its Catch records it) and the run ends failed. The list is the exporter's error registry's.
 */
export const TERMINAL_ERRORS: readonly string[] = TERMINAL_ERROR_NAMES;

/**
 * The Segments execution failed, timed out or was aborted (its Map Run failed: a segment failed
 * after its own retries, or the list could not be read); Export Segments sees it as its task
 * failing, `States.TaskFailed` — "a Task state failed during the execution", which as a retrier's
 * name matches any task error but `States.Timeout`
 * (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html), and this
 * task sets no TimeoutSeconds or HeartbeatSeconds, so no `States.Timeout` of its own. It starts
 * one more Segments execution — a new Map Run whose finished segments return at once from their
 * journals. After that the error is not caught, so the execution fails; a redrive of it
 * (RedriveExecution) starts Export Segments again, the failed Segments execution can itself be
 * redriven from the console (only its failed segments rerun), and a new execution continues the
 * backfill once its lease lapsed (protocol/adopt-backfill.ts).
 */
export const SEGMENTS_FAILED_ERRORS: readonly string[] = ['States.TaskFailed'];

/** The Distributed Map's label: its child executions are named `<execution>/ExportSegments:…`. */
export const EXPORT_SEGMENTS_LABEL = 'ExportSegments';

/** Where a table's branch ends after Commit Table when there is no Validate Table state. */
export const TABLE_COMMITTED_STATE = 'Table Committed';

/** Error of the final Fail state, so an operator can tell it from a crashed step. */
export const TABLES_FAILED_ERROR = 'TablesFailed';

/** The timeouts the functions were given (the tasks wait a margin longer). */
export interface ExportWorkflowTimeouts {
  readonly plan: Duration;
  readonly export: Duration;
  readonly commit: Duration;
  readonly summarize: Duration;
  /** Required when `functions.validate` is given. */
  readonly validate?: Duration;
  /** Required when `functions.compact` is given. */
  readonly compact?: Duration;
}

export interface ExportWorkflowFunctions {
  /** Resolves tables and windows. In: `{ request: <execution input>, execution: { id, startTime } }`. Out: `{ runId, startedAt, tables: [...] }`. */
  readonly plan: lambda.IFunction;
  /** Exports pages until its time budget runs low. In/out: one table's cursor, out with `done`. */
  readonly export: lambda.IFunction;
  /** Checks, manifest, watermark, Glue table. In: the finished cursor. Out: the table's result. */
  readonly commit: lambda.IFunction;
  /** Per-table totals and metrics. In: `{ runId, startedAt, results }`. Out: `{ failed, succeeded, tables }`. */
  readonly summarize: lambda.IFunction;
  /**
   * Checks the committed table against the query engine. In: the table's commit result. Out: a
   * few counts, stored under the result's `validation`. @default - no Validate Table state
   */
  readonly validate?: lambda.IFunction;
  /**
   * Compacts the committed table when its partitions collect small files (it takes the table's
   * lease: after the commit released it). In: the table's result. Out: a summary under the
   * result's `compaction`. @default - no Compact Table state
   */
  readonly compact?: lambda.IFunction;
}

/** Where Plan writes a backfill's segment list, and how many segments run at once. */
export interface ExportWorkflowBackfill {
  /** The lake bucket. */
  readonly bucket: s3.IBucket;
  /** The state prefix (`<lake.prefix>/_state/`): the map may read only under it. */
  readonly statePrefix: string;
  /** Segments of one table exported at once (the Distributed Map's MaxConcurrency): each holds a database session. */
  readonly maxConcurrency: number;
}

export interface ExportWorkflowProps {
  readonly functions: ExportWorkflowFunctions;
  /**
   * A backfill's segments are exported at once by a Distributed Map that reads Plan's segment
   * list. @default - no Distributed Map: Export Table Page exports a backfill's segments one after another
   */
  readonly backfill?: ExportWorkflowBackfill;
  /** Each function's own timeout: its task gives up `TASK_TIMEOUT_MARGIN` later (`States.Timeout`, retried). */
  readonly functionTimeouts: ExportWorkflowTimeouts;
  /** Tables exported at once; the database is a shared production system. */
  readonly maxConcurrency: number;
  /** An execution that runs longer is stopped (and the timed-out alarm fires). @default Duration.hours(6) */
  readonly timeout?: Duration;
  /** How long execution history logs are kept. @default RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

export class ExportWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;
  /** The Segments state machine that Export Segments starts (only with `backfill`): its Distributed Map exports a backfill's segments. */
  readonly segmentsStateMachine?: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: ExportWorkflowProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.hours(6);
    const problems = new PropProblems('ExportWorkflow');
    problems.check(isPositiveInteger(props.maxConcurrency) && props.maxConcurrency <= 40, 'maxConcurrency', 'must be a whole number in 1..40', props.maxConcurrency);
    problems.check(timeout.toSeconds() >= 60 && timeout.toSeconds() <= 365 * 86_400, 'timeout', 'must be 1 minute..1 year', timeout.toHumanString());
    for (const [step, fnTimeout] of Object.entries(props.functionTimeouts)) {
      problems.check(fnTimeout.toSeconds() >= 1 && fnTimeout.toSeconds() <= 900, `functionTimeouts.${step}`, 'must be 1 s..15 min (Lambda\'s limit)', fnTimeout.toHumanString());
    }
    problems.check(props.functions.validate === undefined || props.functionTimeouts.validate !== undefined, 'functionTimeouts.validate', 'is required with functions.validate');
    problems.check(props.functions.compact === undefined || props.functionTimeouts.compact !== undefined, 'functionTimeouts.compact', 'is required with functions.compact');
    // Each child holds a database session: the database, not Step Functions (10,000), is the limit.
    problems.check(props.backfill === undefined || (isPositiveInteger(props.backfill.maxConcurrency) && props.backfill.maxConcurrency <= 64), 'backfill.maxConcurrency', 'must be a whole number in 1..64', props.backfill?.maxConcurrency);
    problems.check(props.backfill === undefined || /^[^/].*\/$/.test(props.backfill.statePrefix), 'backfill.statePrefix', 'must be a key prefix ending in "/"', props.backfill?.statePrefix);
    problems.throwIfAny();

    const { functions, functionTimeouts } = props;
    const S = WORKFLOW_STATES;

    // The run id comes from the execution, so a retried Plan takes the same tables' leases again
    // instead of finding them held by its own interrupted attempt.
    const plan = this.#invoke(S.plan, functions.plan, functionTimeouts.plan, {
      resultPath: '$.plan',
      payload: sfn.TaskInput.fromObject({
        request: sfn.JsonPath.entirePayload,
        execution: { id: sfn.JsonPath.executionId, startTime: sfn.JsonPath.executionStartTime },
      }),
    });

    // No ResultPath: the output replaces the state (the default, "$"). Written out explicitly,
    // "$" breaks aws-local-stepfunctions 3, which stores the result under a key named "$".
    const exportPage = this.#invoke(S.exportPage, functions.export, functionTimeouts.export, {});
    // Commit Table returns the table's result, or (a commit bigger than one invocation) the task
    // with its progress, and is called again until the result comes.
    const commit = this.#invoke(S.commit, functions.commit, functionTimeouts.commit, {});
    const committed = new sfn.Choice(this, S.committed).when(sfn.Condition.isNotPresent('$.status'), commit);
    commit.next(committed);
    // One table's failure must not stop the others: record it and let the Map carry on.
    const recordFailure = new sfn.Pass(this, S.recordFailure, {
      parameters: {
        'table.$': '$.table',
        status: 'failed',
        'error.$': '$.error.Error',
        'cause.$': '$.error.Cause',
      },
    });
    for (const task of [exportPage, commit]) task.addCatch(recordFailure, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
    const compact = functions.compact && functionTimeouts.compact ? this.#compact(functions.compact, functionTimeouts.compact) : null;
    const validate = functions.validate && functionTimeouts.validate ? this.#validate(functions.validate, functionTimeouts.validate, compact ?? undefined) : null;
    committed.otherwise(validate ?? compact ?? new sfn.Pass(this, TABLE_COMMITTED_STATE));
    const morePages = new sfn.Choice(this, S.morePages)
      .when(sfn.Condition.booleanEquals('$.done', false), exportPage)
      .otherwise(commit);
    exportPage.next(morePages);
    // A Distributed Map runs in a state machine of its own (Segments), started and awaited by
    // Export Segments: AWS documents nested executions, not a Distributed Map inside an inline Map.
    this.segmentsStateMachine = props.backfill ? this.#segmentsStateMachine(props.backfill, functions.export, functionTimeouts.export, timeout, props.logRetention) : undefined;
    const tableStart = this.segmentsStateMachine
      ? new sfn.Choice(this, S.backfill)
        .when(sfn.Condition.isPresent('$.backfill'), this.#startSegments(this.segmentsStateMachine, functionTimeouts.export).next(exportPage))
        .otherwise(exportPage)
      : exportPage;
    // Each table's result replaces its planned task: the tasks are not needed after the Map, and
    // keeping both would double what hundreds of tables put in the 256 KB execution state.
    const exportTables = new sfn.Map(this, S.exportTables, {
      itemsPath: '$.plan.tables',
      maxConcurrency: props.maxConcurrency,
      resultPath: '$.plan.tables',
    }).itemProcessor(tableStart);

    const summarize = this.#invoke(S.summarize, functions.summarize, functionTimeouts.summarize, {
      resultPath: '$.summary',
      payload: sfn.TaskInput.fromObject({
        runId: sfn.JsonPath.stringAt('$.plan.runId'),
        startedAt: sfn.JsonPath.stringAt('$.plan.startedAt'),
        results: sfn.JsonPath.listAt('$.plan.tables'),
        // Tables Plan could not start (another run holds them; their schema changed incompatibly).
        skipped: sfn.JsonPath.listAt('$.plan.skipped'),
        failed: sfn.JsonPath.listAt('$.plan.failed'),
      }),
    });
    const anyFailed = new sfn.Choice(this, S.anyFailed)
      .when(
        sfn.Condition.numberGreaterThan('$.summary.failed', 0),
        new sfn.Fail(this, S.runFailed, { error: TABLES_FAILED_ERROR, cause: 'At least one table failed; see the Summarize Run output for which and why.' }),
      )
      .otherwise(new sfn.Succeed(this, S.runSucceeded));

    // Under /aws/vendedlogs/: Step Functions then needs no entry in the account's CloudWatch Logs
    // resource policy (5,120 characters, shared by every service that delivers logs), which busy
    // accounts fill up. The name ends in the stack's own id, so a stack deleted (its log group
    // retained) and deployed again, or a second stack, never collides with it.
    const stack = Stack.of(this);
    const stackUuid = Fn.select(2, Fn.split('/', stack.stackId));
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${stack.stackName}-Workflow-${stackUuid}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      comment: 'pg-lake-export: export configured Postgres tables to the S3 lake as Parquet',
      queryLanguage: sfn.QueryLanguage.JSON_PATH,
      definitionBody: sfn.DefinitionBody.fromChainable(plan.next(exportTables).next(summarize).next(anyFailed)),
      timeout,
      tracingEnabled: true,
      // ALL events for the audit trail, but no execution data: inputs and outputs may carry PII.
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });

    Validations.of(this.stateMachine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Resource * only for CloudWatch Logs delivery (logs:CreateLogDelivery etc.) and X-Ray, which support no resource-level permissions.',
    });
    if (props.backfill && this.segmentsStateMachine) this.#acknowledgeBackfillGrants(props.backfill, this.segmentsStateMachine);
    acknowledgeInvokeGrants(this.stateMachine, Object.values(functions));
  }

  /**
   * Export Segments: starts a Segments execution with the table's task and waits for it
   * (`startExecution.sync:2`); its output is dropped (the task passes on unchanged to Export
   * Table Page). A failed Segments execution is started once more, a minute after an Export
   * invocation's timeout (a new Map Run, the finished segments return at once), then the error is not caught: the execution fails and can be redriven.
   */
  #startSegments(segments: sfn.StateMachine, exportTimeout: Duration): tasks.StepFunctionsStartExecution {
    const start = new tasks.StepFunctionsStartExecution(this, WORKFLOW_STATES.exportSegments, {
      stateMachine: segments,
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      input: sfn.TaskInput.fromJsonPathAt('$'),
      resultPath: sfn.JsonPath.DISCARD,
    });
    // Not before the failed Map Run's Export invocations have ended (a stopped child execution
    // does not stop a running Lambda invocation): two writers of one segment would race for its
    // next page journal, and the loser would fail the new Map Run.
    start.addRetry({ errors: [...SEGMENTS_FAILED_ERRORS], interval: exportTimeout.plus(Duration.minutes(1)), maxAttempts: 1 });
    return start;
  }

  /**
   * The Segments state machine (Standard): its one state is the Export Segments Distributed Map,
   * its input one table's task, its output that task (the map's result is dropped). Logged and
   * traced like the export workflow, under its own log group, with its own role.
   */
  #segmentsStateMachine(backfill: ExportWorkflowBackfill, fn: lambda.IFunction, fnTimeout: Duration, timeout: Duration, logRetention: logs.RetentionDays | undefined): sfn.StateMachine {
    const scope = new Construct(this, 'Segments');
    const stack = Stack.of(this);
    const logGroup = new logs.LogGroup(scope, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${stack.stackName}-Segments-${Fn.select(2, Fn.split('/', stack.stackId))}`,
      retention: logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    const machine = new sfn.StateMachine(scope, 'StateMachine', {
      comment: 'pg-lake-export: export one backfilling table\'s segments at once (started by the export workflow\'s Export Segments)',
      queryLanguage: sfn.QueryLanguage.JSON_PATH,
      definitionBody: sfn.DefinitionBody.fromChainable(this.#exportSegments(scope, backfill, fn, fnTimeout)),
      timeout,
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    Validations.of(machine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Resource * only for CloudWatch Logs delivery (logs:CreateLogDelivery etc.) and X-Ray, which support no resource-level permissions.',
    });
    acknowledgeInvokeGrants(machine, [fn]);
    return machine;
  }

  /**
   * Export Segments: a Distributed Map over the segment list Plan wrote (JSON Lines, read by its
   * ItemReader from the lake), one Standard child execution per segment — Export Segment Page ⟲
   * More Segment Pages?, the same function and retries as Export Table Page. Each child gets the
   * table's task and its segment; its result is dropped (segments journal their progress in the
   * lake, and Export Table Page totals them next). No segment may fail (ToleratedFailure 0).
   */
  #exportSegments(scope: Construct, backfill: ExportWorkflowBackfill, fn: lambda.IFunction, fnTimeout: Duration): sfn.DistributedMap {
    const S = WORKFLOW_STATES;
    const exportSegmentPage = this.#invoke(S.exportSegmentPage, fn, fnTimeout, {}, scope);
    const moreSegmentPages = new sfn.Choice(scope, S.moreSegmentPages)
      .when(sfn.Condition.booleanEquals('$.done', false), exportSegmentPage)
      // The child's output is only `true`: the segment's progress is in the lake, not in the map's result.
      .otherwise(new sfn.Succeed(scope, S.segmentExported, { outputPath: '$.done' }));
    const exportSegments = new sfn.DistributedMap(scope, S.exportSegments, {
      itemReader: new StateItemReader(backfill.bucket, backfill.statePrefix, sfn.JsonPath.stringAt('$.backfill.items')),
      itemSelector: { 'task.$': '$', 'segment.$': '$$.Map.Item.Value' },
      maxConcurrency: backfill.maxConcurrency,
      // Standard children: they loop for as long as a segment takes, and a Map Run of Standard children can be redriven.
      mapExecutionType: sfn.StateMachineType.STANDARD,
      label: EXPORT_SEGMENTS_LABEL,
      resultPath: sfn.JsonPath.DISCARD,
    });
    exportSegments.itemProcessor(exportSegmentPage.next(moreSegmentPages));
    // No Retry (Export Segments in the export workflow retries by starting a new Segments
    // execution) and no Catch: a child's own error does not reach the map (the Map Run fails as
    // a whole), and an uncaught failure is what a redrive resumes — caught, the execution would
    // end in a state that has nothing left to redrive.
    return exportSegments;
  }

  /**
   * The Distributed Map's grants name wildcards that cannot be narrower: the segment list's key
   * holds the run id (readable only under the state prefix), and child executions are named by
   * Step Functions (CDK grants StartExecution on this state machine, Describe/Stop/Redrive on
   * its own executions). Each finding is acknowledged by its exact resource, as cdk-nag prints it.
   */
  #acknowledgeBackfillGrants(backfill: ExportWorkflowBackfill, segments: sfn.StateMachine): void {
    const stack = Stack.of(this);
    const reader = flattenReference(stack.resolve(backfill.bucket.arnForObjects(`${backfill.statePrefix}*`)));
    Validations.of(segments.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${reader}]`,
      reason: 'The Distributed Map reads the segment list Plan writes under the lake state prefix; its key holds the run id, so only the prefix can be named.',
    });
    // Export Segments (startExecution.sync:2) describes and stops the Segments executions it
    // starts, named by Step Functions: their ARNs end in a wildcard.
    const startGrants = stack.resolve((this.stateMachine.role.node.tryFindChild('DefaultPolicy') as iam.Policy | undefined)?.document) as { Statement?: { Resource?: unknown }[] } | undefined;
    const segmentsExecutions = new Set((startGrants?.Statement ?? []).flatMap((statement) => [statement.Resource].flat()).map(flattenReference).filter((r) => r.includes(':execution:') && r.includes('*')));
    for (const resource of segmentsExecutions) {
      Validations.of(this.stateMachine.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${resource}]`,
        reason: 'Export Segments (startExecution.sync) describes and stops only executions of the Segments state machine, which Step Functions names.',
      });
    }
    const mapPolicy = segments.node.tryFindChild('DistributedMapPolicy');
    if (!(mapPolicy instanceof iam.Policy)) return;
    const document = stack.resolve(mapPolicy.document) as { Statement?: { Resource?: unknown }[] };
    const resources = (document.Statement ?? []).flatMap((statement) => [statement.Resource].flat());
    for (const resource of new Set(resources.map(flattenReference).filter((r) => r.includes('*')))) {
      Validations.of(mapPolicy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${resource}]`,
        reason: 'The Distributed Map starts, describes, stops and redrives child executions of the Segments state machine only; Step Functions names them, so their ARNs end in a wildcard.',
      });
    }
  }

  /**
   * Validate Table: its counts go under the commit result's `validation`. It must not fail the
   * export (the data is committed): after the retries every task has (Lambda faults,
   * ThrottlingError, one interrupted invocation), any error becomes a warning that keeps only the
   * error's name — with hundreds of tables, an engine that is down must not fill the 256 KB state
   * with stack traces (the function logs the message; the execution history keeps the cause).
   */
  #validate(fn: lambda.IFunction, fnTimeout: Duration, then?: sfn.IChainable): tasks.LambdaInvoke {
    const S = WORKFLOW_STATES;
    const validate = this.#invoke(S.validate, fn, fnTimeout, { resultPath: '$.validation', throttlingAttempts: VALIDATE_THROTTLING_ATTEMPTS });
    const recordWarning = new sfn.Pass(this, S.recordValidationWarning, {
      parameters: { status: 'skipped', 'error.$': '$.validation.Error' },
      resultPath: '$.validation',
    });
    validate.addCatch(recordWarning, { errors: [sfn.Errors.ALL], resultPath: '$.validation' });
    // Compaction follows validation whatever it found: a mismatch is reported, not repaired here.
    if (then) {
      validate.next(then);
      recordWarning.next(then);
    }
    return validate;
  }

  /**
   * Compact Table: its summary goes under the result's `compaction`. Like validation it must not
   * fail the export (the data is committed, and a killed compaction is recovered by the next
   * run): after the retries any error becomes a warning that keeps only the error's name.
   */
  #compact(fn: lambda.IFunction, fnTimeout: Duration): tasks.LambdaInvoke {
    const S = COMPACTION_STATES;
    // Not retried when killed (timeout, memory): the dead compaction keeps the table's lease until
    // it lapses, so a retry would find it held and report 'skipped' instead of CompactionFailed.
    const compact = this.#invoke(S.compact, fn, fnTimeout, { resultPath: '$.compaction', retryInterrupted: false });
    const recordWarning = new sfn.Pass(this, S.recordCompactionWarning, {
      parameters: { status: 'failed', 'error.$': '$.compaction.Error' },
      resultPath: '$.compaction',
    });
    compact.addCatch(recordWarning, { errors: [sfn.Errors.ALL], resultPath: '$.compaction' });
    return compact;
  }

  /** A Lambda task that returns the function's payload, with the retries every step shares. */
  #invoke(name: string, fn: lambda.IFunction, fnTimeout: Duration, options: { resultPath?: string; payload?: sfn.TaskInput; throttlingAttempts?: number; retryInterrupted?: boolean }, scope: Construct = this): tasks.LambdaInvoke {
    const task = new tasks.LambdaInvoke(scope, name, {
      lambdaFunction: fn,
      payloadResponseOnly: true,
      taskTimeout: sfn.Timeout.duration(fnTimeout.plus(TASK_TIMEOUT_MARGIN)),
      // Our own retry below replaces the default, which has no jitter.
      retryOnServiceExceptions: false,
      ...(options.resultPath ? { resultPath: options.resultPath } : {}),
      ...(options.payload ? { payload: options.payload } : {}),
    });
    // Full jitter: after a Lambda outage, concurrent Map iterations must not retry in lockstep.
    task.addRetry({
      errors: [...TRANSIENT_LAMBDA_ERRORS],
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 6,
      jitterStrategy: sfn.JitterType.FULL,
    });
    task.addRetry({
      errors: [THROTTLING_ERROR],
      interval: Duration.seconds(5),
      backoffRate: 2,
      maxAttempts: options.throttlingAttempts ?? 6,
      maxDelay: Duration.minutes(2),
      jitterStrategy: sfn.JitterType.FULL,
    });
    // Once more only: an invocation that ran out of time or memory tends to do so again.
    if (options.retryInterrupted !== false) task.addRetry({
      errors: [...INTERRUPTED_INVOCATION_ERRORS],
      interval: Duration.seconds(10),
      backoffRate: 2,
      maxAttempts: 1,
      jitterStrategy: sfn.JitterType.FULL,
    });
    return task;
  }
}

/**
 * The Distributed Map's ItemReader: a JSON Lines object in the lake bucket whose key comes from
 * the state (`Key.$`), readable only under the lake's state prefix (the generic reader would
 * grant s3:GetObject on the whole bucket).
 */
class StateItemReader extends sfn.S3JsonLItemReader {
  readonly #bucket: s3.IBucket;
  readonly #statePrefix: string;
  constructor(bucket: s3.IBucket, statePrefix: string, key: string) {
    super({ bucket, key });
    this.#bucket = bucket;
    this.#statePrefix = statePrefix;
  }

  override providePolicyStatements(): iam.PolicyStatement[] {
    return [new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [this.#bucket.arnForObjects(`${this.#statePrefix}*`)] })];
  }
}

/** LambdaInvoke grants each function's ARN and its versions (`:*`): acknowledged per function, by its exact resource. */
function acknowledgeInvokeGrants(machine: sfn.StateMachine, functions: readonly lambda.IFunction[]): void {
  for (const fn of functions) {
    const cfnFunction = fn.node.defaultChild;
    if (!(cfnFunction instanceof lambda.CfnFunction)) continue; // imported: nag reports its ARN differently
    const logicalId = Stack.of(machine).getLogicalId(cfnFunction);
    Validations.of(machine.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
      reason: 'LambdaInvoke grants the function ARN and its versions/aliases (`:*`), scoped to this one function.',
    });
  }
}

/** A resolved CloudFormation value as cdk-nag prints it in a finding (its flattenCfnReference rules). */
function flattenReference(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/}/g, '>');
  if (value !== null && typeof value === 'object') {
    const node = value as Record<string, unknown>;
    const join = node['Fn::Join'];
    if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) return join[1].map(flattenReference).join(join[0]);
    if (node['Fn::Sub'] !== undefined) return flattenReference(node['Fn::Sub']);
    const getAtt = node['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<${flattenReference(getAtt[0])}.${flattenReference(getAtt[1])}>`;
    if (node['Fn::ImportValue'] !== undefined) return flattenReference(node['Fn::ImportValue']);
    if (node.Ref !== undefined) return `<${flattenReference(node.Ref)}>`;
  }
  return JSON.stringify(value);
}
