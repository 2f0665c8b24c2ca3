// Backfill segments without a database: the segment's own task and page numbers, what Export
// accepts from a Distributed Map child, the segment bounds in the page query, and the local
// rewrite of a Distributed Map into an inline one.
import { describe, expect, it } from 'vitest';
import { inlineDistributedMaps, inlineMapName, type StateMachineDefinition } from '../../bin/local/state-machine-definition.ts';
import { ConfigError } from '../../lambdas/core/errors.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import { assertSegmentPage, isBackfillToGather, parseExportInput, SEGMENT_PAGE_STRIDE, segmentPages, segmentTask } from '../../lambdas/core/protocol/segments.ts';

const task: TableTask = {
  table: 'orders', display: 'public.orders', runId: '20261130T070000Z-0123abcd', startedAt: '2026-11-30T07:00:00.000Z', exportedAtMicros: '1796022000000000',
  kind: 'scheduled', window: { from: null, fromInclusive: false, to: '2026-11-30 06:59:55.000000+00' }, fingerprint: 'f', after: null,
  page: 0, rows: 0, files: 0, bytes: 0, done: false, carried: null, nullCursorRows: 0,
  backfill: { segments: 4, items: 'raw/_state/orders/pending/20261130T070000Z-0123abcd/segments.jsonl', pages: null },
};
const segment = { index: 2, from: ['2024-03-01 00:00:00+00', '17'], to: ['2024-06-01 00:00:00+00'] };

describe('a segment\'s task', () => {
  it('starts at its own page numbers, with nothing exported, and is no longer the table\'s task to gather', () => {
    const child = segmentTask({ ...task, rows: 5, page: 7, after: ['x', '1'] }, segment);
    expect(child).toMatchObject({ segment, page: 2 * SEGMENT_PAGE_STRIDE, after: null, rows: 0, files: 0, bytes: 0, done: false, carried: null });
    expect(isBackfillToGather(task)).toBe(true);
    expect(isBackfillToGather(child)).toBe(false);
    expect(isBackfillToGather({ ...task, backfill: { ...task.backfill!, pages: 12 } })).toBe(false);
    expect(segmentPages(segment)).toEqual({ first: 20_000, last: 29_999 });
  });

  it('fails by name before a page would take the next segment\'s numbers', () => {
    const child = segmentTask(task, segment);
    expect(() => assertSegmentPage(child, 29_999)).not.toThrow();
    expect(() => assertSegmentPage(child, 30_000)).toThrow(ConfigError);
    expect(() => assertSegmentPage(child, 30_000)).toThrow('public.orders: backfill segment 2 needs more than 9999 pages of export.pageRows rows; raise tables[].backfill.segments (at most 64) or export.pageRows');
    expect(() => assertSegmentPage(task, 1_000_000)).not.toThrow(); // not a segment: no such bound
  });
});

describe('what Export accepts', () => {
  it('a Distributed Map child\'s item (the table\'s task and one segment) becomes the segment\'s task', () => {
    expect(parseExportInput({ task, segment })).toEqual(segmentTask(task, segment));
  });

  it('a task passes through; anything else is refused by the task schema', () => {
    expect(parseExportInput(task)).toEqual(task);
    expect(() => parseExportInput({ task, segment: { ...segment, index: 64 } })).toThrow();
    expect(() => parseExportInput({ ...task, segment: { index: 0, from: [], to: null } })).toThrow();
  });
});

describe('inlineDistributedMaps (the local runner has no Distributed Map)', () => {
  const distributed: StateMachineDefinition = {
    StartAt: 'Outer',
    States: {
      Outer: {
        Type: 'Map', ItemsPath: '$.tables', End: true,
        ItemProcessor: {
          StartAt: 'Fan Out',
          States: {
            'Fan Out': {
              Type: 'Map', MaxConcurrency: 3, ResultPath: null, Label: 'FanOut', Next: 'After',
              ItemReader: { Resource: 'arn:aws:states:::s3:getObject', ReaderConfig: { InputType: 'JSONL' }, Parameters: { Bucket: 'b', 'Key.$': '$.list' } },
              ItemSelector: { 'task.$': '$', 'nested': { 'key.$': '$.list' }, 'item.$': '$$.Map.Item.Value' },
              Retry: [{ ErrorEquals: ['States.ExceedToleratedFailureThreshold'], MaxAttempts: 1 }],
              ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' } as { Mode: string }, StartAt: 'Work', States: { Work: { Type: 'Pass', End: true } } },
            },
            After: { Type: 'Pass', End: true },
          },
        },
      },
    },
  };

  it('turns a nested Distributed Map into a reader Task and an inline Map over $.items, keeping its processor, concurrency and retries', () => {
    const local = inlineDistributedMaps(distributed);
    const inner = local.States.Outer.ItemProcessor!.States;
    expect(inner['Fan Out']).toEqual({
      Type: 'Task', Resource: 'arn:aws:lambda:local:000000000000:function:read-map-items',
      Parameters: { 'input.$': '$', reader: { InputType: 'JSONL', Bucket: 'b', 'Key.$': '$.list' } },
      Next: inlineMapName('Fan Out'),
    });
    expect(inner[inlineMapName('Fan Out')]).toEqual({
      Type: 'Map', MaxConcurrency: 3, ResultPath: null, ItemsPath: '$.items', OutputPath: '$.input', Next: 'After',
      ItemSelector: { 'task.$': '$.input', nested: { 'key.$': '$.input.list' }, 'item.$': '$$.Map.Item.Value' },
      Retry: [{ ErrorEquals: ['States.ExceedToleratedFailureThreshold'], MaxAttempts: 1 }],
      ItemProcessor: { ProcessorConfig: { Mode: 'INLINE' }, StartAt: 'Work', States: { Work: { Type: 'Pass', End: true } } },
    });
    // The definition it was given is unchanged.
    expect(distributed.States.Outer.ItemProcessor!.States['Fan Out'].Type).toBe('Map');
  });

  it('refuses a Distributed Map whose result is kept (only ResultPath null runs locally)', () => {
    const kept = structuredClone(distributed);
    (kept.States.Outer.ItemProcessor!.States['Fan Out'] as { ResultPath: string | null }).ResultPath = '$.results';
    expect(() => inlineDistributedMaps(kept)).toThrow(/Fan Out has ResultPath "\$\.results"/);
  });
});
