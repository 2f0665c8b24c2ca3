// The spliced Parquet file (page/parquet-splice.ts): row groups assembled from the column chunks
// of small encodes, footer written by our Thrift code. Checked against one writeParquet call over
// the same rows (the reference) by two independent readers: DuckDB (values, row groups, column
// statistics) and hyparquet (values). Seeded random tables of every lake type, with NULLs, at 1,
// 2 and many row groups, in batches of random sizes, with pages that cross data-page limits.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parquetMetadata, parquetReadObjects, snappyUncompress } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrowTypeOf } from '../../lambdas/core/page/decode.ts';
import { chooseEncodings, encodeTable } from '../../lambdas/core/page/parquet.ts';
import { SplicedParquetFile } from '../../lambdas/core/page/parquet-splice.ts';
import { snappyLiteral } from '../../lambdas/core/page/snappy.ts';
import { readStruct, writeStruct } from '../../lambdas/core/page/thrift.ts';
import type { LakeType } from '../../lambdas/core/source/type-map.ts';
import { random } from '../fuzz/random.ts';

const COLUMNS: [string, LakeType][] = [
  ['i16', { kind: 'int16' }],
  ['i32', { kind: 'int32' }],
  ['i64', { kind: 'int64' }],
  ['f32', { kind: 'float32' }],
  ['f64', { kind: 'float64' }],
  ['flag', { kind: 'bool' }],
  ['day', { kind: 'date' }],
  ['at', { kind: 'timestamp', utc: true }],
  ['local', { kind: 'timestamp', utc: false }],
  ['amount', { kind: 'decimal', precision: 38, scale: 4 }],
  ['unique', { kind: 'string' }],
  ['status', { kind: 'string' }],
  ['long', { kind: 'string' }],
  ['blob', { kind: 'binary' }],
  ['ints', { kind: 'list', element: { kind: 'int32' } }],
  ['tags', { kind: 'list', element: { kind: 'string' } }],
  // Dictionary columns whose chunks the splicer writes (dictionary-chunk.ts): values over the 64
  // bytes arrow-rs keeps whole in statistics, and one whose dictionary outgrows 1 MiB.
  ['label', { kind: 'string' }],
  ['code', { kind: 'binary' }],
  ['grows', { kind: 'string' }],
  ['run', { kind: 'string' }],
  ['stamp', { kind: 'timestamp', utc: true }],
];
/** Columns every row fills with one value (the export's run id and time): their chunks are written by the splicer. */
const CONSTANTS = ['run', 'stamp'];
const TYPES = new Map(COLUMNS);

function randomTable(seed: number, rows: number, nullShare: number): arrow.Table {
  const r = random(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const maybe = <V>(v: () => V): V | null => (r() < nullShare ? null : v());
  const text = (n: number) => Array.from({ length: n }, () => String.fromCodePoint([int(32, 126), int(0xa0, 0x2fff), int(0x1f300, 0x1f5ff), 0][int(0, 3)])).join('');
  const floats = [0, -0, Infinity, -Infinity, NaN, 1e-300, -3.5];
  const big = (digits: number) => BigInt(Array.from({ length: digits }, () => int(0, 9)).join('') || '0') * (r() < 0.5 ? -1n : 1n);
  const vector = (type: LakeType, values: unknown[]) => arrow.vectorFromArray(values, arrowTypeOf(type));
  // Cut at 64 bytes by arrow-rs: inside a 2-, 3- or 4-byte character, after U+FFFF or U+10FFFF
  // (which cannot be raised), after 0xff bytes (raised with a carry), or shorter than 64.
  const labels = [
    `${'a'.repeat(62)}éz${text(20)}`, `${'b'.repeat(63)}€${text(5)}`, `${'c'.repeat(61)}😀${text(8)}`, `${'d'.repeat(60)}\u{10ffff}\u{10ffff}${text(9)}`,
    `${'\uffff'.repeat(22)}${text(3)}`, `short ${text(3)}`, `${'a'.repeat(62)}éa`, '',
  ];
  const codes = [Uint8Array.from({ length: 70 }, (_, i) => (i < 62 ? 0x41 : 0xff)), Uint8Array.from({ length: 80 }, () => int(0, 255)), new Uint8Array(0), Uint8Array.of(0xff, 0xfe), new Uint8Array(64).fill(0xff).with(3, 0x10), new Uint8Array(65).fill(0xff)];
  const decimals = Array.from({ length: rows }, () => maybe(() => big(int(1, 38))));
  const columns: Record<string, arrow.Vector> = {
    i16: vector({ kind: 'int16' }, Array.from({ length: rows }, () => maybe(() => int(-32768, 32767)))),
    i32: vector({ kind: 'int32' }, Array.from({ length: rows }, () => maybe(() => int(-2147483648, 2147483647)))),
    i64: vector({ kind: 'int64' }, Array.from({ length: rows }, () => maybe(() => (r() < 0.05 ? [-(2n ** 63n), 2n ** 63n - 1n][int(0, 1)] : big(int(1, 18)))))),
    f32: vector({ kind: 'float32' }, Array.from({ length: rows }, () => maybe(() => (r() < 0.1 ? floats[int(0, floats.length - 1)] : Math.fround((r() - 0.5) * 1e6))))),
    f64: vector({ kind: 'float64' }, Array.from({ length: rows }, () => maybe(() => (r() < 0.1 ? floats[int(0, floats.length - 1)] : (r() - 0.5) * 1e12)))),
    flag: vector({ kind: 'bool' }, Array.from({ length: rows }, () => maybe(() => r() < 0.5))),
    day: arrow.makeVector(arrow.makeData({ type: new arrow.DateDay(), length: rows, ...validity(r, rows, nullShare), data: Int32Array.from({ length: rows }, () => int(-800000, 2900000)) })),
    at: micros(r, rows, nullShare, 'UTC'),
    local: micros(r, rows, nullShare, null),
    amount: arrow.makeVector(arrow.makeData({ type: new arrow.Decimal(4, 38, 128), length: rows, nullCount: decimals.filter((d) => d === null).length, nullBitmap: bitmap(decimals.map((d) => d !== null)), data: decimalWords(decimals) })),
    unique: vector({ kind: 'string' }, Array.from({ length: rows }, (_, i) => maybe(() => `${i}:${text(int(0, 12))}`))),
    status: vector({ kind: 'string' }, Array.from({ length: rows }, () => maybe(() => ['new', 'paid', 'shipped', ''][int(0, 3)]))),
    long: vector({ kind: 'string' }, Array.from({ length: rows }, () => maybe(() => text(int(60, 200))))),
    blob: vector({ kind: 'binary' }, Array.from({ length: rows }, () => maybe(() => Uint8Array.from({ length: int(0, 40) }, () => int(0, 255))))),
    ints: vector({ kind: 'list', element: { kind: 'int32' } }, Array.from({ length: rows }, () => maybe(() => Array.from({ length: int(0, 4) }, () => (r() < 0.2 ? null : int(-1000, 1000)))))),
    tags: vector({ kind: 'list', element: { kind: 'string' } }, Array.from({ length: rows }, () => maybe(() => Array.from({ length: int(0, 3) }, () => (r() < 0.2 ? null : ['a', 'b', 'c'][int(0, 2)]))))),
    label: vector({ kind: 'string' }, Array.from({ length: rows }, () => maybe(() => labels[int(0, labels.length - 1)]))),
    code: vector({ kind: 'binary' }, Array.from({ length: rows }, () => maybe(() => codes[int(0, codes.length - 1)]))),
    // Repetitive in the first half (the first batch decides on a dictionary), then ~110 distinct bytes a row.
    grows: vector({ kind: 'string' }, Array.from({ length: rows }, (_, i) => maybe(() => (i < rows / 2 ? ['x', 'y'][int(0, 1)] : `${i}:${'é'.repeat(40)}${text(int(10, 20))}`)))),
  };
  // 57–64 bytes in some cases (Snappy's one-byte literal length), 65+ in others (encoded as usual).
  const run = Buffer.from(`run-${seed}-ü`.padEnd([0, 20, 62, 70, 8, 30, 64][seed % 7], 'x'));
  const constants = new arrow.Table(new arrow.Schema([new arrow.Field('run', new arrow.Utf8(), false), new arrow.Field('stamp', new arrow.TimestampMicrosecond('UTC'), false)]), new arrow.RecordBatch(
    new arrow.Schema([new arrow.Field('run', new arrow.Utf8(), false), new arrow.Field('stamp', new arrow.TimestampMicrosecond('UTC'), false)]),
    arrow.makeData({
      type: new arrow.Struct([new arrow.Field('run', new arrow.Utf8(), false), new arrow.Field('stamp', new arrow.TimestampMicrosecond('UTC'), false)]), length: rows, nullCount: 0, children: [
        arrow.makeData({ type: new arrow.Utf8(), length: rows, nullCount: 0, valueOffsets: Int32Array.from({ length: rows + 1 }, (_, i) => i * run.length), data: Uint8Array.from({ length: rows * run.length }, (_, i) => run[i % run.length]) }),
        arrow.makeData({ type: new arrow.TimestampMicrosecond('UTC'), length: rows, nullCount: 0, data: new BigInt64Array(rows).fill(1_764_460_800_123_456n + BigInt(seed)) }),
      ],
    }),
  ));
  return new arrow.Table(columns).assign(constants);
}

function bitmap(valid: boolean[]): Uint8Array {
  const bits = new Uint8Array(Math.ceil(valid.length / 8));
  valid.forEach((v, i) => { if (v) bits[i >> 3] |= 1 << (i & 7); });
  return bits;
}

function validity(r: () => number, rows: number, nullShare: number): { nullCount: number; nullBitmap: Uint8Array } {
  const valid = Array.from({ length: rows }, () => r() >= nullShare);
  return { nullCount: valid.filter((v) => !v).length, nullBitmap: bitmap(valid) };
}

function micros(r: () => number, rows: number, nullShare: number, zone: string | null): arrow.Vector {
  const data = BigInt64Array.from({ length: rows }, () => BigInt(Math.floor((r() - 0.3) * 2 ** 52)) * 1000n + BigInt(Math.floor(r() * 1000)));
  return arrow.makeVector(arrow.makeData({ type: new arrow.TimestampMicrosecond(zone), length: rows, ...validity(r, rows, nullShare), data }));
}

/** 128-bit two's complement, little-endian words. */
function decimalWords(values: (bigint | null)[]): Uint32Array {
  const words = new Uint32Array(values.length * 4);
  values.forEach((v, i) => {
    let x = BigInt.asUintN(128, v ?? 0n);
    for (let w = 0; w < 4; w++) { words[i * 4 + w] = Number(x & 0xffffffffn); x >>= 32n; }
  });
  return words;
}

let dir: string;
let connection: DuckDBConnection;
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'splice-test-'));
  connection = await (await DuckDBInstance.create(':memory:', { threads: '1' })).connect();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function duck(sql: string): Promise<Record<string, unknown>[]> {
  return (await connection.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
}

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

async function hyparquetRows(bytes: Uint8Array): Promise<string[]> {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const rows = await parquetReadObjects({ file, compressors, utf8: false });
  return rows.map((row) => JSON.stringify(row, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
}

/** Append `table` in random batches; the file's bytes. */
async function splice(table: arrow.Table, seed: number, rowGroupRows: number, rowGroupBytes: number): Promise<{ bytes: Uint8Array; firstBatch: arrow.Table; batchEnds: number[] }> {
  const r = random(seed ^ 0x5eed);
  const ends: number[] = [];
  for (let at = 0; at < table.numRows;) {
    at = Math.min(table.numRows, at + 1 + Math.floor(r() * Math.max(1, table.numRows / 3)));
    ends.push(at);
  }
  const firstBatch = table.slice(0, ends[0]);
  const file = new SplicedParquetFile(firstBatch, TYPES, { rowGroupRows, rowGroupBytes }, CONSTANTS);
  const parts: Uint8Array[] = [];
  let start = 0;
  for (const end of ends) {
    await file.append(table.slice(start, end));
    parts.push(...file.take());
    start = end;
  }
  parts.push(...await file.close());
  return { bytes: Buffer.concat(parts), firstBatch, batchEnds: ends };
}

const STAT_COLUMNS = 'path_in_schema, type, num_values, stats_min_value, stats_max_value, stats_null_count, stats_min, stats_max';

const CASES = [
  { seed: 1, rows: 300, rowGroupRows: 1000, nulls: 0.2, label: 'one row group' },
  { seed: 2, rows: 1500, rowGroupRows: 1000, nulls: 0.2, label: 'two row groups' },
  { seed: 3, rows: 3000, rowGroupRows: 128, nulls: 0.3, label: 'many row groups' },
  { seed: 4, rows: 9, rowGroupRows: 1, nulls: 0.5, label: 'a row group per row' },
  { seed: 5, rows: 40, rowGroupRows: 16, nulls: 1, label: 'every value NULL' },
  { seed: 6, rows: 20000, rowGroupRows: 12000, nulls: 0.05, label: 'pieces of several data pages' },
  { seed: 11, rows: 30000, rowGroupRows: 30000, nulls: 0.1, label: 'a dictionary past 1 MiB (the rest of its chunk PLAIN)' },
];

describe('spliced Parquet files', () => {
  for (const c of CASES) {
    it(`${c.label} (seed ${c.seed}): values, row groups and statistics as one writeParquet call writes them`, async () => {
      const table = randomTable(c.seed, c.rows, c.nulls);
      const { bytes, firstBatch } = await splice(table, c.seed, c.rowGroupRows, Number.MAX_SAFE_INTEGER);
      const choices = chooseEncodings(firstBatch, TYPES);
      // Both dictionary columns (through the streaming writer) and page-encoded ones are spliced.
      expect([...choices.values()]).toContain('dictionary');
      expect([...choices.values()]).toContain('delta');
      const reference = encodeTable(table, choices);
      const spliced = write(`s${c.seed}.parquet`, bytes);
      const whole = write(`r${c.seed}.parquet`, reference);

      // Values, in order: DuckDB and hyparquet.
      expect(await duck(`SELECT * FROM '${spliced}'`)).toEqual(await duck(`SELECT * FROM '${whole}'`));
      expect(await hyparquetRows(bytes)).toEqual(await hyparquetRows(reference));

      // Row groups: rowGroupRows each, the rest in the last.
      const groups = Math.ceil(c.rows / c.rowGroupRows);
      const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
      expect(meta.row_groups.map((g) => Number(g.num_rows))).toEqual(Array.from({ length: groups }, (_, g) => Math.min(c.rowGroupRows, c.rows - g * c.rowGroupRows)));
      expect(Number(meta.num_rows)).toBe(c.rows);
      // The flat dictionary columns' chunks are the splicer's own (arrow-rs adds size statistics).
      const chunkOf = (g: number, name: string) => meta.row_groups[g].columns.find((col) => col.meta_data?.path_in_schema.join('.') === name)!;
      for (const name of ['day', 'i16', 'status', 'label', 'code']) {
        if (choices.get(name) === 'dictionary') expect(chunkOf(0, name).meta_data?.size_statistics, name).toBeUndefined();
      }
      expect(['day', 'status', 'label'].filter((name) => choices.get(name) === 'dictionary')).toEqual(['day', 'status', 'label']);
      if (c.rows >= 30000) {
        // Past 1 MiB of dictionary, the rest of the chunk is PLAIN pages, as arrow-rs writes it.
        expect(choices.get('grows')).toBe('dictionary');
        const pages = chunkOf(0, 'grows').meta_data?.encoding_stats?.map((e) => `${e.page_type} ${e.encoding}`);
        expect(pages).toEqual(expect.arrayContaining(['DATA_PAGE RLE_DICTIONARY', 'DATA_PAGE PLAIN', 'DICTIONARY_PAGE PLAIN']));
      }
      // The constant columns' chunks are written by the splicer (no encoding_stats), unless the
      // run value is too long for exact statistics: then arrow-rs encodes it like any column.
      const runChunk = meta.row_groups[0].columns.find((col) => col.meta_data?.path_in_schema.join('.') === 'run')!;
      const stampChunk = meta.row_groups[0].columns.find((col) => col.meta_data?.path_in_schema.join('.') === 'stamp')!;
      expect(runChunk.meta_data?.encoding_stats === undefined).toBe(Buffer.byteLength(String(table.getChild('run')!.get(0))) <= 64);
      expect(stampChunk.meta_data?.encoding_stats).toBeUndefined();

      // Column statistics of each row group: those of one writeParquet call over its rows.
      for (let g = 0; g < groups; g++) {
        const rows = table.slice(g * c.rowGroupRows, Math.min(c.rows, (g + 1) * c.rowGroupRows));
        const one = write(`g${c.seed}-${g}.parquet`, encodeTable(rows, choices));
        const expected = await duck(`SELECT ${STAT_COLUMNS} FROM parquet_metadata('${one}') ORDER BY column_id`);
        const actual = await duck(`SELECT ${STAT_COLUMNS} FROM parquet_metadata('${spliced}') WHERE row_group_id = ${g} ORDER BY column_id`);
        expect(actual, `row group ${g}`).toEqual(expected);
        // Every column Snappy, the constant ones too (their pages are one Snappy literal each).
        const codecs = await duck(`SELECT DISTINCT compression FROM parquet_metadata('${spliced}') WHERE row_group_id = ${g}`);
        expect(codecs).toEqual([{ compression: 'SNAPPY' }]);
      }
    }, 60_000);
  }

  it('flushes a row group once its encoded bytes reach rowGroupBytes, at a batch boundary', async () => {
    const table = randomTable(7, 4000, 0.1);
    const { bytes, batchEnds } = await splice(table, 7, 1_000_000, 64 * 1024);
    const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    expect(meta.row_groups.length).toBeGreaterThan(1);
    let at = 0;
    for (const g of meta.row_groups) {
      at += Number(g.num_rows);
      expect(batchEnds).toContain(at);
    }
    expect(at).toBe(4000);
    const reference = encodeTable(table, chooseEncodings(table.slice(0, batchEnds[0]), TYPES));
    expect(await hyparquetRows(bytes)).toEqual(await hyparquetRows(reference));
  }, 60_000);

  it('writes a date dictionary past 1 MiB (262,144 values) as arrow-rs does: the rest of the chunk PLAIN, same values and statistics', async () => {
    const r = random(20261130);
    const rows = 300_000;
    const days = Int32Array.from({ length: rows }, (_, i) => (i < 1000 ? i % 7 : Math.floor(r() * 4_000_000) - 1_000_000));
    const table = new arrow.Table({
      day: arrow.makeVector(arrow.makeData({ type: new arrow.DateDay(), length: rows, ...validity(r, rows, 0.02), data: days })),
      small: arrow.makeVector(arrow.makeData({ type: new arrow.Int16(), length: rows, ...validity(r, rows, 0.5), data: Int16Array.from({ length: rows }, () => Math.floor(r() * 65536) - 32768) })),
    });
    const types = new Map<string, LakeType>([['day', { kind: 'date' }], ['small', { kind: 'int16' }]]);
    const file = new SplicedParquetFile(table.slice(0, 1000), types, { rowGroupRows: rows, rowGroupBytes: Number.MAX_SAFE_INTEGER });
    const parts: Uint8Array[] = [];
    for (let at = 0; at < rows; at += 50_000) {
      await file.append(table.slice(at, at + 50_000));
      parts.push(...file.take());
    }
    const bytes = Buffer.concat([...parts, ...await file.close()]);
    const reference = encodeTable(table, chooseEncodings(table.slice(0, 1000), types));
    const spliced = write('dates.parquet', bytes);
    const whole = write('dates-ref.parquet', reference);
    expect(await duck(`SELECT count(*) AS n, count(DISTINCT day) AS days, sum(hash(day, small)) AS h FROM '${spliced}'`)).toEqual(await duck(`SELECT count(*) AS n, count(DISTINCT day) AS days, sum(hash(day, small)) AS h FROM '${whole}'`));
    expect(await duck(`SELECT count(*) AS n FROM (SELECT * FROM '${spliced}' EXCEPT ALL SELECT * FROM '${whole}')`)).toEqual([{ n: '0' }]);
    expect(await duck(`SELECT ${STAT_COLUMNS} FROM parquet_metadata('${spliced}') ORDER BY column_id`)).toEqual(await duck(`SELECT ${STAT_COLUMNS} FROM parquet_metadata('${whole}') ORDER BY column_id`));
    const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    const pages = (name: string) => meta.row_groups[0].columns.find((c) => c.meta_data?.path_in_schema.join('.') === name)!.meta_data?.encoding_stats?.map((e) => `${e.page_type} ${e.encoding}`);
    expect(pages('day')).toEqual(expect.arrayContaining(['DATA_PAGE RLE_DICTIONARY', 'DATA_PAGE PLAIN', 'DICTIONARY_PAGE PLAIN']));
    // Every int16 fits a dictionary (65,536 values at most: 256 KiB).
    expect(pages('small')).not.toContain('DATA_PAGE PLAIN');
    expect(await hyparquetRows(bytes)).toEqual(await hyparquetRows(reference));
  }, 120_000);

  it('refuses a column declared constant whose values differ, by name', async () => {
    const table = randomTable(9, 50, 0.1);
    const file = new SplicedParquetFile(table.slice(0, 10), TYPES, { rowGroupRows: 100, rowGroupBytes: Number.MAX_SAFE_INTEGER }, CONSTANTS);
    await file.append(table.slice(0, 10));
    await expect(file.append(randomTable(10, 20, 0.1))).rejects.toThrow('Parquet splice: column run was declared constant but its values differ');
    await file.abort();
  });

  it('refuses rows whose columns differ from the file\'s, by column, instead of writing a short chunk', async () => {
    // parquet-wasm's streaming writer (the dictionary columns' writer) drops such a batch without
    // an error: the file said 20 rows while its status chunk held 10.
    const rows = (n: number, binary: boolean) => new arrow.Table({
      id: arrow.vectorFromArray(Array.from({ length: n }, (_, i) => BigInt(i)), new arrow.Int64()),
      status: binary ? arrow.vectorFromArray(Array.from({ length: n }, (_, i) => Buffer.from(['a', 'b'][i % 2])), new arrow.Binary()) : arrow.vectorFromArray(Array.from({ length: n }, (_, i) => ['a', 'b'][i % 2]), new arrow.Utf8()),
    });
    const types = new Map<string, LakeType>([['id', { kind: 'int64' }], ['status', { kind: 'string' }]]);
    const file = new SplicedParquetFile(rows(10, false), types, { rowGroupRows: 1000, rowGroupBytes: Number.MAX_SAFE_INTEGER });
    await file.append(rows(10, false));
    await expect(file.append(rows(10, true))).rejects.toThrow('Parquet splice: column 2 of the rows appended is status Binary; the file\'s is status Utf8');
    await expect(file.append(new arrow.Table({ id: rows(3, false).getChild('id')! }))).rejects.toThrow('Parquet splice: the rows appended have 1 columns (id); the file has 2 (id, status)');
    // The rows appended before are written whole.
    const bytes = Buffer.concat(await file.close());
    const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    expect(meta.row_groups[0].columns.map((c) => Number(c.meta_data?.num_values))).toEqual([10, 10]);
    expect(Number(meta.num_rows)).toBe(10);
  });

  it('writes Snappy literals that a Snappy reader decompresses, at every length-tag width', () => {
    for (const n of [0, 1, 59, 60, 61, 255, 256, 257, 65535, 65536, 65537, 70000]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
      const out = new Uint8Array(n);
      snappyUncompress(snappyLiteral(bytes), out);
      expect(Buffer.from(out).equals(Buffer.from(bytes)), `${n} bytes`).toBe(true);
    }
  });

  it('reads and writes Thrift compact structs byte for byte', () => {
    const table = randomTable(8, 100, 0.2);
    const file = encodeTable(table, chooseEncodings(table, TYPES));
    const length = new DataView(file.buffer, file.byteOffset).getInt32(file.length - 8, true);
    const footer = file.subarray(file.length - 8 - length, file.length - 8);
    const { struct, end } = readStruct(footer);
    expect(end).toBe(length);
    expect(Buffer.from(writeStruct(struct)).equals(Buffer.from(footer))).toBe(true);
  });
});
