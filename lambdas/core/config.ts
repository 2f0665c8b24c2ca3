// lake.config.yaml: read once, validated with one schema at synth time and at run time.
// Unknown keys are errors (a typo must not silently fall back to a default), and every problem
// is reported at once, each with its key path.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isTimeZone } from './cursor-zone.ts';
import { ConfigError } from './errors.ts';
import { displayName, parseQualifiedName, type QualifiedName } from './identifiers.ts';
import { GRANULARITIES, lakeTableName } from './lake/keys.ts';

const identifier = z.string().min(1, 'must not be empty');
const TIME_ZONE_MESSAGE = 'must be an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)';
/** A Glue database name Athena reads without quoting: lower case, letters, digits and `_`, 1–255 bytes. */
export const GLUE_DATABASE_NAME = /^[a-z][a-z0-9_]{0,254}$/;
const GLUE_DATABASE_MESSAGE = 'must be 1–255 lower-case letters, digits or "_", starting with a letter (Glue and Athena naming rules)';

const tableSchema = z.strictObject({
  /** schema-qualified table name; quoted identifiers allowed. */
  name: identifier,
  /** Folder and Glue table name. @default the table name, lower-cased, non [a-z0-9_] → _ */
  lakeName: z.string().regex(/^[a-z0-9][a-z0-9_]*$/, 'must match [a-z0-9][a-z0-9_]*').optional(),
  /** Column that every write advances. @default updated_at */
  cursor: identifier.default('updated_at'),
  /**
   * Zone of the wall-clock values in a `timestamp` (without time zone) or `date` cursor: the
   * writers' session TimeZone. @default UTC
   */
  cursorTimeZone: z.string().min(1).refine(isTimeZone, TIME_ZONE_MESSAGE).default('UTC'),
  /** @default the table's primary key from the catalog */
  primaryKey: z.array(identifier).min(1).optional(),
  /** Column whose UTC date picks year/month/day. @default the cursor */
  partitionBy: identifier.optional(),
  /** Boolean column that marks a row deleted: the `<lakeName>_current` view leaves such rows out. */
  softDeleteColumn: identifier.optional(),
  /** incremental: rows changed since the watermark; snapshot: the whole table every run, replacing the last. */
  mode: z.enum(['incremental', 'snapshot']).default('incremental'),
  /** Columns left out of the lake (never read from the database). */
  columns: z
    .strictObject({
      exclude: z.array(identifier).default([]),
      /** Exported as salted SHA-256 hex (salt: LAKE_HASH_SALT locally, source.hashSaltSecretArn deployed). */
      hash: z.array(identifier).default([]),
    })
    .default({ exclude: [], hash: [] }),
  /** Extra SQL predicate ANDed to every page query, written by the operator (trusted). */
  where: z.string().min(1).optional(),
  /**
   * Export a first load or a `{"full": true}` re-run as key-range segments in parallel (a
   * Distributed Map). `segments: 1` never splits. @default - split when the planner's row
   * estimate reaches export.backfillRows, into export.backfillSegments
   */
  backfill: z
    .strictObject({
      segments: z.number().int().min(1).max(64),
      /** key: ranges of the (cursor, pk…) keyset; ctid: heap block ranges, for a table whose keyset has no useful index. */
      by: z.enum(['key', 'ctid']).default('key'),
      /**
       * Segments of this table exported at once, below export.backfillConcurrency (the map's
       * limit for every table): its segments are dealt into this many lanes, each exported in turn.
       */
      concurrency: z.number().int().min(1).max(64).optional(),
    })
    .optional(),
  /**
   * Find keys deleted from Postgres (no CDC needed) and write a tombstone for each: `every` run,
   * or once per that many hours (the scheduled run whose window crosses a multiple of it, UTC).
   */
  deletes: z
    .strictObject({
      detect: z.boolean(),
      every: z.union([z.literal('run'), z.number().positive().max(8760)]).default('run'),
    })
    .optional(),
  /** Data-quality checks over the run's window, before anything is published. */
  checks: z
    .strictObject({
      notNull: z.array(identifier).default([]),
      unique: z.array(identifier).default([]),
      minRows: z.number().int().min(0).default(0),
    })
    .optional(),
  /**
   * How much time one partition holds: `day` (year=/month=/day=), `month` (year=/month=) or
   * `year` (year=). Coarser partitions give fewer, larger files for tables with few rows a day.
   * Changing it on an exported table takes effect at its next compaction, which rewrites the
   * table into the new partitions (a finer one than the lake holds is refused). @default day
   */
  partition: z.strictObject({ granularity: z.enum(GRANULARITIES).default('day') }).optional(),
  /**
   * `false`: never compacted. Otherwise this table's own thresholds (defaults: the top-level
   * `compaction`), and `everyHours`: at most one compaction per this many hours.
   */
  compaction: z
    .union([
      z.literal(false),
      z.strictObject({
        minFiles: z.number().int().min(2).optional(),
        maxMedianMB: z.number().positive().optional(),
        everyHours: z.number().positive().optional(),
      }),
    ])
    .optional(),
});

const configSchema = z.strictObject({
  lake: z
    .strictObject({
      prefix: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_\-./]*[A-Za-z0-9_\-]$|^[A-Za-z0-9]$/, 'must be a relative key prefix without leading or trailing "/"').default('raw'),
      /**
       * Glue database of the lake's tables (Glue/Athena: lower case, at most 255 bytes; a name
       * starting with a digit or `_` would need quoting in every query). @default the stack name
       * in snake_case (`PgLakeExport` → `pg_lake_export`), so two stacks never share one.
       */
      glueDatabase: z.string().regex(GLUE_DATABASE_NAME, GLUE_DATABASE_MESSAGE).optional(),
      /** Years that partition projection covers; a row outside them fails the table. */
      partitionYears: z
        .strictObject({ from: z.number().int().min(1), to: z.number().int().max(9999) })
        .refine((r) => r.from <= r.to, 'from must be ≤ to')
        .default({ from: 1970, to: 2099 }),
      /** A file's row group is flushed once its encoded columns reach this many MB (or 1M rows). */
      rowGroupMB: z.number().int().min(1).max(1024).default(64),
      /** …or once it holds this many rows (tests lower it to flush row groups within small tables). */
      rowGroupRows: z.number().int().min(1).max(100_000_000).default(1_000_000),
      /** A run's file in a partition rolls over to a new one at this size, MB. */
      targetFileMB: z.number().int().min(1).max(5120).default(256),
    })
    .default({ prefix: 'raw', partitionYears: { from: 1970, to: 2099 }, rowGroupMB: 64, rowGroupRows: 1_000_000, targetFileMB: 256 }),
  source: z
    .strictObject({
      /** Secrets Manager secret holding host, port, dbname, username, password (the RDS format). */
      secretArn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:/, 'must be a Secrets Manager ARN'),
      vpcId: z.string().regex(/^vpc-[0-9a-f]+$/, 'must be a VPC id (vpc-…)'),
      securityGroupId: z.string().regex(/^sg-[0-9a-f]+$/, 'must be a security group id (sg-…)'),
      subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/, 'must be a subnet id')).optional(),
      /** Secrets Manager secret whose string is the salt of columns.hash. */
      hashSaltSecretArn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:/, 'must be a Secrets Manager ARN').optional(),
    })
    .optional(),
  schedule: z
    .strictObject({
      expression: z.string().regex(/^(cron|rate)\(.+\)$/, 'must be cron(…) or rate(…)').default('cron(0 2 * * ? *)'),
      timeZone: z.string().min(1).refine(isTimeZone, TIME_ZONE_MESSAGE).default('UTC'),
      enabled: z.boolean().default(true),
    })
    .default({ expression: 'cron(0 2 * * ? *)', timeZone: 'UTC', enabled: true }),
  export: z
    .strictObject({
      /** Rows per keyset page (one Parquet file per page and day). */
      pageRows: z.number().int().min(1).max(5_000_000).default(50_000),
      /** Tables exported at once (the database is a shared production system). */
      maxConcurrency: z.number().int().min(1).max(40).default(2),
      /** Rows newer than now() − lag wait for the next run. */
      safetyLagSeconds: z.number().int().min(0).default(5),
      /** Scale given to unconstrained numeric columns (decimal(38, scale)). */
      unconstrainedNumericScale: z.number().int().min(0).max(38).default(9),
      /** A table's lease lapses this long after its last renewal (renewed every page). */
      // At least a minute: a commit must finish within one lease period.
      leaseSeconds: z.number().int().min(60).max(3600).default(300),
      /**
       * Memory of the Export function, MB. Lambda gives CPU in proportion (one vCPU's worth at
       * 1,769 MB); many new accounts may not exceed 3,008 MB until AWS raises their quota.
       */
      memoryMb: z.number().int().min(512).max(10_240).default(3008),
      /** An execution running longer is stopped (and ExecutionsTimedOut fires); Step Functions allows a year. */
      workflowTimeoutHours: z.number().min(0.25).max(8760).default(6),
      /** Timeout of the Plan function (Lambda allows 900 s). */
      planTimeoutSeconds: z.number().int().min(30).max(900).default(300),
      /** Timeout of the Commit function (Lambda allows 900 s). */
      commitTimeoutSeconds: z.number().int().min(30).max(900).default(300),
      /** A first load or full re-run of a table the planner estimates at this many rows or more is a backfill. */
      backfillRows: z.number().int().min(1).default(10_000_000),
      /** Segments of an automatic backfill (a table's backfill.segments overrides it). */
      backfillSegments: z.number().int().min(2).max(64).default(8),
      /** Segments exported at once, per table (the Distributed Map's MaxConcurrency): each holds a database session. */
      backfillConcurrency: z.number().int().min(1).max(64).default(4),
      /**
       * A backfill that failed (or whose execution died) keeps its finished segments staged; the
       * next run of the table within this many hours of the backfill's start adopts it and exports
       * only the unfinished segments. Later, the next plan removes it and starts over. 0: never adopt.
       * @default 168 (protocol/adopt-backfill.ts: a week, so a backfill that failed on a Friday resumes after the weekend)
       */
      backfillAdoptHours: z.number().min(0).max(8760).optional(),
    })
    .default({
      pageRows: 50_000, maxConcurrency: 2, safetyLagSeconds: 5, unconstrainedNumericScale: 9, leaseSeconds: 300,
      memoryMb: 3008, workflowTimeoutHours: 6, planTimeoutSeconds: 300, commitTimeoutSeconds: 300,
      backfillRows: 10_000_000, backfillSegments: 8, backfillConcurrency: 4,
    }),
  /** After each table's commit, check what the query engine sees against the run's manifest. */
  validation: z
    .strictObject({
      /** Adds the `Validate Table` state (and its function) after `Commit Table`. */
      enabled: z.boolean().default(true),
      /**
       * The Athena workgroup's per-query cutoff, MB (Athena's minimum is 10 MB; 1 TiB at most here).
       * The duplicate check reads the key and cursor columns of the whole table: size it above them.
       */
      bytesScannedLimitMb: z.number().int().min(10).max(1_048_576).default(10_240),
    })
    .default({ enabled: true, bytesScannedLimitMb: 10_240 }),
  alarms: z
    .strictObject({
      email: z.string().email().optional(),
      maxStalenessHours: z.number().positive().default(26),
      noSuccessWithinHours: z.number().positive().default(26),
    })
    .default({ maxStalenessHours: 26, noSuccessWithinHours: 26 }),
  /**
   * Compaction of tables whose partitions collect small files: the whole table is rewritten into
   * a new generation folder (its cost grows with the table), readers switch in one update, and
   * the old generation is deleted after graceMinutes (longer than any query runs).
   */
  compaction: z
    .strictObject({
      /** Adds the `Compact Table` state after `Commit Table`; `pg-lake-export compact` works either way. */
      enabled: z.boolean().default(true),
      /** A table is compacted when a partition holds more than this many files … */
      minFiles: z.number().int().min(2).default(8),
      /** … whose median size is below this many MB. */
      maxMedianMB: z.number().positive().default(32),
      /** Files of one partition are merged into files of up to about this size, MB (AWS advises ≥ 128 MB for Athena; a merge holds about 4× this in memory). */
      targetFileMB: z.number().int().min(1).max(4096).default(128),
      /** The old generation is deleted this long after the switch: longer than any query can run (Athena's DML query timeout is a quota, raisable to 240 minutes: keep this above yours). */
      graceMinutes: z.number().min(0).default(60),
      /**
       * The Compact Table step skips a table holding more than this many MB of files: a
       * generation rewrites the whole table in one invocation (15 minutes at most), and a big
       * table's attempt would fail, read in full, after every run. `pg-lake-export compact
       * --force` (no time limit) compacts it anyway.
       */
      maxTableMB: z.number().positive().default(10_000),
    })
    .default({ enabled: true, minFiles: 8, maxMedianMB: 32, targetFileMB: 128, graceMinutes: 60, maxTableMB: 10_000 }),
  tables: z.array(tableSchema).min(1, 'list at least one table'),
});

export type LakeConfig = z.infer<typeof configSchema>;
export type TableConfig = z.infer<typeof tableSchema>;

export interface ResolvedTable {
  readonly config: TableConfig;
  readonly name: QualifiedName;
  /** schema.table as people read it */
  readonly display: string;
  /** folder under the lake prefix and Glue table name */
  readonly lakeName: string;
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out ? '.' : ''}${String(part)}`;
  return out || '(root)';
}

/** Validate an already-parsed object; `source` names the file in messages. */
export function validateConfig(raw: unknown, source = 'lake.config.yaml'): LakeConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`);
    throw new ConfigError(`${source}: ${problems.join('; ')}`);
  }
  const config = result.data;
  const seen = new Map<string, string>();
  const problems: string[] = [];
  config.tables.forEach((table, i) => {
    try {
      const resolved = resolveTable(table);
      const other = seen.get(resolved.lakeName);
      if (other !== undefined) problems.push(`tables[${i}].name: ${resolved.display} and ${other} both map to lake table "${resolved.lakeName}"; set lakeName on one`);
      seen.set(resolved.lakeName, resolved.display);
      // A snapshot holds exactly what Postgres holds each run: nothing to tombstone.
      if (table.deletes?.detect && table.mode === 'snapshot') problems.push(`tables[${i}].deletes: ${resolved.display} is a snapshot table (mode: snapshot), which already drops deleted rows every run; deletes.detect applies to incremental tables`);
    } catch (error) {
      problems.push(`tables[${i}].name: ${(error as Error).message}`);
    }
  });
  if (problems.length) throw new ConfigError(`${source}: ${problems.join('; ')}`);
  return config;
}

export function parseConfig(text: string, source = 'lake.config.yaml'): LakeConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ConfigError(`${source}: not valid YAML: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
  return validateConfig(raw, source);
}

export function resolveTable(config: TableConfig): ResolvedTable {
  const name = parseQualifiedName(config.name);
  return { config, name, display: displayName(name), lakeName: config.lakeName ?? lakeTableName(name.name) };
}

/** The configured tables, optionally narrowed to `only` (matched by config name, display name or lake name). */
export function selectTables(config: LakeConfig, only?: readonly string[]): ResolvedTable[] {
  const all = config.tables.map(resolveTable);
  if (!only || only.length === 0) return all;
  return only.map((wanted) => {
    const found = all.find((t) => t.config.name === wanted || t.display === wanted || t.lakeName === wanted);
    if (!found) throw new ConfigError(`tables: ${JSON.stringify(wanted)} is not configured (configured: ${all.map((t) => t.display).join(', ')})`);
    return found;
  });
}
