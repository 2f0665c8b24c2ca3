// The two independent lake readers: DuckDB (C++, its own Parquet reader) and hyparquet (pure
// JavaScript); neither shares code with parquet-wasm (Rust) that wrote the files, nor with the
// exporter's decoders. Each returns, per lake row, the canonical text of every compared column.
import { DuckDBInstance } from '@duckdb/node-api';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parquetMetadata, parquetReadObjects, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { duckdb } from '../support/local-stack.ts';
import { duckCanonical, duckCanonicalArray, fromDuckHex, hyparquetCanonical, type Cell } from './canonical.ts';
import type { Kind } from './types.ts';

export interface ReadColumn {
  readonly name: string;
  readonly kind: Kind;
  readonly array: boolean;
}

/** Canonical texts (before normalization) per row, one entry per column in `columns` order. */
export type LakeRows = (string | null)[][];

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;
const duckIdent = (s: string) => `"${s.replaceAll('"', '""')}"`;

export async function readWithDuckdb(files: string[], columns: readonly ReadColumn[]): Promise<LakeRows> {
  if (!files.length) return [];
  const select = columns.map((c, i) => `${c.array ? duckCanonicalArray(c.kind, duckIdent(c.name)) : duckCanonical(c.kind, duckIdent(c.name))} AS c${i}`);
  // hive_partitioning off: a column named year or day is the file's own, not the folder's.
  const rows = await duckdb<Record<string, string | null>>(
    `SELECT ${select.join(', ')} FROM read_parquet([${files.map(sqlString).join(', ')}], hive_partitioning = false)`,
  );
  return rows.map((row) => columns.map((c, i) => fromDuckHex(c.array, row[`c${i}`] ?? null)));
}

/**
 * hyparquet converts DECIMAL to a JS number (inexact beyond 15 digits), so its annotation is
 * taken off the schema before reading: the unscaled integers come through raw and are scaled
 * here. Dates and timestamps come as their day and µs counts, byte arrays as bytes.
 */
export async function readWithHyparquet(files: string[], columns: readonly ReadColumn[]): Promise<{ rows: unknown[][]; scales: Map<string, number> }> {
  const out: unknown[][] = [];
  const scales = new Map<string, number>();
  for (const path of files) {
    const bytes = readFileSync(path);
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const metadata: FileMetaData = parquetMetadata(file);
    for (const [column, scale] of takeDecimalAnnotations(metadata)) scales.set(column, scale);
    const rows = await parquetReadObjects({
      file, metadata, compressors, utf8: false,
      parsers: {
        dateFromDays: (days: number) => days,
        timestampFromMicroseconds: (micros: bigint) => micros,
        // Buffer keeps a leading U+FEFF; hyparquet's default TextDecoder would drop it.
        stringFromBytes: (bytes: Uint8Array | undefined) => bytes && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
      },
    });
    for (const row of rows) out.push(columns.map((c) => row[c.name] ?? null));
  }
  return { rows: out, scales };
}

/** Remove DECIMAL annotations; the scale of each top-level column that had one (list elements included). */
function takeDecimalAnnotations(metadata: FileMetaData): Map<string, number> {
  const scales = new Map<string, number>();
  const { schema } = metadata;
  let next = 1;
  const visit = (top: string | null): void => {
    const element = schema[next++];
    const column = top ?? element.name;
    if (element.converted_type === 'DECIMAL' || element.logical_type?.type === 'DECIMAL') {
      scales.set(column, element.scale ?? 0);
      delete element.converted_type;
      delete element.logical_type;
    }
    for (let k = 0; k < (element.num_children ?? 0); k++) visit(column);
  };
  for (let c = 0; c < (schema[0].num_children ?? 0); c++) visit(null);
  return scales;
}

/** Canonical text of a hyparquet value: scalar, or a JSON list of element texts. */
export function hyparquetCell(column: ReadColumn, value: unknown, scale: number | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (!column.array) return hyparquetCanonical(column.kind, value, scale);
  if (!Array.isArray(value)) return `<not a list: ${String(value)}>`;
  return JSON.stringify(value.map((e) => hyparquetCanonical(column.kind, e, scale)));
}

export type { Cell };

const STATS_KINDS = new Set<Kind>(['int', 'decimal', 'date', 'timestamp', 'text', 'bpchar', 'bool']);

/**
 * Row-group statistics that a query engine may trust to skip data (Athena and DuckDB both do):
 * for each scalar column, its smallest and largest value in the file are looked up with a filter
 * DuckDB pushes into the scan. A row group whose min/max statistics exclude a value it holds
 * answers zero rows: a wrong query result in Athena though every value reads back right.
 */
export async function checkStatistics(files: string[], columns: readonly ReadColumn[]): Promise<string[]> {
  const problems: string[] = [];
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone = 'UTC'");
    const rows = async (sql: string) => (await connection.runAndReadAll(sql)).getRowObjectsJson();
    for (const file of new Set([files[0], files[files.length - 1]].filter(Boolean))) {
      const source = `read_parquet(${sqlString(file)}, hive_partitioning = false)`;
      for (const c of columns) {
        if (c.array || !STATS_KINDS.has(c.kind)) continue;
        const col = duckIdent(c.name);
        const text = c.kind === 'text' || c.kind === 'bpchar';
        const [bounds] = await rows(
          `SELECT CAST(min(${col}) AS VARCHAR) AS lo, CAST(max(${col}) AS VARCHAR) AS hi, typeof(min(${col})) AS type${
            c.kind === 'timestamp' ? `, CAST(epoch_us(min(${col})) AS VARCHAR) AS lo_us, CAST(epoch_us(max(${col})) AS VARCHAR) AS hi_us` : ''}${
            text ? `, hex(min(${col})) AS lo_hex, hex(max(${col})) AS hi_hex` : ''} FROM ${source}`,
        );
        if (bounds.lo === null || bounds.lo === undefined) continue;
        const type = String(bounds.type);
        // DuckDB prints timestamps near its end wrongly (µs 9223371244799999999 as 294247-01-01 00:00:00.000999),
        // so finite timestamps are named by their µs, not by their text…
        // Strings travel as hex: the node client would drop a leading U+FEFF (see canonical.ts).
        const literal = (bound: string, us: unknown, hex: unknown) => (text ? `decode(from_hex(${sqlString(String(hex))}))`
          : c.kind === 'timestamp' && !bound.endsWith('infinity') ? `CAST(make_timestamp(CAST(${String(us)} AS BIGINT)) AS ${type})` : `CAST(${sqlString(bound)} AS ${type})`);
        for (const [bound, us, hex] of [[String(bounds.lo), bounds.lo_us, bounds.lo_hex], [String(bounds.hi), bounds.hi_us, bounds.hi_hex]] as const) {
          // …and DuckDB's own µs ↔ timestamp arithmetic drifts by 1,000 µs near its last years, so a
          // literal there would not name the value: such bounds are left out.
          if (c.kind === 'timestamp' && !bound.endsWith('infinity') && BigInt(String(us)) > 1n << 62n) continue;
          const [found] = await rows(`SELECT count(*) AS n FROM ${source} WHERE ${col} = ${literal(bound, us, hex)}`);
          if (String(found.n) === '0') problems.push(`${path.basename(file)}: ${JSON.stringify(bound)} is in the file, but a filter on it finds no row (statistics exclude it)`);
        }
      }
    }
  } finally {
    connection.closeSync();
  }
  return problems;
}
