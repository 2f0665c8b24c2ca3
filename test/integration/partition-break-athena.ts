// What Athena would return for a lake table, computed from the Glue definition the product
// registers (glueTableDefinition over the committed schema.json): partition projection lists
// exactly the locations `storage.location.template` gives for every value of each key's
// `projection.<key>.range`, formatted to `projection.<key>.digits`; a file elsewhere is never
// read, silently. The stand-in here shares no path code with the writer: it parses the template
// and the ranges as Athena would, and matches every .parquet file in the lake against them.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { glueTableDefinition, type GlueTableDefinition } from '../../lambdas/core/lake/glue-table.ts';
import { locationOf } from '../../lambdas/core/lake/keys.ts';
import type { LakeSchema } from '../../lambdas/core/ports.ts';
import { duckdb, type TestLake } from '../support/local-stack.ts';

const BUCKET = 'lake-bucket';

export interface ProjectedKey {
  readonly name: string;
  readonly from: number;
  readonly to: number;
  readonly digits: number;
}

export interface AthenaView {
  readonly definition: GlueTableDefinition;
  readonly keys: readonly ProjectedKey[];
  /** Lake-relative keys of the files Athena's projection reaches, with their projected partition values. */
  readonly visible: { key: string; values: Record<string, number> }[];
  /** .parquet files under the table's folder that no projected location holds. */
  readonly unreachable: string[];
}

function listFiles(dir: string): string[] {
  let out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out = out.concat(listFiles(full));
    else out.push(full);
  }
  return out;
}

/** The registered Glue table of `table` as the committed schema.json defines it. */
export function registeredDefinition(lake: TestLake, table: string, schema: LakeSchema, fallbackYears = { from: 1970, to: 2099 }): GlueTableDefinition {
  return glueTableDefinition(table, table, schema.columns, { bucket: BUCKET, prefix: 'raw', years: schema.years ?? fallbackYears, location: locationOf(schema) });
}

/** Athena's view of `table`: which files its projection reaches. */
export async function athenaView(lake: TestLake, table: string): Promise<AthenaView> {
  const schemaObject = await lake.store.get(`raw/_state/${table}/schema.json`);
  expect(schemaObject, `${table}: schema.json committed`).not.toBeNull();
  const schema = JSON.parse(schemaObject!.body.toString()) as LakeSchema;
  const definition = registeredDefinition(lake, table, schema);
  const p = definition.Parameters;
  expect(p['projection.enabled']).toBe('true');
  const keys: ProjectedKey[] = definition.PartitionKeys.map((k) => {
    expect(p[`projection.${k.Name}.type`], `projection.${k.Name}.type`).toBe('integer');
    const [from, to] = p[`projection.${k.Name}.range`].split(',').map(Number);
    return { name: k.Name, from, to, digits: Number(p[`projection.${k.Name}.digits`] ?? '1') };
  });
  const template = p['storage.location.template'];
  // Every ${key} in the template must be a partition key, and every key must appear once.
  const placeholders = [...template.matchAll(/\$\{([^}]+)\}/g)].map((m) => m[1]);
  expect(placeholders.sort(), `${table}: template ${template} names exactly the partition keys`).toEqual(keys.map((k) => k.name).sort());
  const escaped = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${escaped.replace(/\\\$\{([^}]+)\}/g, (_, name: string) => `(?<${name}>[^/]+)`).replace(/\{|\}/g, (c) => `\\${c}`)}$`);
  const visible: AthenaView['visible'] = [];
  const unreachable: string[] = [];
  const root = path.join(lake.dir, 'raw', table);
  for (const file of listFiles(root).filter((f) => f.endsWith('.parquet'))) {
    const key = path.relative(lake.dir, file).split(path.sep).join('/');
    const folder = `s3://${BUCKET}/${key.slice(0, key.lastIndexOf('/') + 1)}`;
    const match = pattern.exec(folder);
    const values: Record<string, number> = {};
    // Athena writes each projected integer with its digits; the folder must be exactly that text.
    const reached = match !== null && keys.every((k) => {
      const text = match.groups![k.name];
      const value = Number(text);
      values[k.name] = value;
      return Number.isInteger(value) && value >= k.from && value <= k.to && String(value).padStart(k.digits, '0') === text;
    });
    if (reached) visible.push({ key, values });
    else unreachable.push(key);
  }
  return { definition, keys, visible, unreachable };
}

/**
 * The rows Athena returns for `SELECT <columns>, <partition keys> FROM table`: the visible files'
 * rows, each with its folder's projected partition values. `columns` are DuckDB SQL expressions.
 */
export async function athenaRows<T = Record<string, unknown>>(lake: TestLake, view: AthenaView, columns: string): Promise<(T & { file: string; year: number; month?: number; day?: number })[]> {
  if (view.visible.length === 0) return [];
  const parts = view.visible.map((v) => {
    const values = view.keys.map((k) => `${v.values[k.name]} AS "${k.name}"`).join(', ');
    const file = path.join(lake.dir, v.key).replaceAll("'", "''");
    return `SELECT ${columns}, '${v.key.replaceAll("'", "''")}' AS file, ${values} FROM read_parquet('${file}', hive_partitioning = false)`;
  });
  return duckdb(parts.join('\nUNION ALL\n'));
}
