// npm run fuzz [-- --seed S] [--seconds N] [--cases N] [--columns '["name"]'] [--rows N]
// Runs cases seed, seed + 1, … until the time or case budget is spent; prints every mismatch
// with its seed, DDL, column, key, both values and the command that reproduces it (shrunk
// where it could be); exits 1 if any case failed.
import { parseArgs } from 'node:util';
import { stopPostgres } from '../support/local-stack.ts';
import { describeFailure, reproduce, runCase, shrinkCase } from './fuzz.ts';
import type { ShrinkOptions } from './generate.ts';

export interface FuzzSummary {
  readonly cases: number;
  readonly rows: number;
  readonly cells: number;
  readonly poisonChecked: number;
  readonly failures: string[];
}

export interface FuzzOptions {
  readonly seed: number;
  readonly seconds: number;
  readonly cases?: number;
  readonly onlyColumns?: string[];
  readonly maxRows?: number;
  /** Try to shrink a failing case (costs whole cases). */
  readonly shrink?: boolean;
  readonly log?: (line: string) => void;
}

export async function fuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const log = options.log ?? ((line: string) => console.log(line));
  const deadline = Date.now() + options.seconds * 1000;
  const summary = { cases: 0, rows: 0, cells: 0, poisonChecked: 0, failures: [] as string[] };
  for (let seed = options.seed; Date.now() < deadline && (options.cases === undefined || summary.cases < options.cases); seed++) {
    const started = Date.now();
    const shrinkOptions: ShrinkOptions = { onlyColumns: options.onlyColumns, maxRows: options.maxRows };
    let result: Awaited<ReturnType<typeof runCase>>;
    try {
      result = await runCase(seed, shrinkOptions);
    } catch (error) {
      // The case itself could not be built or read (a fuzzer bug, or a reader's): report, go on.
      summary.cases++;
      const text = `CASE ERROR seed ${seed}: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n  reproduce: ${reproduce(seed, shrinkOptions)}`;
      summary.failures.push(text);
      log(text);
      continue;
    }
    summary.cases++;
    summary.rows += result.rows;
    summary.cells += result.cells;
    if (result.poisonChecked) summary.poisonChecked++;
    log(`case ${seed}: ${result.fuzz.columns.length} columns, ${result.rows} rows, pageRows ${result.fuzz.pageRows}, ${result.cells} cells${result.poisonChecked ? ', a value failed by name' : ''} — ${result.mismatches.length ? `${result.mismatches.length} MISMATCHES` : 'ok'} (${Date.now() - started} ms)`);
    if (result.mismatches.length) {
      let shrunk = shrinkOptions;
      if (options.shrink !== false && !options.onlyColumns && options.maxRows === undefined) {
        const smaller = await shrinkCase(result, 60_000);
        if (smaller.result.mismatches.length) ({ shrink: shrunk, result } = smaller);
      }
      const text = describeFailure(result, shrunk);
      summary.failures.push(text);
      log(text);
    }
  }
  return summary;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      seconds: { type: 'string', default: '60' },
      cases: { type: 'string' },
      columns: { type: 'string' },
      rows: { type: 'string' },
      'no-shrink': { type: 'boolean', default: false },
    },
  });
  const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 1_000_000);
  const seconds = Number(values.seconds);
  console.log(`fuzz: seed ${seed}, ${values.cases ?? 'as many'} cases within ${seconds} s`);
  try {
    const summary = await fuzz({
      seed, seconds, cases: values.cases === undefined ? undefined : Number(values.cases),
      onlyColumns: values.columns ? (JSON.parse(values.columns) as string[]) : undefined,
      maxRows: values.rows === undefined ? undefined : Number(values.rows),
      shrink: !values['no-shrink'],
    });
    console.log(`fuzz: ${summary.cases} cases, ${summary.rows} rows, ${summary.cells} cells compared (DuckDB and hyparquet, each against Postgres), ${summary.poisonChecked} values failed by name as README says, ${summary.failures.length} failing cases`);
    process.exitCode = summary.failures.length ? 1 : 0;
  } finally {
    await stopPostgres();
  }
}

if (import.meta.main) await main();
