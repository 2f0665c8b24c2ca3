// Export Segments in the synthesized template (issue 14): a Distributed Map whose ItemReader reads
// Plan's JSON Lines segment list from the lake, with an explicit MaxConcurrency from config and
// the settings a Map Run redrive needs (Standard children, no Catch, the redrive grant).
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_SEGMENTS_LABEL, ExportWorkflow, SEGMENTS_FAILED_ERRORS, WORKFLOW_STATES as S } from '../../lib/export-workflow.ts';
import { PgLakeExportStack } from '../../lib/index.ts';
import { allStates, resolveDefinition, type State } from './definition.ts';
import { cdkJsonContext, ENV, FIXTURE_CONFIG_YAML, FIXTURE_PREFIX, fixtureConfig, logicalIdOf, resourcesOfType, type PolicyDocumentJson } from './stack.ts';

let template: Template;
let states: Record<string, State>;
let stack: PgLakeExportStack;

beforeAll(() => {
  // Bundling skipped: only the template is read. backfillConcurrency differs from its default (4).
  const app = new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
  const config = fixtureConfig(FIXTURE_CONFIG_YAML.replace('export: { maxConcurrency: 3 }', 'export: { maxConcurrency: 3, backfillConcurrency: 6 }'));
  stack = new PgLakeExportStack(app, 'PgLakeExport', { config, env: ENV });
  template = Template.fromStack(stack);
  states = allStates(resolveDefinition(template));
}, 180_000);

describe('Export Segments (Distributed Map)', () => {
  it('starts a table with segments when Plan chose a backfill', () => {
    expect(states[S.backfill]).toMatchObject({ Type: 'Choice', Choices: [{ Variable: '$.backfill', IsPresent: true, Next: S.exportSegments }], Default: S.exportPage });
  });

  it('reads the segment list (JSON Lines) from the lake bucket at the key Plan put in the task', () => {
    const bucket = logicalIdOf(stack, stack.lake.bucket);
    expect(states[S.exportSegments].ItemReader).toEqual({
      Resource: 'arn:aws:states:::s3:getObject',
      ReaderConfig: { InputType: 'JSONL' },
      Parameters: { Bucket: bucket.toLowerCase(), 'Key.$': '$.backfill.items' },
    });
    // Each child gets the table's task and its line of the list.
    expect(states[S.exportSegments].ItemSelector).toEqual({ 'task.$': '$', 'segment.$': '$$.Map.Item.Value' });
  });

  it('runs export.backfillConcurrency children at once, explicitly, and drops their results', () => {
    expect(states[S.exportSegments]).toMatchObject({ Type: 'Map', MaxConcurrency: 6, ResultPath: null, Label: EXPORT_SEGMENTS_LABEL, Next: S.exportPage });
    expect(states[S.exportSegments].ToleratedFailurePercentage).toBeUndefined(); // 0: no segment may fail
  });

  it('can be redriven: Standard children, one retry as a new Map Run, then no Catch', () => {
    expect(states[S.exportSegments].ItemProcessor?.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
    expect(states[S.exportSegments].Retry).toEqual([{ ErrorEquals: [...SEGMENTS_FAILED_ERRORS], IntervalSeconds: 30, BackoffRate: 2, MaxAttempts: 1, JitterStrategy: 'FULL' }]);
    expect(states[S.exportSegments].Catch).toBeUndefined();
  });

  it('loops Export Segment Page in each child, with the Export function and its retries, and returns only `true`', () => {
    const processor = states[S.exportSegments].ItemProcessor!;
    expect(processor.StartAt).toBe(S.exportSegmentPage);
    expect(states[S.exportSegmentPage].Resource).toBe(states[S.exportPage].Resource);
    expect(states[S.exportSegmentPage].Retry).toEqual(states[S.exportPage].Retry);
    expect(states[S.exportSegmentPage].TimeoutSeconds).toBe(states[S.exportPage].TimeoutSeconds);
    expect(states[S.moreSegmentPages]).toMatchObject({ Type: 'Choice', Choices: [{ Variable: '$.done', BooleanEquals: false, Next: S.exportSegmentPage }], Default: S.segmentExported });
    expect(states[S.segmentExported]).toEqual({ Type: 'Succeed', OutputPath: '$.done' });
  });

  it('grants starting, stopping and redriving its own child executions, and reading only under the state prefix', () => {
    const machine = logicalIdOf(stack, stack.workflow.stateMachine);
    const policies = Object.values(resourcesOfType<{ PolicyDocument: PolicyDocumentJson; Roles?: unknown[] }>(template, 'AWS::IAM::Policy'));
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    const actions = (action: string) => statements.filter((st) => [st.Action].flat().includes(action));
    expect(actions('states:StartExecution').map((st) => st.Resource)).toContainEqual({ Ref: machine });
    const redrive = JSON.stringify(actions('states:RedriveExecution').map((st) => st.Resource));
    expect(redrive).toContain(`/${EXPORT_SEGMENTS_LABEL}:*`);
    expect(actions('states:DescribeExecution')).toHaveLength(1);
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
