// Glue as the table registry: create or update the table at commit, so a new column is
// queryable the moment the files that carry it are published.
import { CreateTableCommand, EntityNotFoundException, GetTableCommand, GlueClient, UpdateTableCommand } from '@aws-sdk/client-glue';
import type { LakeConfig } from '../core/config.ts';
import { selectTables } from '../core/config.ts';
import { glueTableDefinition } from '../core/glue-table.ts';
import type { LakeColumn, TableRegistry } from '../core/ports.ts';

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

  async register(lakeTable: string, columns: readonly LakeColumn[]): Promise<void> {
    const [table] = selectTables(this.config, [lakeTable]);
    const TableInput = glueTableDefinition(lakeTable, table.display, columns, {
      bucket: this.bucket, prefix: this.config.lake.prefix, years: this.config.lake.partitionYears,
    });
    try {
      await this.client.send(new GetTableCommand({ DatabaseName: this.database, Name: lakeTable }));
    } catch (error) {
      if (!(error instanceof EntityNotFoundException)) throw error;
      await this.client.send(new CreateTableCommand({ DatabaseName: this.database, TableInput }));
      return;
    }
    await this.client.send(new UpdateTableCommand({ DatabaseName: this.database, TableInput }));
  }
}
