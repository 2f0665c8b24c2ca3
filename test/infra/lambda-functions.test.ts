// The four workflow functions: one factory's defaults, placed in the database VPC only when they
// connect, configured through the environment without a single credential in it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { LAKE_CONFIG_LIMIT_BYTES } from '../../lib/index.ts';
import { buildStack, fixtureConfig, logicalIdOf, resourcesOfType, type BuiltStack } from './stack.ts';

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
  'DB_SECRET_ARN',
  'GLUE_DATABASE',
  'LAKE_BUCKET',
  'LAKE_CONFIG',
  'LAKE_PREFIX',
  'MALLOC_ARENA_MAX',
  'NODE_EXTRA_CA_CERTS',
  'NODE_OPTIONS',
  'POWERTOOLS_METRICS_NAMESPACE',
  'POWERTOOLS_SERVICE_NAME',
];

let built: BuiltStack;
let fns: Record<'Plan' | 'Export' | 'Commit' | 'Summarize', FunctionProps>;

beforeAll(() => {
  built = buildStack();
  const all = resourcesOfType<FunctionProps>(built.template, 'AWS::Lambda::Function');
  const byName = built.stack.functions.functions;
  const pick = (name: string) => all[logicalIdOf(built.stack, byName[name])].Properties;
  fns = { Plan: pick('Plan'), Export: pick('Export'), Commit: pick('Commit'), Summarize: pick('Summarize') };
}, 180_000);

describe('workflow functions', () => {
  it('are exactly the four steps', () => {
    expect(Object.keys(built.stack.functions.functions).sort()).toEqual(['Commit', 'Export', 'Plan', 'Summarize']);
    built.template.resourceCountIs('AWS::Lambda::Function', 4);
  });

  it('run Node.js 24 on arm64 with active tracing and no reserved concurrency', () => {
    for (const fn of Object.values(fns)) {
      expect(fn.Runtime).toBe('nodejs24.x');
      expect(fn.Architectures).toEqual(['arm64']);
      expect(fn.Handler).toBe('index.handler');
      expect(fn.TracingConfig).toEqual({ Mode: 'Active' });
      expect(fn.ReservedConcurrentExecutions).toBeUndefined();
    }
  });

  it('give Export two vCPUs (3538 MB) and 15 minutes, the others 1024 MB and 5 minutes', () => {
    expect([fns.Export.MemorySize, fns.Export.Timeout]).toEqual([3538, 900]);
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
    expect(fns.Summarize.VpcConfig).toBeUndefined();
  });

  it('share one environment: lake location, the secret ARN (never its value), the validated config', () => {
    const config = fixtureConfig();
    for (const fn of Object.values(fns)) {
      const env = fn.Environment.Variables;
      expect(Object.keys(env).sort()).toEqual(ENV_KEYS);
      expect(env.LAKE_BUCKET).toEqual({ Ref: logicalIdOf(built.stack, built.stack.lake.bucket) });
      expect(env.LAKE_PREFIX).toBe('lake/raw');
      expect(env.GLUE_DATABASE).toBe('sales_lake');
      expect(env.DB_SECRET_ARN).toBe(SECRET_ARN);
      expect(env.NODE_EXTRA_CA_CERTS).toBe('/var/runtime/ca-cert.pem');
      expect(env.MALLOC_ARENA_MAX).toBe('2');
      expect(env.NODE_OPTIONS).toBe('--enable-source-maps --max-semi-space-size=4');
      expect(env.POWERTOOLS_SERVICE_NAME).toBe('pg-lake-export');
      expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe('PgLakeExport');
      expect(JSON.parse(String(env.LAKE_CONFIG))).toEqual(JSON.parse(JSON.stringify(config)));
      expect(Buffer.byteLength(String(env.LAKE_CONFIG))).toBeLessThanOrEqual(LAKE_CONFIG_LIMIT_BYTES);
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

  it('bundle parquet-wasm\'s .wasm next to every bundle that loads it', () => {
    const outdir = built.app.outdir;
    const assetDir = (fn: FunctionProps) => join(outdir, `asset.${fn.Code.S3Key.replace(/\.zip$/, '')}`);
    // The exporter encodes Parquet, so its bundle must carry the wasm.
    expect(existsSync(join(assetDir(fns.Export), 'parquet_wasm_bg.wasm'))).toBe(true);
    for (const fn of Object.values(fns)) {
      const loadsWasm = readFileSync(join(assetDir(fn), 'index.js'), 'utf8').includes('parquet_wasm_bg.wasm');
      expect(existsSync(join(assetDir(fn), 'parquet_wasm_bg.wasm'))).toBe(loadsWasm);
    }
  });

  it('keep the Lambda defaults on the function resources (no per-function overrides)', () => {
    built.template.allResourcesProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogGroup: Match.anyValue() },
    });
  });
});
