// The stack refuses, before building anything, a config it cannot deploy, and says everything
// that is wrong at once.
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { defaultGlueDatabaseName, LAKE_CONFIG_FILE, PgLakeExportStack } from '../../lib/index.ts';
import { ENV, fixtureConfig, FIXTURE_CONFIG_YAML } from './stack.ts';

function build(yamlText: string, props: { bucketName?: string } = {}) {
  return () => new PgLakeExportStack(new App(), 'PgLakeExport', { config: fixtureConfig(yamlText), env: ENV, ...props });
}

/** Synthesized without bundling (these tests read only the template). */
function templateOf(yamlText: string, stackName = 'PgLakeExport') {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  return Template.fromStack(new PgLakeExportStack(app, stackName, { config: fixtureConfig(yamlText), env: ENV }));
}

describe('PgLakeExportStack props', () => {
  it('require source.subnetIds to place the functions', () => {
    expect(build(FIXTURE_CONFIG_YAML.replace(/^ {2}subnetIds:.*\n/m, ''))).toThrowError(/source\.subnetIds: is required to deploy/);
  });

  it('refuse a Glue database name Glue or Athena would not take, naming the key', () => {
    for (const bad of ['Sales-Lake', '_lake', '1lake', 'x'.repeat(256)]) {
      expect(() => fixtureConfig(FIXTURE_CONFIG_YAML.replace('glueDatabase: sales_lake', `glueDatabase: "${bad}"`)), bad).toThrowError(
        /lake\.glueDatabase: must be 1–255 lower-case letters, digits or "_", starting with a letter/,
      );
    }
  });

  it('require the complete secret ARN, so the grant names exactly that secret', () => {
    expect(build(FIXTURE_CONFIG_YAML.replace('secret:lake-db-AbCdEf', 'secret:lake-db'))).toThrowError(/source\.secretArn: must be the complete secret ARN[\s\S]*\(got "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lake-db"\)/);
  });

  it('report every problem at once', () => {
    const noSubnets = FIXTURE_CONFIG_YAML.replace(/^ {2}subnetIds:.*\n/m, '');
    expect(build(noSubnets, { bucketName: 'Not_A_Bucket' })).toThrowError(
      /2 invalid prop\(s\)[\s\S]*source\.subnetIds[\s\S]*bucketName: must be a valid S3 bucket name \(got "Not_A_Bucket"\)/,
    );
  });
});

describe('the columns.hash salt', () => {
  it('only Export may read its secret, and only its ARN is in the environment', () => {
    const saltArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:lake-salt-XyZ123';
    const yamlText = FIXTURE_CONFIG_YAML.replace(/^source:\n/m, `source:\n  hashSaltSecretArn: ${saltArn}\n`);
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new PgLakeExportStack(app, 'PgLakeExport', { config: fixtureConfig(yamlText), env: ENV });
    const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
    const readers = Object.entries(template.Resources)
      .filter(([, r]) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties).includes(saltArn))
      .map(([, r]) => JSON.stringify((r.Properties as { Roles: unknown }).Roles));
    expect(readers).toHaveLength(1);
    expect(readers[0]).toContain('FunctionsExport');
    for (const fn of Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function')) {
      expect((fn.Properties.Environment as { Variables: Record<string, string> }).Variables.HASH_SALT_SECRET_ARN).toBe(saltArn);
    }
  });
});

describe('the Glue database', () => {
  const withoutName = FIXTURE_CONFIG_YAML.replace('lake: { prefix: lake/raw, glueDatabase: sales_lake }', 'lake: { prefix: lake/raw }');

  it('is named after the stack unless the config names it, so two stacks never share one', () => {
    const names = ['PgLakeExport', 'SalesLake2'].map((stackName) => {
      const stack = new PgLakeExportStack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), stackName, { config: fixtureConfig(withoutName), env: ENV });
      const template = Template.fromStack(stack);
      const [db] = Object.values(template.findResources('AWS::Glue::Database')) as Array<{ Properties: { DatabaseInput: { Name: string } } }>;
      // The functions read the database's name from the config shipped in their bundles.
      const shipped = JSON.parse(stack.functions.bundledFiles[LAKE_CONFIG_FILE]) as { lake: { glueDatabase: string } };
      expect(shipped.lake.glueDatabase).toBe(db.Properties.DatabaseInput.Name);
      template.hasOutput('GlueDatabaseName', { Value: db.Properties.DatabaseInput.Name });
      return db.Properties.DatabaseInput.Name;
    });
    expect(names).toEqual(['pg_lake_export', 'sales_lake2']);
    templateOf(FIXTURE_CONFIG_YAML).hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'sales_lake' } });
  });

  it('default follows Glue\'s rules whatever the stack name', () => {
    expect(defaultGlueDatabaseName('PgLakeExport')).toBe('pg_lake_export');
    expect(defaultGlueDatabaseName('sales-lake-EU')).toBe('sales_lake_eu');
    expect(defaultGlueDatabaseName('DBExportStack')).toBe('db_export_stack');
    expect(defaultGlueDatabaseName('2024-lake')).toBe('lake_2024_lake');
    expect(defaultGlueDatabaseName(`A${'b'.repeat(300)}`)).toMatch(/^[a-z][a-z0-9_]{0,254}$/);
  });
});

describe('sizes and timeouts from the config', () => {
  function functionsOf(template: Template) {
    return Object.values(template.findResources('AWS::Lambda::Function')) as Array<{ Properties: { Description: string; MemorySize: number; Timeout: number } }>;
  }
  const step = (template: Template, word: string) => functionsOf(template).find((f) => f.Properties.Description.includes(word))!.Properties;

  it('give Export 3,008 MB by default, within the cap many new accounts have', () => {
    const template = templateOf(FIXTURE_CONFIG_YAML);
    expect(step(template, 'export pages').MemorySize).toBe(3008);
    expect(step(template, 'export pages').MemorySize).toBeLessThanOrEqual(3008);
  });

  it('take export.memoryMb, the workflow timeout and the Plan and Commit timeouts from the config', () => {
    const template = templateOf(FIXTURE_CONFIG_YAML.replace('export: { maxConcurrency: 3 }', 'export: { maxConcurrency: 3, memoryMb: 5307, workflowTimeoutHours: 12, planTimeoutSeconds: 120, commitTimeoutSeconds: 600 }'));
    expect(step(template, 'export pages').MemorySize).toBe(5307);
    expect(step(template, 'resolve tables').Timeout).toBe(120);
    expect(step(template, 'advance the watermark').Timeout).toBe(600);
    const [machine] = Object.values(template.findResources('AWS::StepFunctions::StateMachine')) as Array<{ Properties: { DefinitionString: unknown } }>;
    expect(JSON.stringify(machine.Properties.DefinitionString)).toContain('\\"TimeoutSeconds\\":43200');
  });

  it('refuse values outside what Lambda and Step Functions allow, naming each key', () => {
    expect(() => fixtureConfig(FIXTURE_CONFIG_YAML.replace('export: { maxConcurrency: 3 }', 'export: { maxConcurrency: 3, memoryMb: 10241, workflowTimeoutHours: 9000, planTimeoutSeconds: 901, commitTimeoutSeconds: 10 }'))).toThrowError(
      /export\.memoryMb: Too big: expected number to be <=10240; export\.workflowTimeoutHours: Too big: expected number to be <=8760; export\.planTimeoutSeconds: Too big: expected number to be <=900; export\.commitTimeoutSeconds: Too small: expected number to be >=30/,
    );
  });
});
