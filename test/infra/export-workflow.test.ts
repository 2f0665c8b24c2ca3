// The state machine as synthesized: its states, Map concurrency, retries (with jitter, never for
// errors a retry cannot fix), per-table catch and the validation and compaction that never fail an export —
// then the same definition run by aws-local-stepfunctions with stub handlers, to check the paths
// data actually takes.
import { StateMachine, type RunOptions } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CompactionSummary } from '../../lambdas/compact/handler.ts';
import { executionRunId } from '../../lambdas/core/protocol/workflow-io.ts';
import { COMPACTION_STATES as C, INTERRUPTED_INVOCATION_ERRORS, TABLES_FAILED_ERROR, TERMINAL_ERRORS, THROTTLING_ERROR, TRANSIENT_LAMBDA_ERRORS, VALIDATE_THROTTLING_ATTEMPTS, WORKFLOW_STATES as S } from '../../lib/index.ts';
import { allStates, resolveDefinition, type State, type StateMachineDefinition } from './definition.ts';
import { buildStack, logicalIdOf, type BuiltStack } from './stack.ts';

let built: BuiltStack;
let definition: StateMachineDefinition;
let states: Record<string, State>;

beforeAll(() => {
  built = buildStack();
  definition = resolveDefinition(built.template);
  states = allStates(definition);
}, 180_000);

describe('export workflow definition', () => {
  it('uses JSONPath (the local runner ignores JSONata) and has exactly the named states', () => {
    expect(definition.QueryLanguage).toBe('JSONPath');
    expect(definition.StartAt).toBe(S.plan);
    expect(Object.keys(definition.States).sort()).toEqual([S.anyFailed, S.exportTables, S.plan, S.runFailed, S.runSucceeded, S.summarize].sort());
    // Compaction is on by default (config compaction.enabled): its states join the table's branch.
    // A segment's loop runs in the Segments state machine that Export Segments starts (test/infra/backfill-workflow.test.ts).
    const segmentLoop: string[] = [S.exportSegmentPage, S.moreSegmentPages, S.segmentExported];
    expect(Object.keys(states).sort()).toEqual([...Object.values(S).filter((name) => !segmentLoop.includes(name)), ...Object.values(C)].sort());
  });

  it('plans into $.plan from the whole execution input and the execution\'s id (the run id, the same when Plan is retried)', () => {
    expect(states[S.plan]).toMatchObject({ Type: 'Task', ResultPath: '$.plan', Next: S.exportTables });
    expect(states[S.plan].Parameters).toEqual({ 'request.$': '$', execution: { 'id.$': '$$.Execution.Id', 'startTime.$': '$$.Execution.StartTime' } });
  });

  it('maps over the planned tables with the configured concurrency, each result replacing its task', () => {
    const map = states[S.exportTables];
    expect(map).toMatchObject({ Type: 'Map', ItemsPath: '$.plan.tables', MaxConcurrency: 3, ResultPath: '$.plan.tables', Next: S.summarize });
    // A backfill's segments first (Export Segments); any other table starts with its pages.
    expect(map.ItemProcessor?.StartAt).toBe(S.backfill);
    expect(states[S.backfill]).toMatchObject({ Type: 'Choice', Choices: [{ Variable: '$.backfill', IsPresent: true, Next: S.exportSegments }], Default: S.exportPage });
  });

  it('loops Export Table Page while $.done is false, then commits, then validates, then compacts', () => {
    expect(states[S.exportPage]).toMatchObject({ Type: 'Task', Next: S.morePages });
    expect(states[S.exportPage].ResultPath).toBeUndefined(); // output replaces the state
    expect(states[S.morePages]).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: '$.done', BooleanEquals: false, Next: S.exportPage }],
      Default: S.commit,
    });
    // Commit Table again while it returns the task with its progress, not the result.
    expect(states[S.commit]).toMatchObject({ Type: 'Task', Next: S.committed });
    expect(states[S.committed]).toMatchObject({ Type: 'Choice', Choices: [{ Variable: '$.status', IsPresent: false, Next: S.commit }], Default: S.validate });
    expect(states[S.commit].ResultPath).toBeUndefined();
    // The commit result goes in whole; the validation's counts join it under `validation`.
    expect(states[S.validate]).toMatchObject({ Type: 'Task', ResultPath: '$.validation', Next: C.compact });
    expect(states[S.validate].Parameters).toBeUndefined(); // the whole commit result is the payload
    // Compaction follows whatever validation found; its summary joins the result under `compaction`.
    expect(states[C.compact]).toMatchObject({ Type: 'Task', ResultPath: '$.compaction', End: true });
    expect(states[C.compact].Parameters).toBeUndefined();
  });

  it('validates without ever failing the export: retries, then records a warning that keeps only the error\'s name', () => {
    expect(states[S.validate].Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.validation', Next: S.recordValidationWarning }]);
    expect(states[S.recordValidationWarning]).toEqual({
      Type: 'Pass',
      Parameters: { status: 'skipped', 'error.$': '$.validation.Error' },
      ResultPath: '$.validation',
      Next: C.compact,
    });
  });

  it('compacts without ever failing the export: retries, then records a warning that keeps only the error\'s name', () => {
    expect(states[C.compact].Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.compaction', Next: C.recordCompactionWarning }]);
    expect(states[C.recordCompactionWarning]).toEqual({
      Type: 'Pass',
      Parameters: { status: 'failed', 'error.$': '$.compaction.Error' },
      ResultPath: '$.compaction',
      End: true,
    });
  });

  it('catches any error of a table\'s tasks into a failure record, so the other tables carry on', () => {
    for (const name of [S.exportPage, S.commit]) {
      expect(states[name].Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: S.recordFailure }]);
    }
    expect(states[S.recordFailure]).toEqual({
      Type: 'Pass',
      Parameters: { 'table.$': '$.table', status: 'failed', 'error.$': '$.error.Error', 'cause.$': '$.error.Cause' },
      End: true,
    });
    expect(states[S.plan].Catch).toBeUndefined();
    expect(states[S.summarize].Catch).toBeUndefined();
  });

  it('summarizes the plan and results, and fails the run when any table failed', () => {
    expect(states[S.summarize]).toMatchObject({
      Type: 'Task',
      ResultPath: '$.summary',
      Parameters: { 'runId.$': '$.plan.runId', 'startedAt.$': '$.plan.startedAt', 'results.$': '$.plan.tables' },
      Next: S.anyFailed,
    });
    expect(states[S.anyFailed]).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: '$.summary.failed', NumericGreaterThan: 0, Next: S.runFailed }],
      Default: S.runSucceeded,
    });
    expect(states[S.runFailed]).toMatchObject({ Type: 'Fail', Error: TABLES_FAILED_ERROR });
    expect(states[S.runSucceeded]).toEqual({ Type: 'Succeed' });
  });

  it('invokes each step\'s own function and returns its payload directly', () => {
    const fns = built.stack.functions.functions;
    const expected: Record<string, string> = { [S.plan]: 'Plan', [S.exportPage]: 'Export', [S.commit]: 'Commit', [S.summarize]: 'Summarize', [S.validate]: 'Validate', [C.compact]: 'Compact' };
    for (const [state, fn] of Object.entries(expected)) {
      expect(states[state].Resource).toBe(`arn:aws:lambda:us-east-1:123456789012:function:${logicalIdOf(built.stack, fns[fn])}`);
    }
  });

  it('retries Lambda service faults, ThrottlingError and (but Compact Table) an interrupted invocation with backoff and full jitter on every task', () => {
    // Export Segments starts a nested execution: its one retry is in test/infra/backfill-workflow.test.ts.
    const tasks = Object.entries(states).filter(([, s]) => s.Type === 'Task' && s.Resource?.startsWith('arn:aws:lambda:'));
    expect(tasks.map(([name]) => name).sort()).toEqual([S.plan, S.exportPage, S.commit, S.validate, C.compact, S.summarize].sort());
    for (const [name, task] of tasks) {
      // Validate Table holds a Map slot while it waits: fewer throttling attempts (then a warning).
      // Compact Table gets the export's: a throttled S3 or Glue passes, and compaction is worth finishing.
      const throttlingAttempts = name === S.validate ? 3 : 6;
      expect(task.Retry, name).toEqual([
        { ErrorEquals: [...TRANSIENT_LAMBDA_ERRORS], IntervalSeconds: 2, BackoffRate: 2, MaxAttempts: 6, JitterStrategy: 'FULL' },
        { ErrorEquals: [THROTTLING_ERROR], IntervalSeconds: 5, BackoffRate: 2, MaxAttempts: throttlingAttempts, MaxDelaySeconds: 120, JitterStrategy: 'FULL' },
        // Compact Table: a killed compaction is a failure (test/infra/compact-workflow.test.ts).
        ...(name === C.compact ? [] : [{ ErrorEquals: ['States.Timeout', 'Sandbox.Timedout', 'Lambda.Unknown'], IntervalSeconds: 10, BackoffRate: 2, MaxAttempts: 1, JitterStrategy: 'FULL' }]),
      ]);
    }
    expect(INTERRUPTED_INVOCATION_ERRORS).toEqual(['States.Timeout', 'Sandbox.Timedout', 'Lambda.Unknown']);
  });

  it('gives each task a minute more than its function\'s timeout, so States.Timeout means the invocation is over', () => {
    const fns = built.stack.functions.functions;
    const timeoutOf = (name: string) => (built.template.toJSON() as { Resources: Record<string, { Properties: { Timeout: number } }> }).Resources[logicalIdOf(built.stack, fns[name])].Properties.Timeout;
    expect([states[S.plan], states[S.exportPage], states[S.commit], states[S.summarize], states[S.validate], states[C.compact]].map((t) => t.TimeoutSeconds)).toEqual(
      ['Plan', 'Export', 'Commit', 'Summarize', 'Validate', 'Compact'].map((fn) => timeoutOf(fn) + 60),
    );
    expect(states[C.compact].TimeoutSeconds).toBe(960);
    expect(states[S.exportPage].TimeoutSeconds).toBe(960);
  });

  it('never retries an error a retry cannot fix', () => {
    expect(TERMINAL_ERRORS).toEqual(['ConfigError', 'SchemaMismatchError', 'UnsupportedTypeError', 'ValueError', 'CheckFailedError', 'WindowConflictError']);
    // All but Export Segments: a failed Segments execution reaches it only as States.TaskFailed,
    // whatever failed in it, and it starts one more (as the Distributed Map ran one more Map Run).
    const retried = Object.entries(states).filter(([name]) => name !== S.exportSegments).flatMap(([, s]) => s.Retry ?? []).flatMap((r) => r.ErrorEquals);
    for (const name of [...TERMINAL_ERRORS, 'States.ALL', 'States.TaskFailed']) expect(retried).not.toContain(name);
  });

  it('logs every event without execution data, traces, and times out after 6 hours', () => {
    built.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: false },
      TracingConfiguration: { Enabled: true },
    });
    expect(definition.TimeoutSeconds).toBe(6 * 3600);
  });

  it('logs to a group under /aws/vendedlogs/states/ named after the stack and its unique id', () => {
    const logGroupId = logicalIdOf(built.stack, built.stack.workflow.logGroup);
    built.template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: {
        'Fn::Join': ['', ['/aws/vendedlogs/states/PgLakeExport-Workflow-', { 'Fn::Select': [2, { 'Fn::Split': ['/', { Ref: 'AWS::StackId' }] }] }]],
      },
    });
    built.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: { Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logGroupId, 'Arn'] } } }] },
    });
  });
});

describe('export workflow, run locally', () => {
  class ConfigError extends Error {
    override name = 'ConfigError';
  }
  class ThrottlingError extends Error {
    override name = 'ThrottlingError';
  }
  /** What Step Functions reports for an invocation Lambda stopped at its timeout. */
  class SandboxTimedout extends Error {
    override name = 'Sandbox.Timedout';
  }
  /** What Step Functions reports for an invocation that died unhandled (out of memory, crashed). */
  class LambdaUnknown extends Error {
    override name = 'Lambda.Unknown';
  }
  type Cursor = { table: string; page?: number; done?: boolean };
  type PlanInput = { request: unknown; execution: { id: string; startTime: string } };

  type ValidateStub = { mismatchOf?: string; throttleValidationOf?: { table: string; times: number }; throttleCompactionOf?: { table: string; times: number } };
  function stubs(options: { failCommitOf?: string; throttleFirstPageOf?: string; timeOutPagesOf?: { table: string; times: number }; crashFirstPlan?: boolean } & ValidateStub = {}) {
    const calls: Record<string, number> = {};
    const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
    let summarizeInput: { runId: string; startedAt: string; results: Array<Record<string, unknown>> } | undefined;
    let throttled = false;
    let timeouts = 0;
    const planRunIds: string[] = [];
    const handlers = {
      [S.plan]: async (input: PlanInput) => {
        count(S.plan);
        planRunIds.push(executionRunId(input.execution));
        if (options.crashFirstPlan && planRunIds.length === 1) throw new LambdaUnknown('Runtime exited with error: signal: killed');
        return { runId: 'run-1', startedAt: '2025-01-01T00:00:00Z', tables: [{ table: 'orders' }, { table: 'customers' }], skipped: [], failed: [], warnings: [] };
      },
      [S.exportPage]: async (cursor: Cursor) => {
        count(`${S.exportPage}:${cursor.table}`);
        if (cursor.table === options.throttleFirstPageOf && !throttled) {
          throttled = true;
          throw new ThrottlingError('slow down');
        }
        if (cursor.table === options.timeOutPagesOf?.table && timeouts < options.timeOutPagesOf.times) {
          timeouts += 1;
          throw new SandboxTimedout('Task timed out after 900.00 seconds');
        }
        const page = (cursor.page ?? 0) + 1;
        return { ...cursor, page, done: page >= (cursor.table === 'orders' ? 3 : 1) };
      },
      [S.commit]: async (cursor: Cursor) => {
        count(`${S.commit}:${cursor.table}`);
        if (cursor.table === options.failCommitOf) throw new ConfigError(`tables[1].primaryKey: column "id" does not exist`);
        return { table: cursor.table, status: 'succeeded', rows: cursor.page, files: cursor.page, bytes: 1, windowFrom: null, windowTo: 'x', watermark: 'x' };
      },
      [S.validate]: async (result: { table: string; rows: number }) => {
        count(`${S.validate}:${result.table}`);
        const throttle = options.throttleValidationOf;
        if (result.table === throttle?.table && (calls[`${S.validate}:${result.table}`] ?? 0) <= throttle.times) throw new ThrottlingError('Athena query q-1 in workgroup w ended FAILED: TOO_MANY_REQUESTS');
        const mismatch = result.table === options.mismatchOf;
        return {
          status: mismatch ? 'mismatch' : 'ok', runId: 'run-1', expectedRows: result.rows, seenRows: mismatch ? 2 * result.rows : result.rows,
          mismatchedPartitions: mismatch ? 1 : 0, duplicateVersions: mismatch ? result.rows : 0,
        };
      },
      [C.compact]: async (result: { table: string; files: number }) => {
        count(`${C.compact}:${result.table}`);
        const throttle = options.throttleCompactionOf;
        if (result.table === throttle?.table && (calls[`${C.compact}:${result.table}`] ?? 0) <= throttle.times) throw new ThrottlingError('S3 SlowDown on lake/raw/customers/');
        return { status: result.files > 2 ? 'compacted' : 'skipped' } satisfies CompactionSummary;
      },
      [S.summarize]: async (input: NonNullable<typeof summarizeInput>) => {
        summarizeInput = input;
        const failed = input.results.filter((r) => r.status === 'failed').length;
        return { failed, succeeded: input.results.length - failed, tables: input.results };
      },
    };
    return { handlers, calls, summarizeInput: () => summarizeInput, planRunIds };
  }

  type LocalHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;

  /** Runs the execution to its end; `events` is its event log (ExecutionFailed carries Error). */
  async function run(handlers: Record<string, (input: never) => Promise<unknown>>) {
    const machine = new StateMachine(definition as ConstructorParameters<typeof StateMachine>[0]);
    // The stubs take and return plain JSON objects; the runner's JSONValue type cannot say which.
    const taskResourceLocalHandlers = handlers as unknown as LocalHandlers;
    // Retry waits are real seconds; the tests only check which errors are retried.
    const retryIntervalOverrides = Object.fromEntries([...Object.values(S), ...Object.values(C)].map((name) => [name, 0]));
    const context = { Execution: { Id: 'arn:aws:states:eu-west-1:123456789012:execution:PgLakeExport:manual-1', Name: 'manual-1' } };
    const execution = machine.run({}, { overrides: { taskResourceLocalHandlers, retryIntervalOverrides }, context });
    const outcome = execution.result.then(
      (output: unknown) => ({ output, failed: false }),
      () => ({ output: undefined, failed: true }),
    );
    const events: Array<{ type: string; Error?: string; Cause?: string }> = [];
    for await (const event of execution.eventLogs) events.push(event as (typeof events)[number]);
    return { ...(await outcome), events };
  }

  it('exports every page of every table, commits each once, and succeeds', async () => {
    const { handlers, calls, summarizeInput } = stubs();
    const { output, failed } = await run(handlers);
    expect(failed).toBe(false);
    expect(calls).toEqual({
      [S.plan]: 1, [`${S.exportPage}:orders`]: 3, [`${S.exportPage}:customers`]: 1, [`${S.commit}:orders`]: 1, [`${S.commit}:customers`]: 1,
      [`${S.validate}:orders`]: 1, [`${S.validate}:customers`]: 1, [`${C.compact}:orders`]: 1, [`${C.compact}:customers`]: 1,
    });
    expect(summarizeInput()?.runId).toBe('run-1');
    // Each committed table's result carries its validation and its compaction summary.
    expect(summarizeInput()?.results.map((r) => [r.validation, r.compaction])).toEqual([
      [expect.objectContaining({ status: 'ok' }), { status: 'compacted' }],
      [expect.objectContaining({ status: 'ok' }), { status: 'skipped' }],
    ]);
    expect(summarizeInput()?.results.map((r) => [r.table, r.status, r.rows])).toEqual([['orders', 'succeeded', 3], ['customers', 'succeeded', 1]]);
    // tables Plan could not start reach Summarize too (they count as failures or skips there)
    expect(summarizeInput()).toMatchObject({ skipped: [], failed: [] });
    expect(output).toMatchObject({ summary: { failed: 0 } });
  });

  it('records a failed table without stopping the others, does not retry ConfigError, and fails the run', async () => {
    const { handlers, calls, summarizeInput } = stubs({ failCommitOf: 'customers' });
    const { failed, events } = await run(handlers);
    expect(failed).toBe(true);
    expect(events.find((event) => event.type === 'ExecutionFailed')).toMatchObject({ Error: TABLES_FAILED_ERROR });
    expect(calls[`${S.commit}:customers`]).toBe(1);
    expect(calls[`${S.commit}:orders`]).toBe(1);
    expect(summarizeInput()?.results).toEqual([
      expect.objectContaining({ table: 'orders', status: 'succeeded' }),
      { table: 'customers', status: 'failed', error: 'ConfigError', cause: 'tables[1].primaryKey: column "id" does not exist' },
    ]);
  });

  it('runs Plan again after an interrupted invocation, with the same execution and so the same run id', async () => {
    const { handlers, calls, planRunIds } = stubs({ crashFirstPlan: true });
    const { output } = await run(handlers);
    expect(calls[S.plan]).toBe(2);
    expect(new Set(planRunIds).size).toBe(1);
    expect(planRunIds[0]).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
    expect(output).toMatchObject({ summary: { failed: 0 } });
  });

  it('retries an Export invocation that timed out once, and fails only that table when it times out again', async () => {
    const once = stubs({ timeOutPagesOf: { table: 'orders', times: 1 } });
    const first = await run(once.handlers);
    expect(once.calls[`${S.exportPage}:orders`]).toBe(4);
    expect(first.output).toMatchObject({ summary: { failed: 0 } });

    const twice = stubs({ timeOutPagesOf: { table: 'orders', times: 2 } });
    const second = await run(twice.handlers);
    expect(second.failed).toBe(true);
    expect(twice.summarizeInput()?.results).toEqual([
      { table: 'orders', status: 'failed', error: 'Sandbox.Timedout', cause: 'Task timed out after 900.00 seconds' },
      expect.objectContaining({ table: 'customers', status: 'succeeded' }),
    ]);
  });

  it('keeps every state of a 300-table run far below Step Functions\' 256 KB, with realistic tasks and results', async () => {
    const names = Array.from({ length: 300 }, (_, i) => `order_line_history_${String(i).padStart(3, '0')}`);
    const task = (table: string) => ({
      table, display: `sales.${table}`, runId: '20250301T020000Z-0a1b2c3d', startedAt: '2025-03-01T02:00:00.123Z', exportedAtMicros: '1740794400123000',
      kind: 'scheduled', window: { from: '2025-02-28 01:59:55.123456+00', fromInclusive: false, to: '2025-03-01 01:59:55.123456+00' },
      fingerprint: '0123456789abcdef', after: null, page: 0, rows: 0, files: 0, bytes: 0, done: false, carried: null, nullCursorRows: 0,
    });
    const handlers = {
      [S.plan]: async () => ({ runId: '20250301T020000Z-0a1b2c3d', startedAt: '2025-03-01T02:00:00.123Z', tables: names.map(task), skipped: [], failed: [], warnings: [] }),
      [S.exportPage]: async (t: ReturnType<typeof task>) => ({ ...t, after: ['2025-03-01 01:59:54.999999+00', '123456789'], page: 1, rows: 123_456, files: 2, bytes: 9_876_543, done: true }),
      [S.commit]: async (t: ReturnType<typeof task>) => ({
        table: t.table, status: 'succeeded', rows: t.rows, files: t.files, bytes: t.bytes, windowFrom: t.window.from, windowTo: t.window.to, watermark: t.window.to, nullCursorRows: 0,
      }),
      [S.validate]: async (r: { rows: number }) => ({
        status: 'ok', runId: '20250301T020000Z-0a1b2c3d', expectedRows: r.rows, seenRows: r.rows, mismatchedPartitions: 0, duplicateVersions: 0,
      }),
      // What the Compact handler returns (its type): the status only; the details go to its log.
      [C.compact]: async () => ({ status: 'compacted' }) satisfies CompactionSummary,
      [S.summarize]: async (input: { runId: string; results: Array<{ table: string; rows: number; files: number; bytes: number; validation: unknown }> }) => ({
        runId: input.runId, succeeded: input.results.length, failed: 0, durationSeconds: 1234,
        tables: input.results.map((r) => ({ table: r.table, status: 'succeeded', rows: r.rows, files: r.files, bytes: r.bytes, nullCursorRows: 0, stalenessSeconds: 1200, validation: (r.validation as { status: string }).status })),
        stalenessSeconds: Object.fromEntries(input.results.map((r) => [r.table, 1200])),
      }),
    };
    const machine = new StateMachine(definition as ConstructorParameters<typeof StateMachine>[0]);
    const execution = machine.run({}, { overrides: { taskResourceLocalHandlers: handlers as unknown as LocalHandlers }, context: { Execution: { Id: 'arn:aws:states:eu-west-1:123456789012:execution:PgLakeExport:big', Name: 'big' } } });
    let largest = { bytes: 0, state: '' };
    for await (const event of execution.eventLogs) {
      const state = (event as { state?: { name: string; input?: unknown; output?: unknown } }).state;
      for (const data of [state?.input, state?.output]) {
        const bytes = data === undefined ? 0 : Buffer.byteLength(JSON.stringify(data));
        if (bytes > largest.bytes) largest = { bytes, state: state!.name };
      }
    }
    await execution.result;
    // A plan of 300 tasks is ~150 KB; the results replace it instead of joining it.
    expect(largest.bytes, largest.state).toBeLessThan(0.75 * 256 * 1024);
  });

  it('hands a validation mismatch to Summarize beside the table\'s commit result; the run still succeeds', async () => {
    const { handlers, summarizeInput } = stubs({ mismatchOf: 'orders' });
    const { output, failed } = await run(handlers);
    expect(failed).toBe(false);
    expect(summarizeInput()?.results).toEqual([
      expect.objectContaining({ table: 'orders', status: 'succeeded', rows: 3, validation: expect.objectContaining({ status: 'mismatch', expectedRows: 3, seenRows: 6 }) }),
      expect.objectContaining({ table: 'customers', status: 'succeeded', validation: expect.objectContaining({ status: 'ok' }) }),
    ]);
    expect(output).toMatchObject({ summary: { failed: 0 } });
  });

  it('retries a throttled validation, then carries on with its answer', async () => {
    const { handlers, calls, summarizeInput } = stubs({ throttleValidationOf: { table: 'customers', times: 2 } });
    const { output, events } = await run(handlers);
    expect(calls[`${S.validate}:customers`]).toBe(3);
    expect(events.filter((event) => event.type === 'StateRetried')).toHaveLength(2);
    expect(summarizeInput()?.results[1]).toMatchObject({ table: 'customers', validation: { status: 'ok' } });
    expect(output).toMatchObject({ summary: { failed: 0 } });
  });

  it('records a validation that never got through as skipped (its error\'s name only) and does not fail the export', async () => {
    const { handlers, calls, summarizeInput } = stubs({ throttleValidationOf: { table: 'customers', times: 100 } });
    const { output, failed } = await run(handlers);
    expect(failed).toBe(false);
    expect(calls[`${S.validate}:customers`]).toBe(1 + VALIDATE_THROTTLING_ATTEMPTS); // the first attempt and its retries
    expect(summarizeInput()?.results).toEqual([
      expect.objectContaining({ table: 'orders', status: 'succeeded', validation: expect.objectContaining({ status: 'ok' }) }),
      {
        table: 'customers', status: 'succeeded', rows: 1, files: 1, bytes: 1, windowFrom: null, windowTo: 'x', watermark: 'x', validation: { status: 'skipped', error: 'ThrottlingError' },
        // Compaction runs after a skipped validation too.
        compaction: { status: 'skipped' },
      },
    ]);
    expect(output).toMatchObject({ summary: { failed: 0 } });
  });

  it('records a compaction that never got through as failed (its error\'s name only) after the export\'s retries, and does not fail the export', async () => {
    const { handlers, calls, summarizeInput } = stubs({ throttleCompactionOf: { table: 'customers', times: 100 } });
    const { output, failed } = await run(handlers);
    expect(failed).toBe(false);
    expect(calls[`${C.compact}:customers`]).toBe(1 + 6); // the first attempt and the ThrottlingError retries every export step has
    expect(calls[`${C.compact}:orders`]).toBe(1);
    expect(summarizeInput()?.results[1]).toEqual({
      table: 'customers', status: 'succeeded', rows: 1, files: 1, bytes: 1, windowFrom: null, windowTo: 'x', watermark: 'x',
      validation: expect.objectContaining({ status: 'ok' }),
      compaction: { status: 'failed', error: 'ThrottlingError' },
    });
    expect(output).toMatchObject({ summary: { failed: 0 } });
  });

  it('retries a ThrottlingError and carries on', async () => {
    const { handlers, calls } = stubs({ throttleFirstPageOf: 'customers' });
    const { output, events } = await run(handlers);
    expect(calls[`${S.exportPage}:customers`]).toBe(2);
    expect(events.filter((event) => event.type === 'StateRetried')).toHaveLength(1);
    expect(output).toMatchObject({ summary: { failed: 0 } });
  });
});
