// Runs the export workflow on this machine exactly as Step Functions would: the state machine
// definition comes from synthesizing the real stack, aws-local-stepfunctions executes it, and
// its Task states call the real Lambda handlers in this process. The demo and the e2e tests use it.
// Validate Table, and Export Table Page's delete detection, run their real handlers with DuckDB in
// Athena's place (over a copy of the table when the lake is in S3: DuckDB has no S3 access offline).
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App } from 'aws-cdk-lib';
import { StateMachine, ExecutionError } from 'aws-local-stepfunctions';
import type { LakeConfig } from '../../lambdas/core/config.ts';
import { PgLakeExportStack } from '../../lib/pg-lake-export-stack.ts';
import { COMPACTION_STATES, WORKFLOW_STATES } from '../../lib/export-workflow.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import { createS3Client, S3Store } from '../../lambdas/adapters/s3-store.ts';
import { tableDataPrefix, tableStatePrefix } from '../../lambdas/core/lake/keys.ts';
import type { QueryEngine } from '../../lambdas/core/ports.ts';
import { LakeQuery } from './lake-query.ts';
import { localStepRuntime } from './local-runtime.ts';
import { inlineDistributedMaps, resolveWorkflow, type LocalItemRead, type StateMachineDefinition, type WorkflowDefinition } from './state-machine-definition.ts';

// The network and secret do not shape the workflow; synthesis for a local run fills them in.
const LOCAL_SOURCE = {
  secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:local-run-AbCdEf',
  vpcId: 'vpc-0123456789abcdef0',
  securityGroupId: 'sg-0123456789abcdef0',
  subnetIds: ['subnet-0123456789abcdef0'],
};

/** The state machine definition of the stack this config deploys (with the Segments machine it starts), tokens resolved. */
export function synthesizeDefinition(config: LakeConfig): WorkflowDefinition {
  // Bundling is skipped: only the definition is needed, not the Lambda zips.
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, autoSynth: false });
  new PgLakeExportStack(app, 'PgLakeExportLocal', {
    config: { ...config, source: config.source ?? LOCAL_SOURCE },
    env: { account: '123456789012', region: 'eu-west-1' },
  });
  const template = app.synth().getStackByName('PgLakeExportLocal').template as Record<string, unknown>;
  return resolveWorkflow(template);
}

export interface LocalRunEnvironment {
  readonly config: LakeConfig;
  readonly databaseUrl: string;
  /** `file:///…` for a directory lake; otherwise the S3 bucket name (AWS_ENDPOINT_URL_S3 applies). */
  readonly lake: string;
  /** Salt of columns.hash. @default process.env.LAKE_HASH_SALT */
  readonly hashSalt?: string;
}

type Handler = (event: unknown, context?: { getRemainingTimeInMillis(): number }) => Promise<unknown>;
type Handlers = Record<'plan' | 'export' | 'commit' | 'summarize' | 'validate' | 'compact', Handler>;

/**
 * The deployed handlers over this machine's parts (bin/local/local-runtime.ts); Validate Table
 * and delete detection with DuckDB in Athena's place. The handler modules are loaded after the logger's and metrics'
 * environment is set: they read it once, at module scope, as in Lambda.
 */
async function loadHandlers(env: LocalRunEnvironment): Promise<Handlers> {
  Object.assign(process.env, {
    POWERTOOLS_SERVICE_NAME: 'pg-lake-export',
    POWERTOOLS_METRICS_NAMESPACE: 'PgLakeExport',
    POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'SILENT',
    POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
  });
  const [{ logger }, plan, exportPage, commit, summarize, validate, compact] = await Promise.all([
    import('../../lambdas/adapters/aws-runtime.ts'),
    import('../../lambdas/plan/handler.ts'),
    import('../../lambdas/export/handler.ts'),
    import('../../lambdas/commit/handler.ts'),
    import('../../lambdas/summarize/handler.ts'),
    import('../../lambdas/validate/handler.ts'),
    import('../../lambdas/compact/handler.ts'),
  ]);
  const runtime = localStepRuntime({
    config: env.config, databaseUrl: env.databaseUrl, lake: env.lake, hashSalt: env.hashSalt ?? process.env.LAKE_HASH_SALT,
    log: (message, fields) => logger.info(message, { ...fields }),
  });
  return {
    plan: plan.planHandler(runtime),
    // Opened on detection's first query: most invocations of a detecting table only export pages.
    export: exportPage.exportHandler(runtime, async (table) => openOnFirstQuery('duckdb (local lake)', () => openLocalEngine(env, table))),
    commit: commit.commitHandler(runtime),
    summarize: summarize.summarizeHandler(runtime),
    validate: validate.validateHandler(runtime, (table) => openLocalEngine(env, table)),
    compact: compact.compactHandler(runtime),
  };
}

/**
 * DuckDB over the lake as Athena would see it (bin/local/lake-query.ts): a directory lake in
 * place; an S3 lake through a temporary copy of the table's data and state folders, removed
 * when the engine closes.
 */
export async function openLocalEngine(env: LocalRunEnvironment, table: string): Promise<QueryEngine> {
  if (env.lake.startsWith('file://')) return (await LakeQuery.open(env.config, new DirectoryStore(env.lake))).engine();
  const dir = mkdtempSync(join(tmpdir(), 'pg-lake-export-validate-'));
  try {
    const s3 = new S3Store(createS3Client(), env.lake);
    const prefix = env.config.lake.prefix;
    for (const folder of [tableDataPrefix(prefix, table), tableStatePrefix(prefix, table)]) {
      for (const key of await s3.list(folder)) {
        const object = await s3.get(key);
        if (!object) continue; // removed since listed: as Athena, see what is there
        const file = join(dir, key);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, object.body);
      }
    }
    const engine = (await LakeQuery.open(env.config, new DirectoryStore(pathToFileURL(dir).href))).engine();
    return {
      description: `duckdb (copy of s3://${env.lake}/${tableDataPrefix(prefix, table)})`,
      query: (sql) => engine.query(sql),
      close: async () => {
        await engine.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * An engine that opens `open()` on its first query and closes it (if opened) with itself.
 * `description` is known before: delete detection reads the SQL dialect from it (`duckdb …`).
 */
export function openOnFirstQuery(description: string, open: () => Promise<QueryEngine>): QueryEngine {
  let opened: Promise<QueryEngine> | null = null;
  return {
    description,
    query: async (sql) => (await (opened ??= open())).query(sql),
    close: async () => {
      // An engine that failed to open has nothing to close (its query reported why).
      const engine = await opened?.catch(() => null);
      await engine?.close();
    },
  };
}

export interface LocalRunOptions {
  /** Milliseconds each Export invocation may use before returning its cursor (as Lambda's budget). */
  readonly exportBudgetMillis?: number;
  /** Called with each task's output as the execution goes (progress), and when the task began. */
  readonly onTaskOutput?: (state: string, output: unknown, startedAt: number) => void;
}

export interface LocalRunResult {
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly output: unknown;
  readonly error?: string;
  readonly cause?: string;
}

/** What a Distributed Map's ItemReader would read, from the local lake (a directory, or the S3 API server). */
async function readMapItems(env: LocalRunEnvironment, event: LocalItemRead): Promise<{ input: unknown; items: unknown[] }> {
  const store = env.lake.startsWith('file://') ? new DirectoryStore(env.lake) : new S3Store(createS3Client(), env.lake);
  const object = await store.get(event.reader.Key);
  if (!object) throw new Error(`ItemReader: ${store.url}${event.reader.Key} does not exist`);
  const text = object.body.toString('utf8');
  const items: unknown[] = event.reader.InputType === 'JSONL' ? text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line)) : JSON.parse(text);
  return { input: event.input, items };
}

/** A table's (or segment's) task by where it stands: table, segment, last page; null for anything else. */
function taskProgressKey(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const task = value as { table?: unknown; page?: unknown; segment?: { index?: unknown } | null };
  if (typeof task.table !== 'string' || typeof task.page !== 'number') return null;
  return JSON.stringify([task.table, task.segment?.index ?? null, task.page]);
}

export async function runWorkflowLocally(
  definition: WorkflowDefinition,
  env: LocalRunEnvironment,
  input: unknown,
  options: LocalRunOptions = {},
): Promise<LocalRunResult> {
  const h = await loadHandlers(env);
  // The Export handler keeps a 60 s reserve; add it so each invocation gets the budget asked for.
  const budget = (options.exportBudgetMillis ?? 15 * 60_000) + 60_000;
  const report = (state: string, fn: Handler, remaining = budget): Handler => async (event) => {
    const startedAt = Date.now();
    const output = await fn(event, { getRemainingTimeInMillis: () => remaining });
    options.onTaskOutput?.(state, output, startedAt);
    return output;
  };
  // An Export invocation that hands its task back unmoved (not done, at the page it was given:
  // delete detection put off for want of time) is followed, as in Lambda, by one with a whole
  // 15 minutes; with a short budget for every invocation, it would be put off for ever.
  const unmoved = new Set<string>();
  const exportPages: Handler = async (event) => {
    const key = taskProgressKey(event);
    const whole = key !== null && unmoved.delete(key);
    const output = await h.export(event, { getRemainingTimeInMillis: () => (whole ? 15 * 60_000 + 60_000 : budget) });
    if (key !== null && taskProgressKey(output) === key && (output as { done?: unknown }).done === false) unmoved.add(key);
    return output;
  };
  const handlers: Record<string, (event: never) => Promise<unknown>> = {
    [WORKFLOW_STATES.plan]: report(WORKFLOW_STATES.plan, h.plan),
    [WORKFLOW_STATES.exportPage]: report(WORKFLOW_STATES.exportPage, exportPages),
    [WORKFLOW_STATES.exportSegmentPage]: report(WORKFLOW_STATES.exportSegmentPage, exportPages),
    [WORKFLOW_STATES.commit]: report(WORKFLOW_STATES.commit, h.commit),
    [WORKFLOW_STATES.summarize]: report(WORKFLOW_STATES.summarize, h.summarize),
    [WORKFLOW_STATES.validate]: report(WORKFLOW_STATES.validate, h.validate),
    // A whole invocation, as in Lambda: a compaction stops before a page that would not fit in
    // its invocation, so Export's short test budget would stop it after one page.
    [COMPACTION_STATES.compact]: report(COMPACTION_STATES.compact, h.compact, 15 * 60_000),
  };
  const run = (machineDefinition: WorkflowDefinition, machineInput: unknown, executionName: string) => {
    const { nestedStateMachines, ...states } = machineDefinition;
    // aws-local-stepfunctions has no Distributed Map: the same ItemProcessor runs as an inline Map.
    const machine = new StateMachine(inlineDistributedMaps(states) as never, { validationOptions: { checkArn: false } });
    return machine.run(machineInput as never, {
      context: { Execution: { Id: `arn:aws:states:local:000000000000:execution:pg-lake-export:${executionName}`, Name: executionName } },
      overrides: {
        // Deployed, Export Segments retries a minute after an Export invocation's timeout, when the
        // failed Map Run's invocations have ended; here they end with the map (one process).
        retryIntervalOverrides: { [WORKFLOW_STATES.exportSegments]: 0 },
        taskResourceLocalHandlers: {
          ...handlers,
          // In the nested Segments machine, its Distributed Map's reader; in the export workflow,
          // the startExecution.sync:2 task that runs it (aws-local-stepfunctions has no nested executions).
          [WORKFLOW_STATES.exportSegments]: (event: LocalItemRead | LocalStartExecution) => 'StateMachineArn' in event
            ? startExecutionLocally(nestedStateMachines, event, (nested) => run(nested, event.Input, randomUUID()).result)
            : readMapItems(env, event),
        } as never,
      },
    });
  };
  // Plan derives the run id from the execution's id, as deployed (the local runner has none of its own).
  const execution = run(definition, input, randomUUID());
  try {
    return { status: 'SUCCEEDED', output: await execution.result };
  } catch (error) {
    if (!(error instanceof ExecutionError)) throw error;
    // The error that ended the execution (a Fail state's Error/Cause, or an uncaught task error).
    const cause = error.cause instanceof Error ? error.cause : error;
    return { status: 'FAILED', output: null, error: cause.name, cause: cause.message };
  }
}

/** What a `states:startExecution.sync:2` task is given (its Parameters). */
export interface LocalStartExecution {
  readonly StateMachineArn: string;
  readonly Input?: unknown;
}

/**
 * A nested execution, as `startExecution.sync:2` runs it: the output is the execution's
 * description with its Output as JSON; a failed execution fails the task with States.TaskFailed
 * (its Retry and Catch see that name), its cause the nested error.
 */
export async function startExecutionLocally(
  nested: Readonly<Record<string, WorkflowDefinition>>,
  event: LocalStartExecution,
  execute: (definition: WorkflowDefinition) => Promise<unknown>,
): Promise<unknown> {
  const definition = nested[event.StateMachineArn];
  if (!definition) throw new Error(`startExecution: no state machine ${event.StateMachineArn} in the template (have: ${Object.keys(nested).join(', ') || 'none'})`);
  try {
    return { StateMachineArn: event.StateMachineArn, Status: 'SUCCEEDED', Output: await execute(definition) };
  } catch (error) {
    if (!(error instanceof ExecutionError)) throw error;
    const cause = error.cause instanceof Error ? error.cause : error;
    const failed = new Error(`${event.StateMachineArn} failed: ${cause.name}: ${cause.message}`);
    failed.name = 'States.TaskFailed';
    throw failed;
  }
}
