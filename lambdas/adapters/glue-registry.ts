// Glue as the table registry: create or update the table at commit, so a new column is
// queryable the moment the files that carry it are published; then its `<table>_current` view,
// whose column list follows the table's. Both live here rather than in the stack because their
// columns come from the live Postgres catalog, which only the Commit step sees.
import { AlreadyExistsException, CreateTableCommand, EntityNotFoundException, GetTableCommand, GlueClient, UpdateTableCommand, type Table, type TableInput } from '@aws-sdk/client-glue';
import type { LakeConfig } from '../core/config.ts';
import { selectTables } from '../core/config.ts';
import { currentViewClashes, currentViewName, glueViewDefinition } from '../core/lake/current-view.ts';
import { SchemaMismatchError, ThrottlingError } from '../core/errors.ts';
import { glueTableDefinition } from '../core/lake/glue-table.ts';
import { locationOf } from '../core/lake/keys.ts';
import type { LakeSchema, TableRegistry } from '../core/ports.ts';

/**
 * Glue errors a later attempt can succeed with: throttling, Glue's own faults and timeouts, and
 * ConcurrentModificationException (another writer changed the catalog at the same moment; the
 * SDK does not retry it). They outlasted the client's retries here; the workflow retries them.
 */
const TRANSIENT_GLUE_ERRORS = new Set([
  'ThrottlingException',
  'ConcurrentModificationException',
  'InternalServiceException',
  'OperationTimeoutException',
]);

function isTransientGlueError(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | null;
  return TRANSIENT_GLUE_ERRORS.has(e?.name ?? '') || (e?.$metadata?.httpStatusCode ?? 0) >= 500;
}

export class GlueRegistry implements TableRegistry {
  private readonly client: GlueClient;
  private readonly database: string;
  private readonly bucket: string;
  private readonly config: LakeConfig;

  constructor(client: GlueClient, database: string, bucket: string, config: LakeConfig) {
    this.client = client;
    this.database = database;
    this.bucket = bucket;
    this.config = config;
  }

  async register(lakeTable: string, schema: LakeSchema): Promise<void> {
    const [table] = selectTables(this.config, [lakeTable]);
    const viewName = currentViewName(lakeTable);
    const clash = currentViewClashes(selectTables(this.config).map((t) => t.lakeName)).find((c) => c.table === lakeTable || c.view === lakeTable);
    if (clash) throw new SchemaMismatchError(`${table.display}: ${clash.message}`);
    const tableInput = glueTableDefinition(lakeTable, table.display, schema.columns, {
      bucket: this.bucket, prefix: this.config.lake.prefix, years: schema.years ?? this.config.lake.partitionYears,
      // One UpdateTable switches the template to a compaction's generation (and its granularity).
      location: locationOf(schema),
    });
    await this.put(tableInput, await this.find(lakeTable));
    // After the table: Athena checks a view's columns against the tables it reads.
    const existingView = await this.find(viewName);
    if (existingView && existingView.TableType !== 'VIRTUAL_VIEW') {
      throw new SchemaMismatchError(`${table.display}: Glue table ${this.database}.${viewName} exists and is not a view (${existingView.TableType ?? 'no type'}); it is left alone, rename it to get the current-state view`);
    }
    await this.put(glueViewDefinition(lakeTable, table.display, this.database, schema), existingView);
  }

  private async find(name: string): Promise<Table | null> {
    try {
      return (await this.send(`GetTable ${this.database}.${name}`, () => this.client.send(new GetTableCommand({ DatabaseName: this.database, Name: name })))).Table ?? null;
    } catch (error) {
      if (error instanceof EntityNotFoundException) return null;
      throw error;
    }
  }

  private async put(TableInput: TableInput, existing: Table | null): Promise<void> {
    const name = `${this.database}.${TableInput.Name}`;
    if (existing) {
      await this.send(`UpdateTable ${name}`, () => this.client.send(new UpdateTableCommand({ DatabaseName: this.database, TableInput })));
      return;
    }
    try {
      await this.send(`CreateTable ${name}`, () => this.client.send(new CreateTableCommand({ DatabaseName: this.database, TableInput })));
    } catch (error) {
      // Created between our GetTable and CreateTable (an earlier attempt whose answer was lost):
      // the definition is ours to set, so update it instead.
      if (!(error instanceof AlreadyExistsException)) throw error;
      await this.send(`UpdateTable ${name}`, () => this.client.send(new UpdateTableCommand({ DatabaseName: this.database, TableInput })));
    }
  }

  /** Sends one request; a transient fault becomes a ThrottlingError naming the call and table. */
  private async send<T>(what: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      if (isTransientGlueError(error)) {
        throw new ThrottlingError(`Glue ${what} failed after the client's retries: ${(error as Error).name}: ${(error as Error).message}`, { cause: error });
      }
      throw error;
    }
  }
}
