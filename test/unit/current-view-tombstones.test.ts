// `<table>_current` with tombstones: the SQL leaves out keys whose latest version is one, breaks
// a cursor tie towards the tombstone, and reads like before for schemas without the column;
// run by DuckDB over versions written as a lake holds them.
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { currentViewSql } from '../../lambdas/core/lake/current-view.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';

const schema: LakeSchema = {
  columns: [
    { source: 'id', name: 'id', type: 'bigint' },
    { source: 'note', name: 'note', type: 'string' },
    { source: 'updated_at', name: 'updated_at', type: 'timestamp' },
    { source: '_lake_exported_at', name: '_lake_exported_at', type: 'timestamp' },
    { source: '_lake_run_id', name: '_lake_run_id', type: 'string' },
    { source: '_lake_deleted', name: '_lake_deleted', type: 'boolean' },
  ],
  key: ['id'],
  cursor: 'updated_at',
};

describe('current-state view with tombstones', () => {
  it('filters tombstoned keys after ranking and ranks a tombstone above a live version of the same cursor', () => {
    const sql = currentViewSql('duckdb', { lakeTable: 't', schema });
    expect(sql).toContain('ORDER BY "updated_at" DESC, "_lake_exported_at" DESC, "_lake_deleted" DESC NULLS LAST');
    expect(sql.split('\n').at(-1)).toBe('WHERE "_lake_rank" = 1 AND "_lake_deleted" IS DISTINCT FROM true');
    const old = { ...schema, columns: schema.columns.filter((c) => c.name !== '_lake_deleted') };
    expect(currentViewSql('duckdb', { lakeTable: 't', schema: old })).not.toContain('_lake_deleted');
  });

  it('shows live keys, hides deleted ones, brings back a key inserted again (DuckDB)', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      await connection.run(`CREATE TABLE t AS SELECT * FROM (VALUES
        (1, 'a', TIMESTAMPTZ '2024-01-01 00:00:00+00', TIMESTAMPTZ '2024-01-01 01:00:00+00', 'r1', NULL),   -- file from before the column: live
        (2, 'b', TIMESTAMPTZ '2024-01-01 00:00:00+00', TIMESTAMPTZ '2024-01-01 01:00:00+00', 'r1', false),
        (2, NULL, TIMESTAMPTZ '2024-01-02 00:00:00+00', TIMESTAMPTZ '2024-01-02 01:00:00+00', 'r2', true),  -- deleted
        (3, 'c', TIMESTAMPTZ '2024-01-01 00:00:00+00', TIMESTAMPTZ '2024-01-01 01:00:00+00', 'r1', false),
        (3, NULL, TIMESTAMPTZ '2024-01-02 00:00:00+00', TIMESTAMPTZ '2024-01-02 01:00:00+00', 'r2', true),
        (3, 'c again', TIMESTAMPTZ '2024-01-03 00:00:00+00', TIMESTAMPTZ '2024-01-03 01:00:00+00', 'r3', false), -- inserted again
        (4, 'd', TIMESTAMPTZ '2024-01-02 00:00:00+00', TIMESTAMPTZ '2024-01-02 01:00:00+00', 'r2', false),
        (4, NULL, TIMESTAMPTZ '2024-01-02 00:00:00+00', TIMESTAMPTZ '2024-01-02 01:00:00+00', 'r2', true)   -- same run, same cursor
      ) AS v(id, note, updated_at, _lake_exported_at, _lake_run_id, _lake_deleted)`);
      const reader = await connection.runAndReadAll(`SELECT id, note FROM (${currentViewSql('duckdb', { lakeTable: 't', schema })}) ORDER BY id`);
      expect(reader.getRowObjectsJson()).toEqual([{ id: 1, note: 'a' }, { id: 3, note: 'c again' }]);
    } finally {
      connection.closeSync();
    }
  });
});
