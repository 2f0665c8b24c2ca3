// The local composition root: the same handlers as deployed, given this machine's parts — the
// database of DATABASE_URL, a directory lake (file://…) or an S3 bucket (AWS_ENDPOINT_URL_S3
// applies), and the columns.hash salt of LAKE_HASH_SALT. No Glue: local queries build their
// views from the lake's own schema (bin/local/lake-query.ts).
// Types only: the handlers' logger reads its environment when its module loads, which the
// workflow runner sets first.
import type { StepRuntime } from '../../lambdas/adapters/aws-runtime.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { createS3Client, S3Store } from '../../lambdas/adapters/s3-store.ts';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { ConfigError } from '../../lambdas/core/errors.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import type { ExportDeps, LakeDeps } from '../../lambdas/core/protocol/run-model.ts';

export interface LocalRuntimeOptions {
  readonly config: LakeConfig;
  /** postgres://…; needed by the steps that read the database (Plan, Export, Commit). */
  readonly databaseUrl?: string;
  /** `file:///…` for a directory lake; otherwise the S3 bucket name. */
  readonly lake: string;
  /** Salt of columns.hash; every step may have it on this machine (no secret to keep from Plan). */
  readonly hashSalt?: string;
  /** Progress and warning events (the handlers' logger). @default - none */
  readonly log?: ExportDeps['log'];
}

/** The lake a local run writes: a directory for `file://…`, otherwise the named S3 bucket. */
export function openLocalLake(lake: string): ObjectStore {
  return lake.startsWith('file://') ? new DirectoryStore(lake) : new S3Store(createS3Client(), lake);
}

export function localStepRuntime(options: LocalRuntimeOptions): StepRuntime {
  const lakeDeps: LakeDeps = { store: openLocalLake(options.lake), config: options.config, ...(options.log ? { log: options.log } : {}) };
  return {
    async withDeps(work) {
      if (!options.databaseUrl) throw new ConfigError('DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db');
      const source = new PostgresSource(options.databaseUrl);
      try {
        return await work({ ...lakeDeps, source, ...(options.hashSalt ? { hashSalt: options.hashSalt } : {}) });
      } finally {
        await source.close();
      }
    },
    lakeDeps: () => lakeDeps,
  };
}
