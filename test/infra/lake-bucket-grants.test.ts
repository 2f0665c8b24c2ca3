// LakeBucket.grantPrefixAccess on one role more than once: a role that reads the whole lake and
// writes its state (Export with delete detection), the same grant twice, or grants of two lake
// buckets. IAM refuses a policy whose statements share a Sid, and CDK never merges statements
// that carry one, so every grant's statements need Sids of their own (and a repeated grant adds
// nothing). cdk-nag still passes: each grant acknowledges its own prefix on the role.
import { App, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { LakeBucket } from '../../lib/index.ts';
import { asArray, cdkJsonContext, ENV, logicalIdOf, resourcesOfType, type PolicyDocumentJson, type PolicyStatementJson } from './stack.ts';

interface Granted {
  readonly app: App;
  readonly stack: Stack;
  readonly template: Template;
  readonly lakes: LakeBucket[];
  readonly role: iam.Role;
}

/** A stack with a lake bucket per prefix and one Lambda role that `grant` gives access to. */
function grantOnOneRole(prefixes: string[], grant: (lakes: LakeBucket[], role: iam.Role) => void): Granted {
  const app = new App({ context: cdkJsonContext() });
  const stack = new Stack(app, 'Grants', { env: ENV });
  const lakes = prefixes.map((prefix, i) => new LakeBucket(stack, `Lake${i}`, { prefix }));
  const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  grant(lakes, role);
  return { app, stack, template: Template.fromStack(stack), lakes, role };
}

function statementsOf(granted: Granted): PolicyStatementJson[] {
  const policies = resourcesOfType<{ PolicyDocument: PolicyDocumentJson }>(granted.template, 'AWS::IAM::Policy');
  return Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

function duplicateSids(statements: PolicyStatementJson[]): string[] {
  const sids = statements.map((s) => s.Sid).filter((sid): sid is string => sid !== undefined);
  return sids.filter((sid, i) => sids.indexOf(sid) !== i);
}

/** What each statement allows on which resource, without its Sid. */
function grantsOf(granted: Granted): string[] {
  const bucketIds = granted.lakes.map((lake) => logicalIdOf(granted.stack as never, lake.bucket));
  return statementsOf(granted).map((s) => {
    const resource = JSON.stringify(s.Resource).replace(/"Fn::GetAtt":\["(\w+)","Arn"\]/, (_, id: string) => `lake${bucketIds.indexOf(id)}`);
    return `${asArray(s.Action).sort().join(',')} ${resource}${s.Condition ? ` ${JSON.stringify(s.Condition)}` : ''}`;
  }).sort();
}

function nagViolations(granted: Granted): string[] {
  const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(granted.app);
  return report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
}

describe('LakeBucket.grantPrefixAccess on one role', () => {
  it('keeps both grants of one bucket (read the lake, write its state), each statement under a Sid of its own', () => {
    const granted = grantOnOneRole(['raw'], ([lake], role) => {
      lake.grantPrefixAccess(role, { readOnly: true });
      lake.grantPrefixAccess(role, { stateOnly: true });
    });
    const statements = statementsOf(granted);
    expect(duplicateSids(statements)).toEqual([]);
    expect(statements.every((s) => /^[A-Za-z0-9]+$/.test(s.Sid ?? ''))).toBe(true);
    expect(grantsOf(granted)).toEqual([
      's3:AbortMultipartUpload,s3:DeleteObject,s3:GetObject,s3:PutObject {"Fn::Join":["",[{lake0},"/raw/_state/*"]]}',
      's3:GetObject {"Fn::Join":["",[{lake0},"/raw/*"]]}',
      's3:ListBucket {lake0} {"StringLike":{"s3:prefix":["raw/*"]}}',
      's3:ListBucket {lake0} {"StringLike":{"s3:prefix":["raw/_state/*"]}}',
    ]);
    expect(nagViolations(granted)).toEqual([]);
  });

  it('keeps the grants of two lake buckets apart', () => {
    const granted = grantOnOneRole(['raw', 'curated'], (lakes, role) => {
      for (const lake of lakes) lake.grantPrefixAccess(role);
    });
    expect(duplicateSids(statementsOf(granted))).toEqual([]);
    expect(grantsOf(granted)).toEqual([
      's3:AbortMultipartUpload,s3:DeleteObject,s3:GetObject,s3:PutObject {"Fn::Join":["",[{lake0},"/raw/*"]]}',
      's3:AbortMultipartUpload,s3:DeleteObject,s3:GetObject,s3:PutObject {"Fn::Join":["",[{lake1},"/curated/*"]]}',
      's3:ListBucket {lake0} {"StringLike":{"s3:prefix":["raw/*"]}}',
      's3:ListBucket {lake1} {"StringLike":{"s3:prefix":["curated/*"]}}',
    ]);
    expect(nagViolations(granted)).toEqual([]);
  });

  it('adds nothing when the same grant is made twice', () => {
    const once = grantOnOneRole(['raw'], ([lake], role) => lake.grantPrefixAccess(role, { readDelete: true }));
    const twice = grantOnOneRole(['raw'], ([lake], role) => {
      lake.grantPrefixAccess(role, { readDelete: true });
      lake.grantPrefixAccess(role, { readDelete: true });
    });
    expect(duplicateSids(statementsOf(twice))).toEqual([]);
    expect(statementsOf(twice)).toEqual(statementsOf(once));
    expect(grantsOf(twice)).toEqual([
      's3:DeleteObject,s3:GetObject {"Fn::Join":["",[{lake0},"/raw/*"]]}',
      's3:ListBucket {lake0} {"StringLike":{"s3:prefix":["raw/*"]}}',
    ]);
  });
});
