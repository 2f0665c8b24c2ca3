// Compact Table in the synthesized definition (issue 13): after Validate Table (or Commit Table
// when there is no validation), whatever validation found; its summary joins the table's result
// under `compaction`; any error, after the retries every task has, becomes a warning — the
// table's data is committed, and a killed compaction is recovered by the next run.
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { COMPACTION_STATES as C, ExportWorkflow, INTERRUPTED_INVOCATION_ERRORS, THROTTLING_ERROR, WORKFLOW_STATES as S } from '../../lib/export-workflow.ts';
import { allStates, resolveDefinition, type State } from './definition.ts';

function statesOf(options: { validate: boolean; compact: boolean }): Record<string, State> {
  const stack = new Stack(new App(), 'CompactWorkflow');
  const fn = (id: string) => new lambda.Function(stack, id, { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler = async () => ({})') });
  const minute = Duration.minutes(1);
  new ExportWorkflow(stack, 'Workflow', {
    functions: {
      plan: fn('Plan'), export: fn('Export'), commit: fn('Commit'), summarize: fn('Summarize'),
      ...(options.validate ? { validate: fn('Validate') } : {}),
      ...(options.compact ? { compact: fn('Compact') } : {}),
    },
    functionTimeouts: { plan: minute, export: minute, commit: minute, summarize: minute, validate: minute, compact: Duration.minutes(15) },
    maxConcurrency: 2,
  });
  return allStates(resolveDefinition(Template.fromStack(stack)));
}

describe('Compact Table', () => {
  it('follows Validate Table and its warning, keeps its summary under $.compaction, and ends the branch', () => {
    const states = statesOf({ validate: true, compact: true });
    expect(states[S.validate]).toMatchObject({ Type: 'Task', ResultPath: '$.validation', Next: C.compact });
    expect(states[S.recordValidationWarning]).toMatchObject({ Type: 'Pass', Next: C.compact });
    expect(states[C.compact]).toMatchObject({ Type: 'Task', ResultPath: '$.compaction', End: true });
    expect(states[C.compact].Parameters).toBeUndefined(); // the table's result is the payload
  });

  it('never fails the table: after its retries any error is a warning with only the error\'s name', () => {
    const states = statesOf({ validate: true, compact: true });
    expect(states[C.compact].Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.compaction', Next: C.recordCompactionWarning }]);
    expect(states[C.recordCompactionWarning]).toMatchObject({ Type: 'Pass', ResultPath: '$.compaction', Parameters: { status: 'failed', 'error.$': '$.compaction.Error' }, End: true });
    expect((states[C.compact].Retry ?? []).some((r) => r.ErrorEquals.includes(THROTTLING_ERROR))).toBe(true);
  });

  it('a compaction killed by its timeout or memory is a failure, not retried into a skip', () => {
    // The killed compaction keeps the table's lease until it lapses: a retry would find it held
    // and report 'skipped', and CompactionFailed would never fire.
    const retried = (statesOf({ validate: true, compact: true })[C.compact].Retry ?? []).flatMap((r) => r.ErrorEquals);
    for (const error of INTERRUPTED_INVOCATION_ERRORS) expect(retried).not.toContain(error);
  });

  it('follows Commit Table directly without validation, and is absent unless given a function', () => {
    expect(statesOf({ validate: false, compact: true })[S.committed]).toMatchObject({ Default: C.compact });
    const without = statesOf({ validate: true, compact: false });
    expect(without[C.compact]).toBeUndefined();
    expect(without[S.validate]).toMatchObject({ End: true });
  });

  it('requires the function\'s timeout, by prop name', () => {
    const stack = new Stack(new App(), 'Missing');
    const fn = (id: string) => new lambda.Function(stack, id, { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler = async () => ({})') });
    const minute = Duration.minutes(1);
    expect(() => new ExportWorkflow(stack, 'Workflow', {
      functions: { plan: fn('Plan'), export: fn('Export'), commit: fn('Commit'), summarize: fn('Summarize'), compact: fn('Compact') },
      functionTimeouts: { plan: minute, export: minute, commit: minute, summarize: minute },
      maxConcurrency: 2,
    })).toThrow('functionTimeouts.compact');
  });
});
