// Where the columns.hash salt must be: Plan passes a deployed config that names the secret Export reads; a local run without LAKE_HASH_SALT fails the table at Plan.
import { afterAll, expect, it } from 'vitest';
import { runExport } from '../../bin/local/run-export.ts';
import { planRun } from '../../lambdas/core/protocol/plan.ts';
import { releaseLease } from '../../lambdas/core/protocol/lease.ts';
import { createDatabase, createLake, exportDeps, stopPostgres, testConfig } from '../support/local-stack.ts';

afterAll(stopPostgres);

const deploySource = {
  secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf', vpcId: 'vpc-1', securityGroupId: 'sg-1',
  hashSaltSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:salt-AbCdEf',
};

it('Plan without the salt passes a hashing table when the config names the secret Export reads (deployed); a local run of that config without LAKE_HASH_SALT fails it at Plan', async () => {
  const db = await createDatabase();
  await db.query(`CREATE TABLE members (id int PRIMARY KEY, email text, updated_at timestamptz NOT NULL DEFAULT '2024-02-01'); INSERT INTO members (id, email) VALUES (1, 'a@b')`);
  const lake = createLake();
  const config = testConfig([{ name: 'members', columns: { hash: ['email'] } }], { source: deploySource });
  const deps = exportDeps(db, lake.store, config);
  try {
    // The deployed Plan step is given no salt (only Export reads its secret).
    const plan = await planRun(deps, {}, new Date('2024-03-01T00:00:00Z'));
    expect([plan.tables.map((t) => t.table), plan.failed]).toEqual([['members'], []]);
    await releaseLease(deps, 'members', plan.runId);
    // In one process there is no secret to read: the table fails at Plan, nothing written.
    expect((await runExport(deps)).tables).toMatchObject([{ table: 'members', status: 'failed', error: 'ConfigError: public.members: columns.hash needs a salt: set LAKE_HASH_SALT (locally) or source.hashSaltSecretArn (deployed)' }]);
  } finally {
    await deps.close();
    await db.close();
  }
});
