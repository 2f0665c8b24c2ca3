// bin/app.ts as `cdk synth` runs it (a child process with CDK_OUTDIR / CDK_CONTEXT_JSON): the
// shipped lake.config.yaml synthesizes offline with no nag finding, and a config that cannot be
// deployed fails with a message that names the keys to fix.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/index.ts';
import { cdkJsonContext, FIXTURE_CONFIG_YAML } from './stack.ts';

function synthApp(context: Record<string, unknown> = {}) {
  const outdir = mkdtempSync(join(tmpdir(), 'pg-lake-export-synth-'));
  const env: NodeJS.ProcessEnv = { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: JSON.stringify({ ...cdkJsonContext(), ...context }) };
  // As on a fresh machine: no credentials, no CLI defaults, not vitest's in-memory mode.
  for (const key of ['CDK_DEFAULT_ACCOUNT', 'CDK_DEFAULT_REGION', 'NODE_ENV']) delete env[key];
  const result = spawnSync(process.execPath, ['bin/app.ts'], { cwd: PROJECT_ROOT, env, encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr, outdir };
}

function writeConfig(yamlText: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'pg-lake-export-config-')), 'lake.config.yaml');
  writeFileSync(file, yamlText);
  return file;
}

describe('bin/app.ts', () => {
  it('synthesizes the shipped lake.config.yaml offline, nag-clean, in the database secret\'s region', () => {
    const { status, stderr, outdir } = synthApp();
    expect(stderr).not.toMatch(/AwsSolutions-|Validation failed/);
    expect(status).toBe(0);
    const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: unknown[] };
    expect(report.pluginReports).toEqual([]);
    const template = readFileSync(join(outdir, 'PgLakeExport.template.json'), 'utf8');
    expect(template).toContain('arn:aws:glue:eu-west-1:123456789012:database/pg_lake_export');
    expect(template).toContain('"ScheduleExpressionTimezone": "Europe/Dublin"');
    expect(template).toContain('"State": "ENABLED"');
  }, 180_000);

  it('fails with every missing deploy key named when `source` is absent', () => {
    const config = writeConfig(FIXTURE_CONFIG_YAML.replace(/^source:\n(?: {2}.*\n)+/m, ''));
    const { status, stderr } = synthApp({ config });
    expect(status).toBe(1);
    expect(stderr).toContain(`config from ${config}`);
    expect(stderr).toMatch(/source: is required to deploy: set source\.secretArn, source\.vpcId, source\.securityGroupId and source\.subnetIds/);
    expect(stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
  }, 60_000);

  it('fails naming the key and value of an invalid config', () => {
    const config = writeConfig(FIXTURE_CONFIG_YAML.replace('maxConcurrency: 3', 'maxConcurrency: 0'));
    const { status, stderr } = synthApp({ config });
    expect(status).toBe(1);
    expect(stderr).toMatch(/export\.maxConcurrency/);
  }, 60_000);

  it('fails when the config file does not exist, saying how to pass another', () => {
    const { status, stderr } = synthApp({ config: '/nonexistent/lake.config.yaml' });
    expect(status).toBe(1);
    expect(stderr).toMatch(/cannot read the config file[\s\S]*-c config=/);
  }, 60_000);
});
