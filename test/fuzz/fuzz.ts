// One differential fuzz case on the real path: the generated table in a fresh database of the
// embedded Postgres, the real exporter (runExport) into a directory lake, then every published
// file read back by DuckDB and by hyparquet and every cell compared with Postgres's own text.
import path from 'node:path';
import pg from 'pg';
import { runExport, type RunOutcome } from '../../bin/local/run-export.ts';
import { resolveTable, type LakeConfig } from '../../lambdas/core/config.ts';
import type { RunRequest } from '../../lambdas/core/protocol/run-model.ts';
import { createDatabase, createLake, duckdb, exportDeps, testConfig, type TestDatabase, type TestLake } from '../support/local-stack.ts';
import { duckTypeOf } from './types.ts';
import { normalizeCell, pgCanonical, pgCanonicalArray, sameCell, type Cell } from './canonical.ts';
import { generateCase, quoteIdent, type FuzzCase, type ShrinkOptions } from './generate.ts';
import { checkStatistics, hyparquetCell, readWithDuckdb, readWithHyparquet, type ReadColumn } from './readers.ts';

export interface Mismatch {
  readonly reader: 'duckdb' | 'hyparquet' | 'exporter';
  readonly column: string;
  readonly key: string;
  readonly postgres: string;
  readonly lake: string;
}

export interface CaseResult {
  readonly fuzz: FuzzCase;
  readonly rows: number;
  readonly cells: number;
  /** A value README says fails by name was checked to fail by name. */
  readonly poisonChecked: boolean;
  readonly mismatches: Mismatch[];
}

/** A cell for a report: whole when short, else its start and its length. */
function show(cell: Cell | undefined): string {
  if (cell === undefined) return '(missing)';
  const text = JSON.stringify(cell);
  return text.length <= 400 ? text : `${text.slice(0, 400)}… (${text.length} chars)`;
}

/** Both values of a mismatch; for two lists, the first element that differs. */
function difference(want: Cell, got: Cell): { postgres: string; lake: string } {
  if (Array.isArray(want) && Array.isArray(got)) {
    const at = want.findIndex((w, i) => w !== got[i]);
    const i = at < 0 ? Math.min(want.length, got.length) : at;
    const where = `element ${i + 1} of ${want.length} / ${got.length}: `;
    return { postgres: where + show(want[i]), lake: where + show(got[i]) };
  }
  return { postgres: show(want), lake: show(got) };
}

/** A name as the exporter's messages show it: quoted unless plain. */
const plain = (name: string) => (/^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name));

/** schema.table as the exporter shows it. */
const display = (fuzz: FuzzCase) => `${plain(fuzz.schema)}.${plain(fuzz.table)}`;

/** A key value as the exporter's messages show it: JSON-quoted when it could be misread. */
const keyValue = (value: string) => (value === '' || /[,=()"\\\p{Cc}]|^\s|\s$/u.test(value) ? JSON.stringify(value) : value);

async function insertRows(db: TestDatabase, fuzz: FuzzCase, rows: string[][]): Promise<void> {
  const head = `INSERT INTO ${fuzz.configName} (${fuzz.columns.map((c) => quoteIdent(c.name)).join(', ')}) VALUES `;
  let batch: string[] = [];
  let size = 0;
  const flush = async () => {
    if (batch.length) await db.query(`${head}${batch.join(', ')} ON CONFLICT DO NOTHING`);
    batch = [];
    size = 0;
  };
  for (const row of rows) {
    const tuple = `(${row.join(', ')})`;
    batch.push(tuple);
    size += tuple.length;
    if (size > 2_000_000 || batch.length >= 500) await flush();
  }
  await flush();
}

function caseConfig(fuzz: FuzzCase): LakeConfig {
  const table = !fuzz.cursor ? { name: fuzz.configName, mode: 'snapshot' }
    : fuzz.cursor.zone === 'UTC' ? { name: fuzz.configName, cursor: fuzz.cursor.name } : { name: fuzz.configName, cursor: fuzz.cursor.name, cursorTimeZone: fuzz.cursor.zone };
  const hash = fuzz.columns.filter((c) => c.hashed).map((c) => c.name);
  return testConfig([hash.length ? { ...table, columns: { hash } } : table], { export: { pageRows: fuzz.pageRows, safetyLagSeconds: 0, unconstrainedNumericScale: fuzz.unconstrainedScale } });
}

async function exportOnce(db: TestDatabase, lake: TestLake, fuzz: FuzzCase, request: RunRequest = {}): Promise<RunOutcome> {
  const deps = { ...exportDeps(db, lake.store, caseConfig(fuzz)), hashSalt: fuzz.hashSalt };
  try {
    return await runExport(deps, request);
  } finally {
    await deps.close();
  }
}

function outcomeError(outcome: RunOutcome): string | null {
  const t = outcome.tables[0];
  return t?.status === 'succeeded' ? null : `${t?.status ?? 'no table'}: ${t?.error ?? ''}`;
}

async function parquetFiles(lake: TestLake, lakeName: string): Promise<string[]> {
  return (await lake.store.list(`raw/${lakeName}/`)).filter((k) => k.endsWith('.parquet')).sort().map((k) => path.join(lake.dir, k));
}

/** Drop a case's database once it is done (cases would otherwise fill the disk). */
async function dropDatabase(url: string): Promise<void> {
  const admin = new URL(url);
  const name = decodeURIComponent(admin.pathname.slice(1));
  admin.pathname = '/postgres';
  const client = new pg.Client(admin.href);
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

// FUZZ_TIMING=1 prints how long each step of a case took.
const timing = process.env.FUZZ_TIMING ? (step: string, since: number) => console.log(`  ${step}: ${Date.now() - since} ms`) : () => undefined;

export async function runCase(seed: number, shrink: ShrinkOptions = {}): Promise<CaseResult> {
  let t = Date.now();
  const fuzz = generateCase(seed, shrink);
  timing('generate', t);
  const db = await createDatabase();
  const lake = createLake();
  const mismatches: Mismatch[] = [];
  const fail = (column: string, key: string, postgres: string, lakeValue: string) => mismatches.push({ reader: 'exporter', column, key, postgres, lake: lakeValue });
  let poisonChecked = false;
  try {
    await db.query("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'");
    for (const statement of fuzz.setup) await db.query(statement);
    await db.query(fuzz.ddl);
    t = Date.now();
    await insertRows(db, fuzz, fuzz.rows);
    timing('insert', t);
    const resolved = resolveTable(caseConfig(fuzz).tables[0]);

    // A value README says fails by name: the run fails naming table, column, value and key, and publishes nothing.
    if (fuzz.poison) {
      const p = fuzz.poison;
      // aliased by position: a 63-byte column name plus a prefix would be truncated by Postgres
      const keyColumns = fuzz.columns.filter((c) => c.role === 'key');
      const keys = keyColumns.map((c, i) => `${quoteIdent(c.name)}::text AS k${i}`);
      const [inserted] = await db.query(
        `INSERT INTO ${fuzz.configName} (${fuzz.columns.map((c) => quoteIdent(c.name)).join(', ')}) VALUES (${p.row.join(', ')}) ON CONFLICT DO NOTHING RETURNING ctid::text AS ctid, ${keys.join(', ')}`,
      );
      if (inserted) {
        const outcome = await exportOnce(db, lake, fuzz);
        const error = outcome.tables[0]?.error ?? '';
        const where = `ValueError: ${display(fuzz)}.${plain(p.column)}${p.element ? '[]' : ''}: value ${p.valueText} ${p.reason}`;
        const keyNamed = keyColumns.every((c, i) => error.includes(`${plain(c.name)}=${keyValue(inserted[`k${i}`]!)}`));
        if (outcome.tables[0]?.status !== 'failed' || !error.startsWith(where) || !keyNamed) {
          fail(p.column, JSON.stringify(inserted), `fails by name: ${where} … (row … ${keyColumns.map((c, i) => `${plain(c.name)}=${keyValue(inserted[`k${i}`]!)}`).join(', ')})`, outcomeError(outcome) ?? 'succeeded');
        }
        const published = await parquetFiles(lake, resolved.lakeName);
        if (published.length) fail(p.column, JSON.stringify(inserted), 'nothing published after a failed run', `${published.length} files`);
        await db.query(`DELETE FROM ${fuzz.configName} WHERE ctid = $1::tid`, [inserted.ctid]);
        poisonChecked = true;
      }
    }

    t = Date.now();
    const first = await exportOnce(db, lake, fuzz);
    timing('export', t);
    const firstError = outcomeError(first);
    if (firstError) fail('(run)', '-', 'succeeded', firstError);
    if (fuzz.cursor?.nullable && !firstError) {
      const [{ n }] = await db.query(`SELECT count(*)::text AS n FROM ${fuzz.configName} WHERE ${quoteIdent(fuzz.cursor.name)} IS NULL`);
      if (String(first.tables[0].nullCursorRows) !== n) fail('(run)', '-', `${n} NULL-cursor rows reported`, String(first.tables[0].nullCursorRows));
    }
    if (fuzz.laterRows.length && !firstError) {
      await insertRows(db, fuzz, fuzz.laterRows);
      const later = outcomeError(await exportOnce(db, lake, fuzz));
      if (later) fail('(later run)', '-', 'succeeded', later);
    }
    if (!firstError) {
      let request: RunRequest = { full: true };
      if (fuzz.rerun === 'window' && fuzz.cursor) {
        const c = quoteIdent(fuzz.cursor.name);
        // a window is two instants; a wall-clock cursor's value is read in its writers' zone
        const instant = fuzz.cursor.type === 'timestamptz' ? `${c}::text` : `(${c}::timestamp AT TIME ZONE ${`'${fuzz.cursor.zone}'`})::text`;
        const [bound] = await db.query(`SELECT ${instant} AS at FROM ${fuzz.configName} WHERE ${c} IS NOT NULL ORDER BY ${c} OFFSET (SELECT count(*) / 3 FROM ${fuzz.configName}) LIMIT 1`);
        const [now] = await db.query('SELECT now()::text AS at');
        if (bound) request = { window: { from: bound.at!, to: now.at! } };
      }
      const rerun = outcomeError(await exportOnce(db, lake, fuzz, request));
      if (rerun) fail('(re-run)', JSON.stringify(request), 'succeeded', rerun);
    }

    t = Date.now();
    // Postgres's own canonical text of every cell: the truth.
    const compared = fuzz.columns.map((c) => (c.hashed ? { name: c.name, kind: 'text', array: false } : { name: c.name, kind: c.type.kind, array: c.array }) satisfies ReadColumn);
    // columns.hash: hex SHA-256 of salt ‖ 0x00 ‖ the text form (README, Configuration), computed by Postgres
    const salt = `convert_to(${`'${fuzz.hashSalt.replaceAll("'", "''")}'`}, 'UTF8') || '\\x00'::bytea`;
    const select = fuzz.columns.map((c, i) => `${c.hashed ? `encode(sha256(${salt} || convert_to(${quoteIdent(c.name)}::text, 'UTF8')), 'hex')`
      : c.array ? pgCanonicalArray(c.type.kind, quoteIdent(c.name)) : pgCanonical(c.type.kind, quoteIdent(c.name))} AS c${i}`);
    const where = fuzz.cursor ? ` WHERE ${quoteIdent(fuzz.cursor.name)} IS NOT NULL` : '';
    const truth = (await db.query(`SELECT ${select.join(', ')} FROM ${fuzz.configName}${where}`)).map((row) => compared.map((c, i) => normalizeCell(c.kind, c.array, row[`c${i}`] ?? null)));
    const keyIndexes = fuzz.columns.flatMap((c, i) => (c.role === 'key' ? [i] : []));
    const keyOf = (cells: Cell[]) => JSON.stringify(keyIndexes.map((i) => cells[i]));
    const expected = new Map(truth.map((cells) => [keyOf(cells), cells]));

    timing('postgres canonical', t);
    t = Date.now();
    const files = firstError ? [] : await parquetFiles(lake, resolved.lakeName);
    const duck = (await readWithDuckdb(files, compared)).map((row) => compared.map((c, i) => normalizeCell(c.kind, c.array, row[i])));
    // The lake types README's table gives each column (DuckDB's names), in the first and last file.
    for (const file of new Set([files[0], files[files.length - 1]].filter(Boolean))) {
      const described = await duckdb<{ column_name: string; column_type: string }>(`DESCRIBE SELECT * FROM read_parquet('${file.replaceAll("'", "''")}', hive_partitioning = false)`);
      const types = new Map(described.map((d) => [d.column_name, d.column_type]));
      for (const c of fuzz.columns) {
        const want = c.hashed ? 'VARCHAR' : duckTypeOf(c.type, c.array);
        if (types.get(c.name) !== want) mismatches.push({ reader: 'duckdb', column: c.name, key: `(type, ${c.ddl})`, postgres: want, lake: types.get(c.name) ?? '(missing)' });
      }
    }
    for (const problem of await checkStatistics(files, compared)) mismatches.push({ reader: 'duckdb', column: '(statistics)', key: '-', postgres: 'every value found by a filter', lake: problem });
    timing('duckdb', t);
    t = Date.now();
    const hyp = await readWithHyparquet(files, compared);
    const hypRows = hyp.rows.map((row) => compared.map((c, i) => normalizeCell(c.kind, c.array, hyparquetCell(c, row[i], hyp.scales.get(c.name)))));
    timing('hyparquet', t);
    let cells = 0;
    if (!firstError) {
      for (const [reader, rows] of [['duckdb', duck], ['hyparquet', hypRows]] as const) {
        const seen = new Set<string>();
        for (const cells_ of rows) {
          const key = keyOf(cells_);
          if (seen.has(key)) { mismatches.push({ reader, column: '(row)', key, postgres: 'once', lake: 'twice or more' }); continue; }
          seen.add(key);
          const want = expected.get(key);
          if (!want) { mismatches.push({ reader, column: '(row)', key, postgres: '(no such row)', lake: 'present' }); continue; }
          compared.forEach((c, i) => {
            cells++;
            if (!sameCell(want[i], cells_[i])) mismatches.push({ reader, column: c.name, key, ...difference(want[i], cells_[i]) });
          });
        }
        for (const key of expected.keys()) if (!seen.has(key)) mismatches.push({ reader, column: '(row)', key, postgres: 'present', lake: '(missing)' });
      }
    }
    return { fuzz, rows: truth.length, cells, poisonChecked, mismatches };
  } finally {
    await db.close();
    // FUZZ_KEEP=1 keeps the case's lake for a look at its files.
    if (process.env.FUZZ_KEEP) console.log(`  lake kept: ${lake.dir}`);
    else lake.remove();
    await dropDatabase(db.url).catch(() => undefined);
  }
}

/** The command that runs exactly this case again. */
export function reproduce(seed: number, shrink: ShrinkOptions = {}): string {
  const parts = ['npm run fuzz -- --seed', String(seed), '--cases 1'];
  if (shrink.onlyColumns) parts.push('--columns', `'${JSON.stringify(shrink.onlyColumns).replaceAll("'", "'\\''")}'`);
  if (shrink.maxRows !== undefined) parts.push('--rows', String(shrink.maxRows));
  return parts.join(' ');
}

/**
 * A smaller case that still fails: first only the failing column (key and cursor stay), then
 * halving the rows while it keeps failing. Each try is a whole case (seconds), so it is bounded.
 */
export async function shrinkCase(result: CaseResult, budgetMs: number): Promise<{ shrink: ShrinkOptions; result: CaseResult }> {
  const started = Date.now();
  let best: { shrink: ShrinkOptions; result: CaseResult } = { shrink: {}, result };
  const column = result.mismatches.find((m) => !m.column.startsWith('('))?.column;
  if (column && !result.fuzz.poison) {
    const tried = await runCase(result.fuzz.seed, { onlyColumns: [column] });
    if (tried.mismatches.length) best = { shrink: { onlyColumns: [column] }, result: tried };
  }
  let rows = best.result.fuzz.rows.length;
  while (rows > 1 && Date.now() - started < budgetMs) {
    rows = Math.floor(rows / 2);
    const shrink = { ...best.shrink, maxRows: rows };
    const tried = await runCase(result.fuzz.seed, shrink);
    if (!tried.mismatches.length) break;
    best = { shrink, result: tried };
  }
  return best;
}

export function describeFailure(result: CaseResult, shrink: ShrinkOptions, limit = 12): string {
  const { fuzz } = result;
  const lines = [
    `MISMATCH seed ${fuzz.seed} (pageRows ${fuzz.pageRows}, unconstrainedNumericScale ${fuzz.unconstrainedScale}, ${fuzz.rows.length} rows${fuzz.laterRows.length ? ` + ${fuzz.laterRows.length} later` : ''}, re-run ${fuzz.rerun}${fuzz.cursor ? `, cursor ${fuzz.cursor.type}${fuzz.cursor.zone === 'UTC' ? '' : ` in ${fuzz.cursor.zone}`}` : ', snapshot'})`,
    ...fuzz.setup.map((s) => `  ${s};`),
    `  ${fuzz.ddl.replaceAll('\n', '\n  ')};`,
    ...result.mismatches.slice(0, limit).map((m) => `  [${m.reader}] column ${JSON.stringify(m.column)} key ${m.key}: postgres ${m.postgres} | lake ${m.lake}`),
  ];
  if (result.mismatches.length > limit) lines.push(`  … ${result.mismatches.length - limit} more`);
  lines.push(`  reproduce: ${reproduce(fuzz.seed, shrink)}`);
  return lines.join('\n');
}
