// Every identity gets only what its step needs: S3 under the lake prefix, Glue on the configured
// tables (Commit, Plan and Compact), the database secret (connecting functions only), Athena in
// the stack's workgroup only (Validate, which only reads the lake), and no wildcard action.
import { beforeAll, describe, expect, it } from 'vitest';
import { asArray, buildStack, FIXTURE_DATABASE, FIXTURE_LAKE_TABLES, FIXTURE_PREFIX, logicalIdOf, resourcesOfType, type BuiltStack, type PolicyDocumentJson, type PolicyStatementJson } from './stack.ts';

interface PolicyProps {
  PolicyDocument: PolicyDocumentJson;
  Roles: Array<{ Ref: string }>;
}

let built: BuiltStack;
let ids: Record<string, string>;

beforeAll(() => {
  built = buildStack();
  const { stack } = built;
  const role = (fn: { role?: unknown }) => logicalIdOf(stack, fn.role as { node: { defaultChild?: unknown } });
  const fns = stack.functions.functions;
  ids = {
    bucket: logicalIdOf(stack, stack.lake.bucket),
    stateMachine: logicalIdOf(stack, stack.workflow.stateMachine),
    deadLetterQueue: logicalIdOf(stack, stack.schedule.deadLetterQueue),
    planRole: role(fns.Plan),
    exportRole: role(fns.Export),
    commitRole: role(fns.Commit),
    summarizeRole: role(fns.Summarize),
    validateRole: role(fns.Validate),
    compactRole: role(fns.Compact),
    stateMachineRole: logicalIdOf(stack, stack.workflow.stateMachine.role as unknown as { node: { defaultChild?: unknown } }),
    segmentsMachine: logicalIdOf(stack, stack.workflow.segmentsStateMachine!),
    segmentsRole: logicalIdOf(stack, stack.workflow.segmentsStateMachine!.role as unknown as { node: { defaultChild?: unknown } }),
    scheduleRole: logicalIdOf(stack, stack.schedule.role),
  };
  for (const name of ['Plan', 'Export', 'Commit', 'Summarize', 'Validate', 'Compact'] as const) ids[`${name}Function`] = logicalIdOf(stack, fns[name]);
}, 180_000);

/** Allow statements of every identity policy attached to the role. */
function statementsOf(roleId: string): PolicyStatementJson[] {
  const policies = resourcesOfType<PolicyProps>(built.template, 'AWS::IAM::Policy');
  const roles = resourcesOfType<{ Policies?: Array<{ PolicyDocument: PolicyDocumentJson }>; ManagedPolicyArns?: unknown[] }>(built.template, 'AWS::IAM::Role');
  const inline = roles[roleId]?.Properties.Policies ?? [];
  return [
    ...Object.values(policies).filter((p) => p.Properties.Roles.some((r) => r.Ref === roleId)).flatMap((p) => p.Properties.PolicyDocument.Statement),
    ...inline.flatMap((p) => p.PolicyDocument.Statement),
  ].filter((s) => s.Effect === 'Allow');
}

const byJson = (a: unknown, b: unknown) => JSON.stringify(a).localeCompare(JSON.stringify(b));

function actionsOf(roleId: string, service: string): string[] {
  return statementsOf(roleId).flatMap((s) => asArray(s.Action)).filter((a) => a.startsWith(`${service}:`)).sort();
}

function statementsFor(roleId: string, service: string): PolicyStatementJson[] {
  return statementsOf(roleId).filter((s) => asArray(s.Action).some((a) => a.startsWith(`${service}:`)));
}

/** Every policy document in the template (identity and resource policies), with where it lives. */
function allPolicyDocuments(): Array<{ where: string; identity: boolean; document: PolicyDocumentJson }> {
  const out: Array<{ where: string; identity: boolean; document: PolicyDocumentJson }> = [];
  const resources = built.template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  for (const [id, resource] of Object.entries(resources)) {
    const props = resource.Properties ?? {};
    if (resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy') out.push({ where: id, identity: true, document: props.PolicyDocument as PolicyDocumentJson });
    if (resource.Type === 'AWS::IAM::Role') {
      for (const p of (props.Policies as Array<{ PolicyDocument: PolicyDocumentJson }> | undefined) ?? []) out.push({ where: id, identity: true, document: p.PolicyDocument });
      expect(props.ManagedPolicyArns, `${id} attaches managed policies`).toBeUndefined();
    }
    if (['AWS::S3::BucketPolicy', 'AWS::SNS::TopicPolicy', 'AWS::SQS::QueuePolicy'].includes(resource.Type)) out.push({ where: id, identity: false, document: props.PolicyDocument as PolicyDocumentJson });
    if (resource.Type === 'AWS::KMS::Key') out.push({ where: id, identity: false, document: props.KeyPolicy as PolicyDocumentJson });
  }
  return out;
}

describe('least privilege', () => {
  it('no identity policy allows a wildcard action, and no managed policy is attached', () => {
    for (const { where, identity, document } of allPolicyDocuments()) {
      if (!identity) continue;
      for (const statement of document.Statement) {
        expect(asArray(statement.Action).filter((a) => a.includes('*')), `${where}: ${JSON.stringify(statement)}`).toEqual([]);
      }
    }
  });

  it('no resource policy allows "*" or "service:*", except the KMS key\'s own-account administration', () => {
    for (const { where, identity, document } of allPolicyDocuments()) {
      if (identity) continue;
      for (const statement of document.Statement.filter((s) => s.Effect === 'Allow')) {
        const wildcards = asArray(statement.Action).filter((a) => a === '*' || a.endsWith(':*'));
        if (wildcards.length === 0) continue;
        // The default key policy: the account root administers the key (IAM then decides who may).
        expect(wildcards, where).toEqual(['kms:*']);
        expect(statement.Principal).toEqual({ AWS: 'arn:aws:iam::123456789012:root' });
      }
    }
  });

  it('"*" resources carry only actions that have no resource-level permissions', () => {
    const allowedOnStar = new Set([
      'xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets',
      'ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface',
      'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses',
      'logs:CreateLogDelivery', 'logs:DeleteLogDelivery', 'logs:DescribeLogGroups', 'logs:DescribeResourcePolicies',
      'logs:GetLogDelivery', 'logs:ListLogDeliveries', 'logs:PutResourcePolicy', 'logs:UpdateLogDelivery',
    ]);
    for (const { where, identity, document } of allPolicyDocuments()) {
      if (!identity) continue;
      for (const statement of document.Statement.filter((s) => asArray(s.Resource).includes('*'))) {
        expect(asArray(statement.Action).filter((a) => !allowedOnStar.has(a)), where).toEqual([]);
      }
    }
  });

  it('the functions read, write and delete only objects under the lake prefix (Export: only its state), and list only that', () => {
    const cases: [string, string, string[]][] = [
      [ids.planRole, FIXTURE_PREFIX, ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject']],
      [ids.commitRole, FIXTURE_PREFIX, ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject']],
      // Compact writes a generation beside the table's data, switches schema.json, deletes retired generations.
      [ids.compactRole, FIXTURE_PREFIX, ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject']],
      // Export journals and stages pages under _state/; only Commit (and Plan rolling forward) publish data.
      [ids.exportRole, `${FIXTURE_PREFIX}/_state`, ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject']],
      // Summarize reads watermarks and removes a failed run's files: no writes.
      [ids.summarizeRole, FIXTURE_PREFIX, ['s3:DeleteObject', 's3:GetObject', 's3:ListBucket']],
    ];
    for (const [role, scope, actions] of cases) {
      expect(actionsOf(role, 's3')).toEqual(actions);
      for (const statement of statementsFor(role, 's3')) {
        if (asArray(statement.Action).includes('s3:ListBucket')) {
          expect(statement.Action).toBe('s3:ListBucket');
          expect(statement.Resource).toEqual({ 'Fn::GetAtt': [ids.bucket, 'Arn'] });
          expect(statement.Condition).toEqual({ StringLike: { 's3:prefix': [`${scope}/*`] } });
        } else {
          expect(statement.Resource).toEqual({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [ids.bucket, 'Arn'] }, `/${scope}/*`]] });
        }
      }
    }
    // The Segments machine reads only a backfill's segment list (its Distributed Map's ItemReader), under the state prefix; the workflow reads nothing.
    expect(actionsOf(ids.segmentsRole, 's3')).toEqual(['s3:GetObject']);
    expect(statementsFor(ids.segmentsRole, 's3').map((st) => st.Resource)).toEqual([{ 'Fn::Join': ['', [{ 'Fn::GetAtt': [ids.bucket, 'Arn'] }, `/${FIXTURE_PREFIX}/_state/*`]] }]);
    expect(actionsOf(ids.stateMachineRole, 's3')).toEqual([]);
    expect(actionsOf(ids.scheduleRole, 's3')).toEqual([]);
  });

  it('only commit (and plan, which rolls a commit forward, and compact, which switches a table\'s location) touch Glue, and only the catalog, the lake database and the configured tables', () => {
    const arn = (resource: string) => `arn:aws:glue:eu-west-1:123456789012:${resource}`;
    for (const role of [ids.commitRole, ids.planRole, ids.compactRole]) {
      expect(actionsOf(role, 'glue')).toEqual(['glue:CreateTable', 'glue:GetDatabase', 'glue:GetTable', 'glue:UpdateTable']);
      const resources = statementsFor(role, 'glue').flatMap((s) => asArray(s.Resource));
      expect(resources.sort()).toEqual(
        [arn('catalog'), arn(`database/${FIXTURE_DATABASE}`), ...FIXTURE_LAKE_TABLES.flatMap((t) => [t, `${t}_current`].map((n) => arn(`table/${FIXTURE_DATABASE}/${n}`)))].sort(),
      );
    }
    for (const role of [ids.exportRole, ids.summarizeRole, ids.stateMachineRole, ids.segmentsRole, ids.scheduleRole]) expect(actionsOf(role, 'glue')).toEqual([]);
  });

  it('validate runs Athena queries in the stack\'s workgroup only, reads the Glue tables, reads the lake and writes only query results', () => {
    const workGroupArn = `arn:aws:athena:eu-west-1:123456789012:workgroup/${built.stack.queryWorkgroup.workGroupName}`;
    const glue = (resource: string) => `arn:aws:glue:eu-west-1:123456789012:${resource}`;
    const objects = (scope: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [ids.bucket, 'Arn'] }, `/${scope}/*`]] });
    const granted = statementsOf(ids.validateRole)
      .filter((s) => asArray(s.Action).some((a) => /^(athena|glue|s3):/.test(a)))
      .map((s) => ({ actions: asArray(s.Action).sort(), resources: asArray(s.Resource).sort(byJson), condition: s.Condition }));
    expect(granted).toEqual([
      { actions: ['s3:GetObject'], resources: [objects(FIXTURE_PREFIX)], condition: undefined },
      { actions: ['s3:ListBucket'], resources: [{ 'Fn::GetAtt': [ids.bucket, 'Arn'] }], condition: { StringLike: { 's3:prefix': [`${FIXTURE_PREFIX}/*`] } } },
      {
        actions: ['glue:GetDatabase', 'glue:GetPartitions', 'glue:GetTable'],
        resources: [glue('catalog'), glue(`database/${FIXTURE_DATABASE}`), ...FIXTURE_LAKE_TABLES.flatMap((t) => [t, `${t}_current`].map((n) => glue(`table/${FIXTURE_DATABASE}/${n}`)))].sort(byJson),
        condition: undefined,
      },
      { actions: ['athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:StartQueryExecution', 'athena:StopQueryExecution'], resources: [workGroupArn], condition: undefined },
      { actions: ['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject'], resources: [objects(`${FIXTURE_PREFIX}/_query-results`)], condition: undefined },
      { actions: ['s3:GetBucketLocation'], resources: [{ 'Fn::GetAtt': [ids.bucket, 'Arn'] }], condition: undefined },
    ]);
    expect(actionsOf(ids.validateRole, 'secretsmanager')).toEqual([]);
    // Only Validate queries Athena.
    for (const role of [ids.planRole, ids.exportRole, ids.commitRole, ids.summarizeRole, ids.compactRole, ids.stateMachineRole, ids.segmentsRole, ids.scheduleRole]) expect(actionsOf(role, 'athena')).toEqual([]);
  });

  it('validate and compact run outside the database VPC (they never connect to Postgres)', () => {
    const fns = resourcesOfType<{ VpcConfig?: unknown }>(built.template, 'AWS::Lambda::Function');
    for (const [fn, role] of [[ids.ValidateFunction, ids.validateRole], [ids.CompactFunction, ids.compactRole]]) {
      expect(fns[fn].Properties.VpcConfig, fn).toBeUndefined();
      expect(actionsOf(role, 'ec2'), fn).toEqual([]);
    }
  });

  it('only the functions that connect may read the database secret, and only that secret', () => {
    for (const role of [ids.planRole, ids.exportRole, ids.commitRole]) {
      expect(actionsOf(role, 'secretsmanager')).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
      expect(statementsFor(role, 'secretsmanager').map((s) => s.Resource)).toEqual(['arn:aws:secretsmanager:eu-west-1:123456789012:secret:lake-db-AbCdEf']);
    }
    for (const role of [ids.summarizeRole, ids.validateRole, ids.compactRole]) expect(actionsOf(role, 'secretsmanager'), role).toEqual([]);
  });

  it('functions write logs only to their own log group', () => {
    for (const role of [ids.planRole, ids.exportRole, ids.commitRole, ids.summarizeRole, ids.validateRole, ids.compactRole]) {
      const statements = statementsFor(role, 'logs');
      expect(statements).toHaveLength(1);
      expect(asArray(statements[0].Action).sort()).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
      expect(statements[0].Resource).toMatchObject({ 'Fn::GetAtt': [expect.stringMatching(/Logs/), 'Arn'] });
    }
  });

  it('compact is given nothing beyond its log group, X-Ray, the lake prefix and the Glue tables', () => {
    const services = new Set(statementsOf(ids.compactRole).flatMap((s) => asArray(s.Action)).map((a) => a.split(':')[0]));
    expect([...services].sort()).toEqual(['glue', 'logs', 's3', 'xray']);
  });

  it('the state machine may invoke exactly the six functions', () => {
    const invoke = statementsFor(ids.stateMachineRole, 'lambda');
    expect(invoke.flatMap((s) => asArray(s.Action))).toEqual(['lambda:InvokeFunction']);
    const targets = new Set(JSON.stringify(invoke.flatMap((s) => asArray(s.Resource))).match(/Functions\w+Function\w+/g));
    expect([...targets].sort()).toEqual([ids.CommitFunction, ids.CompactFunction, ids.ExportFunction, ids.PlanFunction, ids.SummarizeFunction, ids.ValidateFunction].sort());
  });

  it('the Segments machine may invoke only Export', () => {
    const invoke = statementsFor(ids.segmentsRole, 'lambda');
    expect(invoke.flatMap((s) => asArray(s.Action))).toEqual(['lambda:InvokeFunction']);
    expect(new Set(JSON.stringify(invoke.flatMap((s) => asArray(s.Resource))).match(/Functions\w+Function\w+/g))).toEqual(new Set([ids.ExportFunction]));
  });

  it('the workflow may start, describe and stop only Segments executions (plus the events rule startExecution.sync watches them with); Segments only its own children', () => {
    const executionsOf = (machine: string, tail: string) => ({ 'Fn::Join': ['', ['arn:aws:states:eu-west-1:123456789012:execution:', { 'Fn::Select': [6, { 'Fn::Split': [':', { Ref: machine }] }] }, tail]] });
    const granted = (role: string) => [...statementsFor(role, 'states'), ...statementsFor(role, 'events')].map((s) => [asArray(s.Action).sort(), s.Resource]);
    expect(granted(ids.stateMachineRole)).toEqual([
      [['states:StartExecution'], { Ref: ids.segmentsMachine }],
      [['states:DescribeExecution', 'states:StopExecution'], executionsOf(ids.segmentsMachine, '*')],
      [['events:DescribeRule', 'events:PutRule', 'events:PutTargets'], 'arn:aws:events:eu-west-1:123456789012:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule'],
    ]);
    expect(granted(ids.segmentsRole)).toEqual([
      [['states:StartExecution'], { Ref: ids.segmentsMachine }],
      [['states:DescribeExecution', 'states:StopExecution'], executionsOf(ids.segmentsMachine, ':*')],
      [['states:RedriveExecution'], executionsOf(ids.segmentsMachine, '/ExportSegments:*')],
    ]);
  });

  it('the scheduler may only start this state machine and write to its dead-letter queue', () => {
    const statements = statementsOf(ids.scheduleRole);
    expect(statements.map((s) => [s.Action, s.Resource])).toEqual([
      ['states:StartExecution', { Ref: ids.stateMachine }],
      ['sqs:SendMessage', { 'Fn::GetAtt': [ids.deadLetterQueue, 'Arn'] }],
    ]);
  });
});
