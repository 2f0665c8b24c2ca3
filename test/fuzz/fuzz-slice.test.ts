// A fixed-seed slice of the differential fuzzer (about a minute), so that `npm test` runs it:
// random tables of every type exported by the real exporter, read back by DuckDB and hyparquet,
// every cell equal to Postgres's own text, every value README says fails failing by name.
// `npm run fuzz -- --seconds N` runs as long as asked.
import { afterAll, expect, it } from 'vitest';
import { stopPostgres } from '../support/local-stack.ts';
import { fuzz } from './run.ts';

afterAll(async () => {
  await stopPostgres();
});

it('finds nothing in a fixed-seed slice of about 60 s', async () => {
  const lines: string[] = [];
  const summary = await fuzz({ seed: 11_000, seconds: 60, shrink: false, log: (line) => lines.push(line) });
  console.log(`${lines.join('\n')}\nfuzz slice: ${summary.cases} cases, ${summary.rows} rows, ${summary.cells} cells compared, ${summary.poisonChecked} values failed by name`);
  expect(summary.failures).toEqual([]);
  expect(summary.cases).toBeGreaterThan(3);
  expect(summary.cells).toBeGreaterThan(0);
}, 300_000);
