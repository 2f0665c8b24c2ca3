// The Lambdas' composition root: what every handler is given when deployed — the config shipped
// in the bundle, the S3 lake, the Glue catalog, the database login and the columns.hash salt from
// Secrets Manager — built once per container, on first use. Which step reads which secret is
// decided here, nowhere else. The local workflow runner gives the same handlers its own
// runtime (bin/local/local-runtime.ts: DATABASE_URL, a directory or S3 lake, LAKE_HASH_SALT).
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

export const logger = new Logger();
export const metrics = new Metrics();

/** What a handler needs from where it runs; the handlers are built over one (`<step>Handler(runtime)`). */
export interface StepRuntime {
  /**
   * Run `work` with fresh deps: one database session per invocation, closed after. Only the
   * step that encodes pages (`readsHashSalt`: Export) is given the columns.hash salt.
   */
  withDeps<T>(work: (deps: ExportDeps) => Promise<T>, options?: { readonly readsHashSalt?: boolean }): Promise<T>;
  /**
   * Deps of the steps that never touch the database (Summarize, Validate, Compact). Only the step
   * that switches a table's location (`registersTables`: Compact) is given the catalog.
   */
  lakeDeps(options?: { readonly registersTables?: boolean }): LakeDeps;
}

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new ConfigError(`environment variable ${name} is not set`);
  return value;
}

/**
 * The validated config ships inside the bundle (the environment is limited to 4 KB, about 20
 * tables): LAKE_CONFIG_FILE names it, relative to the function's code directory.
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

/** Database login from the Secrets Manager secret, TLS verified against the RDS CA bundle (NODE_EXTRA_CA_CERTS). */
const connectionSettings = once(async (): Promise<ClientConfig> => {
  const secretArn = requireEnv('DB_SECRET_ARN');
  const parsed = secretSchema.safeParse(JSON.parse(await secretString(secretArn, 'database login')));
  if (!parsed.success) throw new ConfigError(`secret ${secretArn} lacks ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
  const s = parsed.data;
  return { host: s.host, port: s.port, database: s.dbname ?? 'postgres', user: s.username, password: s.password, ssl: { rejectUnauthorized: true } };
});

/** The salt of columns.hash, from its own secret (granted to Export only); none when the config hashes nothing. */
const hashSalt = once(async (): Promise<string | undefined> => {
  const arn = process.env.HASH_SALT_SECRET_ARN;
  return arn ? secretString(arn, 'columns.hash salt') : undefined;
});

interface Container {
  /** Without the catalog: Summarize and Validate do not write Glue (and are not granted it). */
  readonly lakeDeps: LakeDeps;
  readonly registry: GlueRegistry;
}

let container: Container | null = null;

/** Config, lake and catalog of this container, read on first use (a bad config fails that invocation, by key). */
function awsContainer(): Container {
  if (container) return container;
  const config = loadConfig();
  const bucket = requireEnv('LAKE_BUCKET');
  // The stack writes the Glue database's name into the bundled config (its own default included).
  const database = config.lake.glueDatabase;
  if (!database) throw new ConfigError('lake.glueDatabase is not set in LAKE_CONFIG_FILE (the stack always writes it)');
  const registry = new GlueRegistry(new GlueClient({}), database, bucket, config);
  container = { lakeDeps: { store: new S3Store(createS3Client(), bucket), config, log }, registry };
  return container;
}

/** The deployed runtime: S3, Glue, Secrets Manager. */
export const awsRuntime: StepRuntime = {
  async withDeps(work, options = {}) {
    const { lakeDeps, registry } = awsContainer();
    const source = new PostgresSource(await connectionSettings());
    try {
      const salt = options.readsHashSalt ? await hashSalt() : undefined;
      return await work({ ...lakeDeps, registry, source, ...(salt === undefined ? {} : { hashSalt: salt }) });
    } finally {
      await source.close();
    }
  },
  lakeDeps(options = {}) {
    const { lakeDeps, registry } = awsContainer();
    return options.registersTables ? { ...lakeDeps, registry } : lakeDeps;
  },
};
