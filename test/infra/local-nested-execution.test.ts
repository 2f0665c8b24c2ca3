// The local runner's stand-in for `startExecution.sync:2` (aws-local-stepfunctions has no nested
// executions): the nested machine's output comes back under Output, and a failed nested
// execution fails the task with States.TaskFailed, naming the machine and the nested error, so
// Export Segments' one retry sees what Step Functions would give it.
import { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { startExecutionLocally } from '../../bin/local/workflow-runner.ts';
import type { WorkflowDefinition } from './definition.ts';

const ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:Segments';

function definitionOf(states: WorkflowDefinition['States']): WorkflowDefinition {
  return { StartAt: Object.keys(states)[0], States: states, nestedStateMachines: {} };
}

function execute(definition: WorkflowDefinition, input: unknown): Promise<unknown> {
  const { nestedStateMachines: _nested, ...states } = definition;
  return new StateMachine(states as never, { validationOptions: { checkArn: false } }).run(input as never).result;
}

describe('startExecutionLocally (startExecution.sync:2 on this machine)', () => {
  it('returns the nested execution\'s output under Output', async () => {
    const nested = { [ARN]: definitionOf({ Echo: { Type: 'Pass', End: true } }) };
    await expect(startExecutionLocally(nested, { StateMachineArn: ARN, Input: { table: 'events' } }, (d) => execute(d, { table: 'events' })))
      .resolves.toEqual({ StateMachineArn: ARN, Status: 'SUCCEEDED', Output: { table: 'events' } });
  });

  it('fails with States.TaskFailed naming the machine and the nested error, which a Retry on States.TaskFailed runs once more', async () => {
    const nested = { [ARN]: definitionOf({ Broken: { Type: 'Fail', Error: 'States.ExceedToleratedFailureThreshold', Cause: 'segment 2 failed' } }) };
    const failure = await startExecutionLocally(nested, { StateMachineArn: ARN, Input: {} }, (d) => execute(d, {})).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).name).toBe('States.TaskFailed');
    expect((failure as Error).message).toContain(ARN);
    expect((failure as Error).message).toContain('States.ExceedToleratedFailureThreshold');
    // The parent's retry matches that name (as Export Segments' does), then the failure is uncaught.
    let started = 0;
    const parent = new StateMachine({
      StartAt: 'Export Segments',
      States: { 'Export Segments': { Type: 'Task', Resource: 'arn:aws:states:::states:startExecution.sync:2', Parameters: { StateMachineArn: ARN, 'Input.$': '$' }, Retry: [{ ErrorEquals: ['States.TaskFailed'], IntervalSeconds: 1, MaxAttempts: 1 }], End: true } },
    } as never, { validationOptions: { checkArn: false } });
    const run = parent.run({} as never, {
      overrides: {
        taskResourceLocalHandlers: {
          'Export Segments': (event: { StateMachineArn: string; Input: unknown }) => {
            started += 1;
            return startExecutionLocally(nested, event, (d) => execute(d, event.Input));
          },
        } as never,
      },
    });
    const error = await run.result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(started).toBe(2);
  });

  it('refuses a state machine the template does not have, by ARN', async () => {
    await expect(startExecutionLocally({}, { StateMachineArn: ARN }, () => Promise.resolve(null))).rejects.toThrow(`no state machine ${ARN}`);
  });
});
