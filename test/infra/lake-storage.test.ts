// The lake bucket (encrypted, private, TLS-only, unversioned, logged, state never expired) and the
// Glue database — but no Glue table: those belong to the Commit step at run time.
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { LakeBucket, LakeCatalog } from '../../lib/index.ts';
import { buildStack, FIXTURE_DATABASE, logicalIdOf, resourcesOfType, type BuiltStack } from './stack.ts';

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

  it('aborts abandoned multipart uploads, and never expires the exporter\'s state', () => {
    const rules = (bucketProps(bucketId).LifecycleConfiguration as { Rules: Array<Record<string, unknown>> }).Rules;
    // Run manifests under _state are how a re-run finds the files it replaces.
    expect(rules).toEqual([{ Id: 'abort-incomplete-uploads', Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }]);
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
