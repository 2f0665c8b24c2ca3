// Delete detection, deployed (README "Deletes"): when some table has deletes.detect, Export
// queries `<table>_current` through Athena in the stack's workgroup — its environment names the
// workgroup, and its role may run queries there, read the Glue tables and (as Athena reads with
// the caller's credentials) read the lake and the query results, nothing more. IAM refuses a
// policy whose statements share a Sid, so each grant names its own. The dashboard graphs the
// detecting tables' DeletesDetected. Without a detecting table, Export has none of it.
import { AwsSolutionsChecks } from 'cdk-nag';
import { Validations } from 'aws-cdk-lib';
import { beforeAll, describe, expect, it } from 'vitest';
import { DELETES_DETECTED_METRIC, TABLE_DIMENSION } from '../../lib/export-alarms.ts';
import { asArray, buildStack, fixtureConfig, FIXTURE_CONFIG_YAML, FIXTURE_DATABASE, FIXTURE_LAKE_TABLES, FIXTURE_PREFIX, logicalIdOf, resourcesOfType, type BuiltStack, type PolicyDocumentJson, type PolicyStatementJson } from './stack.ts';

/** The fixture with deletes.detect on public.orders only. */
const DETECTING_YAML = FIXTURE_CONFIG_YAML.replace('    cursor: updated_at\n', '    cursor: updated_at\n    deletes: { detect: true }\n');

let detecting: BuiltStack;
let plain: BuiltStack;

beforeAll(() => {
  expect(DETECTING_YAML).not.toBe(FIXTURE_CONFIG_YAML);
  detecting = buildStack({ config: fixtureConfig(DETECTING_YAML) });
  plain = buildStack();
}, 300_000);

interface FunctionProps { Environment: { Variables: Record<string, unknown> } }

function environmentOf(built: BuiltStack, fn: string): Record<string, unknown> {
  const all = resourcesOfType<FunctionProps>(built.template, 'AWS::Lambda::Function');
  return all[logicalIdOf(built.stack, built.stack.functions.functions[fn])].Properties.Environment.Variables;
}

function roleIdOf(built: BuiltStack, fn: string): string {
  return logicalIdOf(built.stack, built.stack.functions.functions[fn].role as unknown as { node: { defaultChild?: unknown } });
}

/** Allow statements of the identity policies attached to the role. */
function statementsOf(built: BuiltStack, roleId: string): PolicyStatementJson[] {
  const policies = resourcesOfType<{ PolicyDocument: PolicyDocumentJson; Roles: Array<{ Ref: string }> }>(built.template, 'AWS::IAM::Policy');
  return Object.values(policies).filter((p) => p.Properties.Roles.some((r) => r.Ref === roleId)).flatMap((p) => p.Properties.PolicyDocument.Statement).filter((s) => s.Effect === 'Allow');
}

const byJson = (a: unknown, b: unknown) => JSON.stringify(a).localeCompare(JSON.stringify(b));

describe('delete detection, deployed', () => {
  it('tells Export which Athena workgroup to query in only when some table detects deletes', () => {
    expect(environmentOf(detecting, 'Export').ATHENA_WORK_GROUP).toBe(detecting.stack.queryWorkgroup.workGroupName);
    expect(environmentOf(plain, 'Export').ATHENA_WORK_GROUP).toBeUndefined();
    for (const fn of ['Plan', 'Commit', 'Summarize', 'Compact']) expect(environmentOf(detecting, fn).ATHENA_WORK_GROUP, fn).toBeUndefined();
  });

  it('lets Export run queries in the workgroup, read the Glue tables, read the lake and the query results — and write only its state and the results', () => {
    const bucket = logicalIdOf(detecting.stack, detecting.stack.lake.bucket);
    const objects = (scope: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, `/${scope}/*`]] });
    const glue = (resource: string) => `arn:aws:glue:eu-west-1:123456789012:${resource}`;
    const granted = statementsOf(detecting, roleIdOf(detecting, 'Export'))
      .filter((s) => asArray(s.Action).some((a) => /^(athena|glue|s3):/.test(a)))
      .map((s) => ({ sid: s.Sid, actions: asArray(s.Action).sort(), resources: asArray(s.Resource).sort(byJson), condition: s.Condition }))
      .sort((a, b) => (a.sid ?? '').localeCompare(b.sid ?? ''));
    expect(granted).toEqual([
      // The lake's two grants to Export: read-write on `_state/`, read-only on the whole prefix.
      { sid: `${bucket}StateList`, actions: ['s3:ListBucket'], resources: [{ 'Fn::GetAtt': [bucket, 'Arn'] }], condition: { StringLike: { 's3:prefix': [`${FIXTURE_PREFIX}/_state/*`] } } },
      { sid: `${bucket}StateReadWrite`, actions: ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:PutObject'], resources: [objects(`${FIXTURE_PREFIX}/_state`)], condition: undefined },
      { sid: `${bucket}PrefixList`, actions: ['s3:ListBucket'], resources: [{ 'Fn::GetAtt': [bucket, 'Arn'] }], condition: { StringLike: { 's3:prefix': [`${FIXTURE_PREFIX}/*`] } } },
      { sid: 'LocateLakeBucket', actions: ['s3:GetBucketLocation'], resources: [{ 'Fn::GetAtt': [bucket, 'Arn'] }], condition: undefined },
      { sid: `${bucket}PrefixRead`, actions: ['s3:GetObject'], resources: [objects(FIXTURE_PREFIX)], condition: undefined },
      {
        sid: 'ReadLakeGlueTables',
        actions: ['glue:GetDatabase', 'glue:GetPartitions', 'glue:GetTable'],
        resources: [glue('catalog'), glue(`database/${FIXTURE_DATABASE}`), ...FIXTURE_LAKE_TABLES.flatMap((t) => [t, `${t}_current`].map((n) => glue(`table/${FIXTURE_DATABASE}/${n}`)))].sort(byJson),
        condition: undefined,
      },
      {
        sid: 'RunLakeQueries',
        actions: ['athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:StartQueryExecution', 'athena:StopQueryExecution'],
        resources: [`arn:aws:athena:eu-west-1:123456789012:workgroup/${detecting.stack.queryWorkgroup.workGroupName}`],
        condition: undefined,
      },
      { sid: 'WriteLakeQueryResults', actions: ['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject'], resources: [objects(`${FIXTURE_PREFIX}/_query-results`)], condition: undefined },
    ].sort((a, b) => a.sid.localeCompare(b.sid)));
  });

  it('gives Export nothing of it when no table detects deletes', () => {
    const actions = statementsOf(plain, roleIdOf(plain, 'Export')).flatMap((s) => asArray(s.Action));
    expect(actions.filter((a) => /^(athena|glue):/.test(a))).toEqual([]);
    expect(actions.filter((a) => a.startsWith('s3:')).sort()).toEqual(['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject']);
  });

  it('never gives two statements of one policy the same Sid (IAM refuses the policy)', () => {
    for (const built of [detecting, plain]) {
      const policies = resourcesOfType<{ PolicyDocument: PolicyDocumentJson }>(built.template, 'AWS::IAM::Policy');
      for (const [id, policy] of Object.entries(policies)) {
        const sids = policy.Properties.PolicyDocument.Statement.map((s) => s.Sid).filter((sid): sid is string => sid !== undefined);
        expect(sids.filter((sid, i) => sids.indexOf(sid) !== i), id).toEqual([]);
      }
    }
  });

  it('passes cdk-nag, Export\'s read of the lake acknowledged on its own role with a reason', () => {
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(detecting.app);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    const role = detecting.stack.functions.functions.Export.role!;
    const acknowledged = role.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY).flatMap((m) => Object.entries(m.data as Record<string, string>));
    const ids = acknowledged.map(([id]) => id.replace(/^annotation::/i, '').replace(/<\w+?\.Arn>/, '<Arn>')).sort();
    expect(ids).toEqual([
      'AwsSolutions-IAM5[Resource::*]',
      `AwsSolutions-IAM5[Resource::<Arn>/${FIXTURE_PREFIX}/*]`,
      `AwsSolutions-IAM5[Resource::<Arn>/${FIXTURE_PREFIX}/_query-results/*]`,
      `AwsSolutions-IAM5[Resource::<Arn>/${FIXTURE_PREFIX}/_state/*]`,
    ].sort());
    for (const [id, reason] of acknowledged) expect(reason.length, id).toBeGreaterThan(40);
  });

  it('graphs DeletesDetected on the dashboard for the detecting table only', () => {
    const body = (built: BuiltStack) => {
      const [dashboard] = Object.values(built.template.findResources('AWS::CloudWatch::Dashboard')) as Array<{ Properties: { DashboardBody: unknown } }>;
      return JSON.stringify(dashboard.Properties.DashboardBody);
    };
    expect(body(detecting)).toContain(`\\"${DELETES_DETECTED_METRIC}\\",\\"${TABLE_DIMENSION}\\",\\"orders\\"`);
    for (const table of ['customers', 'order_items']) expect(body(detecting)).not.toContain(`\\"${DELETES_DETECTED_METRIC}\\",\\"${TABLE_DIMENSION}\\",\\"${table}\\"`);
    expect(body(plain)).not.toContain(DELETES_DETECTED_METRIC);
  });
});
