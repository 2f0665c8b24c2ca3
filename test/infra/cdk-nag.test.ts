// cdk-nag 3 (AWS Solutions) reports through CDK's policy-validation plugins, not Annotations:
// `Annotations.fromStack(...).findError` sees nothing. So the checks run the pack directly
// (validateScope) and through synth, where an unacknowledged finding must fail.
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildStack, type BuiltStack } from './stack.ts';

let built: BuiltStack;

beforeAll(() => {
  built = buildStack();
}, 180_000);

/** Every acknowledgement in the app: construct path (relative to the stack) → rule id → reason. */
function acknowledgements(app: App): Array<{ path: string; id: string; reason: string }> {
  const out: Array<{ path: string; id: string; reason: string }> = [];
  for (const construct of app.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        out.push({ path: construct.node.path.replace(/^PgLakeExport\//, ''), id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return out;
}

describe('cdk-nag AWS Solutions checks', () => {
  it('find nothing unacknowledged in the stack', () => {
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(built.app);
    expect(report.violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}: ${v.description}`)).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('acknowledge only these findings, each on the narrowest construct and with a reason', () => {
    const acks = acknowledgements(built.app);
    for (const ack of acks) expect(ack.reason.length, `${ack.path} ${ack.id}`).toBeGreaterThan(40);
    expect(acks.map((a) => `${a.path} ${a.id.replace(/<\w+?\.Arn>/, '<Arn>')}`).sort()).toEqual(
      [
        'Lake/AccessLogs AwsSolutions-S1',
        'Schedule/DeadLetterQueue AwsSolutions-SQS3',
        'Functions/subnet-0aaa1111bbbb22223 @aws-cdk/aws-ec2:noSubnetRouteTableId',
        'Functions/subnet-0ccc3333dddd44445 @aws-cdk/aws-ec2:noSubnetRouteTableId',
        ...['Plan', 'Export', 'Commit', 'Summarize', 'Validate', 'Compact'].map((fn) => `Functions/${fn}/Role AwsSolutions-IAM5[Resource::*]`),
        // Compact writes each table's new generation and deletes retired ones: names come from the table and generation.
        ...['Plan', 'Commit', 'Summarize', 'Validate', 'Compact'].map((fn) => `Functions/${fn}/Role AwsSolutions-IAM5[Resource::<Arn>/lake/raw/*]`),
        'Functions/Export/Role AwsSolutions-IAM5[Resource::<Arn>/lake/raw/_state/*]',
        // Athena names result objects by query id.
        'Functions/Validate/Role AwsSolutions-IAM5[Resource::<Arn>/lake/raw/_query-results/*]',
        'Workflow/StateMachine/Role AwsSolutions-IAM5[Resource::*]',
        // Export Segments (startExecution.sync:2) describes and stops the Segments executions it starts.
        'Workflow/StateMachine/Role AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:123456789012:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"WorkflowSegmentsStateMachine1E0F85A7"}]}]}*]',
        'Workflow/Segments/StateMachine/Role AwsSolutions-IAM5[Resource::*]',
        // The Segments Distributed Map: the segment list under the state prefix, and its child executions.
        'Workflow/Segments/StateMachine/Role AwsSolutions-IAM5[Resource::<Arn>/lake/raw/_state/*]',
        'Workflow/Segments/StateMachine/DistributedMapPolicy AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:123456789012:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"WorkflowSegmentsStateMachine1E0F85A7"}]}]}:*]',
        'Workflow/Segments/StateMachine/DistributedMapPolicy AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:123456789012:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"WorkflowSegmentsStateMachine1E0F85A7"}]}]}/ExportSegments:*]',
        // LambdaInvoke grants each of the six functions with its versions (`:*`); Segments only Export.
        ...Array.from({ length: 6 }, () => 'Workflow/StateMachine/Role AwsSolutions-IAM5[Resource::<Arn>:*]'),
        'Workflow/Segments/StateMachine/Role AwsSolutions-IAM5[Resource::<Arn>:*]',
      ].sort(),
    );
  });

  it('fail synth on an unacknowledged finding (control)', () => {
    const app = new App();
    const stack = new Stack(app, 'Careless');
    new s3.Bucket(stack, 'Plain');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrowError(/AwsSolutions-S1[\s\S]*AwsSolutions-S10|AwsSolutions-S10[\s\S]*AwsSolutions-S1/);
  });
});
