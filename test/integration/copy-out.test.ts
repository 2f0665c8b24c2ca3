// The COPY receiver against a real server: the bytes equal what pg-copy-streams receives, the
// caller's memory is written into (and outgrown when too small), and an error in the middle of
// the stream fails the query by name while the connection stays usable.
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyOut } from '../../lambdas/adapters/copy-out.ts';
import { boundsFromMessages, copyMessages, scanCopyBinary } from '../../lambdas/core/page/copy-binary.ts';
import { createDatabase, stopPostgres, type TestDatabase } from '../support/local-stack.ts';

let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await createDatabase();
  await db.query(`CREATE TABLE t AS SELECT i AS id, repeat(md5(i::text), 1 + i % 7) AS body, (i % 3 = 0) AS flag FROM generate_series(1, 20000) AS i`);
  // Raises a NOTICE for every row, then fails on row 15,000: mid-stream, after CopyData began.
  await db.query(`CREATE FUNCTION noisy(n int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN
      IF n % 5000 = 0 THEN RAISE NOTICE 'row %', n; END IF;
      IF n = 15000 THEN RAISE EXCEPTION 'row % is bad', n USING ERRCODE = '22023'; END IF;
      RETURN n;
    END $$`);
  client = await db.connect();
}, 60_000);

afterAll(async () => {
  await client?.end();
  await db?.close();
  await stopPostgres();
});

async function viaCopyStreams(sql: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of client.query(copyTo(sql))) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('COPY into a buffer', () => {
  const sql = 'COPY (SELECT id, body, flag FROM t ORDER BY id) TO STDOUT (FORMAT binary)';

  it('receives the same bytes as a stream, into the memory it is given', async () => {
    const expected = await viaCopyStreams(sql);
    const memory = Buffer.alloc(expected.length + 100);
    const bytes = await client.query(new CopyOut(sql, memory)).done;
    expect(bytes.equals(expected)).toBe(true);
    expect(bytes.buffer).toBe(memory.buffer);
    expect(bytes.byteOffset).toBe(0);
  });

  it('outgrows memory that is too small, keeping every byte', async () => {
    const expected = await viaCopyStreams(sql);
    const small = Buffer.alloc(1000);
    const bytes = await client.query(new CopyOut(sql, small)).done;
    expect(bytes.length).toBe(expected.length);
    expect(bytes.buffer).not.toBe(small.buffer);
    expect(bytes.equals(expected)).toBe(true);
  });

  it('skips NOTICEs, fails with the server error raised mid-stream and leaves the connection usable', async () => {
    const failing = client.query(new CopyOut('COPY (SELECT noisy(id), body FROM t ORDER BY id) TO STDOUT (FORMAT binary)')).done;
    await expect(failing).rejects.toMatchObject({ message: 'row 15000 is bad', code: '22023' });
    expect((await client.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(20000);
    const again = await client.query(new CopyOut(sql)).done;
    expect(again.equals(await viaCopyStreams(sql))).toBe(true);
  });

  it("records the CopyData message boundaries, from which a page's bounds equal a scan of every field", async () => {
    // Rows of every size class, NULLs, and pages of 0, 1, 2 and many rows: what the server sends decides the message layout.
    for (const where of ['false', 'id = 7', 'id <= 2', 'id <= 5000', 'true']) {
      const bytes = await client.query(new CopyOut(`COPY (SELECT id, body, flag, CASE WHEN id % 3 = 0 THEN NULL ELSE body END FROM t WHERE ${where} ORDER BY id) TO STDOUT (FORMAT binary)`)).done;
      const messages = copyMessages.get(bytes);
      expect(messages, where).toBeDefined();
      expect(boundsFromMessages(bytes, 4, messages!), where).toEqual(scanCopyBinary(bytes, 4));
    }
  });

  it('returns an empty body for a query without rows', async () => {
    const bytes = await client.query(new CopyOut('COPY (SELECT id FROM t WHERE false) TO STDOUT (FORMAT binary)')).done;
    // Header (19 bytes) and trailer (2 bytes) only.
    expect(bytes.length).toBe(21);
  });
});
