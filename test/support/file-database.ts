// The set-up most test files share: one database for the file, and a whole export run.
import { afterAll, beforeAll } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { createDatabase, exportDeps, stopPostgres, type TestDatabase, type TestLake } from './local-stack.ts';

/**
 * The test file's database: created before its first test, closed (and the embedded server
 * stopped) after its last. Use it inside tests and hooks.
 */
export function fileDatabase(): TestDatabase {
  let db: TestDatabase | null = null;
  beforeAll(async () => {
    db = await createDatabase();
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    await stopPostgres();
  });
  const open = (): TestDatabase => {
    if (!db) throw new Error('the test database is not open yet: use it inside a test or a hook');
    return db;
  };
  return {
    get url() { return open().url; },
    query: (sql, params) => open().query(sql, params),
    connect: () => open().connect(),
    close: () => open().close(),
  };
}

/** A whole export run in this process (Plan, Export, Commit): each table's status, or its error. */
export async function exportStatuses(db: TestDatabase, lake: TestLake, config: LakeConfig, request: RunRequest = {}): Promise<string[]> {
  const deps = exportDeps(db, lake.store, config);
  try {
    return (await runExport(deps, request)).tables.map((t) => t.error ?? t.status);
  } finally {
    await deps.close();
  }
}
