// A local stand-in for the Athena API: a real HTTP server on 127.0.0.1 that speaks Athena's JSON
// protocol (POST /, `X-Amz-Target: AmazonAthena.<Operation>`, `application/x-amz-json-1.1`), so
// the production AthenaEngine runs unchanged with the real SDK client pointed at it (`endpoint`,
// dummy credentials). Queries run on a QueryEngine (DuckDB over a lake: LakeQuery.engine());
// the stand-in adds what Athena does around them: queued/running states for a number of polls,
// results paged with NextToken (header row first), column metadata, bytes scanned, and injected
// FAILED / CANCELLED / throttled outcomes. Every request is recorded for assertions.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { QueryColumn, QueryEngine } from '../../lambdas/core/ports.ts';

export interface RecordedRequest {
  /** `StartQueryExecution`, `GetQueryExecution`, … */
  readonly operation: string;
  readonly contentType: string | undefined;
  readonly body: Record<string, unknown>;
}

/** How the next started query ends instead of running its SQL. */
export interface InjectedOutcome {
  readonly state: 'FAILED' | 'CANCELLED';
  readonly reason: string;
  /** AthenaError.Retryable, as Athena sets it on some failures. */
  readonly retryable?: boolean;
}

export interface AthenaStandinOptions {
  /** Runs the SQL (DuckDB over the lake). */
  readonly engine: QueryEngine;
  /** Most rows per GetQueryResults page (the header row counts, as in Athena). @default 1000 */
  readonly pageSize?: number;
  /** Polls a query answers QUEUED, then RUNNING, before it ends. @default { queued: 0, running: 0 } */
  readonly polls?: { readonly queued: number; readonly running: number };
  /** Statistics.DataScannedInBytes of every query. @default 10485760 (Athena's 10 MB minimum) */
  readonly bytesScanned?: number;
}

interface Execution {
  readonly id: string;
  readonly sql: string;
  readonly workGroup: string;
  readonly database: string | undefined;
  readonly submitted: number;
  polls: number;
  stopped: boolean;
  readonly outcome: Promise<{ columns: QueryColumn[]; rows: (string | null)[][] } | InjectedOutcome>;
}

/** DuckDB's type name → what Athena's ColumnInfo says (Type, Precision, Scale). */
export function athenaColumnInfo(column: QueryColumn): Record<string, unknown> {
  const type = column.type.toUpperCase();
  const decimal = /^DECIMAL\((\d+),(\d+)\)$/.exec(type);
  const simple: Record<string, string> = {
    TINYINT: 'tinyint', SMALLINT: 'smallint', INTEGER: 'integer', BIGINT: 'bigint', DOUBLE: 'double', FLOAT: 'float',
    BOOLEAN: 'boolean', VARCHAR: 'varchar', DATE: 'date', TIMESTAMP: 'timestamp', 'TIMESTAMP WITH TIME ZONE': 'timestamp with time zone', BLOB: 'varbinary',
  };
  const athenaType = decimal ? 'decimal' : type.endsWith('[]') ? 'array' : simple[type] ?? (type === 'HUGEINT' ? 'decimal' : 'varchar');
  const [precision, scale] = decimal ? [Number(decimal[1]), Number(decimal[2])] : type === 'HUGEINT' ? [38, 0] : [0, 0];
  return {
    CatalogName: 'hive', SchemaName: '', TableName: '', Name: column.name, Label: column.name, Type: athenaType,
    Precision: precision, Scale: scale, Nullable: 'UNKNOWN', CaseSensitive: athenaType === 'varchar',
  };
}

export class AthenaStandin {
  readonly requests: RecordedRequest[] = [];
  private readonly options: AthenaStandinOptions;
  private readonly server: Server;
  private readonly executions = new Map<string, Execution>();
  private readonly injected: InjectedOutcome[] = [];
  private throttledStarts = 0;
  private polls: { queued: number; running: number };
  private pageSize: number;

  private constructor(options: AthenaStandinOptions, server: Server) {
    this.options = options;
    this.server = server;
    this.polls = { ...(options.polls ?? { queued: 0, running: 0 }) };
    this.pageSize = options.pageSize ?? 1000;
  }

  static async start(options: AthenaStandinOptions): Promise<AthenaStandin> {
    let standin: AthenaStandin | null = null;
    const server = createServer((req, res) => {
      standin!.handle(req, res).catch((error: unknown) => reply(res, 500, { __type: 'InternalServerException', message: String(error) }));
    });
    standin = new AthenaStandin(options, server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return standin;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The next started query ends this way (queued). */
  inject(outcome: InjectedOutcome): void {
    this.injected.push(outcome);
  }

  /** The next `n` StartQueryExecution calls answer 400 TooManyRequestsException. */
  throttleStarts(n: number): void {
    this.throttledStarts = n;
  }

  setPolls(polls: { queued: number; running: number }): void {
    this.polls = { ...polls };
  }

  setPageSize(rows: number): void {
    this.pageSize = rows;
  }

  /** Requests of one operation, in order. */
  calls(operation: string): RecordedRequest[] {
    return this.requests.filter((r) => r.operation === operation);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.startsWith('AmazonAthena.') ? target.slice('AmazonAthena.'.length) : target;
    const text = Buffer.concat(chunks).toString('utf8');
    const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
    this.requests.push({ operation, contentType: req.headers['content-type'], body });
    if (req.method !== 'POST' || req.url !== '/') return reply(res, 404, { __type: 'UnknownOperationException', message: `${req.method} ${req.url}` });
    switch (operation) {
      case 'StartQueryExecution': return this.startQuery(res, body);
      case 'GetQueryExecution': return this.getExecution(res, body);
      case 'GetQueryResults': return this.getResults(res, body);
      case 'StopQueryExecution': {
        const execution = this.find(res, body);
        if (execution) {
          execution.stopped = true;
          reply(res, 200, {});
        }
        return;
      }
      default:
        return reply(res, 400, { __type: 'UnknownOperationException', message: `the stand-in does not implement ${JSON.stringify(target)}` });
    }
  }

  private startQuery(res: ServerResponse, body: Record<string, unknown>): void {
    if (this.throttledStarts > 0) {
      this.throttledStarts--;
      return reply(res, 400, {
        __type: 'TooManyRequestsException',
        message: 'You have exceeded the limit for the number of queries you can run concurrently. Please reduce the number of concurrent queries submitted by this account.',
        Reason: 'CONCURRENT_QUERY_LIMIT_EXCEEDED',
      });
    }
    const sql = body.QueryString;
    if (typeof sql !== 'string' || !sql) return reply(res, 400, { __type: 'InvalidRequestException', message: 'QueryString is required' });
    const id = randomUUID();
    const injected = this.injected.shift();
    const outcome = injected
      ? Promise.resolve(injected)
      : this.options.engine.query(sql).then(
        ({ columns, rows }) => ({ columns: [...columns], rows: rows.map((r) => [...r]) }),
        // Athena's own failure text differs; what matters is that the engine's reason comes through.
        (error: unknown): InjectedOutcome => ({ state: 'FAILED', reason: `SYNTAX_ERROR: ${(((error as Error).cause ?? error) as Error).message.split('\n')[0]}` }),
      );
    const context = body.QueryExecutionContext as { Database?: string } | undefined;
    this.executions.set(id, { id, sql, workGroup: String(body.WorkGroup ?? 'primary'), database: context?.Database, submitted: Date.now(), polls: 0, stopped: false, outcome });
    reply(res, 200, { QueryExecutionId: id });
  }

  private find(res: ServerResponse, body: Record<string, unknown>): Execution | null {
    const execution = this.executions.get(String(body.QueryExecutionId));
    if (!execution) reply(res, 400, { __type: 'InvalidRequestException', message: `QueryExecution ${String(body.QueryExecutionId)} was not found` });
    return execution ?? null;
  }

  private async getExecution(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const execution = this.find(res, body);
    if (!execution) return;
    const poll = ++execution.polls;
    let state: string;
    let reason: string | undefined;
    let retryable: boolean | undefined;
    if (execution.stopped) {
      state = 'CANCELLED';
      reason = 'Query cancelled by user';
    } else if (poll <= this.polls.queued) {
      state = 'QUEUED';
    } else if (poll <= this.polls.queued + this.polls.running) {
      state = 'RUNNING';
    } else {
      const outcome = await execution.outcome;
      if ('state' in outcome) {
        state = outcome.state;
        reason = outcome.reason;
        retryable = outcome.retryable;
      } else {
        state = 'SUCCEEDED';
      }
    }
    const ended = state === 'SUCCEEDED' || state === 'FAILED' || state === 'CANCELLED';
    reply(res, 200, {
      QueryExecution: {
        QueryExecutionId: execution.id,
        Query: execution.sql,
        StatementType: 'DML',
        ResultConfiguration: { OutputLocation: `s3://standin-results/${execution.id}.csv` },
        QueryExecutionContext: { Database: execution.database, Catalog: 'awsdatacatalog' },
        Status: {
          State: state,
          ...(reason === undefined ? {} : { StateChangeReason: reason }),
          SubmissionDateTime: execution.submitted / 1000,
          ...(ended ? { CompletionDateTime: Date.now() / 1000 } : {}),
          ...(state === 'FAILED' ? { AthenaError: { ErrorCategory: retryable ? 1 : 2, ErrorType: retryable ? 1002 : 1100, Retryable: retryable === true, ErrorMessage: reason } } : {}),
        },
        Statistics: ended ? { DataScannedInBytes: this.options.bytesScanned ?? 10_485_760, EngineExecutionTimeInMillis: 1, TotalExecutionTimeInMillis: 1 } : {},
        WorkGroup: execution.workGroup,
        EngineVersion: { SelectedEngineVersion: 'AUTO', EffectiveEngineVersion: 'Athena engine version 3' },
      },
    });
  }

  private async getResults(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const execution = this.find(res, body);
    if (!execution) return;
    const outcome = await execution.outcome;
    if (execution.stopped || 'state' in outcome || execution.polls <= this.polls.queued + this.polls.running) {
      return reply(res, 400, { __type: 'InvalidRequestException', message: `Query has not yet finished. Current state: ${execution.stopped ? 'CANCELLED' : 'state' in outcome ? outcome.state : 'RUNNING'}` });
    }
    const all = [outcome.columns.map((c) => c.name), ...outcome.rows];
    const start = body.NextToken === undefined ? 0 : Number(Buffer.from(String(body.NextToken), 'base64').toString('utf8'));
    const size = Math.min(this.pageSize, typeof body.MaxResults === 'number' ? body.MaxResults : 1000);
    const page = all.slice(start, start + size);
    const next = start + size < all.length ? Buffer.from(String(start + size), 'utf8').toString('base64') : undefined;
    reply(res, 200, {
      UpdateCount: 0,
      ResultSet: {
        // NULL is a Data entry without VarCharValue, as Athena sends it.
        Rows: page.map((row) => ({ Data: row.map((v) => (v === null ? {} : { VarCharValue: v })) })),
        ResultSetMetadata: { ColumnInfo: outcome.columns.map(athenaColumnInfo) },
      },
      ...(next ? { NextToken: next } : {}),
    });
  }
}

function reply(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID(), 'content-length': String(Buffer.byteLength(text)) };
  if (status >= 400 && typeof body.__type === 'string') headers['x-amzn-errortype'] = body.__type;
  res.writeHead(status, headers);
  res.end(text);
}
