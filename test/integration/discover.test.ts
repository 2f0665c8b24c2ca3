// `pg-lake-export discover` against a real PostgreSQL: the tables it finds, the warnings it
// gives (exact text), the YAML it prints (loads through the config schema) and the CLI shapes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverTables, renderConfig, type DiscoveredTable } from '../../bin/local/discover.ts';
import { parseConfig, resolveTable } from '../../lambdas/core/config.ts';
import { PostgresSource } from '../../lambdas/adapters/postgres-source.ts';
import { cli } from '../support/cli.ts';
import { createDatabase, stopPostgres, type TestDatabase } from '../support/local-stack.ts';

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

const NO_CURSOR = 'no cursor column (updated_at, modified_at, last_update, last_modified); add one that every write sets, or set cursor: by hand';

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
    ],
  },
  'public.legacy': {
    cursor: null,
    primaryKey: ['id'],
    estimatedRows: 0,
    warnings: ['no usable cursor column: "updated_at" is text; a cursor must be timestamptz, timestamp or date'],
  },
  'public.lookup': { cursor: null, primaryKey: ['code'], estimatedRows: 0, warnings: [NO_CURSOR] },
  'public.metrics': { cursor: 'updated_at', primaryKey: ['id', 'updated_at'], estimatedRows: 400, warnings: [] },
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

const GOLDEN_YAML = `# lake.config.yaml written by \`pg-lake-export discover\`.
# 8 tables ready, 2 without a cursor column (commented out).
# Read the warnings under each table. Rows and sizes are the catalog's estimates.
# Defaults apply to everything not written here (lake prefix raw, Glue database lake, daily
# schedule at 02:00 UTC); add source: with the secret, VPC and security group before deploying.
tables:
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
  - name: public.events
    cursor: last_modified
    primaryKey: [id]
  # public.legacy: ~0 rows, <size>
  # not exported: no usable cursor column: "updated_at" is text; a cursor must be timestamptz, timestamp or date
  # - name: public.legacy
  #   cursor: <column>
  # public.lookup: ~0 rows, <size>
  # not exported: no cursor column (updated_at, modified_at, last_update, last_modified); add one that every write sets, or set cursor: by hand
  # - name: public.lookup
  #   cursor: <column>
  # public.metrics: ~400 rows, <size>
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
      expect({ name: table.name, cursor: table.cursor, primaryKey: table.primaryKey, estimatedRows: table.estimatedRows, warnings: table.warnings })
        .toEqual({ name: table.name, ...EXPECTED[table.name] });
      expect(table.sizeBytes).toBeGreaterThan(0);
    }
    expect(tables.filter((t) => t.skipped).map((t) => t.name)).toEqual(['public.legacy', 'public.lookup']);
  });

  it('prints YAML that loads through the config schema and names the tables with a cursor', () => {
    const text = renderConfig(tables);
    const config = parseConfig(text);
    expect(config.tables.map((t) => resolveTable(t).display)).toEqual([
      '"Sales Data"."Order Items"', 'public.audit_log', 'public.documents', 'public.events', 'public.metrics',
      'public.orders', 'public.readings', 'public.sessions',
    ]);
    expect(config.tables[0]).toMatchObject({ name: '"Sales Data"."Order Items"', cursor: 'updated_at', primaryKey: ['Order ID', 'line no'] });
    expect(config.tables.find((t) => t.name === 'public.events')).toMatchObject({ cursor: 'last_modified', primaryKey: ['id'] });
    expect(config.tables.find((t) => t.name === 'public.audit_log')!.primaryKey).toBeUndefined();
    expect(text).toContain(`  # not exported: ${NO_CURSOR}\n  # - name: public.lookup\n`);
    expect(text).toContain("  - name: '\"Sales Data\".\"Order Items\"'\n    cursor: updated_at\n    primaryKey: ['Order ID', 'line no']\n");
    expect(text).toContain('  # warning: no index starts with last_modified: every page query scans the table; CREATE INDEX CONCURRENTLY ON "public"."events" ("last_modified", "id")\n  - name: public.events\n');
  });

  it('prints this YAML for the test database (sizes vary with the Postgres build)', () => {
    const text = renderConfig(tables).replace(/, \d+(\.\d)? (bytes|KiB|MiB|GiB)$/gm, ', <size>');
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

  it('CLI prints the YAML on stdout and a summary on stderr', async () => {
    const result = await cli(['discover'], { DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(renderConfig(tables));
    expect(parseConfig(result.stdout).tables).toHaveLength(8);
    expect(result.stderr).toBe([
      'discovered 10 tables: 8 in the config, 2 without a cursor column (commented out)',
      '  need primaryKey before they can run: public.audit_log',
      '  14 warnings: read the "# warning:" comments above each table',
      '',
    ].join('\n'));
  });

  it('CLI --json prints the tables with their warnings', async () => {
    const result = await cli(['discover', '--json', '--schema', 'Sales Data'], { DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout);
    expect(Object.keys(output)).toEqual(['tables']);
    expect(output.tables).toHaveLength(1);
    expect(Object.keys(output.tables[0])).toEqual(['name', 'cursor', 'primaryKey', 'estimatedRows', 'sizeBytes', 'warnings']);
    expect(output.tables[0]).toMatchObject({ name: '"Sales Data"."Order Items"', ...EXPECTED['"Sales Data"."Order Items"'] });
    const all = JSON.parse((await cli(['discover', '--json'], { DATABASE_URL: db.url })).stdout);
    expect(all.tables.map((t: { name: string }) => t.name)).toEqual(Object.keys(EXPECTED));
  });

  it('CLI fails with one line naming what to fix', async () => {
    const noDb = await cli(['discover'], { DATABASE_URL: '' });
    expect([noDb.code, noDb.stderr.trim()]).toEqual([1, 'error: ConfigError: DATABASE_URL is not set: export DATABASE_URL=postgres://user:password@host:5432/db']);
    const badSchema = await cli(['discover', '--schema', 'public,nope'], { DATABASE_URL: db.url });
    expect([badSchema.code, badSchema.stderr.trim()]).toEqual([1, 'error: ConfigError: --schema: no schema named "nope" (schemas: Sales Data, public)']);
    await db.query('CREATE SCHEMA bare; CREATE TABLE bare.codes (code text PRIMARY KEY)');
    const none = await cli(['discover', '--schema', 'bare'], { DATABASE_URL: db.url });
    expect([none.code, none.stdout, none.stderr.trim()]).toEqual([1, '', 'error: ConfigError: discover: none of the 1 tables has a cursor column (updated_at, modified_at, last_update, last_modified of type timestamptz, timestamp or date); add one, or write the config by hand']);
    const noneJson = await cli(['discover', '--schema', 'bare', '--json'], { DATABASE_URL: db.url });
    expect(noneJson.code).toBe(0);
    expect(JSON.parse(noneJson.stdout).tables[0]).toMatchObject({ name: 'bare.codes', cursor: null, warnings: [NO_CURSOR] });
    await db.query('DROP SCHEMA bare CASCADE');
    const empty = await cli(['discover', '--schema', ','], { DATABASE_URL: db.url });
    expect([empty.code, empty.stderr.split('\n')[0]]).toEqual([2, 'error: --schema takes a comma-separated list of schema names']);
  });

  it('explains usage', async () => {
    const help = await cli(['discover', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--schema s1,s2');
    expect((await cli(['--help'])).stdout).toContain('discover print a lake.config.yaml');
    const flag = await cli(['discover', '--colour']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("Unknown option '--colour'");
  });
});
