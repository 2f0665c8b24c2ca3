// The QueryEngine port over Athena: start the query in the stack's workgroup (its result
// location and bytes-scanned limit apply), poll it with backoff until it ends, then page through
// its results. Values arrive as Athena prints them (VarCharValue text; NULL as an absent value);
// column types come from the result's metadata.
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
  type ColumnInfo,
  type QueryExecution,
} from '@aws-sdk/client-athena';
import { ExportError, ThrottlingError, describeError, isTransientStoreError } from '../core/errors.ts';
import type { QueryColumn, QueryEngine, QueryResult } from '../core/ports.ts';

export interface AthenaEngineOptions {
  readonly client: AthenaClient;
  /** The workgroup: its result location, encryption and bytes-scanned limit apply to every query. */
  readonly workGroup: string;
  /** The Glue database the lake tables are in (unqualified table names resolve in it). */
  readonly database: string;
  /** @default 'AwsDataCatalog' */
  readonly catalog?: string;
  /** Only when the workgroup has no result location of its own. */
  readonly outputLocation?: string;
  /** First wait between polls, doubled up to `maxPollMillis`. @default 250 */
  readonly firstPollMillis?: number;
  /** @default 5000 */
  readonly maxPollMillis?: number;
  /** A query still queued or running after this long is stopped and reported. @default 300000 */
  readonly timeoutMillis?: number;
  /** Rows per GetQueryResults page (Athena allows at most 1000). @default 1000 */
  readonly pageSize?: number;
}

/** FAILED reasons that a later attempt can succeed with (Athena's own or S3's throttling). */
const THROTTLED_REASON = /TOO_MANY_REQUESTS|TooManyRequestsException|ThrottlingException|Rate exceeded|SlowDown|reduce your request rate|QUERY_QUEUE_FULL|limit for the number of queries/i;

/** SDK errors on the API calls themselves that outlasted the client's retries but may pass. */
function isTransientAthenaError(error: unknown): boolean {
  const name = (error as { name?: string } | null)?.name ?? '';
  return name === 'TooManyRequestsException' || name === 'ThrottlingException' || isTransientStoreError(error);
}

const KINDS: Record<string, QueryColumn['kind']> = {
  tinyint: 'integer', smallint: 'integer', integer: 'integer', int: 'integer', bigint: 'integer',
  decimal: 'decimal', real: 'float', float: 'float', double: 'float', boolean: 'boolean',
  varchar: 'text', char: 'text', string: 'text', date: 'date',
  timestamp: 'timestamp', 'timestamp with time zone': 'timestamp', varbinary: 'binary',
};

/** ResultSetMetadata.ColumnInfo → the port's column: decimals keep precision and scale. */
export function queryColumnOf(info: ColumnInfo): QueryColumn {
  const base = (info.Type ?? '').toLowerCase();
  const type = base === 'decimal' && info.Precision !== undefined ? `decimal(${info.Precision},${info.Scale ?? 0})` : base;
  return { name: info.Label ?? info.Name ?? '', type, kind: KINDS[base] ?? 'other' };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class AthenaEngine implements QueryEngine {
  readonly description: string;
  private readonly options: AthenaEngineOptions;

  constructor(options: AthenaEngineOptions) {
    this.options = options;
    this.description = `athena (workgroup ${options.workGroup}, database ${options.database})`;
  }

  async query(sql: string): Promise<QueryResult> {
    const id = await this.start(sql);
    const execution = await this.wait(id);
    const { columns, rows } = await this.results(id, execution);
    return { columns, rows, bytesScanned: execution.Statistics?.DataScannedInBytes ?? 0, queryId: id };
  }

  /** Nothing to release: each query's results stay in the workgroup's location. */
  async close(): Promise<void> {}

  private async call<T>(what: string, id: string | null, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      const Failure = isTransientAthenaError(error) ? ThrottlingError : ExportError;
      throw new Failure(`Athena ${what}${id ? ` of query ${id}` : ''} in workgroup ${this.options.workGroup}: ${describeError(error)}`, { cause: error });
    }
  }

  private async start(sql: string): Promise<string> {
    const { client, workGroup, database, catalog, outputLocation } = this.options;
    const started = await this.call('StartQueryExecution', null, () => client.send(new StartQueryExecutionCommand({
      QueryString: sql,
      WorkGroup: workGroup,
      QueryExecutionContext: { Database: database, Catalog: catalog ?? 'AwsDataCatalog' },
      ...(outputLocation ? { ResultConfiguration: { OutputLocation: outputLocation } } : {}),
    })));
    if (!started.QueryExecutionId) throw new ExportError(`Athena StartQueryExecution in workgroup ${workGroup} returned no QueryExecutionId`);
    return started.QueryExecutionId;
  }

  /** Poll until the query ends; SUCCEEDED returns its execution, anything else throws by name. */
  private async wait(id: string): Promise<QueryExecution> {
    const { client, workGroup } = this.options;
    const deadline = Date.now() + (this.options.timeoutMillis ?? 300_000);
    let pause = this.options.firstPollMillis ?? 250;
    for (;;) {
      const { QueryExecution: execution } = await this.call('GetQueryExecution', id, () => client.send(new GetQueryExecutionCommand({ QueryExecutionId: id })));
      const state = execution?.Status?.State;
      if (state === 'SUCCEEDED') return execution!;
      if (state === 'FAILED' || state === 'CANCELLED') {
        const reason = execution?.Status?.StateChangeReason ?? execution?.Status?.AthenaError?.ErrorMessage ?? 'no reason given';
        const message = `Athena query ${id} in workgroup ${workGroup} ended ${state}: ${reason}`;
        // Throttled queries fail rather than wait; the workflow retries them later.
        const retryable = state === 'FAILED' && (THROTTLED_REASON.test(reason) || execution?.Status?.AthenaError?.Retryable === true);
        throw retryable ? new ThrottlingError(message) : new ExportError(message);
      }
      if (state !== 'QUEUED' && state !== 'RUNNING') throw new ExportError(`Athena query ${id} in workgroup ${workGroup} is in state ${JSON.stringify(state ?? null)}, which no query should be in`);
      if (Date.now() + pause > deadline) {
        // Stopped, not abandoned: a forgotten query keeps scanning (and billing) to its end.
        await this.call('StopQueryExecution', id, () => client.send(new StopQueryExecutionCommand({ QueryExecutionId: id })));
        throw new ExportError(`Athena query ${id} in workgroup ${workGroup} was still ${state} after ${Math.round((this.options.timeoutMillis ?? 300_000) / 1000)} s; stopped it`);
      }
      await sleep(pause);
      pause = Math.min(pause * 2, this.options.maxPollMillis ?? 5000);
    }
  }

  /** Every page of the results; the first row of the first page of a SELECT is its header. */
  private async results(id: string, execution: QueryExecution): Promise<{ columns: QueryColumn[]; rows: (string | null)[][] }> {
    const { client, workGroup } = this.options;
    let columns: QueryColumn[] | null = null;
    const rows: (string | null)[][] = [];
    let token: string | undefined;
    let first = true;
    do {
      const page = await this.call('GetQueryResults', id, () => client.send(new GetQueryResultsCommand({ QueryExecutionId: id, NextToken: token, MaxResults: Math.min(this.options.pageSize ?? 1000, 1000) })));
      columns ??= (page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? []).map(queryColumnOf);
      const values = (page.ResultSet?.Rows ?? []).map((row) => columns!.map((_, i) => row.Data?.[i]?.VarCharValue ?? null));
      if (first && execution.StatementType !== 'DDL' && execution.StatementType !== 'UTILITY' && values.length > 0) {
        const header = values.shift()!;
        if (header.some((name, i) => name !== columns![i].name)) {
          throw new ExportError(`Athena query ${id} in workgroup ${workGroup}: the first result row ${JSON.stringify(header)} is not the header ${JSON.stringify(columns.map((c) => c.name))}`);
        }
      }
      rows.push(...values);
      first = false;
      token = page.NextToken;
    } while (token);
    return { columns: columns ?? [], rows };
  }
}
