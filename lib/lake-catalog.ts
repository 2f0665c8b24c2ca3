// The Glue database Athena reads the lake through. Only the database is deployed: each table's
// Glue table (columns, partition projection) is created and updated by the Commit step from the
// live Postgres catalog, so a schema change lands with the data and a deploy never reverts it.
import { Stack, Validations } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { GLUE_DATABASE_NAME } from '../lambdas/core/config.ts';
import { PropProblems } from './prop-problems.ts';

/**
 * A Glue database name of the stack's own, so a second stack (or an existing `lake` database)
 * never collides: the stack name in snake_case, reduced to Glue's rules — `PgLakeExport` →
 * `pg_lake_export`, `sales-lake-2` → `sales_lake_2`; a name starting with a digit gets `lake_`.
 */
export function defaultGlueDatabaseName(stackName: string): string {
  const snake = stackName
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  const name = /^[a-z]/.test(snake) ? snake : `lake_${snake}`.replace(/_+$/, '');
  return name.slice(0, 255).replace(/_+$/, '');
}

/**
 * Up to this many tables, the exporter's Glue grant names each table and view. Beyond it, the
 * ARNs would outgrow IAM's policy size limits (10,240 characters of inline policy per role, 6,144
 * per managed policy; ~140 per table), so the grant covers the tables of the lake's own database.
 */
export const MAX_TABLES_GRANTED_BY_NAME = 25;

export interface LakeCatalogProps {
  /** Glue database name: lower-case letters, digits and `_`, starting with a letter, at most 255. */
  readonly databaseName: string;
  /** Lake names of the tables whose Glue tables the exporter maintains. */
  readonly lakeTables: readonly string[];
  /** @default 'Tables exported from PostgreSQL by pg-lake-export' */
  readonly description?: string;
}

export class LakeCatalog extends Construct {
  readonly database: glue.CfnDatabase;
  readonly databaseName: string;
  readonly catalogArn: string;
  readonly databaseArn: string;
  /**
   * One ARN per configured table and its view (the exporter may not touch any other table); with
   * more than MAX_TABLES_GRANTED_BY_NAME tables, the one ARN of every table in the database.
   */
  readonly tableArns: readonly string[];

  constructor(scope: Construct, id: string, props: LakeCatalogProps) {
    super(scope, id);
    const problems = new PropProblems('LakeCatalog');
    problems.check(GLUE_DATABASE_NAME.test(props.databaseName), 'databaseName', 'must be 1–255 lower-case letters, digits or "_", starting with a letter (Glue and Athena naming rules)', props.databaseName);
    for (const [i, table] of props.lakeTables.entries()) {
      // 247 leaves room for the `<table>_current` view Commit keeps beside it.
      problems.check(/^[a-z0-9_]{1,247}$/.test(table), `lakeTables[${i}]`, 'must match [a-z0-9_]{1,247}', table);
    }
    problems.throwIfAny();

    const stack = Stack.of(this);
    this.databaseName = props.databaseName;
    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: stack.account,
      databaseInput: {
        name: props.databaseName,
        description: props.description ?? 'Tables exported from PostgreSQL by pg-lake-export',
      },
    });
    this.catalogArn = stack.formatArn({ service: 'glue', resource: 'catalog' });
    this.databaseArn = stack.formatArn({ service: 'glue', resource: 'database', resourceName: props.databaseName });
    // Each table and its current-state view (both created and updated by Commit).
    const tableArn = (name: string) => stack.formatArn({ service: 'glue', resource: 'table', resourceName: `${props.databaseName}/${name}` });
    this.#byName = props.lakeTables.length <= MAX_TABLES_GRANTED_BY_NAME;
    this.tableArns = this.#byName ? props.lakeTables.flatMap((table) => [tableArn(table), tableArn(`${table}_current`)]) : [tableArn('*')];
  }

  readonly #byName: boolean;

  /** Read the database and create / update the configured tables' definitions. */
  grantTableMaintenance(grantee: iam.IGrantable): void {
    this.#grant(grantee, new iam.PolicyStatement({
      sid: 'MaintainLakeGlueTables',
      actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:CreateTable', 'glue:UpdateTable'],
      resources: [this.catalogArn, this.databaseArn, ...this.tableArns],
    }));
  }

  /** Read the database and the configured tables' definitions and partitions: what Athena needs to query them. */
  grantTableRead(grantee: iam.IGrantable): void {
    this.#grant(grantee, new iam.PolicyStatement({
      sid: 'ReadLakeGlueTables',
      actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetPartitions'],
      resources: [this.catalogArn, this.databaseArn, ...this.tableArns],
    }));
  }

  #grant(grantee: iam.IGrantable, statement: iam.PolicyStatement): void {
    grantee.grantPrincipal.addToPrincipalPolicy(statement);
    if (!this.#byName && grantee.grantPrincipal instanceof iam.Role) {
      Validations.of(grantee.grantPrincipal).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagResourceText(Stack.of(this), this.tableArns[0])}]`,
        reason: `More than ${MAX_TABLES_GRANTED_BY_NAME} tables: naming each would exceed IAM's policy size limits, so the grant covers the tables of this stack's own Glue database only.`,
      });
    }
  }
}

/** An ARN as cdk-nag names it in a finding: literal text, or `<Ref>` for each reference in it. */
function nagResourceText(stack: Stack, arn: string): string {
  const resolved: unknown = stack.resolve(arn);
  if (typeof resolved === 'string') return resolved;
  const join = (resolved as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (!join) throw new Error(`cannot name ${JSON.stringify(resolved)} as cdk-nag does`);
  return join[1].map((part) => (typeof part === 'string' ? part : `<${String((part as { Ref?: string }).Ref)}>`)).join(join[0]);
}
