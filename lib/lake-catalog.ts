// The Glue database Athena reads the lake through. Only the database is deployed: each table's
// Glue table (columns, partition projection) is created and updated by the Commit step from the
// live Postgres catalog, so a schema change lands with the data and a deploy never reverts it.
import { Stack } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { PropProblems } from './prop-problems.ts';

export interface LakeCatalogProps {
  /** Glue database name (lower case, [a-z0-9_]). */
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
  /** One ARN per configured table: the exporter may not touch any other table. */
  readonly tableArns: readonly string[];

  constructor(scope: Construct, id: string, props: LakeCatalogProps) {
    super(scope, id);
    const problems = new PropProblems('LakeCatalog');
    problems.check(/^[a-z0-9_]{1,255}$/.test(props.databaseName), 'databaseName', 'must match [a-z0-9_]{1,255}', props.databaseName);
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
    this.tableArns = props.lakeTables.flatMap((table) => [table, `${table}_current`].map((name) => stack.formatArn({ service: 'glue', resource: 'table', resourceName: `${props.databaseName}/${name}` })));
  }

  /** Read the database and create / update the configured tables' definitions. */
  grantTableMaintenance(grantee: iam.IGrantable): void {
    const statement = new iam.PolicyStatement({
      sid: 'MaintainLakeGlueTables',
      actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:CreateTable', 'glue:UpdateTable'],
      resources: [this.catalogArn, this.databaseArn, ...this.tableArns],
    });
    grantee.grantPrincipal.addToPrincipalPolicy(statement);
  }
}
