// The demo's media store: a realistic schema of its own making (artists, albums, tracks,
// employees, customers, invoices, invoice lines), every table with an `updated_at` kept by a
// trigger, deterministic data (generate_series and arithmetic, no random()).
import type pg from 'pg';

export const DEMO_TABLES = ['artists', 'albums', 'tracks', 'employees', 'customers', 'invoices', 'invoice_lines'] as const;

const SCHEMA = `
CREATE SCHEMA store;
CREATE FUNCTION store.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;

CREATE TABLE store.artists (artist_id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE store.albums (album_id int PRIMARY KEY, artist_id int NOT NULL, title text NOT NULL, released date, updated_at timestamptz NOT NULL);
CREATE TABLE store.tracks (track_id int PRIMARY KEY, album_id int NOT NULL, name text NOT NULL, genre text NOT NULL,
  composer text, milliseconds int NOT NULL, unit_price numeric(4,2) NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE store.employees (employee_id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, title text NOT NULL,
  reports_to int, hired date NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE store.customers (customer_id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, email text NOT NULL,
  country text NOT NULL, city text NOT NULL, support_rep_id int, updated_at timestamptz NOT NULL);
CREATE TABLE store.invoices (invoice_id int PRIMARY KEY, customer_id int NOT NULL, invoice_date timestamptz NOT NULL,
  billing_country text NOT NULL, total numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE store.invoice_lines (invoice_line_id bigint PRIMARY KEY, invoice_id int NOT NULL,
  track_id int NOT NULL, unit_price numeric(4,2) NOT NULL, quantity int NOT NULL, updated_at timestamptz NOT NULL);
`;

const COUNTRIES = ['USA', 'Canada', 'Brazil', 'France', 'Germany', 'United Kingdom', 'India', 'Portugal', 'Czech Republic', 'Chile', 'Australia', 'Japan'];
const GENRES = ['Rock', 'Jazz', 'Metal', 'Alternative & Punk', 'Latin', 'Blues', 'Classical', 'Pop', 'Soundtrack', 'Electronica/Dance'];

// Rows spread over 2023–2025 so the lake has many day partitions.
const SPREAD = (g: string, n: number) => `timestamptz '2023-01-01 00:00:00+00' + ((${g}::bigint * 94608000) / ${n}) * interval '1 second'`;

export interface DemoSize {
  readonly artists: number;
  readonly albums: number;
  readonly tracks: number;
  readonly customers: number;
  readonly invoices: number;
  readonly invoiceLines: number;
}

export const DEFAULT_DEMO_SIZE: DemoSize = { artists: 20_000, albums: 50_000, tracks: 200_000, customers: 50_000, invoices: 250_000, invoiceLines: 600_000 };

const array = (values: string[]) => `ARRAY[${values.map((v) => `'${v.replaceAll("'", "''")}'`).join(', ')}]`;

export async function createDemoStore(client: pg.Client, size: DemoSize = DEFAULT_DEMO_SIZE): Promise<void> {
  await client.query(SCHEMA);
  const s = size;
  await client.query(`
    INSERT INTO store.artists SELECT g, 'Artist ' || g, ${SPREAD('g', s.artists)} FROM generate_series(1, ${s.artists}) g;
    INSERT INTO store.albums SELECT g, (1 + (g::bigint * 7919) % ${s.artists})::int, 'Album ' || g, date '1960-01-01' + ((g::bigint * 37) % 23000)::int, ${SPREAD('g', s.albums)}
      FROM generate_series(1, ${s.albums}) g;
    INSERT INTO store.tracks SELECT g, 1 + (g::bigint * 104729) % ${s.albums}, 'Track ' || g, (${array(GENRES)})[1 + g % ${GENRES.length}],
      CASE WHEN g % 4 = 0 THEN NULL ELSE 'Composer ' || (g % 5000) END, 90000 + (g::bigint * 7) % 400000, CASE WHEN g % 10 = 0 THEN 1.99 ELSE 0.99 END,
      ${SPREAD('g', s.tracks)} FROM generate_series(1, ${s.tracks}) g;
    INSERT INTO store.employees VALUES
      (1, 'Andrew', 'Adams', 'General Manager', NULL, '2002-08-14', '2023-01-01'),
      (2, 'Nancy', 'Edwards', 'Sales Manager', 1, '2002-05-01', '2023-01-01'),
      (3, 'Jane', 'Peacock', 'Sales Support Agent', 2, '2002-04-01', '2023-01-01'),
      (4, 'Margaret', 'Park', 'Sales Support Agent', 2, '2003-05-03', '2023-01-01'),
      (5, 'Steve', 'Johnson', 'Sales Support Agent', 2, '2003-10-17', '2023-01-01'),
      (6, 'Michael', 'Mitchell', 'IT Manager', 1, '2003-10-17', '2023-01-01'),
      (7, 'Robert', 'King', 'IT Staff', 6, '2004-01-02', '2023-01-01'),
      (8, 'Laura', 'Callahan', 'IT Staff', 6, '2004-03-04', '2023-01-01');
    INSERT INTO store.customers SELECT g, 'First' || g, 'Last' || g, 'customer' || g || '@example.com', (${array(COUNTRIES)})[1 + (g::bigint * 31) % ${COUNTRIES.length}],
      'City ' || (g % 700), 3 + g % 3, ${SPREAD('g', s.customers)} FROM generate_series(1, ${s.customers}) g;
    INSERT INTO store.invoices SELECT g, c, ${SPREAD('g', s.invoices)}, (${array(COUNTRIES)})[1 + (c::bigint * 31) % ${COUNTRIES.length}], 0, ${SPREAD('g', s.invoices)}
      FROM generate_series(1, ${s.invoices}) g, LATERAL (SELECT (1 + (g::bigint * 6007) % ${s.customers})::int AS c) x;
    INSERT INTO store.invoice_lines SELECT g, 1 + (g - 1) % ${s.invoices}, t, CASE WHEN t % 10 = 0 THEN 1.99 ELSE 0.99 END, 1 + (g * 7) % 4,
      ${SPREAD('(1 + (g - 1) % ' + s.invoices + ')', s.invoices)}
      FROM generate_series(1, ${s.invoiceLines}) g,
        LATERAL (SELECT (CASE WHEN g % 9 = 0 THEN 1 + ((g / 9) % 40) * ((g / 9) % 40) % 40 ELSE 1 + (g::bigint * 48611) % ${s.tracks} END)::int AS t) x;
    UPDATE store.invoices i SET total = x.total FROM (SELECT invoice_id, sum(unit_price * quantity) AS total FROM store.invoice_lines GROUP BY 1) x
      WHERE x.invoice_id = i.invoice_id;
  `);
  // Foreign keys after the load: one validating join each instead of a lookup per row.
  await client.query(`
    ALTER TABLE store.albums ADD FOREIGN KEY (artist_id) REFERENCES store.artists;
    ALTER TABLE store.tracks ADD FOREIGN KEY (album_id) REFERENCES store.albums;
    ALTER TABLE store.employees ADD FOREIGN KEY (reports_to) REFERENCES store.employees;
    ALTER TABLE store.customers ADD FOREIGN KEY (support_rep_id) REFERENCES store.employees;
    ALTER TABLE store.invoices ADD FOREIGN KEY (customer_id) REFERENCES store.customers;
    ALTER TABLE store.invoice_lines ADD FOREIGN KEY (invoice_id) REFERENCES store.invoices;
    ALTER TABLE store.invoice_lines ADD FOREIGN KEY (track_id) REFERENCES store.tracks;`);
  // From here on every write stamps updated_at; indexes serve the exporter's keyset pages.
  for (const table of DEMO_TABLES) {
    const key = table === 'invoice_lines' ? 'invoice_line_id' : table === 'employees' ? 'employee_id' : `${table.replace(/s$/, '')}_id`;
    await client.query(`CREATE TRIGGER touch BEFORE UPDATE ON store.${table} FOR EACH ROW EXECUTE FUNCTION store.touch();
      ALTER TABLE store.${table} ALTER COLUMN updated_at SET DEFAULT clock_timestamp();
      CREATE INDEX ON store.${table} (updated_at, ${key})`);
  }
  await client.query('ANALYZE');
}

/** The changes the demo makes between its two runs. */
export async function changeDemoStore(client: pg.Client): Promise<{ updatedInvoices: number; insertedLines: number }> {
  const updated = await client.query(`UPDATE store.invoices SET total = total + 1.00 WHERE invoice_id % 250 = 0`);
  const inserted = await client.query(`INSERT INTO store.invoice_lines (invoice_line_id, invoice_id, track_id, unit_price, quantity)
    SELECT 10000000 + g, 1 + g * 97, 1 + g * 13, 0.99, 1 FROM generate_series(1, 500) g`);
  return { updatedInvoices: updated.rowCount ?? 0, insertedLines: inserted.rowCount ?? 0 };
}
