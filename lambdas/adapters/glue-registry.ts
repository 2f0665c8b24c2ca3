// Glue as the table registry: create or update the table at commit, so a new column is
// queryable the moment the files that carry it are published; then its `<table>_current` view,
// whose column list follows the table's. Both live here rather than in the stack because their
// columns come from the live Postgres catalog, which only the Commit step sees.
import { CreateTableCommand, EntityNotFoundException, GetTableCommand, GlueClient, UpdateTableCommand, type Table, type TableInput } from '@aws-sdk/client-glue';
import type { LakeConfig } from '../core/config.ts';
import { selectTables } from '../core/config.ts';
import { currentViewClashes, currentViewName, glueViewDefinition } from '../core/current-view.ts';
import { SchemaMismatchError } from '../core/errors.ts';
import { glueTableDefinition } from '../core/glue-table.ts';
import type { LakeSchema, TableRegistry } from '../core/ports.ts';

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
      bucket: this.bucket, prefix: this.config.lake.prefix, years: this.config.lake.partitionYears, snapshotRunId: schema.snapshotRunId,
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
      return (await this.client.send(new GetTableCommand({ DatabaseName: this.database, Name: name }))).Table ?? null;
    } catch (error) {
      if (error instanceof EntityNotFoundException) return null;
      throw error;
    }
  }

  private async put(TableInput: TableInput, existing: Table | null): Promise<void> {
    if (existing) await this.client.send(new UpdateTableCommand({ DatabaseName: this.database, TableInput }));
    else await this.client.send(new CreateTableCommand({ DatabaseName: this.database, TableInput }));
  }
}
