import { describe, expect, it } from 'vitest';
import { commitResultSchema, runPlanSchema, runRequestSchema, tableTaskSchema, type TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { summarizeInputSchema } from '../../lambdas/core/protocol/summarize.ts';
import { committedTableSchema, validateInputSchema } from '../../lambdas/core/protocol/workflow-io.ts';

const task: TableTask = {
  table: 'orders', display: 'public.orders', runId: '20240601T000000Z-0a1b2c3d', startedAt: '2024-06-01T00:00:00.000Z',
  exportedAtMicros: '1717200000000000', kind: 'window', window: { from: '2024-05-01 00:00:00+00', fromInclusive: true, to: '2024-05-31 23:59:59.999999+00' },
  fingerprint: 'f', after: ['2024-05-02 00:00:00.000001+00', '7'], page: 3, rows: 150_000, files: 4, bytes: 1 << 20,
  done: false, carried: null, nullCursorRows: 2,
};

const issues = (result: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) =>
  result.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];

describe('the table task between states', () => {
  it('reads back what the steps return, unchanged', () => {
    expect(tableTaskSchema.parse(JSON.parse(JSON.stringify(task)))).toEqual(task);
  });

  it('refuses a task with a field no step knows, a negative count or a cursor that is not µs text', () => {
    expect(issues(tableTaskSchema.safeParse({ ...task, shard: 2 }))).toEqual([': Unrecognized key: "shard"']);
    expect(issues(tableTaskSchema.safeParse({ ...task, rows: -1 }))).toEqual(['rows: Too small: expected number to be >=0']);
    expect(issues(tableTaskSchema.safeParse({ ...task, exportedAtMicros: '1.5' })).map((i) => i.split(':')[0])).toEqual(['exportedAtMicros']);
    expect(issues(tableTaskSchema.safeParse({ ...task, window: { ...task.window, to: undefined } })).map((i) => i.split(':')[0])).toEqual(['window.to']);
    expect(issues(tableTaskSchema.safeParse({ ...task, kind: 'backfill' })).map((i) => i.split(':')[0])).toEqual(['kind']);
  });
});

describe('the execution input', () => {
  it('takes tables, a window, full and takeOver, and never a run id (Plan derives it from the execution)', () => {
    expect(runRequestSchema.parse({ tables: ['orders'], window: { from: '2024-01-01', to: '2024-02-01' }, takeOver: true })).toEqual({ tables: ['orders'], window: { from: '2024-01-01', to: '2024-02-01' }, takeOver: true });
    expect(issues(runRequestSchema.safeParse({ runId: 'mine' }))).toEqual([': Unrecognized key: "runId"']);
    expect(issues(runRequestSchema.safeParse({ tables: [] }))).toEqual(['tables: Too small: expected array to have >=1 items']);
  });
});

describe('one committed-table shape from Commit to Summarize', () => {
  const committed = { table: 'orders', status: 'succeeded' as const, rows: 3, files: 1, bytes: 10, windowFrom: null, windowTo: '2024-06-01 00:00:00+00', watermark: '2024-06-01 00:00:00+00', nullCursorRows: 0 };

  it('is what Commit returns, and what Validate and Summarize read with validation added', () => {
    expect(commitResultSchema.parse(committed)).toEqual(committed);
    const validated = { ...committed, validation: { status: 'skipped', error: 'ThrottlingError' } };
    expect(validateInputSchema.parse(validated)).toEqual(validated);
    expect(committedTableSchema.safeParse({ ...committed, validation: { status: 'late' } }).success).toBe(false);
  });

  it('Summarize reads the plan\'s skipped and failed tables as Plan wrote them', () => {
    const plan = runPlanSchema.parse({
      runId: 'r', startedAt: '2024-06-01T00:00:00.000Z', tables: [task], warnings: [],
      skipped: [{ table: 'customers', reason: 'held by run q' }], failed: [{ table: 'items', error: 'ThrottlingError: S3 503', transient: true }],
    });
    const input = summarizeInputSchema.parse({ runId: plan.runId, startedAt: plan.startedAt, results: [committed], skipped: plan.skipped, failed: plan.failed });
    expect(input.failed).toEqual([{ table: 'items', error: 'ThrottlingError: S3 503', transient: true }]);
    expect(input.skipped).toEqual(plan.skipped);
    expect(summarizeInputSchema.parse({ runId: 'r', startedAt: 's', results: [] })).toMatchObject({ skipped: [], failed: [] });
  });
});
