// Breaker (HG): a compaction on an S3 lake (the production S3 adapter and client against the
// local S3 API server, with S3's conditional writes enforced) SIGKILLed at each of its steps
// (compact-break-s3-child.ts) — after taking the lease, half-way through deleting the previous
// generation (graceMinutes 0), after its plan, after its first journal, mid-build, around the
// switch, after the schema, manifest and retired list, half-way through deleting the old
// manifests and its journals, before giving the lease back — then recovered by the next
// compaction or the next export run. Readers (the local views over a copy of the S3 lake) see
// the same history before and after, then after one more run and compaction: every version once,
// `<table>_current` equal to Postgres, the live folder exactly the manifests' files.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { S3Store, createS3Client } from '../../lambdas/adapters/s3-store.ts';
import { validateConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { compactTable } from '../../lambdas/core/protocol/compact.ts';
import { startS3Server, type LocalS3Server } from '../support/s3-server.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { checkReaders, readerView } from './compact-break-checks.ts';
import { S3_CRASH_POINTS } from './compact-break-s3-child.ts';

const CHILD = path.resolve(import.meta.dirname, 'compact-break-s3-child.ts');
const execute = promisify(execFile);
const BUCKET = 'compact-break';

let db: TestDatabase;
let s3: LocalS3Server;
let store: S3Store;
beforeAll(async () => {
  db = await createDatabase();
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: s3.address, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  store = new S3Store(createS3Client(), BUCKET);
}, 120_000);
afterAll(async () => {
  await s3?.stop();
  await db?.close();
  await stopPostgres();
});

const rawConfig = (name: string) => ({ export: { pageRows: 60, safetyLagSeconds: 0 }, compaction: { minFiles: 2, graceMinutes: 0 }, tables: [{ name }] });
const configOf = (name: string): LakeConfig => validateConfig(rawConfig(name), 'test config');

async function exportRun(name: string, request: object = {}): Promise<void> {
  const deps = exportDeps(db, store, configOf(name));
  try {
    const outcome = await runExport(deps, request);
    expect(outcome.tables.map((t) => t.error ?? t.status)).toEqual(['succeeded']);
  } finally {
    await deps.close();
  }
}

async function touch(name: string, where: string): Promise<void> {
  await db.query(`UPDATE ${name} SET payload = 'v' || clock_timestamp()::text, updated_at = clock_timestamp() WHERE ${where}`);
}

/** The table's part of the S3 lake (data and state), copied into a directory for the local views. */
async function copyOf(name: string): Promise<TestLake> {
  const lake = createLake();
  for (const key of [...await store.list(`raw/${name}/`), ...await store.list(`raw/_state/${name}/`)]) {
    const file = path.join(lake.dir, key);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, (await store.get(key))!.body);
  }
  return lake;
}

async function withCopy<T>(name: string, work: (lake: TestLake) => Promise<T>): Promise<T> {
  const lake = await copyOf(name);
  try {
    return await work(lake);
  } finally {
    lake.remove();
  }
}

describe('a compaction on an S3 lake killed at every step converges', () => {
  it.each(S3_CRASH_POINTS.flatMap((point) => [[point, 'compact'], [point, 'export']] as const))('killed %s, recovered by the next %s', async (point, recovery) => {
    const name = `s3c_${point.replaceAll('-', '_')}_${recovery}`;
    const config = configOf(name);
    await db.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text, updated_at timestamptz NOT NULL);
      INSERT INTO ${name} SELECT g, 'v1-' || g, timestamptz '2024-03-01 00:00:00+00' + ((g - 1) / 100) * interval '1 day' FROM generate_series(1, 300) g`);
    await exportRun(name);
    for (const slice of [0, 1]) await touch(name, `id % 5 = ${slice}`), await exportRun(name);
    // A first generation (its predecessor retired), then a run into it.
    expect((await compactTable({ store, config }, name, { force: true })).status).toBe('compacted');
    await touch(name, 'id % 5 = 2');
    await exportRun(name);
    const seen = new Set<string>();
    const before = await withCopy(name, (lake) => checkReaders(db, lake, config, name, 'before the kill', { seenVersions: seen }));

    const child = await execute(process.execPath, [CHILD, s3.address, BUCKET, JSON.stringify(rawConfig(name)), name, point]).then(
      (r) => ({ killed: false, stdout: r.stdout }),
      (e: { signal?: string; stdout: string; stderr: string }) => ({ killed: e.signal === 'SIGKILL', stdout: `${e.stdout}${e.stderr}` }),
    );
    expect(child, `the child died at ${point}`).toEqual({ killed: true, stdout: '' });
    // Between the kill and the recovery, readers see the state before or after the switch, whole.
    const between = await withCopy(name, (lake) => readerView(config, lake, name));
    expect({ duplicates: between.duplicates, current: between.current, versions: between.versions }, `${point}: readers between the kill and the recovery`).toEqual({ duplicates: [], current: before.current, versions: before.versions });

    if (recovery === 'compact') {
      const result = await compactTable({ store, config }, name, { takeOver: true });
      expect(result.status, JSON.stringify(result)).toMatch(/compacted|skipped/);
    } else {
      await exportRun(name, { takeOver: true });
    }
    expect(await withCopy(name, (lake) => checkReaders(db, lake, config, name, `${point}: recovered by ${recovery}`, { seenVersions: seen }))).toEqual(before);
    await touch(name, 'id % 7 = 0');
    await exportRun(name);
    expect((await compactTable({ store, config }, name, { force: true })).status).toBe('compacted');
    await withCopy(name, (lake) => checkReaders(db, lake, config, name, `${point}: after the next run and compaction`, { seenVersions: seen }));
  }, 120_000);
});
