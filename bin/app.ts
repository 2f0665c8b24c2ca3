#!/usr/bin/env node
// The CDK app: reads lake.config.yaml (or the file named by `-c config=…`), validates it with the
// same schema the Lambdas use, builds the stack, and checks it with cdk-nag's AWS Solutions rules.
// The only place that reads CDK context.
import { readFileSync } from 'node:fs';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig } from '../lambdas/core/config.ts';
import { PgLakeExportStack } from '../lib/index.ts';

// Synthesized explicitly below, so that a config error is reported once and cleanly.
const app = new App({ autoSynth: false });

function contextString(key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new Error(`context "${key}" must be a non-empty string (got ${JSON.stringify(value)})`);
  return value;
}

try {
  const configPath = contextString('config') ?? 'lake.config.yaml';
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (error) {
    throw new Error(`${configPath}: cannot read the config file (${(error as Error).message}); pass another with -c config=path/to/lake.config.yaml`, { cause: error });
  }
  const config = parseConfig(text, configPath);
  // arn:<partition>:secretsmanager:<region>:<account>:secret:<name>
  const arnParts = config.source?.secretArn.split(':');
  const secretHome = arnParts && arnParts.length >= 7 ? { region: arnParts[3], account: arnParts[4] } : undefined;

  new PgLakeExportStack(app, contextString('stackName') ?? 'PgLakeExport', {
    config,
    configSource: configPath,
    bucketName: contextString('bucketName'),
    env: {
      // With credentials the CLI sets CDK_DEFAULT_ACCOUNT, so a deploy targets the real account.
      // The region defaults to the database secret's: the functions must run in the database's
      // VPC, and the CLI's CDK_DEFAULT_REGION (us-east-1 when nothing is configured) may differ.
      // The last fallbacks exist only so that `cdk synth` works offline on a fresh clone (no
      // credentials, no lookups); they match the example ids in lake.config.yaml.
      account: contextString('account') ?? process.env.CDK_DEFAULT_ACCOUNT ?? secretHome?.account ?? '123456789012',
      region: contextString('region') ?? secretHome?.region ?? process.env.CDK_DEFAULT_REGION ?? 'eu-west-1',
    },
  });

  // Any finding that is not acknowledged (with a reason, on the narrowest construct) fails synth.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  app.synth();
} catch (error) {
  // A config or props problem is the user's to fix: print the message, not a stack trace.
  console.error(`pg-lake-export: ${(error as Error).message}`);
  process.exitCode = 1;
}
