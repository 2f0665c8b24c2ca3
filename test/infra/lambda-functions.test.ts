// The six workflow functions: one factory's defaults, placed in the database VPC only when they
// connect, configured through the environment without a single credential in it.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../lambdas/core/config.ts';
import { VALIDATE_QUERY_TIMEOUT_MILLIS } from '../../lambdas/core/protocol/workflow-io.ts';
import { LAKE_CONFIG_FILE, LAMBDA_ENVIRONMENT_LIMIT_BYTES, PROJECT_ROOT } from '../../lib/index.ts';
import { EXEC_WRAPPER, V8_FLAGS } from '../../lib/runtime-options.ts';
import { buildStack, fixtureConfig, FIXTURE_CONFIG_YAML, logicalIdOf, resourcesOfType, type BuiltStack } from './stack.ts';

interface FunctionProps {
  Runtime: string;
  Architectures: string[];
  Handler: string;
  MemorySize: number;
  Timeout: number;
  TracingConfig?: { Mode: string };
  LoggingConfig?: { LogGroup: unknown };
  VpcConfig?: { SubnetIds: string[]; SecurityGroupIds: string[] };
  Environment: { Variables: Record<string, unknown> };
  ReservedConcurrentExecutions?: number;
  Code: { S3Key: string };
}

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:lake-db-AbCdEf';
const ENV_KEYS = [
  'AWS_LAMBDA_EXEC_WRAPPER',
  'DB_SECRET_ARN',
  'LAKE_BUCKET',
  'LAKE_CONFIG_FILE',
  'MALLOC_ARENA_MAX',
  'NODE_EXTRA_CA_CERTS',
  'NODE_OPTIONS',
  'POWERTOOLS_METRICS_NAMESPACE',
  'POWERTOOLS_SERVICE_NAME',
];

type Step = 'Plan' | 'Export' | 'Commit' | 'Summarize' | 'Validate' | 'Compact';
let built: BuiltStack;
let fns: Record<Step, FunctionProps>;

function functionsOf(stack: BuiltStack): Record<Step, FunctionProps> {
  const all = resourcesOfType<FunctionProps>(stack.template, 'AWS::Lambda::Function');
  const byName = stack.stack.functions.functions;
  const pick = (name: string) => all[logicalIdOf(stack.stack, byName[name])].Properties;
  return { Plan: pick('Plan'), Export: pick('Export'), Commit: pick('Commit'), Summarize: pick('Summarize'), Validate: pick('Validate'), Compact: pick('Compact') };
}

/** The directory the function's code asset was bundled into. */
function assetDir(stack: BuiltStack, fn: FunctionProps): string {
  return join(stack.app.outdir, `asset.${fn.Code.S3Key.replace(/\.zip$/, '')}`);
}

/** Lambda counts every key and value of the environment (resolved tokens: at most 128 bytes here). */
function environmentBytes(fn: FunctionProps): number {
  return Object.entries(fn.Environment.Variables).reduce((n, [k, v]) => n + Buffer.byteLength(k) + (typeof v === 'string' ? Buffer.byteLength(v) : 128), 0);
}

beforeAll(() => {
  built = buildStack();
  fns = functionsOf(built);
}, 180_000);

describe('workflow functions', () => {
  it('are exactly the six steps', () => {
    expect(Object.keys(built.stack.functions.functions).sort()).toEqual(['Commit', 'Compact', 'Export', 'Plan', 'Summarize', 'Validate']);
    built.template.resourceCountIs('AWS::Lambda::Function', 6);
  });

  it('tell only Validate which Athena workgroup to query in, and give it 15 minutes (two queries of at most 6)', () => {
    const withWorkGroup = Object.entries(fns).filter(([, fn]) => fn.Environment.Variables.ATHENA_WORK_GROUP !== undefined);
    expect(withWorkGroup.map(([step]) => step)).toEqual(['Validate']);
    expect(withWorkGroup[0][1].Environment.Variables.ATHENA_WORK_GROUP).toBe(built.stack.queryWorkgroup.workGroupName);
    expect(withWorkGroup[0][1].Timeout).toBe(900);
    expect(2 * VALIDATE_QUERY_TIMEOUT_MILLIS).toBeLessThan(900_000 - 60_000);
  });

  it('have no Validate function when validation.enabled is false', () => {
    const off = buildStack({ config: fixtureConfig(FIXTURE_CONFIG_YAML.replace('tables:', 'validation: { enabled: false }\ntables:')) });
    expect(Object.keys(off.stack.functions.functions).sort()).toEqual(['Commit', 'Compact', 'Export', 'Plan', 'Summarize']);
    // The workgroup stays: it is the lake's guard-railed place for anyone's queries.
    off.template.resourceCountIs('AWS::Athena::WorkGroup', 1);
  }, 180_000);

  it('have no Compact function when compaction.enabled is false', () => {
    const off = buildStack({ config: fixtureConfig(FIXTURE_CONFIG_YAML.replace('tables:', 'compaction: { enabled: false }\ntables:')) });
    expect(Object.keys(off.stack.functions.functions).sort()).toEqual(['Commit', 'Export', 'Plan', 'Summarize', 'Validate']);
    off.template.resourceCountIs('AWS::Lambda::Function', 5);
  }, 180_000);

  it('run Node.js 24 on arm64 with active tracing and no reserved concurrency', () => {
    for (const fn of Object.values(fns)) {
      expect(fn.Runtime).toBe('nodejs24.x');
      expect(fn.Architectures).toEqual(['arm64']);
      expect(fn.Handler).toBe('index.handler');
      expect(fn.TracingConfig).toEqual({ Mode: 'Active' });
      expect(fn.ReservedConcurrentExecutions).toBeUndefined();
    }
  });

  it('give Export and Compact 3,008 MB (the most a new account may configure) and 15 minutes, Validate 15 minutes, the others 1024 MB and 5 minutes', () => {
    expect([fns.Validate.MemorySize, fns.Validate.Timeout]).toEqual([1024, 900]);
    expect([fns.Export.MemorySize, fns.Export.Timeout]).toEqual([3008, 900]);
    // A whole table's compaction in one invocation; a merge holds about 4× compaction.targetFileMB.
    expect([fns.Compact.MemorySize, fns.Compact.Timeout]).toEqual([3008, 900]);
    for (const fn of [fns.Plan, fns.Commit, fns.Summarize]) expect([fn.MemorySize, fn.Timeout]).toEqual([1024, 300]);
  });

  it('log to their own log group with a retention', () => {
    const groups = resourcesOfType<{ RetentionInDays?: number }>(built.template, 'AWS::Logs::LogGroup');
    for (const fn of Object.values(fns)) {
      const ref = fn.LoggingConfig?.LogGroup as { Ref: string };
      expect(groups[ref.Ref]?.Properties.RetentionInDays).toBe(30);
    }
  });

  it('place only the functions that connect to Postgres in the database VPC, with the given security group', () => {
    for (const fn of [fns.Plan, fns.Export, fns.Commit]) {
      expect(fn.VpcConfig).toEqual({
        SubnetIds: ['subnet-0aaa1111bbbb22223', 'subnet-0ccc3333dddd44445'],
        SecurityGroupIds: ['sg-0abc1234def567890'],
      });
    }
    for (const fn of [fns.Summarize, fns.Validate, fns.Compact]) expect(fn.VpcConfig).toBeUndefined();
  });

  it('share one environment: lake location, the secret ARN (never its value), where the config is', () => {
    for (const [step, fn] of Object.entries(fns)) {
      const env = fn.Environment.Variables;
      expect(Object.keys(env).sort()).toEqual(step === 'Validate' ? ['ATHENA_WORK_GROUP', ...ENV_KEYS] : ENV_KEYS);
      expect(env.LAKE_BUCKET).toEqual({ Ref: logicalIdOf(built.stack, built.stack.lake.bucket) });
      expect(env.DB_SECRET_ARN).toBe(SECRET_ARN);
      expect(env.NODE_EXTRA_CA_CERTS).toBe('/var/runtime/ca-cert.pem');
      expect(env.MALLOC_ARENA_MAX).toBe('2');
      expect(env.NODE_OPTIONS).toBe('--enable-source-maps --max-semi-space-size=4');
      expect(env.AWS_LAMBDA_EXEC_WRAPPER).toBe('/var/task/node-v8-flags');
      expect(env.POWERTOOLS_SERVICE_NAME).toBe('pg-lake-export');
      expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe('PgLakeExport');
      expect(env.LAKE_CONFIG_FILE).toBe('lake.config.json');
    }
  });

  it('carry the validated config in every bundle, with the Glue database the stack uses', () => {
    const config = fixtureConfig();
    for (const fn of Object.values(fns)) {
      const shipped: unknown = JSON.parse(readFileSync(join(assetDir(built, fn), LAKE_CONFIG_FILE), 'utf8'));
      expect(shipped).toEqual(JSON.parse(JSON.stringify(config)));
      expect(validateConfig(shipped)).toEqual(config);
    }
  });

  it('put no secret in the environment: no dynamic secret reference, no password or connection string', () => {
    const text = JSON.stringify(Object.values(fns).map((fn) => fn.Environment));
    expect(text).not.toMatch(/resolve:secretsmanager|resolve:ssm-secure/);
    expect(text).not.toMatch(/password|postgres(ql)?:\/\//i);
    for (const fn of Object.values(fns)) {
      expect(Object.keys(fn.Environment.Variables).filter((key) => /PASS|SECRET(?!_ARN)|TOKEN|DATABASE_URL/i.test(key))).toEqual([]);
    }
  });

  it('start from their bundle alone, as in Lambda: through the exec wrapper, which adds the V8 flags; the config read from the file beside index.js, parquet-wasm loaded by none at start', () => {
    // The runtime's modules only: @aws-sdk (the nodejs24.x runtime ships it), nothing else.
    const runtimeModules = join(mkdtempSync(join(tmpdir(), 'pg-lake-export-runtime-')), 'node_modules');
    mkdirSync(runtimeModules);
    symlinkSync(join(PROJECT_ROOT, 'node_modules', '@aws-sdk'), join(runtimeModules, '@aws-sdk'));
    for (const [step, fn] of Object.entries(fns)) {
      // A copy, as /var/task: its own package.json stands for the absence of any above it in
      // Lambda (one declaring "type": "module" further up would make Node read it as ESM).
      const dir = join(mkdtempSync(join(tmpdir(), 'pg-lake-export-task-')), 'task');
      cpSync(assetDir(built, fn), dir, { recursive: true });
      writeFileSync(join(dir, 'package.json'), '{}');
      const variables = Object.fromEntries(Object.entries(fn.Environment.Variables).map(([k, v]) => [k, typeof v === 'string' ? v : 'resolved-at-deploy']));
      const probe = [
        `const handler = require(${JSON.stringify(join(dir, 'index.js'))}).handler;`,
        `if (typeof handler !== 'function') throw new Error('no handler');`,
        `const loaded = Object.keys(require.cache).some((k) => k.includes('parquet-wasm'));`,
        `console.log(JSON.stringify({ loaded, flags: process.execArgv.filter((a) => a.startsWith('--')) }));`,
        `process.exit(0);`,
      ].join('\n');
      // Lambda runs $AWS_LAMBDA_EXEC_WRAPPER (in /var/task) with node's path and node's own
      // arguments (the nodejs runtimes pass --expose-gc among them): it must be executable as shipped.
      const wrapper = join(dir, String(fn.Environment.Variables.AWS_LAMBDA_EXEC_WRAPPER).replace(/^\/var\/task\//, ''));
      const result = spawnSync(wrapper, [process.execPath, '--expose-gc', '-e', probe], {
        cwd: tmpdir(),
        encoding: 'utf8',
        env: { PATH: process.env.PATH, ...variables, LAMBDA_TASK_ROOT: dir, NODE_PATH: runtimeModules, NODE_OPTIONS: '', AWS_REGION: 'eu-west-1', POWERTOOLS_LOG_LEVEL: 'SILENT' },
      });
      expect(result.stderr, step).not.toMatch(/Error/);
      expect(result.status, `${step}: ${result.stderr}`).toBe(0);
      expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!), step).toEqual({ loaded: false, flags: [...V8_FLAGS, '--expose-gc'] });
    }
  }, 60_000);

  it('ship parquet-wasm, its 5 MB .wasm and the encoder\'s bundle in the bundles that encode only (Export, Compact)', () => {
    for (const fn of [fns.Export, fns.Compact]) {
      expect(readdirSync(assetDir(built, fn)).sort()).toEqual(['encoder.js', 'encoder.js.map', 'index.js', 'index.js.map', LAKE_CONFIG_FILE, EXEC_WRAPPER, 'parquet_wasm_bg.wasm'].sort());
      expect(readFileSync(join(assetDir(built, fn), 'index.js'), 'utf8')).toContain('parquet_wasm_bg.wasm');
    }
    for (const fn of [fns.Plan, fns.Commit, fns.Summarize, fns.Validate]) {
      expect(readdirSync(assetDir(built, fn)).sort()).toEqual(['index.js', 'index.js.map', LAKE_CONFIG_FILE, EXEC_WRAPPER].sort());
      // Left out, not merely uncopied: nothing in the bundle would look for the file.
      expect(readFileSync(join(assetDir(built, fn), 'index.js'), 'utf8')).not.toContain('parquet_wasm_bg.wasm');
    }
  });

  it('run the encoder thread of Export from encoder.js, which holds none of the handler\'s modules (AWS SDK, Powertools, pg)', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'pg-lake-export-task-')), 'task');
    cpSync(assetDir(built, fns.Export), dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{}');
    const encoder = readFileSync(join(dir, 'encoder.js'), 'utf8');
    expect(encoder).not.toMatch(/require\("@aws-sdk|require\("@aws-lambda-powertools|SecretsManagerClient|GlueClient|S3Client/);
    expect(encoder).not.toMatch(/pg-protocol|client_encoding/);
    // The handler's bundle starts its encoder at load (warmPageEncoder): which file does the thread run?
    const variables = Object.fromEntries(Object.entries(fns.Export.Environment.Variables).map(([k, v]) => [k, typeof v === 'string' ? v : 'resolved-at-deploy']));
    const probe = [
      `const threads = require('node:worker_threads');`,
      `const started = [];`,
      `const Worker = threads.Worker;`,
      `threads.Worker = class extends Worker { constructor(file, options) { super(file, options); started.push(String(file)); this.on('error', (e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); }); } };`,
      `require(${JSON.stringify(join(dir, 'index.js'))});`,
      // The thread's request loop answers: ending a session it never opened replies ok.
      `const thread = new Worker(started[0], { workerData: { 'pg-lake-export:encode-worker': true } });`,
      `thread.on('message', (reply) => { console.log(JSON.stringify({ started, reply: { id: reply.id, ok: reply.ok } })); process.exit(0); });`,
      `thread.postMessage({ id: 7, kind: 'end', session: 0 });`,
    ].join('\n');
    const runtimeModules = join(mkdtempSync(join(tmpdir(), 'pg-lake-export-runtime-')), 'node_modules');
    mkdirSync(runtimeModules);
    symlinkSync(join(PROJECT_ROOT, 'node_modules', '@aws-sdk'), join(runtimeModules, '@aws-sdk'));
    const result = spawnSync(process.execPath, ['-e', probe], {
      cwd: tmpdir(),
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH, ...variables, LAMBDA_TASK_ROOT: dir, NODE_PATH: runtimeModules, NODE_OPTIONS: '', AWS_REGION: 'eu-west-1', POWERTOOLS_LOG_LEVEL: 'SILENT' },
    });
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toEqual({ started: [join(dir, 'encoder.js')], reply: { id: 7, ok: true } });
  }, 60_000);

  it('keep the Lambda defaults on the function resources (no per-function overrides)', () => {
    built.template.allResourcesProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogGroup: Match.anyValue() },
    });
  });
});

describe('a stack of 300 tables', () => {
  let big: BuiltStack;
  const tables = Array.from({ length: 300 }, (_, i) => `  - name: sales.order_line_history_${String(i).padStart(3, '0')}\n    where: "status <> 'deleted'"`).join('\n');
  const yamlText = FIXTURE_CONFIG_YAML.replace(/^tables:\n[\s\S]*$/m, `tables:\n${tables}\n`);

  beforeAll(() => {
    big = buildStack({ config: fixtureConfig(yamlText) });
  }, 300_000);

  it('synthesizes, its functions\' environment well under Lambda\'s 4 KB, the config in every bundle', () => {
    const config = fixtureConfig(yamlText);
    expect(Buffer.byteLength(JSON.stringify(config))).toBeGreaterThan(10 * LAMBDA_ENVIRONMENT_LIMIT_BYTES);
    for (const fn of Object.values(functionsOf(big))) {
      expect(environmentBytes(fn)).toBeLessThan(LAMBDA_ENVIRONMENT_LIMIT_BYTES);
      const shipped = validateConfig(JSON.parse(readFileSync(join(assetDir(big, fn), LAKE_CONFIG_FILE), 'utf8')));
      expect(shipped.tables).toHaveLength(300);
    }
    // Stale per table, executions (3), no recent success, function errors (4), schedule delivery, validation mismatch, compaction failed.
    big.template.resourceCountIs('AWS::CloudWatch::Alarm', 300 + 3 + 1 + 4 + 1 + 1 + 1);
    // CloudFormation takes 500 resources per stack.
    expect(Object.keys(big.template.toJSON().Resources as object).length).toBeLessThan(500);
  });

  it('keeps every role\'s policies within IAM\'s size limits, and passes cdk-nag', () => {
    const policies = Object.values(big.template.findResources('AWS::IAM::Policy')) as Array<{ Properties: { PolicyDocument: unknown } }>;
    // Tokens (Fn::Join of partition, region, account) only make the JSON longer than what IAM counts.
    for (const policy of policies) expect(JSON.stringify(policy.Properties.PolicyDocument).length).toBeLessThan(10_240);
    big.template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(big.app);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });
});
