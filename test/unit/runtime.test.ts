// The two composition roots the handlers are built over: the deployed one (config from the
// bundle, S3 bucket from the environment, Glue database from the config) and the local one
// (DATABASE_URL, a directory or S3 lake). No AWS call is made: building the parts sends nothing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { localStepRuntime, openLocalLake } from '../../bin/local/local-runtime.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { S3Store } from '../../lambdas/adapters/s3-store.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { ConfigError } from '../../lambdas/core/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'runtime-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = validateConfig({ lake: { prefix: 'raw' }, tables: [{ name: 'public.orders' }] });

describe('the deployed runtime', () => {
  it('reads the bundled config and takes the Glue database from it, refusing a config without one', async () => {
    const { awsRuntime } = await import('../../lambdas/adapters/aws-runtime.ts');
    const file = join(dir, 'lake.config.json');
    Object.assign(process.env, { LAKE_CONFIG_FILE: file, LAKE_BUCKET: 'lake-bucket-1' });
    writeFileSync(file, JSON.stringify(config));
    expect(() => awsRuntime.lakeDeps()).toThrow(new ConfigError('lake.glueDatabase is not set in LAKE_CONFIG_FILE (the stack always writes it)'));
    writeFileSync(file, JSON.stringify({ ...config, lake: { ...config.lake, glueDatabase: 'sales_lake' } }));
    const deps = awsRuntime.lakeDeps();
    expect(deps.store).toBeInstanceOf(S3Store);
    expect(deps.store.url).toBe('s3://lake-bucket-1/');
    expect(deps.config.lake.glueDatabase).toBe('sales_lake');
    // Summarize and Validate write no catalog (and are not granted Glue).
    expect(deps.registry).toBeUndefined();
    // Read once per container: a later change of the file is not seen.
    writeFileSync(file, 'not json');
    expect(awsRuntime.lakeDeps()).toBe(deps);
  });
});

describe('the local runtime', () => {
  it('opens a directory lake for file:// and an S3 bucket otherwise', () => {
    const lake = pathToFileURL(join(dir, 'lake')).href;
    expect(openLocalLake(lake)).toBeInstanceOf(DirectoryStore);
    expect(openLocalLake('local-bucket').url).toBe('s3://local-bucket/');
    const deps = localStepRuntime({ config, lake }).lakeDeps();
    expect(deps.config).toBe(config);
    expect(deps.store).toBeInstanceOf(DirectoryStore);
    expect(deps.store.url.replace(/\/$/, '')).toBe(lake);
  });

  it('names DATABASE_URL when a step that reads the database has none', async () => {
    const runtime = localStepRuntime({ config, lake: pathToFileURL(join(dir, 'lake')).href });
    await expect(runtime.withDeps(async () => 'never')).rejects.toThrow(new ConfigError('DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db'));
  });

  it('gives every step the salt it was given, and none without one', async () => {
    const lake = pathToFileURL(join(dir, 'lake')).href;
    const databaseUrl = 'postgres://nobody@127.0.0.1:1/none';
    // withDeps opens no connection until the work asks the source for something.
    expect(await localStepRuntime({ config, lake, databaseUrl, hashSalt: 's' }).withDeps(async (deps) => deps.hashSalt)).toBe('s');
    expect(await localStepRuntime({ config, lake, databaseUrl }).withDeps(async (deps) => deps.hashSalt)).toBeUndefined();
  });
});
