// One growing Parquet file whose big row groups are spliced from small encodes. parquet-wasm's
// streaming writer keeps the open row group encoded in wasm memory, copies it twice when it is
// flushed (a 50 MiB row group took 182 MiB of wasm memory, which never shrinks), and is slower
// per row than one writeParquet call. Here each page's rows are encoded by one writeParquet call
// into a small file of their own, and the row group is assembled from those files' column
// chunks: a column chunk may hold any number of data pages, so the pages of many small files,
// laid end to end, are one column chunk. Only the footer is written here (Thrift, thrift.ts):
// offsets rebased, sizes and value counts summed, statistics merged by the column's sort order.
//
// A column chunk has at most one dictionary page, so pages of dictionary-encoded columns cannot
// be laid end to end: a flat one (dates, small integers, strings, binaries) has its whole chunk
// written here, interned in JS as its values arrive (dictionary-chunk.ts); a list one goes
// through one parquet-wasm streaming writer per row group, whose file gives its chunk. Columns
// that hold one value in every row (the run's id and export time) are not encoded at all:
// their chunk is a dictionary of that value and pages of zero-width indices (parquet-chunks.ts).
import type * as arrow from 'apache-arrow';
import { ExportError } from '../errors.ts';
import type { LakeType } from '../source/type-map.ts';
import { ParquetStream, chooseEncodings, encodeTable, type ColumnEncoding, type WriterSettings } from './parquet.ts';
import { T, getInt, getList, getStruct, i64, listValue, readStruct, structValue, writeStruct, type ThriftStruct, type ThriftValue } from './thrift.ts';
import { DictionaryChunk, dictionaryPhysical } from './dictionary-chunk.ts';
import { CHUNK, FILE, META, ROW_GROUP, chunkStart, concat, constantChunk, constantOf, holdsConstant, pathOf, spliceColumn, type ChunkPiece, type Constant } from './parquet-chunks.ts';

const MAGIC = 'PAR1';

/** PAR1 in memory of its own (never Node's shared pool: output buffers may move to another thread). */
function magic(): Uint8Array {
  return new Uint8Array([0x50, 0x41, 0x52, 0x31]);
}

/** The footer of a complete Parquet file. */
export function readFooter(bytes: Uint8Array): ThriftStruct {
  const n = bytes.length;
  if (n < 12 || Buffer.from(bytes.buffer, bytes.byteOffset + n - 4, 4).toString('latin1') !== MAGIC) throw new ExportError('Parquet file has no PAR1 trailer');
  const length = new DataView(bytes.buffer, bytes.byteOffset + n - 8, 4).getInt32(0, true);
  return readStruct(bytes, n - 8 - length).struct;
}

/** Column chunks of a file's row groups, by column path. */
function chunksOf(bytes: Uint8Array, footer: ThriftStruct): Map<string, ChunkPiece[]> {
  const out = new Map<string, ChunkPiece[]>();
  for (const group of getList(footer, FILE.rowGroups)) {
    if (group.type !== T.STRUCT) continue;
    for (const chunk of getList(group.fields, ROW_GROUP.columns)) {
      const meta = chunk.type === T.STRUCT ? getStruct(chunk.fields, CHUNK.metaData) : undefined;
      if (!meta) throw new ExportError('Parquet footer: a column chunk has no metadata');
      const key = pathOf(meta);
      const start = chunkStart(meta);
      const length = Number(getInt(meta, META.compressed) ?? 0n);
      const list = out.get(key) ?? [];
      list.push({ bytes: bytes.subarray(start, start + length), meta });
      out.set(key, list);
    }
  }
  return out;
}

// ---------------------------------------------------------------- the file

/**
 * A Parquet file grown table by table, its row groups flushed as they fill (`rowGroupRows`
 * rows, or `rowGroupBytes` of encoded column chunks, checked after each table): the same
 * interface as ParquetStream, with memory bounded by one row group's encoded bytes.
 */
export class SplicedParquetFile {
  private readonly settings: WriterSettings;
  private readonly types: ReadonlyMap<string, LakeType>;
  private readonly choices: ReadonlyMap<string, ColumnEncoding>;
  /**
   * Columns encoded page by page (no dictionary); flat dictionary ones, whose chunks are written
   * here (dictionary-chunk.ts), with their Arrow type and nullability; and the other dictionary
   * ones (lists), through parquet-wasm's streaming writer. Each in schema order.
   */
  private readonly pageColumns: string[];
  private readonly ownDictionaries: (readonly [string, arrow.DataType, boolean])[];
  private readonly dictionaryColumns: string[];
  /** The footer of the first row, encoded with every column: schema, key-values, column order. */
  private readonly template: ThriftStruct;
  /** Leaf column paths in file order. */
  private readonly leaves: string[];
  /** Columns whose every value is the same (the run's export columns), by leaf path; their chunks are written here. */
  private readonly constants = new Map<string, Constant>();
  /** The template's metadata of each leaf column. */
  private readonly leafMeta = new Map<string, ThriftStruct>();
  /** Each column's Arrow type, as the first table has it: every table appended must match. */
  private readonly columnTypes: readonly (readonly [string, string])[];
  /** The open row group: its page files' chunks, rows and encoded bytes, and the dictionary columns' writer. */
  private pieces: Map<string, ChunkPiece[]> = new Map();
  private openRows = 0;
  private openBytes = 0;
  private dictionary: ParquetStream | null = null;
  /** The open row group's chunks of the flat dictionary columns, by leaf path. */
  private dictionaryChunks = new Map<string, DictionaryChunk>();
  private readonly rowGroups: ThriftValue[] = [];
  private readonly output: Uint8Array[] = [];
  private written = 0;
  private rows = 0;

  /** `constants`: columns the caller fills with one value in every row (checked on each append). */
  constructor(first: arrow.Table, types: ReadonlyMap<string, LakeType>, settings: WriterSettings, constants: readonly string[] = []) {
    this.settings = settings;
    this.types = types;
    this.choices = chooseEncodings(first, types);
    for (const name of constants) {
      const constant = constantOf(first, name);
      if (constant) this.constants.set(name, constant);
    }
    const names = first.schema.fields.map((f) => f.name).filter((n) => !this.constants.has(n));
    this.pageColumns = names.filter((n) => this.choices.get(n) !== 'dictionary');
    const dictionaries = first.schema.fields.filter((f) => names.includes(f.name) && this.choices.get(f.name) === 'dictionary');
    this.ownDictionaries = dictionaries.filter((f) => dictionaryPhysical(f.type) !== null).map((f) => [f.name, f.type, f.nullable] as const);
    this.dictionaryColumns = dictionaries.filter((f) => dictionaryPhysical(f.type) === null).map((f) => f.name);
    this.template = readFooter(encodeTable(first.slice(0, 1), this.choices));
    const [group] = getList(this.template, FILE.rowGroups);
    for (const c of group?.type === T.STRUCT ? getList(group.fields, ROW_GROUP.columns) : []) {
      const meta = c.type === T.STRUCT ? getStruct(c.fields, CHUNK.metaData) : undefined;
      if (meta) this.leafMeta.set(pathOf(meta), meta);
    }
    this.leaves = [...this.leafMeta.keys()];
    this.columnTypes = first.schema.fields.map((f) => [f.name, String(f.type)] as const);
  }

  /** Bytes of the file so far (flushed row groups), taken or not. */
  get bytes(): number {
    return this.written;
  }

  /** Append a table's rows; a row group that reaches its limit is flushed. */
  async append(table: arrow.Table): Promise<void> {
    let at = 0;
    while (at < table.numRows) {
      const n = Math.min(table.numRows - at, this.settings.rowGroupRows - this.openRows);
      const part = at === 0 && n === table.numRows ? table : table.slice(at, at + n);
      await this.appendToRowGroup(part);
      at += n;
      if (this.openRows >= this.settings.rowGroupRows || this.openBytes >= this.settings.rowGroupBytes) await this.flushRowGroup();
    }
  }

  private async appendToRowGroup(table: arrow.Table): Promise<void> {
    // parquet-wasm's streaming writer drops a batch whose schema differs from its first one
    // without an error (its write result is discarded): the dictionary columns' chunk would be
    // short of rows. Every table must have the file's columns and types.
    const fields = table.schema.fields;
    if (fields.length !== this.columnTypes.length) {
      throw new ExportError(`Parquet splice: the rows appended have ${fields.length} columns (${fields.map((f) => f.name).join(', ')}); the file has ${this.columnTypes.length} (${this.columnTypes.map(([name]) => name).join(', ')})`);
    }
    this.columnTypes.forEach(([name, type], i) => {
      const got = `${fields[i].name} ${String(fields[i].type)}`;
      if (got !== `${name} ${type}`) throw new ExportError(`Parquet splice: column ${i + 1} of the rows appended is ${got}; the file's is ${name} ${type}`);
    });
    for (const constant of this.constants.values()) {
      if (!holdsConstant(table, constant)) throw new ExportError(`Parquet splice: column ${constant.name} was declared constant but its values differ`);
    }
    if (this.pageColumns.length > 0) {
      const bytes = encodeTable(table.select(this.pageColumns), this.choices);
      for (const [path, chunks] of chunksOf(bytes, readFooter(bytes))) {
        const list = this.pieces.get(path) ?? [];
        list.push(...chunks);
        this.pieces.set(path, list);
        for (const c of chunks) this.openBytes += c.bytes.length;
      }
    }
    for (const [name, type, nullable] of this.ownDictionaries) {
      let chunk = this.dictionaryChunks.get(name);
      if (!chunk) this.dictionaryChunks.set(name, chunk = new DictionaryChunk(name, type, nullable));
      const before = chunk.bytes;
      for (const data of table.getChild(name)!.data) chunk.add(data);
      this.openBytes += chunk.bytes - before;
    }
    if (this.dictionaryColumns.length > 0) {
      const columns = table.select(this.dictionaryColumns);
      // One row group per file: the writer never flushes on its own.
      this.dictionary ??= new ParquetStream(columns, this.types, { rowGroupRows: this.settings.rowGroupRows, rowGroupBytes: Number.MAX_SAFE_INTEGER }, this.choices);
      await this.dictionary.append(columns);
    }
    this.openRows += table.numRows;
  }

  private async flushRowGroup(): Promise<void> {
    if (this.openRows === 0) return;
    if (this.dictionary) {
      const parts = await this.dictionary.close();
      this.dictionary = null;
      const bytes = concat(parts);
      const rows = getInt(readFooter(bytes), FILE.numRows);
      if (rows !== BigInt(this.openRows)) throw new ExportError(`Parquet splice: the dictionary columns' writer wrote ${rows} rows of row group ${this.rowGroups.length}, which has ${this.openRows}`);
      for (const [path, chunks] of chunksOf(bytes, readFooter(bytes))) this.pieces.set(path, chunks);
    }
    if (this.written === 0) this.emit(magic());
    const start = this.written;
    const columns: ThriftValue[] = [];
    let uncompressed = 0n;
    for (const leaf of this.leaves) {
      const constant = this.constants.get(leaf);
      if (constant) {
        const { bytes, chunk } = constantChunk(this.leafMeta.get(leaf)!, constant, this.openRows, this.written);
        columns.push(chunk);
        for (const b of bytes) {
          this.emit(b);
          uncompressed += BigInt(b.length);
        }
        continue;
      }
      const dictionary = this.dictionaryChunks.get(leaf);
      if (dictionary) {
        const { bytes, chunk, rows, uncompressed: size } = dictionary.finish(this.leafMeta.get(leaf)!, this.written);
        if (rows !== this.openRows) throw new ExportError(`Parquet splice: column ${leaf} has ${rows} values in row group ${this.rowGroups.length}, which has ${this.openRows} rows`);
        columns.push(chunk);
        for (const b of bytes) this.emit(b);
        uncompressed += BigInt(size);
        continue;
      }
      const pieces = this.pieces.get(leaf);
      if (!pieces?.length) throw new ExportError(`Parquet splice: column ${leaf} has no data in row group ${this.rowGroups.length}`);
      columns.push(spliceColumn(pieces, this.written));
      for (const p of pieces) {
        this.emit(p.bytes);
        uncompressed += getInt(p.meta, META.uncompressed) ?? 0n;
      }
    }
    this.rowGroups.push(structValue(new Map<number, ThriftValue>([
      [ROW_GROUP.columns, listValue(T.STRUCT, columns)],
      [ROW_GROUP.totalByteSize, i64(uncompressed)],
      [ROW_GROUP.numRows, i64(this.openRows)],
      [ROW_GROUP.fileOffset, i64(start)],
      [ROW_GROUP.totalCompressedSize, i64(this.written - start)],
      // The ordinal is an i16: a file of more row groups (lake.rowGroupRows set very low) goes without.
      ...(this.rowGroups.length <= 0x7fff ? [[ROW_GROUP.ordinal, { type: T.I16, value: this.rowGroups.length }] as [number, ThriftValue]] : []),
    ])));
    this.rows += this.openRows;
    this.pieces = new Map();
    this.dictionaryChunks = new Map();
    this.openRows = 0;
    this.openBytes = 0;
  }

  private emit(bytes: Uint8Array): void {
    this.output.push(bytes);
    this.written += bytes.length;
  }

  /** The file's bytes produced since the last take, in order. */
  take(): Uint8Array[] {
    return this.output.splice(0);
  }

  /** Flush the open row group and write the footer; resolves with the bytes not yet taken. */
  async close(): Promise<Uint8Array[]> {
    await this.flushRowGroup();
    const footer: ThriftStruct = new Map(this.template);
    footer.set(FILE.numRows, i64(this.rows));
    footer.set(FILE.rowGroups, listValue(T.STRUCT, this.rowGroups));
    const encoded = writeStruct(footer);
    const tail = new Uint8Array(encoded.length + 8);
    tail.set(encoded);
    new DataView(tail.buffer).setInt32(encoded.length, encoded.length, true);
    tail.set(magic(), encoded.length + 4);
    this.emit(tail);
    return this.take();
  }

  /** Drop the file (its open row group's writer included). */
  async abort(): Promise<void> {
    const open = this.dictionary;
    this.dictionary = null;
    this.pieces = new Map();
    this.dictionaryChunks = new Map();
    await open?.close().catch(() => undefined);
  }
}
