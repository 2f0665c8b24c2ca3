// The Athena workgroup the workflow queries the lake through (Validate Table, and anyone who
// wants the same guard rails): results go to an enforced, encrypted location in the lake bucket
// under a prefix no table reads and expire there; every query is cut off past a bytes-scanned
// limit (Athena bills by the byte); its CloudWatch metrics are published.
import { Duration, Names, Stack, Validations } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { isPositiveInteger, PropProblems } from './prop-problems.ts';

/** Athena refuses a per-query cutoff below 10 MB. */
export const MIN_BYTES_SCANNED_LIMIT_MB = 10;
/** One mebibyte: the unit of `bytesScannedLimitMb`. */
const MB = 1024 * 1024;

export interface LakeQueryWorkgroupProps {
  /** The lake bucket: query results are written into it, under `resultsPrefix`. */
  readonly bucket: s3.Bucket;
  /**
   * Key prefix of the results, without leading or trailing `/`. It must be a folder no Glue table
   * reads: under the lake prefix, a name starting with `_` (lake tables cannot) such as
   * `<prefix>/_query-results`.
   */
  readonly resultsPrefix: string;
  /** A query that would scan more is cancelled by Athena, MiB (at least 10). @default 10240 (10 GiB) */
  readonly bytesScannedLimitMb?: number;
  /** Days until results expire (they are only read back once, by the query's caller). @default 7 */
  readonly resultsExpireAfterDays?: number;
}

export class LakeQueryWorkgroup extends Construct {
  readonly workGroup: athena.CfnWorkGroup;
  /** The workgroup's name (derived from the construct path, unique per stack). */
  readonly workGroupName: string;
  readonly workGroupArn: string;
  /** `s3://<bucket>/<resultsPrefix>/`, enforced for every query in the workgroup. */
  readonly resultsLocation: string;
  readonly resultsPrefix: string;
  readonly bytesScannedLimitBytes: number;

  readonly #bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: LakeQueryWorkgroupProps) {
    super(scope, id);
    const limitMb = props.bytesScannedLimitMb ?? 10_240;
    const expireAfterDays = props.resultsExpireAfterDays ?? 7;
    const problems = new PropProblems('LakeQueryWorkgroup');
    problems.check(/^[^/](.*[^/])?$/.test(props.resultsPrefix), 'resultsPrefix', 'must be non-empty without a leading or trailing "/"', props.resultsPrefix);
    problems.check(!props.resultsPrefix.includes('*'), 'resultsPrefix', 'lifecycle prefixes are literal; "*" never matches', props.resultsPrefix);
    problems.check(isPositiveInteger(limitMb) && limitMb >= MIN_BYTES_SCANNED_LIMIT_MB, 'bytesScannedLimitMb', `must be a whole number of MiB, at least ${MIN_BYTES_SCANNED_LIMIT_MB} (Athena's minimum)`, limitMb);
    problems.check(isPositiveInteger(expireAfterDays), 'resultsExpireAfterDays', 'must be a positive whole number of days', expireAfterDays);
    problems.throwIfAny();

    const stack = Stack.of(this);
    this.#bucket = props.bucket;
    this.resultsPrefix = props.resultsPrefix;
    this.bytesScannedLimitBytes = limitMb * MB;
    this.resultsLocation = `s3://${props.bucket.bucketName}/${props.resultsPrefix}/`;
    // Derived from the construct path: two stacks in one account never share a workgroup.
    this.workGroupName = Names.uniqueResourceName(this, { maxLength: 128, separator: '-' });
    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: this.workGroupName,
      description: 'pg-lake-export: queries of the lake (post-commit validation); results expire, scans are capped',
      state: 'ENABLED',
      // Results and query history go with the stack.
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        // Callers cannot point results elsewhere or lift the cutoff with their own settings.
        enforceWorkGroupConfiguration: true,
        bytesScannedCutoffPerQuery: this.bytesScannedLimitBytes,
        publishCloudWatchMetricsEnabled: true,
        // Trino SQL (window functions over aggregates), as the validation queries are written for.
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: this.resultsLocation,
          // SSE-S3 as the lake bucket itself (see lake-bucket.ts on why not KMS).
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
          // Results are never written to a bucket someone else created under the same name.
          expectedBucketOwner: stack.account,
        },
      },
    });
    props.bucket.addLifecycleRule({
      id: 'expire-query-results',
      prefix: `${props.resultsPrefix}/`,
      expiration: Duration.days(expireAfterDays),
    });
    this.workGroupArn = stack.formatArn({ service: 'athena', resource: 'workgroup', resourceName: this.workGroupName });
  }

  /**
   * Run queries in this workgroup (start, poll, read results, stop) and write their results:
   * objects under the results prefix only. Reading the tables is granted by the lake and the
   * catalog (their own grants).
   */
  grantQueryExecution(grantee: iam.IGrantable): void {
    const principal = grantee.grantPrincipal;
    principal.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'RunLakeQueries',
      actions: ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:StopQueryExecution'],
      resources: [this.workGroupArn],
    }));
    // Athena writes the results with the caller's credentials (multipart for large ones) and
    // GetQueryResults reads them back the same way.
    principal.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'WriteLakeQueryResults',
      actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
      resources: [this.#bucket.arnForObjects(`${this.resultsPrefix}/*`)],
    }));
    // Athena checks the bucket's region before it reads or writes it.
    principal.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'LocateLakeBucket',
      actions: ['s3:GetBucketLocation'],
      resources: [this.#bucket.bucketArn],
    }));
    if (Construct.isConstruct(principal)) {
      const bucketLogicalId = Stack.of(this).getLogicalId(this.#bucket.node.defaultChild as s3.CfnBucket);
      Validations.of(principal).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${bucketLogicalId}.Arn>/${this.resultsPrefix}/*]`,
        reason: 'Athena names each result object after its query id, known only at run time; access is scoped to the workgroup\'s results prefix.',
      });
    }
  }
}
