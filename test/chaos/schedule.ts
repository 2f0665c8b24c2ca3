// A chaos schedule: one seeded PRNG draws every writer, run and fault up front, so a seed names
// one schedule and a failure can be replayed from the seed alone (timing still varies: runs and
// writers interleave on the wall clock, and a kill lands where the store-operation count says).

/** sfc32: small, fast, and good enough to shuffle a schedule; seeded from one 32-bit integer. */
export function createRandom(seed: number): Random {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    const t = (a + b + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick: (items) => items[Math.floor(next() * items.length)],
  };
}

export interface Random {
  next(): number;
  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

/** Where a kill lands relative to the k-th object-store operation of the run. */
export type KillTiming = 'before' | 'during' | 'after';

export interface RunFaults {
  /**
   * SIGKILL at the k-th store operation (put, get, list, delete, move), counted from 1: of the
   * whole run, or (`commit`) from the first move (or the watermark write) on — publishing, the watermark, the manifest and
   * replacing older pages — where a few dozen operations decide what the lake shows; or
   * (`manifests`) counting only the commit phase's operations on run manifests
   * (`_state/<table>/runs/…`), which a re-run's commit reads and rewrites one by one.
   */
  readonly killAt?: { readonly op: number; readonly timing: KillTiming; readonly phase?: 'commit' | 'manifests' };
  /** S3-like errors at these store operations; `after`: the operation happened, its answer was lost. */
  readonly storeErrors: readonly { readonly op: number; readonly name: 'InternalError' | 'SlowDown'; readonly after: boolean }[];
  /** An ECONNRESET-like error at these calls into the row source (counted from 1). */
  readonly sourceErrors: readonly number[];
  /** The harness terminates the exporter's database backends this many ms after the run starts. */
  readonly dropConnectionsAfterMs?: number;
  /** The child terminates its own database sessions while this source call (counted from 1) is in flight. */
  readonly dropConnectionAtCall?: number;
}

export type RunKind = 'scheduled' | 'window' | 'full';

export type Step =
  | { readonly op: 'insert'; readonly rows: number }
  /** `clock`: updated_at = clock_timestamp() (the statement's time) instead of now() (the transaction's start). */
  | { readonly op: 'update'; readonly keys: readonly number[]; readonly clock: boolean }
  | { readonly op: 'bulk-update'; readonly fromKey: number; readonly toKey: number }
  /** Held transactions also insert `inserts` new keys, from a key range of their own. */
  | { readonly op: 'late-begin'; readonly slot: number; readonly keys: readonly number[]; readonly inserts: number }
  | { readonly op: 'late-end'; readonly slot: number; readonly commit: boolean }
  | { readonly op: 'prepare'; readonly slot: number; readonly keys: readonly number[]; readonly inserts: number }
  | { readonly op: 'prepared-end'; readonly slot: number; readonly commit: boolean }
  | {
    readonly op: 'run';
    readonly run: string;
    readonly kind: RunKind;
    /** Window re-runs: seconds before the step's wall time, and the window's length. */
    readonly window?: { readonly fromAgoSeconds: number; readonly spanSeconds: number };
    readonly takeOver: boolean;
    readonly faults: RunFaults;
  }
  | { readonly op: 'wait' }
  | { readonly op: 'sleep'; readonly ms: number }
  /**
   * Damage the lake as a buggy exporter would — never drawn by generateSchedule; the checker's
   * self-test adds it to prove the checks can fail: copy a data file under a name no manifest
   * lists, or delete a listed data file.
   */
  | { readonly op: 'sabotage'; readonly what: 'copy-data-file' | 'drop-data-file' };

export interface Schedule {
  readonly seed: number;
  /** Where the lake lives: a directory, or a bucket on the S3 API server (fauxqs) through the S3 adapter. */
  readonly store: 'directory' | 's3';
  readonly initialRows: number;
  readonly pageRows: number;
  /** Seconds of history the initial rows spread over (several day partitions). */
  readonly historySeconds: number;
  readonly steps: readonly Step[];
}

const DAY = 86_400;

/**
 * Draw a schedule of about `size` steps. `kinds` limits the runs drawn (e.g. only scheduled
 * runs, to look past a known re-run bug); a kind left out becomes a scheduled run, so the rest
 * of the schedule stays the same for a seed.
 */
export function generateSchedule(seed: number, size = 40, kinds: readonly RunKind[] = ['scheduled', 'window', 'full']): Schedule {
  const random = createRandom(seed);
  const initialRows = random.pick([2_000, 4_000, 6_000]);
  const store = random.chance(0.25) ? 's3' as const : 'directory' as const;
  const pageRows = random.pick([300, 700, 1_500]);
  const historySeconds = 3 * DAY;
  const steps: Step[] = [];
  let nextKey = initialRows + 1;
  let runs = 0;
  let killedBefore = false;
  const late = new Set<number>();
  const prepared = new Set<number>();
  const keys = (n: number) => Array.from({ length: n }, () => random.int(1, nextKey - 1));

  const drawFaults = (): RunFaults => {
    // Runs make 25–200 store operations: k is drawn from a short range more often, so most kills land.
    const op = () => random.int(1, random.pick([40, 80, 160]));
    const timing = () => random.pick<KillTiming>(['before', 'during', 'after']);
    const aim = random.next();
    const killAt = !random.chance(0.55) ? undefined
      : aim < 0.4 ? { op: op(), timing: timing() }
        : aim < 0.75 ? { op: random.int(1, 20), timing: timing(), phase: 'commit' as const }
          : { op: random.int(1, 6), timing: timing(), phase: 'manifests' as const };
    const storeErrors = random.chance(0.3)
      ? Array.from({ length: random.int(1, 2) }, () => ({ op: op(), name: random.pick(['InternalError', 'SlowDown'] as const), after: random.chance(0.5) }))
      : [];
    const sourceErrors = random.chance(0.1) ? [random.int(1, 20)] : [];
    const dropConnectionsAfterMs = random.chance(0.15) ? random.int(50, 800) : undefined;
    const dropConnectionAtCall = random.chance(0.25) ? random.int(1, 16) : undefined;
    return { killAt, storeErrors, sourceErrors, dropConnectionsAfterMs, dropConnectionAtCall };
  };
  const addRun = (drawn: RunKind, drawnFaults: RunFaults, takeOver = killedBefore || random.chance(0.05)): void => {
    let kind = drawn;
    let faults = drawnFaults;
    const window = kind === 'window'
      ? random.chance(0.5)
        ? { fromAgoSeconds: random.int(1, 180), spanSeconds: random.int(1, 60) } // recent: overlaps rows that changed since
        : { fromAgoSeconds: random.int(60, historySeconds + 600), spanSeconds: random.int(1, DAY) }
      : undefined;
    if (!kinds.includes(kind)) kind = 'scheduled';
    // A re-run's commit rewrites the manifests of the runs it replaces, one by one: aim there often.
    if (kind !== 'scheduled' && faults.killAt && random.chance(0.5)) {
      faults = { ...faults, killAt: { op: random.int(3, 7), timing: faults.killAt.timing, phase: 'manifests' } };
    }
    steps.push({ op: 'run', run: `r${++runs}`, kind, window, takeOver, faults });
    killedBefore = faults.killAt !== undefined;
  };
  const addWriter = (): void => {
    const roll = random.next();
    if (roll < 0.25) steps.push({ op: 'insert', rows: random.int(1, 200) });
    else if (roll < 0.5) steps.push({ op: 'update', keys: keys(random.int(1, 50)), clock: random.chance(0.3) });
    else if (roll < 0.62) {
      const span = random.int(1_000, Math.min(5_000, nextKey - 1));
      const fromKey = random.int(1, Math.max(1, nextKey - span));
      steps.push({ op: 'bulk-update', fromKey, toKey: fromKey + span - 1 });
    } else if (roll < 0.74 && late.size < 3) {
      const slot = random.int(1, 3);
      if (late.has(slot)) steps.push({ op: 'late-end', slot, commit: random.chance(0.85) });
      else steps.push({ op: 'late-begin', slot, keys: keys(random.int(1, 30)), inserts: random.chance(0.5) ? random.int(1, 20) : 0 });
      if (late.has(slot)) late.delete(slot); else late.add(slot);
    } else if (roll < 0.86) {
      const slot = random.int(1, 3);
      if (prepared.has(slot)) steps.push({ op: 'prepared-end', slot, commit: random.chance(0.85) });
      else steps.push({ op: 'prepare', slot, keys: keys(random.int(1, 30)), inserts: random.chance(0.5) ? random.int(1, 20) : 0 });
      if (prepared.has(slot)) prepared.delete(slot); else prepared.add(slot);
    } else if (roll < 0.93) {
      const slot = [...late][0];
      if (slot !== undefined) { steps.push({ op: 'late-end', slot, commit: true }); late.delete(slot); }
      else steps.push({ op: 'sleep', ms: random.int(10, 400) });
    } else steps.push({ op: 'sleep', ms: random.int(10, 400) });
    if (steps.at(-1)?.op === 'insert') nextKey += (steps.at(-1) as { rows: number }).rows;
  };

  // A first plain run most of the time, so window re-runs have a watermark to work under.
  if (random.chance(0.8)) { addRun('scheduled', drawFaults(), false); steps.push({ op: 'wait' }); }
  while (steps.length < size) {
    for (let i = random.int(0, 3); i > 0; i--) addWriter();
    const roll = random.next();
    const kind: RunKind = roll < 0.6 ? 'scheduled' : roll < 0.85 ? 'window' : 'full';
    // After a kill, sometimes the operator's takeOver and the next scheduled run start together:
    // both find the dead run's work and recover it at the same time, one taking the lease from the other.
    const race = killedBefore && random.chance(0.3);
    addRun(kind, drawFaults());
    if (race) addRun('scheduled', drawFaults(), true);
    // Writers while the run is in flight, sometimes a second run at the same time.
    for (let i = random.int(0, 2); i > 0; i--) addWriter();
    if (random.chance(0.2)) addRun(random.chance(0.7) ? 'scheduled' : random.pick<RunKind>(['window', 'full']), drawFaults(), random.chance(0.1));
    steps.push({ op: 'wait' });
  }
  return { seed, store, initialRows, pageRows, historySeconds, steps };
}

/** One line per step, for the failure report and the findings file. */
export function describeStep(step: Step): string {
  switch (step.op) {
    case 'insert': return `insert ${step.rows} new keys`;
    case 'update': return `update ${step.keys.length} keys (${step.keys.slice(0, 5).join(',')}${step.keys.length > 5 ? ',…' : ''})${step.clock ? ' with updated_at = clock_timestamp()' : ''}`;
    case 'bulk-update': return `bulk update keys ${step.fromKey}..${step.toKey} in one statement (one updated_at)`;
    case 'late-begin': return `late #${step.slot}: BEGIN; update ${step.keys.length} keys${step.inserts ? `, insert ${step.inserts} new keys` : ''} with updated_at = now(); hold open`;
    case 'late-end': return `late #${step.slot}: ${step.commit ? 'COMMIT' : 'ROLLBACK'}`;
    case 'prepare': return `prepared #${step.slot}: BEGIN; update ${step.keys.length} keys${step.inserts ? `, insert ${step.inserts} new keys` : ''}; PREPARE TRANSACTION`;
    case 'prepared-end': return `prepared #${step.slot}: ${step.commit ? 'COMMIT PREPARED' : 'ROLLBACK PREPARED'}`;
    case 'wait': return 'wait for every run in flight';
    case 'sleep': return `sleep ${step.ms} ms`;
    case 'sabotage': return `sabotage: ${step.what}`;
    case 'run': {
      const f = step.faults;
      const faults = [
        f.killAt ? `SIGKILL ${f.killAt.timing} store op ${f.killAt.op}${f.killAt.phase === 'commit' ? ' of the commit phase' : f.killAt.phase === 'manifests' ? ' on a run manifest' : ''}` : '',
        ...f.storeErrors.map((e) => `${e.name} ${e.after ? 'after' : 'at'} store op ${e.op}`),
        ...f.sourceErrors.map((n) => `ECONNRESET at source call ${n}`),
        f.dropConnectionsAfterMs !== undefined ? `pg_terminate_backend after ${f.dropConnectionsAfterMs} ms` : '',
        f.dropConnectionAtCall !== undefined ? `pg_terminate_backend during source call ${f.dropConnectionAtCall}` : '',
      ].filter(Boolean);
      const window = step.window ? ` window from now-${step.window.fromAgoSeconds}s for ${step.window.spanSeconds}s` : '';
      return `run ${step.run} (start, in background): ${step.kind}${window}${step.takeOver ? ' takeOver' : ''}${faults.length ? ` — faults: ${faults.join('; ')}` : ''}`;
    }
  }
}
