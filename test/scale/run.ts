// npm run test:scale (on demand, not part of npm test): the two measurements of issue 14.
//   1. a 20-million-row table exported through the backfill path: 1 segment, then 4 at once;
//   2. a synthetic 1-billion-row run (20,000 pages) committed within the Commit timeout.
//
//   npm run test:scale [-- --rows 20000000 --pages 20000 --rows-per-page 50000 --commit-timeout 300 --only backfill|commit]
//   (a shorter --commit-timeout shows the commit resuming across invocations)
import { parseArgs } from 'node:util';
import { runBackfillScale } from './backfill-scale.ts';
import { runCommitScale } from './commit-scale.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '20000000' },
    pages: { type: 'string', default: '20000' },
    'rows-per-page': { type: 'string', default: '50000' },
    'commit-timeout': { type: 'string', default: '300' },
    only: { type: 'string' },
  },
});
const n = (x: number) => x.toLocaleString('en-US');

if (values.only !== 'commit') {
  const rows = Number(values.rows);
  console.log(`backfill of a ${n(rows)}-row table (embedded PostgreSQL → directory lake, export.pageRows 50,000):`);
  const result = await runBackfillScale(rows);
  console.log(`  loaded in ${result.loadSeconds.toFixed(1)} s (insert, primary key, (updated_at, id) index, ANALYZE)`);
  for (const run of result.runs) {
    const ok = run.rows === rows && run.lakeRows === rows && run.distinctIds === rows;
    console.log(`  ${run.segments} segment${run.segments === 1 ? ' ' : 's'}: ${run.seconds.toFixed(1)} s wall (plan, export, commit), ${n(Math.round(run.rows / run.seconds))} rows/s; ${n(run.files)} files; DuckDB: ${n(run.lakeRows)} rows, ${n(run.distinctIds)} distinct ids${ok ? '' : '  ← MISMATCH'}`);
    if (!ok) throw new Error(`${run.segments} segments: expected ${rows} rows once each, the lake holds ${run.lakeRows} rows of ${run.distinctIds} ids`);
  }
  const [one, four] = result.runs;
  console.log(`  4 segments vs 1: ${(one.seconds / four.seconds).toFixed(2)}× the speed`);
}

if (values.only !== 'backfill') {
  const result = await runCommitScale(Number(values.pages), Number(values['rows-per-page']), Number(values['commit-timeout']));
  console.log(`commit of a synthetic run: ${n(result.pages)} pages × ${n(result.rowsPerPage)} rows = ${n(result.pages * result.rowsPerPage)} rows (fauxqs S3 API server on loopback)`);
  console.log(`  generated (journals + staged files, 32 writers): ${result.generatedSeconds.toFixed(1)} s`);
  console.log(`  Commit (read ${n(result.pages)} journals into index objects, publish ${n(result.pages)} files, watermark, manifest, clear pending/): ${result.committedSeconds.toFixed(1)} s in ${result.invocations} invocation${result.invocations === 1 ? '' : 's'}, the longest ${result.longestInvocationSeconds.toFixed(1)} s (limit export.commitTimeoutSeconds = ${result.limitSeconds} s)`);
  console.log(`  ${n(result.published)} files visible, ${result.pendingLeft} pending keys left`);
}
