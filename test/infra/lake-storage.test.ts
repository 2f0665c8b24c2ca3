// The lake bucket (encrypted, private, TLS-only, unversioned, logged, state never expired), the
// Glue database — but no Glue table: those belong to the Commit step at run time — and the Athena
// workgroup (enforced encrypted results that expire, a bytes-scanned cutoff, CloudWatch metrics).
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { LakeBucket, LakeCatalog, LakeQueryWorkgroup } from '../../lib/index.ts';
import { buildStack, FIXTURE_CONFIG_YAML, FIXTURE_DATABASE, FIXTURE_PREFIX, fixtureConfig, logicalIdOf, resourcesOfType, type BuiltStack } from './stack.ts';

let built: BuiltStack;
let bucketId: string;
let logsBucketId: string;

beforeAll(() => {
  built = buildStack();
  bucketId = logicalIdOf(built.stack, built.stack.lake.bucket);
  logsBucketId = logicalIdOf(built.stack, built.stack.lake.accessLogsBucket);
}, 180_000);

function bucketProps(id: string): Record<string, unknown> {
  return resourcesOfType<Record<string, unknown>>(built.template, 'AWS::S3::Bucket')[id].Properties;
}

function tlsOnlyStatement(id: string) {
  return {
    Effect: 'Deny',
    Principal: { AWS: '*' },
    Action: 's3:*',
    Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    Resource: [{ 'Fn::GetAtt': [id, 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [id, 'Arn'] }, '/*']] }],
  };
}

describe('lake bucket', () => {
  it('is encrypted with S3-managed keys and blocks all public access', () => {
    for (const id of [bucketId, logsBucketId]) {
      expect(bucketProps(id).BucketEncryption).toEqual({ ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] });
      expect(bucketProps(id).PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    }
  });

  it('refuses every request without TLS', () => {
    for (const id of [bucketId, logsBucketId]) {
      built.template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: { Statement: Match.arrayWith([tlsOnlyStatement(id)]) },
      });
    }
  });

  it('is not versioned: a re-run overwrites the same keys', () => {
    expect(bucketProps(bucketId).VersioningConfiguration).toBeUndefined();
  });

  it('is kept when the stack is deleted', () => {
    built.template.hasResource('AWS::S3::Bucket', { Properties: { LoggingConfiguration: Match.anyValue() }, DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('sends server access logs to the separate logs bucket, which S3 logging may write to', () => {
    expect(bucketProps(bucketId).LoggingConfiguration).toEqual({ DestinationBucketName: { Ref: logsBucketId }, LogFilePrefix: 'lake/' });
    built.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logsBucketId },
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Allow', Principal: { Service: 'logging.s3.amazonaws.com' }, Action: 's3:PutObject' })]) },
    });
  });

  it('aborts abandoned multipart uploads, expires only Athena\'s query results, and never the exporter\'s state', () => {
    const rules = (bucketProps(bucketId).LifecycleConfiguration as { Rules: Array<Record<string, unknown>> }).Rules;
    // Run manifests under _state are how a re-run finds the files it replaces.
    expect(rules).toEqual([
      { Id: 'abort-incomplete-uploads', Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
      { Id: 'expire-query-results', Status: 'Enabled', Prefix: `${FIXTURE_PREFIX}/_query-results/`, ExpirationInDays: 7 },
    ]);
  });

  it('expires only the prefixes it is given', () => {
    const stack = new Stack(new App(), 'Retention');
    new LakeBucket(stack, 'Lake', { prefix: 'raw', expiringPrefixes: ['raw/clickstream/'], expireAfterDays: 400 });
    Template.fromStack(stack).hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: Match.arrayWith([{ Id: 'expire-0', Status: 'Enabled', Prefix: 'raw/clickstream/', ExpirationInDays: 400 }]) },
    });
  });

  it('reports every invalid prop at once', () => {
    const stack = new Stack(new App(), 'Invalid');
    expect(() => new LakeBucket(stack, 'Lake', { prefix: '/raw/', expireAfterDays: 0 })).toThrowError(
      /prefix: must be non-empty[\s\S]*expireAfterDays: must be a positive whole number of days \(got 0\)/,
    );
    expect(() => new LakeBucket(stack, 'Lake2', { prefix: 'raw', expiringPrefixes: ['other/x/', 'raw/_state/orders/runs/', 'raw/*/old/'] })).toThrowError(
      /expiringPrefixes\[0\]: must lie under[\s\S]*expiringPrefixes\[1\]: must not cover the exporter's state[\s\S]*expiringPrefixes\[2\]: lifecycle prefixes are literal/,
    );
  });
});

describe('lake catalog', () => {
  it('deploys the Glue database', () => {
    built.template.resourceCountIs('AWS::Glue::Database', 1);
    built.template.hasResourceProperties('AWS::Glue::Database', { CatalogId: '123456789012', DatabaseInput: { Name: FIXTURE_DATABASE } });
  });

  it('deploys no Glue table and no partition projection: Commit owns them at run time', () => {
    built.template.resourceCountIs('AWS::Glue::Table', 0);
    const text = JSON.stringify(built.template.toJSON());
    expect(text).not.toContain('projection.enabled');
    expect(text).not.toContain('storage.location.template');
  });

  it('rejects names Glue would not keep as given', () => {
    const stack = new Stack(new App(), 'Invalid');
    expect(() => new LakeCatalog(stack, 'Catalog', { databaseName: 'Sales-Lake', lakeTables: ['ok', 'Not OK'] })).toThrowError(
      /databaseName: must be 1–255 lower-case letters, digits or "_", starting with a letter[\s\S]*lakeTables\[1\]: must match/,
    );
  });
});

describe('lake query workgroup', () => {
  type WorkGroupProps = { Name: string; State: string; RecursiveDeleteOption: boolean; WorkGroupConfiguration: Record<string, unknown> };
  const workGroups = () => Object.values(resourcesOfType<WorkGroupProps>(built.template, 'AWS::Athena::WorkGroup'));

  it('enforces its encrypted result location in the lake bucket under a prefix no table reads, a bytes-scanned cutoff, and publishes metrics', () => {
    const [workGroup, ...others] = workGroups();
    expect(others).toEqual([]);
    expect(workGroup.Properties).toEqual({
      Name: built.stack.queryWorkgroup.workGroupName,
      Description: expect.any(String),
      State: 'ENABLED',
      RecursiveDeleteOption: true,
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        BytesScannedCutoffPerQuery: 10_240 * 1024 * 1024,
        PublishCloudWatchMetricsEnabled: true,
        EngineVersion: { SelectedEngineVersion: 'Athena engine version 3' },
        ResultConfiguration: {
          // "_query-results": a lake table's folder never starts with "_" (lakeName is [a-z0-9][a-z0-9_]*).
          OutputLocation: { 'Fn::Join': ['', ['s3://', { Ref: bucketId }, `/${FIXTURE_PREFIX}/_query-results/`]] },
          EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
          ExpectedBucketOwner: '123456789012',
        },
      },
    });
    // Named after the construct path (unique per stack), never a fixed physical name.
    expect(workGroup.Properties.Name).toMatch(/^PgLakeExport-QueryWorkgroup-[A-F0-9]{8}$/);
    expect(built.stack.queryWorkgroup.workGroupArn).toBeDefined();
  });

  it('takes the cutoff from validation.bytesScannedLimitMb', () => {
    const config = fixtureConfig(FIXTURE_CONFIG_YAML.replace('tables:', 'validation: { bytesScannedLimitMb: 25 }\ntables:'));
    expect(config.validation).toEqual({ enabled: true, bytesScannedLimitMb: 25 });
    const stack = new Stack(new App(), 'Cutoff');
    const lake = new LakeBucket(stack, 'Lake', { prefix: 'raw' });
    new LakeQueryWorkgroup(stack, 'Queries', { bucket: lake.bucket, resultsPrefix: 'raw/_query-results', bytesScannedLimitMb: config.validation.bytesScannedLimitMb, resultsExpireAfterDays: 2 });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Athena::WorkGroup', { WorkGroupConfiguration: Match.objectLike({ BytesScannedCutoffPerQuery: 25 * 1024 * 1024 }) });
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: Match.arrayWith([{ Id: 'expire-query-results', Status: 'Enabled', Prefix: 'raw/_query-results/', ExpirationInDays: 2 }]) },
    });
  });

  it('reports every invalid prop at once', () => {
    const stack = new Stack(new App(), 'InvalidWorkgroup');
    const lake = new LakeBucket(stack, 'Lake', { prefix: 'raw' });
    expect(() => new LakeQueryWorkgroup(stack, 'Queries', { bucket: lake.bucket, resultsPrefix: '/raw/', bytesScannedLimitMb: 9, resultsExpireAfterDays: 0 })).toThrowError(
      /resultsPrefix: must be non-empty[\s\S]*bytesScannedLimitMb: must be a whole number of MiB, at least 10 \(Athena's minimum\) \(got 9\)[\s\S]*resultsExpireAfterDays/,
    );
  });
});
