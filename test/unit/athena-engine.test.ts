// The Athena adapter against a local stand-in of the Athena API (test/support/athena-standin.ts):
// the real SDK client sends real HTTP to 127.0.0.1, and the stand-in answers from DuckDB over a
// directory of Parquet files. Request shapes, polling, pagination, column types and every way a
// query can end.
import { AthenaClient } from '@aws-sdk/client-athena';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AthenaEngine, type AthenaEngineOptions } from '../../lambdas/adapters/athena-engine.ts';
import { DuckdbEngine } from '../../lambdas/adapters/duckdb-engine.ts';
import { ExportError, ThrottlingError } from '../../lambdas/core/errors.ts';
import { AthenaStandin } from '../support/athena-standin.ts';

const ROWS = 2500;

describe('AthenaEngine against the Athena stand-in', () => {
  let dir: string;
  let connection: DuckDBConnection;
  let standin: AthenaStandin;

  const engine = (options: Partial<AthenaEngineOptions> = {}, maxAttempts = 1) => new AthenaEngine({
    client: new AthenaClient({ endpoint: standin.endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'AKIDSTANDIN', secretAccessKey: 'standin' }, maxAttempts }),
    workGroup: 'lake-wg', database: 'lake_db', firstPollMillis: 1, maxPollMillis: 4, ...options,
  });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'athena-lake-'));
    connection = await (await DuckDBInstance.create(':memory:')).connect();
    await connection.run("SET TimeZone = 'UTC'");
    // A directory lake: Parquet under year=/month=/day= folders, read as one table with partitions.
    const data = path.join(dir, 'orders').replaceAll("'", "''");
    await connection.run(`COPY (
        SELECT i::BIGINT AS id, (i / 4)::DECIMAL(10,2) AS total, CASE WHEN i % 7 = 0 THEN NULL ELSE 'name ' || i END AS "Customer Name",
          TIMESTAMPTZ '2024-02-28 00:00:00+00' + to_microseconds(i * 1000003) AS updated_at, i % 2 = 0 AS paid, i / 3.0 AS ratio,
          DATE '2024-01-01' + (i % 3)::INTEGER AS due, 2024 AS year, 2 AS month, 28 + i % 2 AS day
        FROM range(1, ${ROWS + 1}) t(i)
      ) TO '${data}' (FORMAT parquet, PARTITION_BY (year, month, day))`);
    await connection.run(`CREATE VIEW orders AS SELECT * FROM read_parquet('${data}/*/*/*/*.parquet', hive_partitioning = true)`);
    standin = await AthenaStandin.start({ engine: new DuckdbEngine(connection), pageSize: 1000, bytesScanned: 123_456 });
  });

  afterAll(async () => {
    await standin?.stop();
    connection?.closeSync();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    standin.requests.length = 0;
    standin.setPolls({ queued: 0, running: 0 });
    standin.setPageSize(1000);
  });

  it('sends the query, workgroup and database as Athena expects them, in the JSON protocol', async () => {
    const sql = 'SELECT count(*) AS n FROM "orders" WHERE "paid"';
    const result = await engine().query(sql);
    expect(result.rows).toEqual([[String(ROWS / 2)]]);
    expect(result.columns).toEqual([{ name: 'n', type: 'bigint', kind: 'integer' }]);
    expect(result.bytesScanned).toBe(123_456);
    expect(standin.requests.map((r) => r.operation)).toEqual(['StartQueryExecution', 'GetQueryExecution', 'GetQueryResults']);
    for (const request of standin.requests) expect(request.contentType).toBe('application/x-amz-json-1.1');
    const [start] = standin.calls('StartQueryExecution');
    expect(start.body).toEqual({
      QueryString: sql,
      WorkGroup: 'lake-wg',
      QueryExecutionContext: { Database: 'lake_db', Catalog: 'AwsDataCatalog' },
      // The SDK fills the idempotency token itself: a retried start does not run the query twice.
      ClientRequestToken: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    expect(result.queryId).toMatch(/^[0-9a-f-]{36}$/);
    expect(standin.calls('GetQueryExecution')[0].body).toEqual({ QueryExecutionId: result.queryId });
    expect(standin.calls('GetQueryResults')[0].body).toEqual({ QueryExecutionId: result.queryId, MaxResults: 1000 });
  });

  it('sends an output location only when told to (the workgroup has its own)', async () => {
    await engine({ outputLocation: 's3://results-bucket/athena/' }).query('SELECT 1 AS one');
    expect(standin.calls('StartQueryExecution')[0].body.ResultConfiguration).toEqual({ OutputLocation: 's3://results-bucket/athena/' });
  });

  it('polls a queued then running query until it succeeds', async () => {
    standin.setPolls({ queued: 2, running: 3 });
    const result = await engine().query('SELECT max("id") AS top FROM "orders"');
    expect(result.rows).toEqual([[String(ROWS)]]);
    expect(standin.calls('GetQueryExecution')).toHaveLength(6);
    expect(standin.calls('GetQueryResults')).toHaveLength(1);
  });

  it('pages through several result pages with NextToken, the header row dropped once, types and NULLs kept', async () => {
    standin.setPageSize(700);
    const sql = 'SELECT "id", "total", "Customer Name", "updated_at", "paid", "ratio", "due", "day" FROM "orders" ORDER BY "id"';
    const result = await engine().query(sql);
    // 2,500 rows + the header = 2,501 rows in pages of 700: four pages.
    const pages = standin.calls('GetQueryResults');
    expect(pages).toHaveLength(4);
    expect(pages[0].body.NextToken).toBeUndefined();
    for (const page of pages.slice(1)) expect(page.body.NextToken).toEqual(expect.any(String));
    expect(new Set(pages.map((p) => p.body.NextToken)).size).toBe(4);
    expect(result.columns).toEqual([
      { name: 'id', type: 'bigint', kind: 'integer' },
      { name: 'total', type: 'decimal(10,2)', kind: 'decimal' },
      { name: 'Customer Name', type: 'varchar', kind: 'text' },
      { name: 'updated_at', type: 'timestamp with time zone', kind: 'timestamp' },
      { name: 'paid', type: 'boolean', kind: 'boolean' },
      { name: 'ratio', type: 'double', kind: 'float' },
      { name: 'due', type: 'date', kind: 'date' },
      { name: 'day', type: 'bigint', kind: 'integer' },
    ]);
    expect(result.rows).toHaveLength(ROWS);
    const direct = await new DuckdbEngine(connection).query(sql);
    expect(result.rows).toEqual(direct.rows);
    expect(result.rows.map((r) => r[0])).toEqual(Array.from({ length: ROWS }, (_, i) => String(i + 1)));
    expect(result.rows[6]).toEqual(['7', '1.75', null, '2024-02-28 00:00:07.000021+00', 'false', String(7 / 3), '2024-01-02', '29']);
  });

  it('returns no rows (only the header came) for an empty result', async () => {
    const result = await engine().query('SELECT "id" FROM "orders" WHERE "id" < 0');
    expect(result.rows).toEqual([]);
    expect(result.columns.map((c) => c.name)).toEqual(['id']);
  });

  it('a FAILED query names its id, state and reason, and is not retryable', async () => {
    const error = await engine().query('SELECT "nope" FROM "orders"').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExportError);
    expect(error).not.toBeInstanceOf(ThrottlingError);
    const id = standin.calls('GetQueryExecution')[0].body.QueryExecutionId;
    expect((error as Error).message).toBe(`Athena query ${id} in workgroup lake-wg ended FAILED: SYNTAX_ERROR: Binder Error: Referenced column "nope" not found in FROM clause!`);
  });

  it('a FAILED query throttled by Athena surfaces as ThrottlingError (the workflow retries it)', async () => {
    standin.inject({ state: 'FAILED', reason: 'TOO_MANY_REQUESTS: Rate exceeded' });
    const error = await engine().query('SELECT 1 AS one').catch((e: unknown) => e);
    const id = standin.calls('GetQueryExecution')[0].body.QueryExecutionId;
    expect(error).toBeInstanceOf(ThrottlingError);
    expect((error as Error).message).toBe(`Athena query ${id} in workgroup lake-wg ended FAILED: TOO_MANY_REQUESTS: Rate exceeded`);
  });

  it('a FAILED query Athena marks retryable is a ThrottlingError whatever its text', async () => {
    standin.inject({ state: 'FAILED', reason: 'INTERNAL_ERROR_QUERY_ENGINE: Amazon Athena experienced an internal error', retryable: true });
    const error = await engine().query('SELECT 1 AS one').catch((e: unknown) => e);
    const id = standin.calls('GetQueryExecution')[0].body.QueryExecutionId;
    expect(error).toBeInstanceOf(ThrottlingError);
    expect((error as Error).message).toBe(`Athena query ${id} in workgroup lake-wg ended FAILED: INTERNAL_ERROR_QUERY_ENGINE: Amazon Athena experienced an internal error`);
  });

  it('a CANCELLED query names its id and reason', async () => {
    standin.inject({ state: 'CANCELLED', reason: 'Query was cancelled by user arn:aws:iam::123456789012:user/ops' });
    standin.setPolls({ queued: 1, running: 1 });
    const error = await engine().query('SELECT 1 AS one').catch((e: unknown) => e);
    const id = standin.calls('GetQueryExecution')[0].body.QueryExecutionId;
    expect(error).toBeInstanceOf(ExportError);
    expect(error).not.toBeInstanceOf(ThrottlingError);
    expect((error as Error).message).toBe(`Athena query ${id} in workgroup lake-wg ended CANCELLED: Query was cancelled by user arn:aws:iam::123456789012:user/ops`);
    expect(standin.calls('GetQueryExecution')).toHaveLength(3);
    expect(standin.calls('GetQueryResults')).toHaveLength(0);
  });

  it('a query still running at the timeout is stopped and reported', async () => {
    standin.setPolls({ queued: 0, running: 1_000_000 });
    const error = await engine({ timeoutMillis: 50 }).query('SELECT 1 AS one').catch((e: unknown) => e);
    const [stop] = standin.calls('StopQueryExecution');
    expect(stop.body).toEqual({ QueryExecutionId: standin.calls('GetQueryExecution')[0].body.QueryExecutionId });
    expect((error as Error).message).toBe(`Athena query ${stop.body.QueryExecutionId} in workgroup lake-wg was still RUNNING after 0 s; stopped it`);
  });

  it('StartQueryExecution throttled beyond the SDK retries is a ThrottlingError naming the call', async () => {
    standin.throttleStarts(1);
    const error = await engine().query('SELECT 1 AS one').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ThrottlingError);
    expect((error as Error).message).toBe('Athena StartQueryExecution in workgroup lake-wg: TooManyRequestsException: You have exceeded the limit for the number of queries you can run concurrently. Please reduce the number of concurrent queries submitted by this account.');
  });

  it('StartQueryExecution throttled once is retried by the SDK and the query answers', async () => {
    standin.throttleStarts(1);
    const result = await engine({}, 3).query('SELECT 41 + 1 AS answer');
    expect(result.rows).toEqual([['42']]);
    expect(standin.calls('StartQueryExecution')).toHaveLength(2);
  });
});
