// `pg-lake-export discover` against a real PostgreSQL: the tables it finds, the warnings it
// gives (exact text), the YAML it prints (loads through the config schema) and the CLI shapes.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverTables, renderConfig, type DiscoveredTable } from '../../bin/local/discover.ts';
import { parseConfig, resolveTable } from '../../lambdas/core/config.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { cli } from '../support/cli.ts';
import { createDatabase, createLake, stopPostgres, type TestDatabase } from '../support/local-stack.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

const SCHEMA = `
CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2), updated_at timestamptz NOT NULL);
CREATE INDEX orders_updated_at_id ON orders (updated_at, id);
INSERT INTO orders SELECT g, g / 4.0, '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 1000) g;

CREATE TABLE audit_log (event text NOT NULL, updated_at timestamptz);
CREATE INDEX ON audit_log (updated_at);
INSERT INTO audit_log VALUES ('login', now()), ('logout', NULL);

CREATE TABLE sessions (token text NOT NULL, last_update date NOT NULL);
CREATE UNIQUE INDEX sessions_token ON sessions (token);
CREATE INDEX ON sessions (last_update) WHERE token <> '';

CREATE TABLE events (id int PRIMARY KEY, last_modified timestamp NOT NULL, payload text);
INSERT INTO events VALUES (1, '2024-01-01', 'a'), (2, '2024-01-02', 'b');

CREATE TABLE readings (id int PRIMARY KEY, modified_at timestamptz NOT NULL, value numeric, ratio numeric, empty numeric);
CREATE INDEX ON readings (modified_at);
INSERT INTO readings VALUES (1, now(), 1234567.123456789012, 12.25, NULL), (2, now(), -0.5, 100, NULL), (3, now(), NULL, -3.1, NULL);

CREATE TABLE documents (id uuid PRIMARY KEY, updated_at timestamptz NOT NULL, body jsonb, tags uuid[], note text);
CREATE INDEX ON documents (updated_at);

CREATE SCHEMA "Sales Data";
CREATE TABLE "Sales Data"."Order Items" ("Order ID" int, "line no" int, updated_at timestamptz NOT NULL, qty int, PRIMARY KEY ("Order ID", "line no"));

CREATE TABLE metrics (id bigint, updated_at timestamptz NOT NULL, v float8, PRIMARY KEY (id, updated_at)) PARTITION BY RANGE (updated_at);
CREATE TABLE metrics_2024 PARTITION OF metrics FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE metrics_2025 PARTITION OF metrics FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX ON metrics (updated_at, id);
INSERT INTO metrics SELECT g, '2024-06-01'::timestamptz + g * interval '1 day', g FROM generate_series(1, 400) g;

CREATE TABLE lookup (code text PRIMARY KEY, label text);
CREATE TABLE legacy (id int PRIMARY KEY, updated_at text);`;

const SNAPSHOT = 'proposed as mode: snapshot, which copies the whole table every run; to export only new and changed rows, add an updated_at timestamptz column that every write sets (a BEFORE UPDATE trigger, see the README), then drop the mode line';
const NO_CURSOR = `no cursor column (updated_at, modified_at, last_update, last_modified): ${SNAPSHOT}`;

// What discover must say about each table, exactly.
const EXPECTED: Record<string, Pick<DiscoveredTable, 'cursor' | 'primaryKey' | 'estimatedRows' | 'warnings'>> = {
  '"Sales Data"."Order Items"': {
    cursor: 'updated_at',
    primaryKey: ['Order ID', 'line no'],
    estimatedRows: 0,
    warnings: ['no index starts with updated_at: every page query scans the table; CREATE INDEX CONCURRENTLY ON "Sales Data"."Order Items" ("updated_at", "Order ID", "line no")'],
  },
  'public.audit_log': {
    cursor: 'updated_at',
    primaryKey: [],
    estimatedRows: 2,
    warnings: [
      'no primary key: set primaryKey: [column, …] to NOT NULL columns that identify a row (or add a primary key); the export refuses the table until then',
      'updated_at allows NULL: rows where it is NULL are counted and reported by each run, never exported',
    ],
  },
  'public.documents': {
    cursor: 'updated_at',
    primaryKey: ['id'],
    estimatedRows: 0,
    warnings: [
      'id: uuid exported as string (its text form)',
      'body: jsonb exported as string (its text form)',
      'tags: uuid[] exported as array<string> (elements in their text form)',
    ],
  },
  'public.events': {
    cursor: 'last_modified',
    primaryKey: ['id'],
    estimatedRows: 2,
    warnings: [
      "last_modified is timestamp without time zone: its values are read as UTC wall-clock times; if the writers' sessions use another TimeZone, set cursorTimeZone to it, or a late commit can be missed",
      'no index starts with last_modified: every page query scans the table; CREATE INDEX CONCURRENTLY ON "public"."events" ("last_modified", "id")',
      expect.stringMatching(/^about 2 rows a day over 1 day \(~[0-9.]+ MB of Parquet a day\): day partitions would hold files of a few KB to MB, which Athena pays for per file; add partition: \{ granularity: month \} \(~[0-9.]+ MB a month per run's file\)$/),
    ],
  },
  'public.legacy': {
    cursor: null,
    primaryKey: ['id'],
    estimatedRows: 0,
    warnings: [`no usable cursor column: "updated_at" is text; a cursor must be timestamptz, timestamp or date: ${SNAPSHOT}`],
  },
  'public.lookup': { cursor: null, primaryKey: ['code'], estimatedRows: 0, warnings: [NO_CURSOR] },
  // A partitioned table: its parent's statistics of the whole tree (pg_stats.inherited).
  'public.metrics': {
    cursor: 'updated_at',
    primaryKey: ['id', 'updated_at'],
    estimatedRows: 400,
    warnings: [expect.stringMatching(/^about 1 row a day over 399 days \(~[0-9.]+ MB of Parquet a day\): .*; add partition: \{ granularity: year \} \(~[0-9.]+ MB a year per run's file\)$/)],
  },
  'public.orders': { cursor: 'updated_at', primaryKey: ['id'], estimatedRows: 1000, warnings: [] },
  'public.readings': {
    cursor: 'modified_at',
    primaryKey: ['id'],
    estimatedRows: 3,
    warnings: [
      'value: unconstrained numeric exported as decimal(38,9); over all 3 rows: up to 7 integer and 12 fractional digits, which does not fit (the export fails on such values): declare the column numeric(19,12) or set export.unconstrainedNumericScale: 12',
      'ratio: unconstrained numeric exported as decimal(38,9); over all 3 rows: up to 3 integer and 2 fractional digits, which fits; a larger value fails the table',
      'empty: unconstrained numeric exported as decimal(38,9); no finite values over all 3 rows',
    ],
  },
  'public.sessions': {
    cursor: 'last_update',
    primaryKey: ['token'],
    estimatedRows: 0,
    warnings: [
      'no primary key: primaryKey set from unique index "sessions_token" (token) on NOT NULL columns',
      "last_update is date: a day is exported once it has ended in UTC; if the writers' dates follow another time zone, set cursorTimeZone to it, or rows written late in a day can be missed",
      'no index starts with last_update: every page query scans the table; CREATE INDEX CONCURRENTLY ON "public"."sessions" ("last_update", "token")',
    ],
  },
};

const SOURCE_TEMPLATE = `# Before \`cdk synth\` / \`cdk deploy\`, add where the database is (local runs use DATABASE_URL
# instead). Uncomment and fill in:
# source:
#   secretArn: arn:aws:secretsmanager:<region>:<account>:secret:<name>  # RDS-format secret: host, port, dbname, username, password
#   vpcId: vpc-<id>                # the VPC the database is reachable in
#   securityGroupId: sg-<id>       # for the functions; the database's security group must admit it on the database port
#   subnetIds: [subnet-<id>]       # private subnets with a route to S3 and Secrets Manager (default: the VPC's private subnets)
`;

const GOLDEN_YAML = `# lake.config.yaml written by \`pg-lake-export discover\`.
# 8 tables by a cursor column (new and changed rows each run), 2 as mode: snapshot (no cursor column: the whole table each run).
# Read the warnings under each table. Rows and sizes are the catalog's estimates.
# Defaults apply to everything not written here (lake prefix raw, daily schedule at 02:00 UTC).
${SOURCE_TEMPLATE}tables:
  # "Sales Data"."Order Items": ~0 rows, <size>
  # warning: no index starts with updated_at: every page query scans the table; CREATE INDEX CONCURRENTLY ON "Sales Data"."Order Items" ("updated_at", "Order ID", "line no")
  - name: '"Sales Data"."Order Items"'
    cursor: updated_at
    primaryKey: ['Order ID', 'line no']
  # public.audit_log: ~2 rows, <size>
  # warning: no primary key: set primaryKey: [column, …] to NOT NULL columns that identify a row (or add a primary key); the export refuses the table until then
  # warning: updated_at allows NULL: rows where it is NULL are counted and reported by each run, never exported
  - name: public.audit_log
    cursor: updated_at
    # primaryKey: [<column>, …]   # required: the table has no primary key
  # public.documents: ~0 rows, <size>
  # warning: id: uuid exported as string (its text form)
  # warning: body: jsonb exported as string (its text form)
  # warning: tags: uuid[] exported as array<string> (elements in their text form)
  - name: public.documents
    cursor: updated_at
    primaryKey: [id]
  # public.events: ~2 rows, <size>
  # warning: last_modified is timestamp without time zone: its values are read as UTC wall-clock times; if the writers' sessions use another TimeZone, set cursorTimeZone to it, or a late commit can be missed
  # warning: no index starts with last_modified: every page query scans the table; CREATE INDEX CONCURRENTLY ON "public"."events" ("last_modified", "id")
  # warning: about 2 rows a day over 1 day (~<n> MB of Parquet a day): day partitions would hold files of a few KB to MB, which Athena pays for per file; add partition: { granularity: month } (~<n> MB a month per run's file)
  - name: public.events
    cursor: last_modified
    primaryKey: [id]
  # public.legacy: ~0 rows, <size>
  # warning: no usable cursor column: "updated_at" is text; a cursor must be timestamptz, timestamp or date: ${SNAPSHOT}
  - name: public.legacy
    mode: snapshot
    primaryKey: [id]
  # public.lookup: ~0 rows, <size>
  # warning: ${NO_CURSOR}
  - name: public.lookup
    mode: snapshot
    primaryKey: [code]
  # public.metrics: ~400 rows, <size>
  # warning: about 1 row a day over 399 days (~<n> MB of Parquet a day): day partitions would hold files of a few KB to MB, which Athena pays for per file; add partition: { granularity: year } (~<n> MB a year per run's file)
  - name: public.metrics
    cursor: updated_at
    primaryKey: [id, updated_at]
  # public.orders: ~1,000 rows, <size>
  - name: public.orders
    cursor: updated_at
    primaryKey: [id]
  # public.readings: ~3 rows, <size>
  # warning: value: unconstrained numeric exported as decimal(38,9); over all 3 rows: up to 7 integer and 12 fractional digits, which does not fit (the export fails on such values): declare the column numeric(19,12) or set export.unconstrainedNumericScale: 12
  # warning: ratio: unconstrained numeric exported as decimal(38,9); over all 3 rows: up to 3 integer and 2 fractional digits, which fits; a larger value fails the table
  # warning: empty: unconstrained numeric exported as decimal(38,9); no finite values over all 3 rows
  - name: public.readings
    cursor: modified_at
    primaryKey: [id]
  # public.sessions: ~0 rows, <size>
  # warning: no primary key: primaryKey set from unique index "sessions_token" (token) on NOT NULL columns
  # warning: last_update is date: a day is exported once it has ended in UTC; if the writers' dates follow another time zone, set cursorTimeZone to it, or rows written late in a day can be missed
  # warning: no index starts with last_update: every page query scans the table; CREATE INDEX CONCURRENTLY ON "public"."sessions" ("last_update", "token")
  - name: public.sessions
    cursor: last_update
    primaryKey: [token]
`;

describe('pg-lake-export discover', () => {
  let db: TestDatabase;
  let source: PostgresSource;
  let tables: DiscoveredTable[];

  beforeAll(async () => {
    db = await createDatabase();
    await db.query(SCHEMA);
    // Settled statistics: the estimates below are exact for tables this small.
    await db.query('VACUUM ANALYZE');
    source = new PostgresSource(db.url);
    tables = await discoverTables(source, {});
  });

  afterAll(async () => {
    await source?.close();
    await db?.close();
    await stopPostgres();
  });

  it('finds every table (partitions through their parent) with cursor, key, estimates and exact warnings', () => {
    expect(tables.map((t) => t.name)).toEqual(Object.keys(EXPECTED));
    for (const table of tables) {
      expect({ name: table.name, mode: table.mode, cursor: table.cursor, primaryKey: table.primaryKey, estimatedRows: table.estimatedRows, warnings: table.warnings })
        .toEqual({ name: table.name, mode: EXPECTED[table.name].cursor ? 'incremental' : 'snapshot', ...EXPECTED[table.name] });
      expect(table.sizeBytes).toBeGreaterThan(0);
    }
    expect(tables.filter((t) => t.mode === 'snapshot').map((t) => t.name)).toEqual(['public.legacy', 'public.lookup']);
  });

  it('prints YAML that loads through the config schema, tables without a cursor as snapshots', () => {
    const text = renderConfig(tables);
    const config = parseConfig(text);
    expect(config.tables.map((t) => resolveTable(t).display)).toEqual([
      '"Sales Data"."Order Items"', 'public.audit_log', 'public.documents', 'public.events', 'public.legacy', 'public.lookup', 'public.metrics',
      'public.orders', 'public.readings', 'public.sessions',
    ]);
    expect(config.tables.find((t) => t.name === 'public.lookup')).toMatchObject({ mode: 'snapshot', primaryKey: ['code'] });
    expect(config.tables[0]).toMatchObject({ name: '"Sales Data"."Order Items"', cursor: 'updated_at', primaryKey: ['Order ID', 'line no'] });
    expect(config.tables.find((t) => t.name === 'public.events')).toMatchObject({ cursor: 'last_modified', primaryKey: ['id'] });
    expect(config.tables.find((t) => t.name === 'public.audit_log')!.primaryKey).toBeUndefined();
    expect(text).toContain(`  # warning: ${NO_CURSOR}\n  - name: public.lookup\n    mode: snapshot\n    primaryKey: [code]\n`);
    expect(text).toContain("  - name: '\"Sales Data\".\"Order Items\"'\n    cursor: updated_at\n    primaryKey: ['Order ID', 'line no']\n");
    expect(text).toContain('  # warning: no index starts with last_modified: every page query scans the table; CREATE INDEX CONCURRENTLY ON "public"."events" ("last_modified", "id")\n  # warning: about 2 rows a day over 1 day');
    expect(text).toMatch(/ granularity: month \} \(~[0-9.]+ MB a month per run's file\)\n {2}- name: public\.events\n/);
  });

  it('prints this YAML for the test database (sizes vary with the Postgres build)', () => {
    const text = renderConfig(tables).replace(/, \d+(\.\d)? (bytes|KiB|MiB|GiB)$/gm, ', <size>').replace(/~[0-9.]+ MB/g, '~<n> MB');
    expect(text).toBe(GOLDEN_YAML);
  });

  it('samples big tables with TABLESAMPLE and says so', async () => {
    const [readings] = await discoverTables(source, { schemas: ['public'], sampleRows: 2 }).then((all) => all.filter((t) => t.name === 'public.readings'));
    expect(readings.warnings[0]).toMatch(/^value: unconstrained numeric exported as decimal\(38,9\); (in a TABLESAMPLE SYSTEM \(67%\) sample of [0-2] rows \(of ~3 rows\)|no finite values in a TABLESAMPLE SYSTEM \(67%\) sample of 0 rows \(of ~3 rows\))/);
  });

  it('reads at most sampleRows rows of a table without a row estimate, and says so', async () => {
    await db.query(`CREATE SCHEMA fresh; CREATE TABLE fresh.prices (updated_at date NOT NULL, amount numeric);
      INSERT INTO fresh.prices VALUES ('2024-01-01', 1.5), ('2024-01-02', 22.25), ('2024-01-03', 333.125)`);
    const [prices] = await discoverTables(source, { schemas: ['fresh'], sampleRows: 2 });
    expect(prices.estimatedRows).toBeNull();
    expect(prices.warnings).toContain('amount: unconstrained numeric exported as decimal(38,9); in the first 2 rows read (LIMIT 2; the table has no row estimate, run ANALYZE): up to 2 integer and 2 fractional digits, which fits; a larger value fails the table');
    await db.query('DROP SCHEMA fresh CASCADE');
  });

  it('gives tables whose names share a lake folder schema-qualified lake names', async () => {
    await db.query(`CREATE SCHEMA shop; CREATE TABLE shop.orders (id int PRIMARY KEY, updated_at timestamptz NOT NULL)`);
    const found = await discoverTables(source, { schemas: ['public', 'shop'] });
    const config = parseConfig(renderConfig(found));
    expect(config.tables.filter((t) => t.name.endsWith('.orders')).map((t) => [t.name, t.lakeName])).toEqual([
      ['public.orders', 'public_orders'], ['shop.orders', 'shop_orders'],
    ]);
    await db.query('DROP SCHEMA shop CASCADE');
  });

  it('proposes month or year partitions from the cursor\'s statistics (no table scan); a dense table keeps days', async () => {
    await db.query(`CREATE SCHEMA spans;
      -- 3 rows a day over three years (and an infinite cursor, which the span leaves out).
      CREATE TABLE spans.sparse (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO spans.sparse SELECT g, timestamptz '2022-01-01 00:00:00+00' + g * interval '8 hours' FROM generate_series(1, 3 * 1095) g;
      INSERT INTO spans.sparse VALUES (0, 'infinity');
      CREATE TABLE spans.sparse_dates (id int PRIMARY KEY, last_update date NOT NULL);
      INSERT INTO spans.sparse_dates SELECT g, date '2022-01-01' + g / 3 FROM generate_series(1, 3 * 1095) g;
      CREATE TABLE spans.recent (id int PRIMARY KEY, updated_at timestamp NOT NULL);
      INSERT INTO spans.recent SELECT g, timestamp '2024-01-01' + g * interval '1 hour' FROM generate_series(1, 24 * 90) g;
      -- ~60 MB over three days: ~5 MB of Parquet a day by the rule, over SMALL_FILE_BYTES.
      CREATE TABLE spans.dense (id int PRIMARY KEY, pad text, updated_at timestamptz NOT NULL);
      INSERT INTO spans.dense SELECT g, repeat('x', 400), timestamptz '2024-01-01 00:00:00+00' + g * interval '1.728 seconds' FROM generate_series(1, 150000) g;
      CREATE TABLE spans.unanalyzed (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
      INSERT INTO spans.unanalyzed SELECT g, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 day' FROM generate_series(1, 1000) g;
      ANALYZE spans.sparse; ANALYZE spans.sparse_dates; ANALYZE spans.recent; ANALYZE spans.dense;`);
    try {
      const span = (name: string, cursor: string) => source.cursorSpanDays({ schema: 'spans', name }, cursor);
      // Histogram bounds are the sample's extremes (every row here); the infinite cursor takes
      // the last bound, so the finite span ends one bucket (~1 % of the values) early.
      expect(await span('sparse', 'updated_at')).toBeGreaterThan(1080);
      expect(await span('sparse', 'updated_at')).toBeLessThanOrEqual(1095);
      expect(await span('sparse_dates', 'last_update')).toBeCloseTo(1095, 0);
      expect(await span('recent', 'updated_at')).toBeGreaterThan(88);
      expect(await span('dense', 'updated_at')).toBeGreaterThan(2.9);
      expect(await span('unanalyzed', 'updated_at')).toBeNull();
      expect(await span('sparse', 'no_such_column')).toBeNull();

      const found = await discoverTables(source, { schemas: ['spans'] });
      const advice = Object.fromEntries(found.map((t) => [t.qualified.name, t.warnings.filter((w) => w.includes('partition: {'))]));
      expect(advice.sparse).toEqual([expect.stringMatching(/^about 3 rows a day over 1,0[89]\d days .*add partition: \{ granularity: year \}/)]);
      expect(advice.sparse_dates).toEqual([expect.stringMatching(/^about 3 rows a day over 1,09[45] days .*add partition: \{ granularity: year \}/)]);
      expect(advice.recent).toEqual([expect.stringMatching(/^about 2[45] rows a day over (89|90) days .*add partition: \{ granularity: month \}/)]);
      expect(advice.dense).toEqual([]);
      expect(advice.unanalyzed).toEqual([]);
      // The proposal is a comment above the entry; the entry itself loads as it is.
      expect(renderConfig(found)).toContain("add partition: { granularity: year }");
      expect(parseConfig(renderConfig(found)).tables).toHaveLength(5);
    } finally {
      await db.query('DROP SCHEMA spans CASCADE');
    }
  });

  it('CLI prints the YAML on stdout and a summary on stderr', async () => {
    const result = await cli(['discover'], { DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(renderConfig(tables));
    expect(parseConfig(result.stdout).tables).toHaveLength(10);
    expect(result.stderr).toBe([
      'discovered 10 tables: 8 by a cursor column, 2 as mode: snapshot (no cursor column)',
      '  copied whole every run (add an updated_at column kept by a trigger to export only changes): public.legacy, public.lookup',
      '  need primaryKey before they can run: public.audit_log',
      '  18 warnings: read the "# warning:" comments above each table',
      '',
    ].join('\n'));
  });

  it('CLI --json prints the tables with their warnings', async () => {
    const result = await cli(['discover', '--json', '--schema', 'Sales Data'], { DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout);
    expect(Object.keys(output)).toEqual(['tables']);
    expect(output.tables).toHaveLength(1);
    expect(Object.keys(output.tables[0])).toEqual(['name', 'mode', 'cursor', 'primaryKey', 'estimatedRows', 'sizeBytes', 'warnings']);
    expect(output.tables[0]).toMatchObject({ name: '"Sales Data"."Order Items"', mode: 'incremental', ...EXPECTED['"Sales Data"."Order Items"'] });
    const all = JSON.parse((await cli(['discover', '--json'], { DATABASE_URL: db.url })).stdout);
    expect(all.tables.map((t: { name: string }) => t.name)).toEqual(Object.keys(EXPECTED));
  });

  it('CLI fails with one line naming what to fix', async () => {
    const noDb = await cli(['discover'], { DATABASE_URL: '' });
    expect([noDb.code, noDb.stderr.trim()]).toEqual([1, 'error: ConfigError: DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db']);
    const badSchema = await cli(['discover', '--schema', 'public,nope'], { DATABASE_URL: db.url });
    expect([badSchema.code, badSchema.stderr.trim()]).toEqual([1, 'error: ConfigError: --schema: no schema named "nope" (schemas: Sales Data, public)']);
    await db.query('CREATE SCHEMA bare');
    const none = await cli(['discover', '--schema', 'bare'], { DATABASE_URL: db.url });
    expect([none.code, none.stdout, none.stderr.trim()]).toEqual([1, '', 'error: ConfigError: discover: no tables found; check --schema and that the database user can see the tables']);
    await db.query('DROP SCHEMA bare CASCADE');
    const empty = await cli(['discover', '--schema', ','], { DATABASE_URL: db.url });
    expect([empty.code, empty.stderr.split('\n')[0]]).toEqual([2, 'error: --schema takes a comma-separated list of schema names']);
  });

  it('--out writes a new file with a source: template, refuses to overwrite without --force, and keeps the other sections', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'discover-out-'));
    try {
      const fresh = path.join(dir, 'new.yaml');
      const written = await cli(['discover', '--out', fresh, '--schema', 'Sales Data'], { DATABASE_URL: db.url });
      expect([written.code, written.stdout]).toEqual([0, '']);
      expect(written.stderr).toContain(`wrote ${fresh}\n`);
      const text = readFileSync(fresh, 'utf8');
      expect(text).toContain(SOURCE_TEMPLATE);
      expect(parseConfig(text).tables.map((t) => t.name)).toEqual(['"Sales Data"."Order Items"']);

      // The clone's sample config: discover must not truncate it, and with --force keeps all but tables:.
      const sample = readFileSync(path.join(REPO, 'lake.config.yaml'), 'utf8');
      const target = path.join(dir, 'lake.config.yaml');
      writeFileSync(target, sample);
      const refused = await cli(['discover', '--out', target], { DATABASE_URL: db.url });
      expect([refused.code, refused.stdout, refused.stderr]).toEqual([2, '', `error: --out: ${target} exists; add --force to replace its tables: (its source:, lake:, schedule:, export: and alarms: sections are kept)\n(see pg-lake-export discover --help)\n`]);
      expect(readFileSync(target, 'utf8')).toBe(sample);

      const forced = await cli(['discover', '--out', target, '--force', '--schema', 'Sales Data'], { DATABASE_URL: db.url });
      expect(forced.code, forced.stderr).toBe(0);
      expect(forced.stderr).toContain(`wrote ${target} (its tables replaced, its other sections kept)\n`);
      const merged = readFileSync(target, 'utf8');
      const before = parseConfig(sample);
      const after = parseConfig(merged);
      expect({ lake: after.lake, source: after.source, schedule: after.schedule, export: after.export, alarms: after.alarms })
        .toEqual({ lake: before.lake, source: before.source, schedule: before.schedule, export: before.export, alarms: before.alarms });
      expect(after.tables.map((t) => t.name)).toEqual(['"Sales Data"."Order Items"']);
      // Its comments stay; no source: template beside a real source: section.
      expect(merged.startsWith(sample.split('\n')[0])).toBe(true);
      expect(merged).not.toContain('# source:');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the README's trigger keeps updated_at current on an UPDATE that does not set it", async () => {
    const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const sql = /an `UPDATE` that does not set\s+`updated_at`[\s\S]*?```sql\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(sql).toBeDefined();
    await db.query(`CREATE SCHEMA trig; SET search_path = trig; CREATE TABLE orders (id int PRIMARY KEY, status text);
      INSERT INTO orders VALUES (1, 'new'), (2, 'new')`);
    try {
      await db.query(sql!);
      const [before] = await db.query('SELECT updated_at FROM orders WHERE id = 1');
      await db.query("UPDATE orders SET status = 'paid' WHERE id = 1");
      const rows = await db.query('SELECT id, updated_at > $1::timestamptz AS moved FROM orders ORDER BY id', [before.updated_at]);
      expect(rows).toEqual([{ id: '1', moved: 't' }, { id: '2', moved: 'f' }]);
      // discover now finds the cursor instead of proposing a snapshot.
      const [found] = await discoverTables(source, { schemas: ['trig'] });
      expect({ mode: found.mode, cursor: found.cursor }).toEqual({ mode: 'incremental', cursor: 'updated_at' });
    } finally {
      await db.query('RESET search_path; DROP SCHEMA trig CASCADE; DROP FUNCTION IF EXISTS public.set_updated_at(), trig.set_updated_at()');
    }
  });

  it("the README's steps work in order: discover --out, run (a snapshot table too), query", async () => {
    await db.query(`CREATE SCHEMA shop2;
      CREATE TABLE shop2.orders (id int PRIMARY KEY, total numeric(8,2), updated_at timestamptz NOT NULL);
      INSERT INTO shop2.orders SELECT g, g, '2024-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 50) g;
      CREATE TABLE shop2.codes (code text PRIMARY KEY, label text);
      INSERT INTO shop2.codes VALUES ('a', 'A'), ('b', 'B'), ('c', 'C')`);
    const lake = createLake();
    try {
      const config = path.join(lake.dir, 'lake.config.yaml');
      const env = { DATABASE_URL: db.url };
      expect((await cli(['discover', '--out', config, '--schema', 'shop2'], env)).code).toBe(0);
      expect(parseConfig(readFileSync(config, 'utf8')).tables.map((t) => [t.name, t.mode])).toEqual([['shop2.codes', 'snapshot'], ['shop2.orders', 'incremental']]);
      const run = await cli(['run', '--config', config, '--lake', lake.url, '--json'], env);
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout).tables.map((t: { table: string; status: string; rows: number }) => [t.table, t.status, t.rows])).toEqual([['codes', 'succeeded', 3], ['orders', 'succeeded', 50]]);
      const query = await cli(['query', 'SELECT (SELECT count(*) FROM codes) AS codes, (SELECT sum(total) FROM orders_current) AS total', '--config', config, '--lake', lake.url, '--json']);
      expect(query.code, query.stderr).toBe(0);
      expect(JSON.parse(query.stdout)).toEqual([{ codes: '3', total: '1275.00' }]);
    } finally {
      lake.remove();
      await db.query('DROP SCHEMA shop2 CASCADE');
    }
  });

  it('explains usage', async () => {
    const help = await cli(['discover', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--schema s1,s2');
    expect((await cli(['--help'])).stdout).toContain('discover write a lake.config.yaml');
    expect(help.stdout).toContain('--out FILE');
    const flag = await cli(['discover', '--colour']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("Unknown option '--colour'");
  });
});
