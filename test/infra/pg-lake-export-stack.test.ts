// The stack refuses, before building anything, a config it cannot deploy, and says everything
// that is wrong at once.
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { LAKE_CONFIG_LIMIT_BYTES, PgLakeExportStack } from '../../lib/index.ts';
import { ENV, fixtureConfig, FIXTURE_CONFIG_YAML } from './stack.ts';

function build(yamlText: string, props: { bucketName?: string } = {}) {
  return () => new PgLakeExportStack(new App(), 'PgLakeExport', { config: fixtureConfig(yamlText), env: ENV, ...props });
}

describe('PgLakeExportStack props', () => {
  it('require source.subnetIds to place the functions', () => {
    expect(build(FIXTURE_CONFIG_YAML.replace(/^ {2}subnetIds:.*\n/m, ''))).toThrowError(/source\.subnetIds: is required to deploy/);
  });

  it('refuse a config too large for the LAKE_CONFIG variable, naming the limit', () => {
    const where = `where: "${'x'.repeat(200)} <> ''"`;
    const tables = Array.from({ length: 20 }, (_, i) => `  - name: public.t${i}\n    ${where}`).join('\n');
    const big = FIXTURE_CONFIG_YAML.replace(/^tables:\n[\s\S]*$/m, `tables:\n${tables}\n`);
    expect(build(big)).toThrowError(new RegExp(`config: is \\d+ bytes as JSON; the LAKE_CONFIG environment variable allows ${LAKE_CONFIG_LIMIT_BYTES}`));
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
