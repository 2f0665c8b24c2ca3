// One place owns every Lambda default: runtime, architecture, bundling (the parquet-wasm binary
// copied next to the one bundle that encodes, and the files every bundle carries, such as the
// validated config), log group and retention, tracing, VPC placement, and an execution role
// that holds only what the function needs.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, Stage, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { isPositiveInteger, PropProblems } from './prop-problems.ts';
import { ENCODER_BUNDLE } from '../lambdas/core/page/encode-worker.ts';
import { BUNDLE_OPTIONS, encoderBundleFiles } from './encoder-bundle.ts';
import { EXEC_WRAPPER, EXEC_WRAPPER_SCRIPT, NODE_OPTIONS } from './runtime-options.ts';

/** The repository root: holds package-lock.json, node_modules and lambdas/. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A complete secret ARN, with the 6-character suffix Secrets Manager appends (IAM needs it to be exact). */
export const COMPLETE_SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[^:]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$/;

/** Lambda's limit on the total size of a function's environment (keys and values). */
export const LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096;

/** Where the functions that talk to Postgres run. */
export interface DatabaseNetwork {
  readonly vpcId: string;
  /** Private subnets with a route to the database (and to S3 / Secrets Manager / Glue). */
  readonly subnetIds: readonly string[];
  /** Security group the database accepts connections from. */
  readonly securityGroupId: string;
}

export interface LambdaFactoryProps {
  /** Environment given to every function (Lambda allows 4 KB in total: keep big things in `bundledFiles`). */
  readonly environment: Readonly<Record<string, string>>;
  /**
   * Files written next to every function's `index.js` (name → content), read at cold start from
   * `$LAMBDA_TASK_ROOT`. They change the asset hash, so a new content redeploys the code.
   * @default - none
   */
  readonly bundledFiles?: Readonly<Record<string, string>>;
  /** VPC placement of the functions that connect to the database. */
  readonly databaseNetwork: DatabaseNetwork;
  /** Secrets Manager secret (complete ARN) the connecting functions may read. */
  readonly databaseSecretArn: string;
  /** How long function logs are kept. @default RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Directory holding package-lock.json, node_modules and the handler files. @default the repository root */
  readonly projectRoot?: string;
}

export interface LakeFunctionOptions {
  /** Handler file relative to `projectRoot`; it must export `handler`. */
  readonly entry: string;
  /** What the function does (shown in the console). */
  readonly description: string;
  /** @default 1024 */
  readonly memorySizeMb?: number;
  /** @default Duration.minutes(5) */
  readonly timeout?: Duration;
  /** Runs in the database VPC with its security group and may read the database secret. @default false */
  readonly connectsToDatabase?: boolean;
  /**
   * Encodes Parquet: its bundle carries parquet-wasm and its 5 MB `.wasm`. Every other bundle
   * leaves parquet-wasm out (a `require` of it there fails by name instead of loading it).
   * @default false
   */
  readonly encodesParquet?: boolean;
  /** Variables only this function needs, added to the shared ones (counted in the 4 KB). @default - none */
  readonly environment?: Readonly<Record<string, string>>;
}

/** parquet-wasm's node build reads this file from `__dirname` at load time. */
const PARQUET_WASM = 'parquet_wasm_bg.wasm';
/** Files the bundles themselves hold. */
const RESERVED_FILES = new Set(['index.js', 'index.js.map', PARQUET_WASM, ENCODER_BUNDLE, `${ENCODER_BUNDLE}.map`, EXEC_WRAPPER]);

/**
 * What the factory adds to every function's environment: NODE_OPTIONS, and the wrapper script
 * (runtime-options.ts) Lambda starts node through, which lies beside index.js in /var/task.
 */
const RUNTIME_ENVIRONMENT = { NODE_OPTIONS, AWS_LAMBDA_EXEC_WRAPPER: `/var/task/${EXEC_WRAPPER}` } as const;
const RUNTIME_ENVIRONMENT_BYTES = Object.entries(RUNTIME_ENVIRONMENT).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
/** A bundled file's name: plain, so that it is safe in the bundling shell command. */
const BUNDLED_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export class LambdaFactory extends Construct {
  /** Every function made so far, by construct id. */
  readonly functions: Record<string, nodejs.NodejsFunction> = {};
  /** The files copied into every bundle, by name (their content: what the functions read at run time). */
  readonly bundledFiles: Readonly<Record<string, string>>;

  readonly #props: LambdaFactoryProps;
  readonly #projectRoot: string;
  readonly #logRetention: logs.RetentionDays;
  readonly #secret: secretsmanager.ISecret;
  readonly #vpc: ec2.IVpc;
  readonly #subnets: ec2.ISubnet[];
  readonly #securityGroup: ec2.ISecurityGroup;
  /** Bundled file name (and the exec wrapper's) → where its content was staged for the bundling hook to copy. */
  readonly #stagedFiles: ReadonlyArray<{ name: string; path: string }>;
  /** The encoder's bundle (encoder.js and its map), staged on first use: for the bundles that encode. */
  #stagedEncoder: ReadonlyArray<{ name: string; path: string }> | null = null;

  constructor(scope: Construct, id: string, props: LambdaFactoryProps) {
    super(scope, id);
    const problems = new PropProblems('LambdaFactory');
    const network = props.databaseNetwork;
    problems.check(network.subnetIds.length > 0, 'databaseNetwork.subnetIds', 'list at least one subnet', network.subnetIds);
    problems.check(COMPLETE_SECRET_ARN.test(props.databaseSecretArn), 'databaseSecretArn', 'must be a complete Secrets Manager secret ARN (ending in the 6-character suffix)', props.databaseSecretArn);
    for (const name of Object.keys(props.bundledFiles ?? {})) {
      problems.check(BUNDLED_FILE_NAME.test(name) && !RESERVED_FILES.has(name), 'bundledFiles', 'names must be plain file names other than index.js, the wasm, the encoder\'s bundle and the exec wrapper', name);
    }
    problems.throwIfAny();
    this.bundledFiles = { ...props.bundledFiles };
    this.#stagedFiles = stageFiles(this, { ...this.bundledFiles, [EXEC_WRAPPER]: EXEC_WRAPPER_SCRIPT });

    this.#props = props;
    this.#projectRoot = props.projectRoot ?? PROJECT_ROOT;
    this.#logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.#secret = secretsmanager.Secret.fromSecretCompleteArn(this, 'DatabaseSecret', props.databaseSecretArn);
    // fromVpcAttributes + explicit subnets works offline (Vpc.fromLookup needs AWS credentials, and
    // Stack.availabilityZones of an environment-bound stack is a context lookup too). The functions
    // are placed by subnet id, so the imported VPC needs no subnets and its AZ list is never read.
    this.#vpc = ec2.Vpc.fromVpcAttributes(this, 'DatabaseVpc', { vpcId: network.vpcId, availabilityZones: ['unused'] });
    this.#subnets = network.subnetIds.map((subnetId) => {
      const subnet = ec2.Subnet.fromSubnetId(this, subnetId, subnetId);
      Validations.of(subnet).acknowledge({
        id: 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
        reason: 'Only the subnet id is used (Lambda VpcConfig); nothing reads its route table.',
      });
      return subnet;
    });
    this.#securityGroup = ec2.SecurityGroup.fromSecurityGroupId(this, 'DatabaseClientSecurityGroup', network.securityGroupId, { mutable: false });
  }

  #encoderFiles(): ReadonlyArray<{ name: string; path: string }> {
    this.#stagedEncoder ??= stageFiles(this, encoderBundleFiles(this.#projectRoot));
    return this.#stagedEncoder;
  }

  /** A Node.js 24 / arm64 function for one workflow step, under its own construct `id`. */
  addFunction(id: string, options: LakeFunctionOptions): nodejs.NodejsFunction {
    const memorySizeMb = options.memorySizeMb ?? 1024;
    const timeout = options.timeout ?? Duration.minutes(5);
    // A token (e.g. the bucket name) is counted as 128 bytes, more than any name or ARN it becomes.
    const environment = { ...this.#props.environment, ...options.environment };
    const environmentBytes = Object.entries(environment).reduce(
      (sum, [k, v]) => sum + Buffer.byteLength(k) + (Token.isUnresolved(v) ? 128 : Buffer.byteLength(v)),
      0,
    );
    const problems = new PropProblems(`LambdaFactory.addFunction(${id})`);
    problems.check(!(id in this.functions), 'id', 'is already used by another function', id);
    problems.check(isPositiveInteger(memorySizeMb) && memorySizeMb >= 128 && memorySizeMb <= 10_240, 'memorySizeMb', 'must be a whole number of MB in 128..10240', memorySizeMb);
    problems.check(timeout.toSeconds() >= 1 && timeout.toSeconds() <= 900, 'timeout', 'must be 1 s..15 min', timeout.toHumanString());
    problems.check(environmentBytes + RUNTIME_ENVIRONMENT_BYTES <= LAMBDA_ENVIRONMENT_LIMIT_BYTES, 'environment', `exceeds Lambda's ${LAMBDA_ENVIRONMENT_LIMIT_BYTES}-byte limit`, `${environmentBytes} bytes`);
    problems.throwIfAny();

    const scope = new Construct(this, id);
    const logGroup = new logs.LogGroup(scope, 'Logs', { retention: this.#logRetention });
    const role = new iam.Role(scope, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the pg-lake-export ${id} function`,
    });
    // Instead of AWSLambdaBasicExecutionRole, which may write to every log group in the account.
    logGroup.grantWrite(role);

    const connects = options.connectsToDatabase ?? false;
    const encodes = options.encodesParquet ?? false;
    const fn = new nodejs.NodejsFunction(scope, 'Function', {
      entry: join(this.#projectRoot, options.entry),
      handler: 'handler',
      projectRoot: this.#projectRoot,
      depsLockFilePath: join(this.#projectRoot, 'package-lock.json'),
      description: options.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: memorySizeMb,
      timeout,
      role,
      logGroup,
      tracing: lambda.Tracing.ACTIVE,
      // Stack traces through the minified bundle point at the TypeScript sources, and node starts
      // with V8 flags NODE_OPTIONS cannot give; see runtime-options.ts.
      environment: { ...environment, ...RUNTIME_ENVIRONMENT },
      ...(connects
        ? { vpc: this.#vpc, vpcSubnets: { subnets: this.#subnets }, securityGroups: [this.#securityGroup] }
        : {}),
      bundling: {
        format: nodejs.OutputFormat.CJS, // BUNDLE_OPTIONS.format
        target: BUNDLE_OPTIONS.target,
        minify: BUNDLE_OPTIONS.minify,
        sourceMap: BUNDLE_OPTIONS.sourceMap,
        sourcesContent: BUNDLE_OPTIONS.sourcesContent,
        // The nodejs24.x runtime ships AWS SDK v3; everything else is bundled. The steps that
        // never encode reach parquet-wasm only through the exporter's lazy import of the page
        // encoder, which they never call: left out, it cannot drag its 5 MB wasm along.
        externalModules: encodes ? ['@aws-sdk/*'] : ['@aws-sdk/*', 'parquet-wasm'],
        forceDockerBundling: false,
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir: string, outputDir: string) => [
            ...(encodes ? [`cp "${inputDir}/node_modules/parquet-wasm/node/${PARQUET_WASM}" "${outputDir}/"`] : []),
            ...[...this.#stagedFiles, ...(encodes ? this.#encoderFiles() : [])].map((file) => `cp "${file.path}" "${outputDir}/${file.name}"`),
            // Lambda runs the wrapper itself: it must be executable (CDK's zip keeps the mode).
            `chmod 755 "${outputDir}/${EXEC_WRAPPER}"`,
          ],
        },
      },
    });

    if (connects) {
      this.#secret.grantRead(fn);
      // What AWSLambdaVPCAccessExecutionRole allows, inline: Lambda manages the function's ENIs
      // with the execution role, and these EC2 actions take no resource-level scoping.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ManageVpcNetworkInterfaces',
          actions: [
            'ec2:CreateNetworkInterface',
            'ec2:DescribeNetworkInterfaces',
            'ec2:DescribeSubnets',
            'ec2:DeleteNetworkInterface',
            'ec2:AssignPrivateIpAddresses',
            'ec2:UnassignPrivateIpAddresses',
          ],
          resources: ['*'],
        }),
      );
    }
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: connects
        ? 'Resource * only for X-Ray PutTraceSegments/PutTelemetryRecords and the VPC ENI actions Lambda needs; neither supports resource-level permissions.'
        : 'Resource * only for X-Ray PutTraceSegments/PutTelemetryRecords, which support no resource-level permissions.',
    });

    this.functions[id] = fn;
    return fn;
  }
}

/**
 * Writes each bundled file where the bundling hook can copy it from: under the app's output
 * directory (or the system's temporary one), named by content, so stacks never overwrite
 * each other's. The hook runs on this machine: bundling is local (esbuild is a dependency;
 * forceDockerBundling is off), so the path needs no mount.
 */
function stageFiles(scope: Construct, files: Readonly<Record<string, string>>): Array<{ name: string; path: string }> {
  const entries = Object.entries(files);
  if (entries.length === 0) return [];
  const dir = join(Stage.of(scope)?.outdir ?? tmpdir(), 'pg-lake-export-bundled-files');
  mkdirSync(dir, { recursive: true });
  return entries.map(([name, content]) => {
    const path = join(dir, `${createHash('sha256').update(content).digest('hex').slice(0, 32)}-${name}`);
    writeFileSync(path, content);
    return { name, path };
  });
}
