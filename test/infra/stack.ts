// Builds the stack the way bin/app.ts does (same cdk.json feature flags), from a fixture config
// whose values differ from every default, so a test can tell "propagated" from "defaulted".
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { parseConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { PgLakeExportStack, PROJECT_ROOT, type PgLakeExportStackProps } from '../../lib/index.ts';

export const ENV = { account: '123456789012', region: 'eu-west-1' } as const;

export const FIXTURE_CONFIG_YAML = `
lake: { prefix: lake/raw, glueDatabase: sales_lake }
source:
  secretArn: arn:aws:secretsmanager:eu-west-1:123456789012:secret:lake-db-AbCdEf
  vpcId: vpc-0abc1234def567890
  securityGroupId: sg-0abc1234def567890
  subnetIds: [subnet-0aaa1111bbbb22223, subnet-0ccc3333dddd44445]
schedule: { expression: "cron(30 3 * * ? *)", timeZone: Europe/Dublin, enabled: false }
export: { maxConcurrency: 3 }
alarms: { email: oncall@example.com, maxStalenessHours: 12, noSuccessWithinHours: 30 }
tables:
  - name: public.orders
    cursor: updated_at
  - name: public.customers
  - name: '"Sales Data"."Order Items"'
    primaryKey: [order_id, line_no]
`;

export const FIXTURE_LAKE_TABLES = ['orders', 'customers', 'order_items'] as const;
export const FIXTURE_PREFIX = 'lake/raw';
export const FIXTURE_DATABASE = 'sales_lake';

/** The feature flags `cdk synth` applies (tests construct the App themselves). */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
  return cdkJson.context ?? {};
}

export function fixtureConfig(yamlText = FIXTURE_CONFIG_YAML): LakeConfig {
  return parseConfig(yamlText, 'fixture lake.config.yaml');
}

export interface BuiltStack {
  readonly app: App;
  readonly stack: PgLakeExportStack;
  readonly template: Template;
}

/** Synthesizes once (bundling every handler with esbuild): share the result across a file. */
export function buildStack(overrides: Partial<PgLakeExportStackProps> = {}): BuiltStack {
  const app = new App({ context: cdkJsonContext() });
  const stack = new PgLakeExportStack(app, 'PgLakeExport', { config: fixtureConfig(), env: ENV, ...overrides });
  return { app, stack, template: Template.fromStack(stack) };
}

/** Resources of one type, by logical id; `P` is the shape of the Properties the test reads. */
export function resourcesOfType<P>(template: Template, type: string): Record<string, { Properties: P; DependsOn?: string[] }> {
  return template.findResources(type) as Record<string, { Properties: P; DependsOn?: string[] }>;
}

export interface PolicyStatementJson {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string | string[];
  readonly Resource?: unknown;
  readonly Principal?: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

export interface PolicyDocumentJson {
  readonly Statement: PolicyStatementJson[];
}

export function asArray<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

/** The logical id of the construct's default CloudFormation resource. */
export function logicalIdOf(stack: PgLakeExportStack, construct: { node: { defaultChild?: unknown } }): string {
  const child = construct.node.defaultChild;
  if (!child) throw new Error('construct has no default child');
  return stack.getLogicalId(child as Parameters<PgLakeExportStack['getLogicalId']>[0]);
}
