// Breaker (HG): seeded random interleavings of exports, window and full re-runs, compactions
// (by thresholds or forced, day → month → year), deletes (deletes.detect) and soft deletes, each
// operation killed at a random store operation (the store dies: every later call fails, so no
// cleanup runs, as after SIGKILL) with probability 1/3; a killed holder's lease is then expired
// (time passing). Every few steps a clean scheduled run, then the readers' check
// (compact-break-checks.ts): no version twice, none of Postgres's or of those seen before
// missing, `<table>_current` equal to Postgres, the live folder exactly the manifests' files.
// Seeds: HG_SEEDS=1,2,3 (default below); steps: HG_STEPS. The same on an S3 lake (the production
// S3 adapter against the local S3 API server, conditional writes enforced; HG_S3_SEEDS), without
// delete detection (DuckDB cannot read the S3 lake offline) and so without hard deletes; its
// checks read a copy of the table's objects.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeQuery } from '../../bin/local/lake-query.ts';
import { runExport } from '../../bin/local/run-export.ts';
import type { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import type { ObjectStore, QueryEngine } from '../../lambdas/core/ports.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import { TableState, type Lease } from '../../lambdas/core/protocol/table-state.ts';
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { checkReaders } from './compact-break-checks.ts';
import { random } from '../fuzz/random.ts';

const seedsOf = (list: string): number[] => list.split(',').filter((s) => s.trim() !== '').map(Number);
const SEEDS = seedsOf(process.env.HG_SEEDS ?? '11,12,13');
const S3_SEEDS = seedsOf(process.env.HG_S3_SEEDS ?? '21');
const STEPS = Number(process.env.HG_STEPS ?? 18);
const GRANULARITIES = ['day', 'month', 'year'] as const;

const BUCKET = 'compact-break-random';
let db: TestDatabase;
let s3: LocalS3Server;
let s3Store: S3Store;
beforeAll(async () => {
  db = await createDatabase();
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  s3Store = new S3Store(createS3Client(), BUCKET);
}, 120_000);
afterAll(async () => {
  await s3?.stop();
  await db?.close();
  await stopPostgres();
});

/** The table's objects on the S3 lake copied into a directory lake, for the local views. */
async function copyOf(store: ObjectStore, table: string): Promise<TestLake> {
  const copy = createLake();
  for (const key of [...await store.list(`raw/${table}/`), ...await store.list(`raw/_state/${table}/`)]) {
    const file = path.join(copy.dir, key);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, (await store.get(key))!.body);
  }
  return copy;
}

class Killed extends Error {}

/** The store of a process that dies at its `after`-th write: every call after fails, nothing is tidied. */
function mortalStore(inner: ObjectStore, after: number): ObjectStore {
  let writes = 0;
  let dead = false;
  const alive = () => {
    if (dead) throw new Killed('killed');
  };
  const write = () => {
    alive();
    if (++writes >= after) {
      dead = true;
      throw new Killed('killed');
    }
  };
  return {
    url: inner.url,
    async put(key, body, options) { write(); return inner.put(key, body, options); },
    async get(key) { alive(); return inner.get(key); },
    async list(prefix) { alive(); return inner.list(prefix); },
    async delete(keys) {
      write();
      // A batch delete killed half-way.
      if (keys.length > 1 && writes + 1 >= after) {
        await inner.delete(keys.slice(0, keys.length >> 1));
        dead = true;
        throw new Killed('killed');
      }
      return inner.delete(keys);
    },
    async deleteIf(key, etag) { write(); return inner.deleteIf(key, etag); },
    async move(from, to) { write(); return inner.move(from, to); },
  };
}

/** DuckDB over the lake, opened at detection's first query (as the runner gives Athena's stand-in). */
function lazyEngine(config: LakeConfig, store: DirectoryStore): QueryEngine {
  let opened: Promise<QueryEngine> | null = null;
  return {
    description: 'duckdb (lazy)',
    query: async (sql) => (await (opened ??= LakeQuery.open(config, store).then((q) => q.engine()))).query(sql),
    close: async () => { await (await opened?.catch(() => null))?.close(); },
  };
}

async function expireLease(store: ObjectStore, table: string): Promise<void> {
  const state = new TableState(store, 'raw', table);
  const lease = await state.read<Lease>(state.leaseKey());
  if (lease) await state.write(state.leaseKey(), { ...lease.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
}

const CASES = [...SEEDS.map((seed) => ['directory', seed] as const), ...S3_SEEDS.map((seed) => ['s3', seed] as const)];

describe('random interleavings of exports, re-runs and compactions, killed at random', () => {
  it.each(CASES)('%s lake, seed %i', async (kind, seed) => {
    const rand = random(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const table = `rnd_${kind === 's3' ? 's3_' : ''}${seed}`;
    const lake = createLake();
    const base: ObjectStore = kind === 's3' ? s3Store : lake.store;
    const detect = kind === 'directory';
    let granularity = 0;
    const configOf = (): LakeConfig => testConfig([{ name: table, softDeleteColumn: 'gone', ...(detect ? { deletes: { detect: true } } : {}), partition: { granularity: GRANULARITIES[granularity] } }], {
      export: { pageRows: 40, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: pick([0, 60]) },
    });
    const log: string[] = [];
    let nextId = 401;
    const run = async (store: ObjectStore, request: RunRequest): Promise<string> => {
      const config = configOf();
      const engine = lazyEngine(config, lake.store);
      const deps = { ...exportDeps(db, store, config), ...(detect ? { engine } : {}) };
      try {
        const outcome = await runExport(deps, { ...request, takeOver: false });
        return outcome.tables.map((t) => t.error ? `${t.status}: ${t.error.slice(0, 120)}` : t.status).join(',');
      } finally {
        await deps.close();
        await engine.close();
      }
    };
    const seen = new Set<string>();
    try {
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, payload text, gone boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL);
        INSERT INTO ${table} SELECT g, 'v0-' || g, false, timestamptz '2024-01-01 00:00:00+00' + (g * 7) * interval '1 hour' FROM generate_series(1, 400) g`);
      expect(await run(base, {})).toBe('succeeded');
      for (let step = 1; step <= STEPS; step++) {
        // Postgres changes.
        const change = pick(['update', 'update', detect ? 'delete' : 'soft', 'insert', 'soft', 'none'] as const);
        if (change === 'update') await db.query(`UPDATE ${table} SET payload = 'u${step}', updated_at = clock_timestamp() WHERE id % ${2 + Math.floor(rand() * 9)} = 0`);
        if (change === 'delete') await db.query(`DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} ORDER BY md5(id::text || '${seed}-${step}') LIMIT ${1 + Math.floor(rand() * 12)})`);
        if (change === 'insert') await db.query(`INSERT INTO ${table} SELECT g, 'i${step}', false, clock_timestamp() FROM generate_series(${nextId}, ${nextId + 9}) g`), nextId += 10;
        if (change === 'soft') await db.query(`UPDATE ${table} SET gone = NOT gone, updated_at = clock_timestamp() WHERE id % ${5 + Math.floor(rand() * 9)} = 2`);
        // An operation, killed at a random write one time in three.
        const op = pick(['export', 'export', 'window', 'full', 'compact', 'compact-force', 'compact-coarser'] as const);
        if (op === 'compact-coarser' && granularity < 2) granularity++;
        const kill = rand() < 1 / 3;
        const store = kill ? mortalStore(base, 1 + Math.floor(rand() * 40)) : base;
        let outcome: string;
        try {
          if (op.startsWith('compact')) {
            const result = await compactTable({ store, config: configOf() }, table, { force: op !== 'compact' });
            outcome = `${result.status}${result.status === 'skipped' ? ` (${result.reason.slice(0, 60)})` : ''}`;
          } else if (op === 'window') {
            const from = `2024-0${1 + Math.floor(rand() * 3)}-${String(1 + Math.floor(rand() * 27)).padStart(2, '0')} 00:00:00+00`;
            outcome = await run(store, { window: { from, to: `${from.slice(0, 8)}28 00:00:00+00` } });
          } else {
            outcome = await run(store, op === 'full' ? { full: true } : {});
          }
        } catch (error) {
          outcome = error instanceof Killed || (error instanceof Error && /killed/.test(error.message)) ? 'killed' : `threw ${String(error).slice(0, 160)}`;
        }
        if (kill) await expireLease(base, table);
        log.push(`step ${step}: ${change}, ${op}${kill ? ' (kill armed)' : ''} [${GRANULARITIES[granularity]}] → ${outcome}`);
        if (!kill) expect(outcome, log.join('\n')).not.toMatch(/^threw|failed/);
        if (step % 3 === 0 || step === STEPS) {
          // A clean scheduled run with a change (so detection runs), then the readers' check.
          await db.query(`UPDATE ${table} SET payload = 'c${step}', updated_at = clock_timestamp() WHERE id = (SELECT min(id) FROM ${table})`);
          const clean = await run(base, {});
          log.push(`step ${step}: checkpoint run → ${clean}`);
          expect(clean, log.join('\n')).toBe('succeeded');
          const read = kind === 's3' ? await copyOf(base, table) : lake;
          try {
            await checkReaders(db, read, configOf(), table, `${kind} seed ${seed} step ${step}`, { softDelete: 'gone', seenVersions: seen, noOrphans: true });
          } catch (error) {
            console.log(log.join('\n'));
            throw error;
          } finally {
            if (read !== lake) read.remove();
          }
        }
      }
      console.log(`${kind} seed ${seed}:\n${log.join('\n')}`);
    } finally {
      lake.remove();
    }
  }, 600_000);
});
