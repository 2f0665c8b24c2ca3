// `npm run demo`: the whole product on this machine with nothing installed but `npm ci`.
// An embedded PostgreSQL with a media store of its own making, the synthesized workflow run by
// the local Step Functions runner into a lake directory, Athena-style answers through the local
// query engine, then a change and a second run that exports only the change.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { stringify } from 'yaml';
import { validateConfig, type LakeConfig } from '../../lambdas/core/config.ts';
import { DirectoryStore } from '../../lambdas/adapters/directory-store.ts';
import type { TableTask } from '../../lambdas/core/protocol/run-model.ts';
import type { RunSummary } from '../../lambdas/core/protocol/summarize.ts';
import { WORKFLOW_STATES } from '../../lib/export-workflow.ts';
import { changeDemoStore, createDemoStore, DEMO_TABLES } from './demo-data.ts';
import { startLocalPostgres } from './embedded-postgres.ts';
import { LakeQuery } from './lake-query.ts';
import { formatRows } from './format-rows.ts';
import { ProgressBars } from './progress.ts';
import { runWorkflowLocally, synthesizeDefinition } from './workflow-runner.ts';

export interface DemoOptions {
  /** Directory of the lake (replaced). */
  readonly lakeDir: string;
  readonly json: boolean;
  readonly out: (line: string) => void;
}

export const DEMO_QUESTIONS: { readonly title: string; readonly sql: string }[] = [
  {
    title: 'Revenue by month and country (latest 3 months, top countries)',
    sql: `SELECT strftime(invoice_date, '%Y-%m') AS month, billing_country AS country, sum(total) AS revenue, count(*) AS invoices
FROM invoices_current
WHERE invoice_date >= TIMESTAMPTZ '2025-10-01'
GROUP BY ALL ORDER BY month DESC, revenue DESC LIMIT 9`,
  },
  {
    title: 'Top tracks by revenue',
    sql: `SELECT t.name AS track, t.genre, sum(l.unit_price * l.quantity) AS revenue, sum(l.quantity) AS units
FROM invoice_lines_current l JOIN tracks_current t USING (track_id)
GROUP BY ALL ORDER BY revenue DESC, track LIMIT 5`,
  },
  {
    title: 'Customers per support rep',
    sql: `SELECT e.first_name || ' ' || e.last_name AS support_rep, count(*) AS customers
FROM customers_current c JOIN employees_current e ON e.employee_id = c.support_rep_id
GROUP BY ALL ORDER BY customers DESC`,
  },
];

function demoConfig(): LakeConfig {
  return validateConfig({
    lake: { prefix: 'raw', glueDatabase: 'media_lake' },
    export: { pageRows: 50_000, maxConcurrency: 2, safetyLagSeconds: 0 },
    tables: DEMO_TABLES.map((name) => ({ name: `store.${name}` })),
  }, 'demo config');
}

export async function runDemo(options: DemoOptions): Promise<Record<string, unknown>> {
  const say = (line = '') => { if (!options.json) options.out(line); };
  const started = Date.now();
  say('Starting an embedded PostgreSQL 17 (the embedded-postgres package) …');
  const server = await startLocalPostgres();
  try {
    const databaseUrl = await server.createDatabase('media_store');
    const client = new pg.Client(databaseUrl);
    await client.connect();
    say('Creating the media store: artists, albums, tracks, employees, customers, invoices, invoice lines …');
    await createDemoStore(client);
    const totals: Record<string, number> = {};
    for (const table of DEMO_TABLES) totals[table] = Number((await client.query(`SELECT count(*) AS n FROM store.${table}`)).rows[0].n);
    say(`  ${DEMO_TABLES.map((t) => `${t} ${totals[t].toLocaleString('en-US')}`).join(' · ')}`);

    const config = demoConfig();
    rmSync(options.lakeDir, { recursive: true, force: true });
    mkdirSync(options.lakeDir, { recursive: true });
    const configFile = path.join(options.lakeDir, 'lake.config.yaml');
    writeFileSync(configFile, `# written by pg-lake-export demo\n${stringify(config)}`);
    const lakeUrl = pathToFileURL(options.lakeDir).href;

    say('\nSynthesizing the CDK stack and running its state machine locally (aws-local-stepfunctions, real handlers) …');
    const definition = synthesizeDefinition(config);
    const env = { config, databaseUrl, lake: lakeUrl };
    const run = async (label: string, progressTotals: Record<string, number>) => {
      // A table's clock starts with its first Export invocation (the Map runs two at a time).
      const progress = new ProgressBars({ stream: process.stdout });
      const started = new Set<string>();
      const t0 = Date.now();
      const result = await runWorkflowLocally(definition, env, {}, {
        exportBudgetMillis: 2_000,
        onTaskOutput: (state, output, startedAt) => {
          if (state === WORKFLOW_STATES.exportPage && !options.json) {
            const task = output as TableTask;
            const total = progressTotals[task.table];
            if (!total) return; // nothing to export for this table
            if (!started.has(task.table)) {
              started.add(task.table);
              progress.begin(task.table, total, { startedAt });
            }
            progress.update(task.table, task.rows);
          }
        },
      });
      progress.end();
      if (result.status !== 'SUCCEEDED') throw new Error(`${label} failed: ${result.error}: ${result.cause}`);
      const summary = (result.output as { summary: RunSummary }).summary;
      return { summary, seconds: (Date.now() - t0) / 1000 };
    };
    const first = await run('first run', totals);
    const firstRows = first.summary.tables.reduce((n, t) => n + t.rows, 0);
    say(`\nFirst run: ${firstRows.toLocaleString('en-US')} rows in ${first.seconds.toFixed(1)} s (${Math.round(firstRows / first.seconds).toLocaleString('en-US')} rows/s overall), execution SUCCEEDED`);

    const store = new DirectoryStore(lakeUrl);
    const answers: Record<string, unknown>[][] = [];
    let lake = await LakeQuery.open(config, store);
    for (const question of DEMO_QUESTIONS) {
      const { rows, numericColumns } = await lake.queryWithTypes(question.sql);
      answers.push(rows);
      say(`\n${question.title}:`);
      say(formatRows(rows, { indent: '  ', numericColumns }));
    }
    lake.close();

    const change = await changeDemoStore(client);
    say(`\nChanging the database: ${change.updatedInvoices} invoices updated, ${change.insertedLines} invoice lines inserted. Running again …`);
    const second = await run('second run', { invoices: change.updatedInvoices, invoice_lines: change.insertedLines });
    const landed = Object.fromEntries(second.summary.tables.map((t) => [t.table, t.rows]));
    say(`Second run exported only the changes: ${second.summary.tables.map((t) => `${t.table} ${t.rows}`).join(', ')} (${second.seconds.toFixed(1)} s)`);

    lake = await LakeQuery.open(config, store);
    const [lakeTotal] = await lake.query('SELECT sum(total) AS revenue, count(*) AS invoices FROM invoices_current');
    lake.close();
    const dbTotal = (await client.query('SELECT sum(total)::text AS revenue, count(*)::text AS invoices FROM store.invoices')).rows[0];
    await client.end();
    say(`Check: invoices_current in the lake sums to ${lakeTotal.revenue} over ${lakeTotal.invoices} invoices; PostgreSQL says ${dbTotal.revenue} over ${dbTotal.invoices}.`);
    if (String(lakeTotal.revenue) !== dbTotal.revenue || String(lakeTotal.invoices) !== dbTotal.invoices) throw new Error('the lake does not match the database');

    const rel = path.relative(process.cwd(), options.lakeDir) || '.';
    say(`\nThe lake is in ${options.lakeDir} (Parquet under raw/<table>/year=/month=/day=). Query it:`);
    say(`  npx pg-lake-export query "SELECT year, month, count(*) FROM invoices GROUP BY ALL ORDER BY ALL" --config ${rel}/lake.config.yaml --lake ${rel}`);
    say(`Demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s; the embedded PostgreSQL is stopped.`);
    return {
      lake: options.lakeDir,
      firstRun: { rows: firstRows, seconds: first.seconds, tables: Object.fromEntries(first.summary.tables.map((t) => [t.table, t.rows])) },
      secondRun: { seconds: second.seconds, tables: landed },
      answers: Object.fromEntries(DEMO_QUESTIONS.map((q, i) => [q.title, answers[i]])),
      durationMs: Date.now() - started,
    };
  } finally {
    await server.stop();
  }
}
