// The command line as a user runs it: exit codes, --json shapes, one-line errors, what Ctrl-C
// leaves behind, the Node version check, and the words it prints.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, startCli } from '../support/cli.ts';
import { createDatabase, createLake, duckdb, parquetGlob, stopPostgres, type TestDatabase, type TestLake } from '../support/local-stack.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

/**
 * Mid-export: a staged file is being written. Files stream per chunk, and a table this small is
 * one chunk, journalled only when every page is done; 20,000-row row groups make its file grow
 * (a `.tmp` under the run's data/) while pages are still being read.
 */
const midExport = (file: string): boolean => /\/data\/.*\.tmp$/.test(file) || /p\d{6}\.json$/.test(file);

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** A Node older than 24 on this machine (they ship Node 20; use-node24.sh puts 24 first on PATH). */
function oldNode(): string {
  const candidates = [...(process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, 'node')), '/usr/local/bin/node', '/usr/bin/node'];
  for (const node of candidates) {
    if (!existsSync(node)) continue;
    const major = Number(execFileSync(node, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim());
    if (major < 24) return node;
  }
  throw new Error(`no Node older than 24 found on PATH or in /usr/bin, /usr/local/bin (tried ${candidates.join(', ')}): this test needs one`);
}

describe('pg-lake-export CLI', () => {
  let db: TestDatabase;
  let lake: TestLake;
  let config: string;

  beforeAll(async () => {
    db = await createDatabase();
    await db.query(`CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2), updated_at timestamptz NOT NULL DEFAULT '2024-02-29 23:59:59.999999+00');
      INSERT INTO orders (id, total) SELECT g, g / 4.0 FROM generate_series(1, 1234) g`);
    lake = createLake();
    config = path.join(lake.dir, 'lake.config.yaml');
    writeFileSync(config, 'export: { safetyLagSeconds: 0 }\ntables:\n  - name: public.orders\n');
  });

  afterAll(async () => {
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('run --json prints one object with per-table counts and the window', async () => {
    const result = await cli(['run', '--config', config, '--lake', `${lake.url}/lake`, '--json'], { DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout);
    expect(Object.keys(output).sort()).toEqual(['durationMs', 'runId', 'tables', 'warnings']);
    expect(output.tables).toHaveLength(1);
    expect(output.tables[0]).toMatchObject({ table: 'orders', status: 'succeeded', rows: 1234, files: 1, windowFrom: null });
    expect(output.tables[0].bytes).toBeGreaterThan(0);
    expect(output.tables[0].windowTo).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00$/);
  });

  it('query --json answers SQL over the lake with the partition columns', async () => {
    const result = await cli(['query', 'SELECT count(*) AS n, sum(total) AS total, min(year) AS y, min(month) AS m, min(day) AS d FROM orders', '--config', config, '--lake', `${lake.url}/lake`, '--json']);
    expect(result.code).toBe(0);
    const [expected] = await db.query('SELECT sum(total)::text AS total FROM orders');
    expect(JSON.parse(result.stdout)).toEqual([{ n: '1234', total: expected.total, y: 2024, m: 2, d: 29 }]);
  });

  it('query right-aligns numbers and says when it cut a cell', async () => {
    const sql = `SELECT id, total, 'row ' || id AS label, repeat('x', 70) || id AS long FROM orders WHERE id IN (4, 1000) ORDER BY id`;
    const result = await cli(['query', sql, '--config', config, '--lake', `${lake.url}/lake`]);
    expect(result.code).toBe(0);
    const cut = `${'x'.repeat(59)}…`;
    expect(result.stdout).toBe([
      '  id |  total | label    | long',
      '-----+--------+----------+-------------------------------------------------------------',
      `   4 |   1.00 | row 4    | ${cut}`,
      `1000 | 250.00 | row 1000 | ${cut}`,
      '(2 rows; 2 cells longer than 60 characters cut at …; --json prints whole values)',
      '',
    ].join('\n'));
  });

  it('fails with one line naming what to fix', async () => {
    const noDb = await cli(['run', '--config', config, '--lake', lake.url], { DATABASE_URL: '' });
    expect([noDb.code, noDb.stderr.trim()]).toEqual([1, 'error: ConfigError: DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db']);
    const badConfig = path.join(lake.dir, 'bad.yaml');
    writeFileSync(badConfig, 'tables:\n  - name: orders\n    mode: sometimes\n');
    const bad = await cli(['run', '--config', badConfig, '--lake', lake.url], { DATABASE_URL: db.url });
    expect([bad.code, bad.stderr.trim()]).toEqual([1, `error: ConfigError: ${badConfig}: tables[0].mode: Invalid option: expected one of "incremental"|"snapshot"`]);
    const missing = await cli(['run', '--config', config, '--lake', lake.url, '--tables', 'public.nope'], { DATABASE_URL: db.url });
    expect([missing.code, missing.stderr.trim()]).toEqual([1, 'error: ConfigError: tables: "public.nope" is not configured (configured: public.orders)']);
  });

  it('run --json prints its object even when the run fails before exporting', async () => {
    const noDb = await cli(['run', '--config', config, '--lake', lake.url, '--json'], { DATABASE_URL: '' });
    expect(noDb.code).toBe(1);
    const output = JSON.parse(noDb.stdout);
    expect(output).toMatchObject({ runId: null, tables: [], warnings: [], error: 'ConfigError: DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db' });
    expect(Object.keys(output).sort()).toEqual(['durationMs', 'error', 'runId', 'tables', 'warnings']);
    const usage = await cli(['run', '--config', config, '--lake', lake.url, '--json', '--full', '--window', '2024-01-01,2024-02-01'], { DATABASE_URL: db.url });
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout).error).toBe('--full and --window cannot be combined: --full re-exports everything');
  });

  it('exits 2 on usage errors, a reversed or unreadable window included, before anything runs', async () => {
    const lakeUrl = `${lake.url}/usage-lake`;
    const both = await cli(['run', '--config', config, '--lake', lakeUrl, '--full', '--window', '2024-01-01,2024-02-01'], { DATABASE_URL: db.url });
    expect([both.code, both.stderr]).toEqual([2, 'error: --full and --window cannot be combined: --full re-exports everything\n(see pg-lake-export run --help)\n']);
    const reversed = await cli(['run', '--config', config, '--lake', lakeUrl, '--window', '2024-03-01,2024-02-01'], { DATABASE_URL: db.url });
    expect([reversed.code, reversed.stderr]).toEqual([2, 'error: --window: FROM 2024-03-01 must not be after TO 2024-02-01\n(see pg-lake-export run --help)\n']);
    const garbled = await cli(['run', '--config', config, '--lake', lakeUrl, '--window', 'yesterday-ish,2024-02-01'], { DATABASE_URL: db.url });
    expect(garbled.code).toBe(2);
    expect(garbled.stderr).toContain('error: --window: invalid input syntax for type timestamp with time zone: "yesterday-ish"');
    const force = await cli(['discover', '--force'], { DATABASE_URL: db.url });
    expect([force.code, force.stderr.split('\n')[0]]).toEqual([2, 'error: --force applies to --out FILE']);
    // Nothing was planned: no lake was even started.
    expect(existsSync(path.join(lake.dir, 'usage-lake'))).toBe(false);
  });

  it('names DATABASE_URL without its password, the host and port, and the likely fix when it cannot connect', async () => {
    const hash = await cli(['run', '--config', config, '--lake', lake.url], { DATABASE_URL: 'postgres://app:s3cr#et@127.0.0.1:5432/shop' });
    expect(hash.code).toBe(1);
    expect(hash.stderr).toMatch(/^error: ExportError: cannot connect to PostgreSQL \(DATABASE_URL=postgres:\/\/app:\*\*\*@127\.0\.0\.1:5432\/shop\): Invalid URL; not a valid connection URL .*# → %23/);
    expect(hash.stderr).not.toContain('s3cr');
    const refused = await cli(['discover'], { DATABASE_URL: 'postgres://app:hunter2@127.0.0.1:1/shop' });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe('error: ExportError: cannot connect to PostgreSQL at 127.0.0.1:1 (DATABASE_URL=postgres://app:***@127.0.0.1:1/shop): connect ECONNREFUSED 127.0.0.1:1; nothing accepts connections at 127.0.0.1:1: is the server running and listening on that address and port (listen_addresses, port)?');
    const url = new URL(db.url);
    url.password = 'wrong#pass';
    const denied = await cli(['run', '--config', config, '--lake', lake.url], { DATABASE_URL: url.href });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain(`cannot connect to PostgreSQL at 127.0.0.1:${url.port} (DATABASE_URL=postgres://${url.username}:***@127.0.0.1:${url.port}${url.pathname})`);
    expect(denied.stderr).toContain(`the server refused the password of user "${url.username}"`);
    expect(denied.stderr).not.toContain('wrong');
  });

  it('explains usage', async () => {
    expect((await cli(['--help'])).stdout).toContain('pg-lake-export <command> [options]');
    expect((await cli(['run', '--help'])).stdout).toContain('--window FROM,TO');
    expect((await cli(['run', '--help'])).stdout).toContain('3 a table was skipped because another run holds its lease');
    const unknown = await cli(['explode']);
    expect([unknown.code, unknown.stderr.split('\n')[0]]).toEqual([2, 'error: unknown command "explode"']);
    const flag = await cli(['run', '--colour']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("Unknown option '--colour'");
  });

  it('on a Node older than 24 says what to run instead of ERR_UNKNOWN_FILE_EXTENSION', async () => {
    const node = oldNode();
    const expected = /^error: pg-lake-export needs Node\.js 24 or newer; this shell runs Node v\d+\.\d+\.\d+ \(.+\)\.\nRun, inside the clone: {2}source scripts\/use-node24\.sh/;
    const viaBin = await cli(['--help'], {}, { node });
    expect(viaBin.code).toBe(1);
    expect(viaBin.stderr).toMatch(expected);
    expect(viaBin.stderr).not.toContain('ERR_UNKNOWN_FILE_EXTENSION');
    // `npx pg-lake-export` and the npm scripts go through the same entry.
    const manifest = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    expect(path.resolve(REPO, manifest.bin['pg-lake-export'])).toBe(CLI);
    expect(manifest.scripts.demo).toBe('node bin/cli.js demo');
    expect(manifest.scripts['pg-lake-export']).toBe('node bin/cli.js');
  });

  it('scripts/use-node24.sh run instead of sourced says it must be sourced and fails', async () => {
    const script = path.join(REPO, 'scripts/use-node24.sh');
    const ran = await promisify(execFile)('bash', [script]).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain('scripts/use-node24.sh must be sourced, not run');
    expect(ran.stderr).toContain('source scripts/use-node24.sh');
    // Sourced, it still works (and leaves Node 24 first on PATH).
    const sourced = execFileSync('bash', ['-c', `source ${JSON.stringify(script)} && node -p 'process.versions.node.split(".")[0]'`], { encoding: 'utf8' });
    expect(Number(sourced.trim())).toBeGreaterThanOrEqual(24);
  });
});

describe('pg-lake-export run: leases, Ctrl-C and what it says', () => {
  let db: TestDatabase;
  let lake: TestLake;
  const TOTAL = 300_000;

  beforeAll(async () => {
    db = await createDatabase();
    await db.query(`CREATE TABLE big (id bigint PRIMARY KEY, note text NOT NULL, updated_at timestamptz NOT NULL);
      INSERT INTO big SELECT g, repeat('n', 100) || g, '2024-05-01'::timestamptz + g * interval '1 second' FROM generate_series(1, ${TOTAL}) g;
      CREATE TABLE notes (id int PRIMARY KEY, body text, updated_at timestamptz);
      INSERT INTO notes VALUES (1, 'a', '2024-01-01'), (2, 'b', NULL), (3, 'c', '2024-01-02'), (4, 'd', NULL);
      CREATE TABLE recent (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO recent SELECT generate_series(1, 7)`);
  });

  afterAll(async () => {
    await db?.close();
    lake?.remove();
    await stopPostgres();
  });

  it('SIGINT mid-export removes what the run wrote and releases the lease: the next run needs no --take-over', async () => {
    lake = createLake();
    const config = path.join(lake.dir, 'big.yaml');
    writeFileSync(config, 'export: { safetyLagSeconds: 0, pageRows: 2000 }\nlake: { rowGroupRows: 20000 }\ntables:\n  - name: public.big\n');
    const args = ['run', '--config', config, '--lake', lake.url];
    const state = path.join(lake.dir, 'raw/_state/big');
    const run = startCli(args, { DATABASE_URL: db.url });
    // Mid-export: a page journalled under pending/, the run still going.
    for (let i = 0; !filesUnder(path.join(state, 'pending')).some(midExport); i++) {
      if (i > 3000) throw new Error(`the run never journalled a page: ${JSON.stringify(run.output())}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    run.child.kill('SIGINT');
    const stopped = await run.done;
    expect(stopped.code, stopped.stderr).toBe(130);
    expect(stopped.stderr).toContain('SIGINT: stopping after the page in hand');
    expect(stopped.stdout).toMatch(/^public\.big: interrupted: stopped by SIGINT after [\d,]+ rows; nothing published, lease released\nrun \S+ stopped by SIGINT after [\d.]+ s: what unfinished tables wrote was removed \(a backfill keeps its finished segments, staged, for the next run to continue\) and their leases released\n$/);
    // No lease, nothing staged or half-written, no data file visible.
    expect(filesUnder(state)).toEqual([]);
    expect(filesUnder(lake.dir).filter((f) => f.endsWith('.tmp') || f.endsWith('.parquet'))).toEqual([]);

    const again = await cli(args, { DATABASE_URL: db.url });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^public\.big: 300,000 rows, /);
    const [{ n }] = await duckdb<{ n: string }>(`SELECT count(*) AS n FROM read_parquet(${parquetGlob(lake, 'big')})`);
    expect(Number(n)).toBe(TOTAL);
  });

  it('SIGTERM too, with its own exit code; a kill that leaves temporary files is cleaned up by the next run', async () => {
    const local = createLake();
    try {
      const config = path.join(local.dir, 'big.yaml');
      writeFileSync(config, 'export: { safetyLagSeconds: 0, pageRows: 2000 }\nlake: { rowGroupRows: 20000 }\ntables:\n  - name: public.big\n');
      const args = ['run', '--config', config, '--lake', local.url];
      const state = path.join(local.dir, 'raw/_state/big');
      const waitForPage = async (run: ReturnType<typeof startCli>) => {
        for (let i = 0; !filesUnder(path.join(state, 'pending')).some(midExport); i++) {
          if (i > 3000) throw new Error(`the run never journalled a page: ${JSON.stringify(run.output())}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      const term = startCli(args, { DATABASE_URL: db.url });
      await waitForPage(term);
      term.child.kill('SIGTERM');
      expect((await term.done).code).toBe(143);
      expect(filesUnder(state)).toEqual([]);

      // SIGKILL cannot be caught: the lease stays and a temporary file may be left mid-write.
      const killed = startCli(args, { DATABASE_URL: db.url });
      await waitForPage(killed);
      killed.child.kill('SIGKILL');
      await killed.done;
      const [runDir] = readdirSync(path.join(state, 'pending'));
      // as the directory lake names it: the killed writer's pid, then a uuid
      writeFileSync(path.join(state, 'pending', runDir, `p000099.json.${killed.child.pid}-0c0ffee0-0000-4000-8000-000000000000.tmp`), 'half');
      const held = await cli(args, { DATABASE_URL: db.url });
      expect(held.code).toBe(3);
      expect(held.stdout).toMatch(/^public\.big: skipped, run \S+ holds its lease until \S+ \(if that run is dead, re-run with --take-over/);
      expect(held.stderr).toContain('exit code 3: skipped public.big (another run holds the lease)');
      const taken = await cli([...args, '--take-over'], { DATABASE_URL: db.url });
      expect(taken.code, taken.stderr).toBe(0);
      // The leftover run is cleaned up in words, not as a JSON fragment.
      expect(taken.stderr).toMatch(new RegExp(`big: cleaning up after run ${runDir}, which stopped before committing: removing the \\d+ files? it staged \\(the lake's committed data is not touched\\)`));
      expect(taken.stderr).not.toMatch(/[{}]/);
      expect(filesUnder(local.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(filesUnder(path.join(state, 'pending'))).toEqual([]);
    } finally {
      local.remove();
    }
  });

  it('puts NULL-cursor rows and rows the safety lag holds back into the summary', async () => {
    const local = createLake();
    try {
      const config = path.join(local.dir, 'c.yaml');
      writeFileSync(config, 'export: { safetyLagSeconds: 3600 }\ntables:\n  - name: public.notes\n  - name: public.recent\n');
      const result = await cli(['run', '--config', config, '--lake', local.url], { DATABASE_URL: db.url });
      expect(result.code, result.stderr).toBe(0);
      const lines = result.stdout.split('\n');
      expect(lines[0]).toMatch(/^public\.notes: 2 rows, 2 files, [\d.]+ KiB \(start → \S+ \S+\); 2 rows with a NULL cursor not exported \(keys 2, 4\): set the cursor on them to export them$/);
      expect(lines[1]).toMatch(/^public\.recent: 0 rows, 0 files, 0\.0 KiB \(start → \S+ \S+\); 7 rows with updated_at after \S+ \S+ wait for the next run: they are newer than now − export\.safetyLagSeconds \(3600 s\)$/);
      expect(result.stderr).not.toMatch(/[{}]/);
    } finally {
      local.remove();
    }
  });

  it('draws a progress bar with rows, rate and time left on a terminal', async () => {
    const local = createLake();
    try {
      const config = path.join(local.dir, 'big.yaml');
      writeFileSync(config, 'export: { safetyLagSeconds: 0, pageRows: 20000 }\ntables:\n  - name: public.big\n');
      // `script` gives the command a pseudo-terminal, as an interactive shell would.
      const command = [process.execPath, CLI, 'run', '--config', config, '--lake', local.url].map((a) => `'${a}'`).join(' ');
      const output = execFileSync('script', ['-q', '-e', '-c', command, '/dev/null'], { env: { ...process.env, DATABASE_URL: db.url }, encoding: 'utf8' });
      expect(output).toMatch(/public\.big\s+█+░*\s+\d+%\s+[\d,]+ \/ ~[\d,]+ rows\s+[\d,]+ rows\/s\s+ETA \d+s/);
      expect(output).toMatch(/public\.big\s+█{24}\s+100%\s+300,000 \/ 300,000 rows\s+[\d,]+ rows\/s\s+done/);
      expect(output).toContain('public.big: 300,000 rows');
    } finally {
      local.remove();
    }
  });
});
