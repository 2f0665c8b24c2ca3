// The Glue registry against the real SDK client, its requests answered by a middleware that
// plays a Glue catalog: which calls, in which order, with which TableInput.
import { AlreadyExistsException, ConcurrentModificationException, EntityNotFoundException, GlueClient, InternalServiceException, ThrottlingException, type Table, type TableInput } from '@aws-sdk/client-glue';
import { describe, expect, it } from 'vitest';
import { GlueRegistry } from '../../lambdas/adapters/glue-registry.ts';
import { validateConfig } from '../../lambdas/core/config.ts';
import { decodePrestoView } from '../../lambdas/core/lake/current-view.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';

const schema: LakeSchema = {
  columns: [
    { source: 'id', name: 'id', type: 'bigint' },
    { source: 'deleted', name: 'deleted', type: 'boolean' },
    { source: 'updated_at', name: 'updated_at', type: 'timestamp' },
    { source: '_lake_exported_at', name: '_lake_exported_at', type: 'timestamp' },
    { source: '_lake_run_id', name: '_lake_run_id', type: 'string' },
  ],
  key: ['id'],
  cursor: 'updated_at',
  softDelete: 'deleted',
};

/** `fail` injects a fault: given the command and table, an error to throw instead of answering. */
function fakeGlue(existing: Record<string, Table>, fail?: (command: string, name: string) => Error | undefined) {
  const calls: { command: string; name: string; input?: TableInput }[] = [];
  // No SDK retries: the fault reaches the registry as it would after they are spent.
  const client = new GlueClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
  client.middlewareStack.add(
    (_next, context) => async (args) => {
      const input = args.input as { Name?: string; TableInput?: TableInput };
      const name = input.Name ?? input.TableInput?.Name ?? '';
      calls.push({ command: context.commandName ?? '', name, input: input.TableInput });
      const fault = fail?.(context.commandName ?? '', name);
      if (fault) throw fault;
      if (context.commandName === 'GetTableCommand') {
        const table = existing[name];
        if (!table) throw new EntityNotFoundException({ message: `${name} not found`, $metadata: {} });
        return { output: { Table: table, $metadata: {} }, response: {} };
      }
      return { output: { $metadata: {} }, response: {} };
    },
    { step: 'initialize', name: 'fakeGlue' },
  );
  return { client, calls };
}

const config = validateConfig({ tables: [{ name: 'orders', softDeleteColumn: 'deleted' }] });

describe('GlueRegistry', () => {
  it('creates the table, then its current-state view, in a new database', async () => {
    const { client, calls } = fakeGlue({});
    await new GlueRegistry(client, 'lake', 'bucket', config).register('orders', schema);
    expect(calls.map((c) => `${c.command} ${c.name}`)).toEqual(['GetTableCommand orders', 'CreateTableCommand orders', 'GetTableCommand orders_current', 'CreateTableCommand orders_current']);
    const view = calls[3].input!;
    expect(view).toMatchObject({ TableType: 'VIRTUAL_VIEW', Parameters: { presto_view: 'true' } });
    expect(decodePrestoView(view.ViewOriginalText!).originalSql).toContain('FROM "lake"."orders"');
  });

  it('projects the years the schema says the data spans, and lake.partitionYears for a schema without them', async () => {
    const tight = fakeGlue({});
    await new GlueRegistry(tight.client, 'lake', 'bucket', config).register('orders', { ...schema, years: { from: 2023, to: 2027 } });
    expect(tight.calls[1].input!.Parameters).toMatchObject({ 'projection.year.range': '2023,2027', 'projection.month.range': '1,12' });
    const legacy = fakeGlue({});
    await new GlueRegistry(legacy.client, 'lake', 'bucket', config).register('orders', schema);
    expect(legacy.calls[1].input!.Parameters).toMatchObject({ 'projection.year.range': '1970,2099' });
  });

  it('updates both when they exist', async () => {
    const { client, calls } = fakeGlue({ orders: { Name: 'orders', TableType: 'EXTERNAL_TABLE' }, orders_current: { Name: 'orders_current', TableType: 'VIRTUAL_VIEW' } });
    await new GlueRegistry(client, 'lake', 'bucket', config).register('orders', schema);
    expect(calls.map((c) => `${c.command} ${c.name}`)).toEqual(['GetTableCommand orders', 'UpdateTableCommand orders', 'GetTableCommand orders_current', 'UpdateTableCommand orders_current']);
  });

  it('leaves a table that is not a view alone and says so', async () => {
    const { client, calls } = fakeGlue({ orders_current: { Name: 'orders_current', TableType: 'EXTERNAL_TABLE' } });
    await expect(new GlueRegistry(client, 'lake', 'bucket', config).register('orders', schema)).rejects.toThrow(
      'public.orders: Glue table lake.orders_current exists and is not a view (EXTERNAL_TABLE); it is left alone, rename it to get the current-state view',
    );
    expect(calls.map((c) => c.command)).not.toContain('UpdateTableCommand orders_current');
  });

  it('refuses a configured lake table named as another table\'s view before calling Glue', async () => {
    const clashing = validateConfig({ tables: [{ name: 'orders' }, { name: 'orders_current' }] });
    const { client, calls } = fakeGlue({});
    await expect(new GlueRegistry(client, 'lake', 'bucket', clashing).register('orders_current', schema)).rejects.toThrow(
      'public.orders_current: lake table "orders_current" has the name of the current-state view of lake table "orders"; set tables[].lakeName on one of them',
    );
    expect(calls).toEqual([]);
  });
});

describe('GlueRegistry under transient faults', () => {
  const meta = { $metadata: { httpStatusCode: 400 } };

  it.each([
    ['throttling', new ThrottlingException({ message: 'Rate exceeded', ...meta })],
    ['a concurrent change', new ConcurrentModificationException({ message: 'Table orders was modified concurrently', ...meta })],
    ['an internal fault', new InternalServiceException({ message: 'Internal service error', $metadata: { httpStatusCode: 500 } })],
  ])('surfaces %s as ThrottlingError (which the workflow retries), naming the call and table', async (_what, fault) => {
    const { client } = fakeGlue({}, (command) => (command === 'CreateTableCommand' ? fault : undefined));
    const error = await new GlueRegistry(client, 'lake', 'bucket', config).register('orders', schema).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('ThrottlingError');
    expect((error as Error).message).toBe(`Glue CreateTable lake.orders failed after the client's retries: ${fault.name}: ${fault.message}`);
    expect((error as Error).cause).toBe(fault);
  });

  it('leaves errors a retry cannot fix as they are', async () => {
    const denied = Object.assign(new Error('User is not authorized to perform: glue:CreateTable'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } });
    const { client } = fakeGlue({}, (command) => (command === 'CreateTableCommand' ? denied : undefined));
    await expect(new GlueRegistry(client, 'lake', 'bucket', config).register('orders', schema)).rejects.toBe(denied);
  });

  it('updates a table that appeared between its lookup and its creation (an earlier attempt\'s)', async () => {
    const { client, calls } = fakeGlue({}, (command, name) => (command === 'CreateTableCommand' && name === 'orders' ? new AlreadyExistsException({ message: 'Table already exists.', ...meta }) : undefined));
    await new GlueRegistry(client, 'lake', 'bucket', config).register('orders', schema);
    expect(calls.map((c) => `${c.command} ${c.name}`)).toEqual([
      'GetTableCommand orders', 'CreateTableCommand orders', 'UpdateTableCommand orders', 'GetTableCommand orders_current', 'CreateTableCommand orders_current',
    ]);
  });
});
