// Export Segments in the synthesized template (issue 14): the per-table inline Map starts the
// Segments state machine and waits for it (startExecution.sync:2) — AWS documents nested
// executions, not a Distributed Map inside an inline Map. Segments is that Distributed Map: its
// ItemReader reads Plan's JSON Lines segment list from the lake, with an explicit MaxConcurrency
// from config and the settings a Map Run redrive needs (Standard children, no Catch, the redrive grant).
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_SEGMENTS_LABEL, ExportWorkflow, SEGMENTS_FAILED_ERRORS, WORKFLOW_STATES as S } from '../../lib/export-workflow.ts';
import { PgLakeExportStack } from '../../lib/index.ts';
import { allStates, resolveWorkflow, type State, type WorkflowDefinition } from './definition.ts';
import { cdkJsonContext, ENV, FIXTURE_CONFIG_YAML, FIXTURE_PREFIX, fixtureConfig, logicalIdOf, resourcesOfType, type PolicyDocumentJson } from './stack.ts';

let template: Template;
let workflow: WorkflowDefinition;
/** The export workflow's states (with its inline Map's). */
let states: Record<string, State>;
/** The Segments state machine's states (with its Distributed Map's children's). */
let segments: Record<string, State>;
let stack: PgLakeExportStack;

beforeAll(() => {
  // Bundling skipped: only the template is read. backfillConcurrency differs from its default (4).
  const app = new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
  const config = fixtureConfig(FIXTURE_CONFIG_YAML.replace('export: { maxConcurrency: 3 }', 'export: { maxConcurrency: 3, backfillConcurrency: 6 }'));
  stack = new PgLakeExportStack(app, 'PgLakeExport', { config, env: ENV });
  template = Template.fromStack(stack);
  workflow = resolveWorkflow(template);
  states = allStates(workflow);
  const segmentsArn = `arn:aws:states:us-east-1:123456789012:stateMachine:${logicalIdOf(stack, stack.workflow.segmentsStateMachine!)}`;
  segments = allStates(workflow.nestedStateMachines[segmentsArn]);
}, 180_000);

describe('Export Segments (a nested Segments execution running a Distributed Map)', () => {
  it('starts a table with segments when Plan chose a backfill', () => {
    expect(states[S.backfill]).toMatchObject({ Type: 'Choice', Choices: [{ Variable: '$.backfill', IsPresent: true, Next: S.exportSegments }], Default: S.exportPage });
  });

  it('the export workflow has no Distributed Map: Export Segments starts the Segments machine with the table\'s task and waits for it', () => {
    const distributed = Object.entries(states).filter(([, state]) => state.ItemProcessor?.ProcessorConfig?.Mode === 'DISTRIBUTED');
    expect(distributed).toEqual([]);
    const segmentsId = logicalIdOf(stack, stack.workflow.segmentsStateMachine!);
    expect(Object.keys(workflow.nestedStateMachines)).toEqual([`arn:aws:states:us-east-1:123456789012:stateMachine:${segmentsId}`]);
    expect(states[S.exportSegments]).toEqual({
      Type: 'Task',
      Resource: 'arn:aws:states:::states:startExecution.sync:2',
      Parameters: { StateMachineArn: `arn:aws:states:us-east-1:123456789012:stateMachine:${segmentsId}`, 'Input.$': '$' },
      ResultPath: null,
      Next: S.exportPage,
      Retry: [{ ErrorEquals: [...SEGMENTS_FAILED_ERRORS], IntervalSeconds: 960, MaxAttempts: 1 }], // a minute past the Export function's 15 minutes
    });
    expect(SEGMENTS_FAILED_ERRORS).toEqual(['States.TaskFailed']);
  });

  it('Segments is a Standard machine, logged and traced like the workflow (no execution data), with its own log group and the workflow\'s timeout', () => {
    const segmentsId = logicalIdOf(stack, stack.workflow.segmentsStateMachine!);
    const machines = template.toJSON().Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>;
    const machine = machines[segmentsId];
    expect(machine.Type).toBe('AWS::StepFunctions::StateMachine');
    expect(machine.Properties.StateMachineType ?? 'STANDARD').toBe('STANDARD');
    expect(machine.Properties.TracingConfiguration).toEqual({ Enabled: true });
    const logging = machine.Properties.LoggingConfiguration as { Level: string; IncludeExecutionData: boolean; Destinations: { CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [string, string] } } }[] };
    expect([logging.Level, logging.IncludeExecutionData]).toEqual(['ALL', false]);
    const workflowLogging = machines[logicalIdOf(stack, stack.workflow.stateMachine)].Properties.LoggingConfiguration as typeof logging;
    expect(logging.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0]).not.toBe(workflowLogging.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0]);
    expect(workflow.nestedStateMachines[Object.keys(workflow.nestedStateMachines)[0]].TimeoutSeconds).toBe(workflow.TimeoutSeconds);
    expect(machine.Properties.RoleArn).not.toEqual(machines[logicalIdOf(stack, stack.workflow.stateMachine)].Properties.RoleArn);
  });

  it('reads the segment list (JSON Lines) from the lake bucket at the key Plan put in the task', () => {
    const bucket = logicalIdOf(stack, stack.lake.bucket);
    expect(segments[S.exportSegments].ItemReader).toEqual({
      Resource: 'arn:aws:states:::s3:getObject',
      ReaderConfig: { InputType: 'JSONL' },
      Parameters: { Bucket: bucket.toLowerCase(), 'Key.$': '$.backfill.items' },
    });
    // Each child gets the table's task and its line of the list.
    expect(segments[S.exportSegments].ItemSelector).toEqual({ 'task.$': '$', 'segment.$': '$$.Map.Item.Value' });
  });

  it('runs export.backfillConcurrency children at once, explicitly, drops their results and is the whole Segments machine', () => {
    const segmentsDefinition = Object.values(workflow.nestedStateMachines)[0];
    expect(segmentsDefinition.StartAt).toBe(S.exportSegments);
    expect(Object.keys(segmentsDefinition.States)).toEqual([S.exportSegments]);
    expect(segments[S.exportSegments]).toMatchObject({ Type: 'Map', MaxConcurrency: 6, ResultPath: null, Label: EXPORT_SEGMENTS_LABEL, End: true });
    expect(segments[S.exportSegments].ToleratedFailurePercentage).toBeUndefined(); // 0: no segment may fail
  });

  it('can be redriven: Standard children, no Retry (Export Segments starts a new execution), no Catch', () => {
    expect(segments[S.exportSegments].ItemProcessor?.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
    expect(segments[S.exportSegments].Retry).toBeUndefined();
    expect(segments[S.exportSegments].Catch).toBeUndefined();
    expect(states[S.exportSegments].Catch).toBeUndefined();
  });

  it('loops Export Segment Page in each child, with the Export function and its retries, and returns only `true`', () => {
    const processor = segments[S.exportSegments].ItemProcessor!;
    expect(processor.StartAt).toBe(S.exportSegmentPage);
    expect(segments[S.exportSegmentPage].Resource).toBe(states[S.exportPage].Resource);
    expect(segments[S.exportSegmentPage].Retry).toEqual(states[S.exportPage].Retry);
    expect(segments[S.exportSegmentPage].TimeoutSeconds).toBe(states[S.exportPage].TimeoutSeconds);
    expect(segments[S.moreSegmentPages]).toMatchObject({ Type: 'Choice', Choices: [{ Variable: '$.done', BooleanEquals: false, Next: S.exportSegmentPage }], Default: S.segmentExported });
    expect(segments[S.segmentExported]).toEqual({ Type: 'Succeed', OutputPath: '$.done' });
  });

  it('grants starting, stopping and redriving its own child executions, and reading only under the state prefix', () => {
    const machine = logicalIdOf(stack, stack.workflow.segmentsStateMachine!);
    const policies = Object.values(resourcesOfType<{ PolicyDocument: PolicyDocumentJson; Roles?: unknown[] }>(template, 'AWS::IAM::Policy'));
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    const actions = (action: string) => statements.filter((st) => [st.Action].flat().includes(action));
    // The workflow starts Segments; Segments starts its own children.
    expect(actions('states:StartExecution').filter((st) => JSON.stringify(st.Resource) === JSON.stringify({ Ref: machine }))).toHaveLength(2);
    const redrive = JSON.stringify(actions('states:RedriveExecution').map((st) => st.Resource));
    expect(redrive).toContain(`/${EXPORT_SEGMENTS_LABEL}:*`);
    expect(actions('states:DescribeExecution')).toHaveLength(2);
    const reads = actions('s3:GetObject').filter((st) => JSON.stringify(st.Resource).includes('/_state/*') && !JSON.stringify(st.Resource).includes('query-results'));
    expect(reads.map((st) => st.Resource)).toContainEqual({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [logicalIdOf(stack, stack.lake.bucket), 'Arn'] }, `/${FIXTURE_PREFIX}/_state/*`]] });
  });

  it('refuses a backfill concurrency outside 1..64 and a state prefix without its slash, naming the prop', () => {
    const build = (maxConcurrency: number, statePrefix: string) => {
      const scope = new Stack(new App(), 'Bare', { env: ENV });
      const fn = lambda.Function.fromFunctionArn(scope, 'Fn', 'arn:aws:lambda:eu-west-1:123456789012:function:f');
      const bucket = s3.Bucket.fromBucketName(scope, 'Lake', 'lake-bucket');
      const minute = Duration.minutes(1);
      new ExportWorkflow(scope, 'Workflow', {
        functions: { plan: fn, export: fn, commit: fn, summarize: fn },
        functionTimeouts: { plan: minute, export: minute, commit: minute, summarize: minute },
        maxConcurrency: 2,
        backfill: { bucket, statePrefix, maxConcurrency },
      });
    };
    expect(() => build(4, 'raw/_state/')).not.toThrow();
    expect(() => build(0, 'raw/_state/')).toThrow(/backfill\.maxConcurrency.*1\.\.64/);
    expect(() => build(65, 'raw/_state/')).toThrow(/backfill\.maxConcurrency/);
    expect(() => build(4, 'raw/_state')).toThrow(/backfill\.statePrefix/);
  });
});
