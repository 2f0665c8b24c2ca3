// The Postgres side of a chaos schedule: the exported table, the audit table its triggers fill
// with every row version written, and the writers. Writers set updated_at themselves, mostly to
// now() (the transaction's start), so long transactions commit late with old cursors and one
// statement's rows share one cursor — the cases the cursor protocol must survive. An update
// never moves a row's cursor back (GREATEST with the old value + 1 µs), as a real application's
// would not: a cursor that goes back is invisible to any cursor-based export, not a bug of ours.
import pg from 'pg';

export const TABLE = 'chaos_items';
export const AUDIT = 'chaos_audit';
/** The columns besides the key and cursor, compared as text between the lake and the audit. */
export const VALUE_COLUMNS = ['grp', 'payload', 'n', 'amount', 'flag'] as const;

const RAW = { getTypeParser: () => (value: string) => value };

export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client(url);
  // A terminated writer session must not crash the harness; its step fails and is reported.
  client.on('error', () => undefined);
  await client.connect();
  // A writer that would wait on a lock fails its step instead of stalling the schedule.
  await client.query("SET TimeZone = 'UTC'; SET application_name = 'chaos-writer'; SET lock_timeout = '10s'");
  return client;
}

export async function queryText(client: pg.Client, sql: string, params: unknown[] = []): Promise<Record<string, string | null>[]> {
  return (await client.query({ text: sql, values: params, types: RAW })).rows;
}

export async function createWorld(client: pg.Client, initialRows: number, historySeconds: number): Promise<void> {
  await client.query(`
    CREATE TABLE ${TABLE} (
      id int PRIMARY KEY,
      grp int NOT NULL,
      payload text,
      n bigint NOT NULL,
      amount numeric(12,2),
      flag boolean NOT NULL,
      updated_at timestamptz NOT NULL);
    CREATE INDEX ON ${TABLE} (updated_at, id);
    CREATE TABLE ${AUDIT} (
      seq bigserial PRIMARY KEY,
      id int NOT NULL,
      grp int, payload text, n bigint, amount numeric(12,2), flag boolean,
      updated_at timestamptz NOT NULL,
      txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
      written_at timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE FUNCTION ${AUDIT}_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ${AUDIT} (id, grp, payload, n, amount, flag, updated_at)
      VALUES (NEW.id, NEW.grp, NEW.payload, NEW.n, NEW.amount, NEW.flag, NEW.updated_at);
      RETURN NEW;
    END $$;
    CREATE TRIGGER ${AUDIT}_row AFTER INSERT OR UPDATE ON ${TABLE} FOR EACH ROW EXECUTE FUNCTION ${AUDIT}_row();`);
  // History over several days (several partitions), some NULLs.
  await client.query(`
    INSERT INTO ${TABLE}
    SELECT g, g % 17, CASE WHEN g % 11 = 0 THEN NULL ELSE 'v1-' || g END, g::bigint * 1000003,
           CASE WHEN g % 13 = 0 THEN NULL ELSE (g % 100000) / 100.0 END, g % 2 = 0,
           -- groups of seven rows share one cursor value: ties across page boundaries
           date_trunc('milliseconds', now() - make_interval(secs => $2::int) + ((g / 7) * 7)::float8 / $1::int * make_interval(secs => $2::int - 60))
      FROM generate_series(1, $1::int) g`, [initialRows, historySeconds]);
}

// One update expression for every writer: new values, and a cursor that never moves back.
const setChanged = (clock: 'now()' | 'clock_timestamp()') => `grp = (grp + 1) % 17, payload = 'v' || (n % 97) || '-' || id || '-' || txid_current(), n = n + 1,
  amount = CASE WHEN amount IS NULL THEN 1.5 ELSE amount + 0.01 END, flag = NOT flag,
  updated_at = GREATEST(${clock}, updated_at + interval '1 microsecond')`;

/** Rows locked by a held (late or prepared) transaction are skipped, never waited for. */
function updateKeys(keys: string, clock: 'now()' | 'clock_timestamp()' = 'now()'): string {
  return `UPDATE ${TABLE} SET ${setChanged(clock)} WHERE id IN (SELECT id FROM ${TABLE} WHERE ${keys} ORDER BY id FOR UPDATE SKIP LOCKED)`;
}

/**
 * Keys a held transaction inserts: a range of its own per slot (above any key the other writers
 * make), so no other writer ever waits on its uncommitted unique-index entries.
 */
const HELD_KEYS = 10_000_000;
const heldKeyBase = (slot: number, prepared: boolean) => HELD_KEYS + (prepared ? 5_000_000 : 0) + slot * 100_000;

async function insertHeld(client: pg.Client, base: number, rows: number): Promise<void> {
  if (rows === 0) return;
  await client.query(`
    INSERT INTO ${TABLE}
    SELECT m + g, (m + g) % 17, 'held-' || (m + g), (m + g)::bigint, 0.5, false, now()
      FROM (SELECT coalesce(max(id), $2::int) AS m FROM ${TABLE} WHERE id > $2::int AND id < $2::int + 100000) s,
           generate_series(1, $1::int) g`, [rows, base]);
}

export async function insertRows(client: pg.Client, rows: number): Promise<number> {
  const result = await client.query(`
    INSERT INTO ${TABLE}
    SELECT m + g, (m + g) % 17, 'new-' || (m + g), (m + g)::bigint, ((m + g) % 1000) / 10.0, true, now()
      FROM (SELECT coalesce(max(id), 0) AS m FROM ${TABLE} WHERE id < ${HELD_KEYS}) s, generate_series(1, $1::int) g`, [rows]);
  return result.rowCount ?? 0;
}

export async function updateSome(client: pg.Client, keys: readonly number[], clock: 'now()' | 'clock_timestamp()' = 'now()'): Promise<number> {
  const result = await client.query(updateKeys('id = ANY($1::int[])', clock), [keys]);
  return result.rowCount ?? 0;
}

export async function updateRange(client: pg.Client, fromKey: number, toKey: number): Promise<number> {
  const result = await client.query(updateKeys('id BETWEEN $1 AND $2'), [fromKey, toKey]);
  return result.rowCount ?? 0;
}

/** BEGIN and update: the transaction stays open, its cursor values are its start time. */
export async function beginLate(client: pg.Client, slot: number, keys: readonly number[], inserts: number): Promise<string> {
  await client.query('BEGIN');
  await updateSome(client, keys);
  await insertHeld(client, heldKeyBase(slot, false), inserts);
  return currentTxid(client);
}

/** The open transaction's id (as the audit records it). */
export async function currentTxid(client: pg.Client): Promise<string> {
  return (await queryText(client, 'SELECT pg_current_xact_id()::text AS txid'))[0].txid!;
}

/** Run `work` in one transaction of its own; returns the transaction's id. */
export async function inTransaction(client: pg.Client, work: () => Promise<unknown>): Promise<string> {
  await client.query('BEGIN');
  try {
    await work();
    const txid = await currentTxid(client);
    await client.query('COMMIT');
    return txid;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** `gid`: unique in the whole server (prepared transactions are not per database). */
export async function prepare(client: pg.Client, gid: string, slot: number, keys: readonly number[], inserts: number): Promise<string> {
  const name = gid;
  await client.query('BEGIN');
  try {
    await updateSome(client, keys);
    await insertHeld(client, heldKeyBase(slot, true), inserts);
    const txid = await currentTxid(client);
    await client.query(`PREPARE TRANSACTION '${name}'`);
    return txid;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export async function finishPrepared(client: pg.Client, gid: string, commit: boolean): Promise<void> {
  await client.query(`${commit ? 'COMMIT' : 'ROLLBACK'} PREPARED '${gid}'`);
}

/** Terminate the exporter's sessions (it names itself 'pg-lake-export'); returns how many. */
export async function dropExporterConnections(client: pg.Client): Promise<number> {
  const rows = await queryText(client, `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
    WHERE application_name = 'pg-lake-export' AND datname = current_database() AND pid <> pg_backend_pid()`);
  return rows.filter((r) => r.done === 'true').length;
}

/** An audited row version, every value as text; cursor and commit time in µs since the epoch. */
export interface AuditVersion {
  readonly seq: number;
  readonly id: string;
  readonly us: bigint;
  readonly values: string;
  readonly commitUs: bigint;
  /** The writing transaction (pg_current_xact_id), to name the schedule step that wrote it. */
  readonly txid: string;
}

/** Values as one comparable text, the same form the checker builds from DuckDB's text. */
export function valuesText(row: Record<string, string | null | undefined>): string {
  return VALUE_COLUMNS.map((c) => row[c] ?? '∅').join('|');
}

export async function readAudit(client: pg.Client): Promise<AuditVersion[]> {
  const rows = await queryText(client, `
    SELECT seq::text, id::text, (extract(epoch FROM updated_at) * 1000000)::bigint::text AS us,
           grp::text AS grp, payload, n::text AS n, amount::text AS amount, flag::text AS flag,
           (extract(epoch FROM pg_xact_commit_timestamp(txid::xid)) * 1000000)::bigint::text AS commit_us, txid::text AS txid
      FROM ${AUDIT} ORDER BY seq`);
  return rows.map((r) => {
    if (r.commit_us === null) throw new Error(`${AUDIT} seq ${r.seq}: no commit timestamp (is track_commit_timestamp on?)`);
    return { seq: Number(r.seq), id: r.id!, us: BigInt(r.us!), values: valuesText(r), commitUs: BigInt(r.commit_us), txid: r.txid! };
  });
}

export async function readTable(client: pg.Client): Promise<Map<string, { us: bigint; values: string }>> {
  const rows = await queryText(client, `
    SELECT id::text, (extract(epoch FROM updated_at) * 1000000)::bigint::text AS us,
           grp::text AS grp, payload, n::text AS n, amount::text AS amount, flag::text AS flag FROM ${TABLE}`);
  return new Map(rows.map((r) => [r.id!, { us: BigInt(r.us!), values: valuesText(r) }]));
}
