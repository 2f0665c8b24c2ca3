// What every handler shares, built once per container at module scope: the validated config,
// the S3 lake, the database credentials (from Secrets Manager), the logger and metrics.
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GlueClient } from '@aws-sdk/client-glue';
import type { ClientConfig } from 'pg';
import { z } from 'zod';
import { validateConfig, type LakeConfig } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import type { ExportDeps, LakeDeps } from '../core/exporter.ts';
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

function loadConfig(): LakeConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(requireEnv('LAKE_CONFIG'));
  } catch (error) {
    throw new ConfigError(`LAKE_CONFIG is not valid JSON: ${(error as Error).message}`);
  }
  return validateConfig(raw, 'LAKE_CONFIG');
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

let connection: Promise<string | ClientConfig> | null = null;

/**
 * Database connection settings: from the Secrets Manager secret in Lambda, TLS verified
 * against the RDS CA bundle (NODE_EXTRA_CA_CERTS). DATABASE_URL exists for the local runner only.
 */
function connectionSettings(): Promise<string | ClientConfig> {
  connection ??= (async () => {
    if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
    const secretArn = requireEnv('DB_SECRET_ARN');
    const result = await new SecretsManagerClient({}).send(new GetSecretValueCommand({ SecretId: secretArn }));
    const parsed = secretSchema.safeParse(JSON.parse(result.SecretString ?? '{}'));
    if (!parsed.success) throw new ConfigError(`secret ${secretArn} lacks ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
    const s = parsed.data;
    return { host: s.host, port: s.port, database: s.dbname ?? 'postgres', user: s.username, password: s.password, ssl: { rejectUnauthorized: true } };
  })();
  connection.catch(() => { connection = null; });
  return connection;
}

let salt: Promise<string | undefined> | null = null;

/** The salt of columns.hash: from its own secret when deployed, LAKE_HASH_SALT for local runs. */
function hashSalt(): Promise<string | undefined> {
  salt ??= (async () => {
    if (process.env.LAKE_HASH_SALT) return process.env.LAKE_HASH_SALT;
    const arn = process.env.HASH_SALT_SECRET_ARN;
    if (!arn) return undefined;
    const result = await new SecretsManagerClient({}).send(new GetSecretValueCommand({ SecretId: arn }));
    if (!result.SecretString) throw new ConfigError(`secret ${arn} (columns.hash salt) has no SecretString`);
    return result.SecretString;
  })();
  salt.catch(() => { salt = null; });
  return salt;
}

/**
 * Run `work` with fresh deps (one database session per invocation, closed after). Only the step
 * that hashes (`readsHashSalt`, Export) reads the salt; the others only know one is configured.
 */
export async function withDeps<T>(work: (deps: ExportDeps) => Promise<T>, options: { readsHashSalt?: boolean } = {}): Promise<T> {
  const source = new PostgresSource(await connectionSettings());
  try {
    const salt = options.readsHashSalt ? await hashSalt() : undefined;
    const deferred = !options.readsHashSalt && Boolean(process.env.HASH_SALT_SECRET_ARN || process.env.LAKE_HASH_SALT);
    return await work({ source, store, config, registry, hashSalt: salt, hashSaltDeferred: deferred, log: (message, fields) => logger.info(message, { ...fields }) });
  } finally {
    await source.close();
  }
}

/** Deps for steps that never touch the database (summarize). */
export const lakeDeps: LakeDeps = { store, config, log: (message, fields) => logger.info(message, { ...fields }) };
