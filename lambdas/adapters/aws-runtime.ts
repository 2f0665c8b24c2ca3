// What every handler shares, built once per container at module scope: the validated config,
// the S3 lake, the database credentials (from Secrets Manager), the logger and metrics.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GlueClient } from '@aws-sdk/client-glue';
import type { ClientConfig } from 'pg';
import { z } from 'zod';
import { validateConfig, type LakeConfig } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import type { ExportDeps, LakeDeps } from '../core/protocol/run-model.ts';
import { GlueRegistry } from './glue-registry.ts';
import { PostgresSource } from './postgres-source.ts';
import { createS3Client, S3Store } from './s3-store.ts';
import { DirectoryStore } from './directory-store.ts';
import type { ObjectStore } from '../core/ports.ts';

export const logger = new Logger();
export const metrics = new Metrics();

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new ConfigError(`environment variable ${name} is not set`);
  return value;
}

/**
 * The validated config ships inside the bundle (the environment is limited to 4 KB, about 20
 * tables): LAKE_CONFIG_FILE names it, relative to the function's code directory. The local
 * runner points it at a file of its own.
 */
export function loadConfig(): LakeConfig {
  const path = resolve(process.env.LAMBDA_TASK_ROOT ?? process.cwd(), requireEnv('LAKE_CONFIG_FILE'));
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`LAKE_CONFIG_FILE ${path} cannot be read: ${(error as Error).message}`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`LAKE_CONFIG_FILE ${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  return validateConfig(raw, path);
}

export const config = loadConfig();
const bucket = requireEnv('LAKE_BUCKET');
// LAKE_URL exists for the local workflow runner (demo, e2e tests): a file:// lake instead of S3.
const store: ObjectStore = process.env.LAKE_URL?.startsWith('file://') ? new DirectoryStore(process.env.LAKE_URL) : new S3Store(createS3Client(), bucket);
const glueDatabase = process.env.GLUE_DATABASE;
const registry = glueDatabase ? new GlueRegistry(new GlueClient({}), glueDatabase, bucket, config) : undefined;

// The RDS-managed secret's shape (host, port, dbname, username, password).
const secretSchema = z.object({
  host: z.string(),
  port: z.coerce.number().int().default(5432),
  dbname: z.string().optional(),
  username: z.string(),
  password: z.string(),
});

const secrets = new SecretsManagerClient({});
const log: ExportDeps['log'] = (message, fields) => logger.info(message, { ...fields });

/** Compute once per container; a failure is forgotten so the next invocation tries again. */
function once<T>(compute: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | null = null;
  return () => {
    value ??= compute();
    value.catch(() => { value = null; });
    return value;
  };
}

async function secretString(arn: string, what: string): Promise<string> {
  const result = await secrets.send(new GetSecretValueCommand({ SecretId: arn }));
  if (!result.SecretString) throw new ConfigError(`secret ${arn} (${what}) has no SecretString`);
  return result.SecretString;
}

/**
 * Database connection settings: from the Secrets Manager secret in Lambda, TLS verified
 * against the RDS CA bundle (NODE_EXTRA_CA_CERTS). DATABASE_URL exists for the local runner only.
 */
const connectionSettings = once(async (): Promise<string | ClientConfig> => {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const secretArn = requireEnv('DB_SECRET_ARN');
  const parsed = secretSchema.safeParse(JSON.parse(await secretString(secretArn, 'database login')));
  if (!parsed.success) throw new ConfigError(`secret ${secretArn} lacks ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
  const s = parsed.data;
  return { host: s.host, port: s.port, database: s.dbname ?? 'postgres', user: s.username, password: s.password, ssl: { rejectUnauthorized: true } };
});

/** The salt of columns.hash: from its own secret when deployed, LAKE_HASH_SALT for local runs. */
const hashSalt = once(async (): Promise<string | undefined> => {
  if (process.env.LAKE_HASH_SALT) return process.env.LAKE_HASH_SALT;
  const arn = process.env.HASH_SALT_SECRET_ARN;
  return arn ? secretString(arn, 'columns.hash salt') : undefined;
});

/**
 * Run `work` with fresh deps (one database session per invocation, closed after). Only the step
 * that hashes (`readsHashSalt`, Export) reads the salt; the others only know one is configured.
 */
export async function withDeps<T>(work: (deps: ExportDeps) => Promise<T>, options: { readsHashSalt?: boolean } = {}): Promise<T> {
  const source = new PostgresSource(await connectionSettings());
  try {
    const salt = options.readsHashSalt ? await hashSalt() : undefined;
    const deferred = !options.readsHashSalt && Boolean(process.env.HASH_SALT_SECRET_ARN || process.env.LAKE_HASH_SALT);
    return await work({ source, store, config, registry, hashSalt: salt, hashSaltDeferred: deferred, log });
  } finally {
    await source.close();
  }
}

/** Deps for steps that never touch the database (summarize). */
export const lakeDeps: LakeDeps = { store, config, log };
