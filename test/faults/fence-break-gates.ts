// Breaker (HI) tools: a store that pauses chosen operations until the test lets them go, so two
// writers (a stalled Commit and whoever removes its run) can be interleaved store step by store
// step, deterministically.
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { faultyStore } from '../support/local-stack.ts';

export interface Gate {
  readonly wait: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open = () => {};
  const wait = new Promise<void>((resolve) => { open = resolve; });
  return { wait, open };
}

export type StoreOp = 'put' | 'get' | 'list' | 'delete' | 'deleteIf' | 'move';

/** A pause point: the `nth` (1-based) `op` whose key matches, held before or after it runs. */
export interface Pause {
  readonly op: StoreOp;
  readonly match: (key: string) => boolean;
  readonly when: 'before' | 'after';
  readonly nth?: number;
  /** Resolved when an operation reaches the point. */
  readonly reached: Gate;
  /** Opened by the test to let it go on. */
  readonly resume: Gate;
  seen: number;
}

export function pause(op: StoreOp, match: (key: string) => boolean, when: 'before' | 'after' = 'before', nth = 1): Pause {
  return { op, match, when, nth, reached: gate(), resume: gate(), seen: 0 };
}

/** `inner` with `pauses` applied; `log` records every operation (op key) in order. */
export function pausingStore(inner: ObjectStore, pauses: Pause[], log?: string[]): ObjectStore {
  const at = async (op: StoreOp, key: string, when: 'before' | 'after') => {
    for (const p of pauses) {
      if (p.op !== op || p.when !== when || !p.match(key)) continue;
      p.seen++;
      if (p.seen === (p.nth ?? 1) && !(p as { fired?: boolean }).fired) {
        (p as { fired?: boolean }).fired = true;
        p.reached.open();
        await p.resume.wait;
      }
    }
  };
  const around = async <T>(op: StoreOp, key: string, work: () => Promise<T>): Promise<T> => {
    log?.push(`${op} ${key}`);
    await at(op, key, 'before');
    const result = await work();
    await at(op, key, 'after');
    return result;
  };
  return faultyStore(inner, {
    put: (key, body, options) => around('put', key, () => inner.put(key, body, options)),
    get: (key) => around('get', key, () => inner.get(key)),
    list: (prefix) => around('list', prefix, () => inner.list(prefix)),
    delete: (keys) => around('delete', keys.join(','), () => inner.delete(keys)),
    deleteIf: (key, etag) => around('deleteIf', key, () => inner.deleteIf(key, etag)),
    move: (from, to) => around('move', `${from}->${to}`, () => inner.move(from, to)),
  });
}

/** Whichever comes first: the pause reached, or the work settled (then the pause was never reached). */
export async function reachedOrDone(p: Pause, work: Promise<unknown>): Promise<'reached' | 'done'> {
  return Promise.race([p.reached.wait.then(() => 'reached' as const), work.then(() => 'done' as const, () => 'done' as const)]);
}
