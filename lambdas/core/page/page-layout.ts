// What the main thread needs to know about a page without decoding it: the layout, the
// metadata columns, the shape of an encoded page and the keyset text of a row. Kept apart from
// page.ts so that only the encoder's thread loads apache-arrow and parquet-wasm (~40 MB of RSS).
import { fieldOffset } from './copy-binary.ts';
import type { Granularity, PartitionDay } from '../lake/keys.ts';
import type { ColumnPlan } from '../source/type-map.ts';
import { quoteIdent } from '../identifiers.ts';
import { cursorText, fieldText } from './values.ts';

/** Export metadata columns added to every file (DESIGN.md "Types"). */
export const META_EXPORTED_AT = '_lake_exported_at';
export const META_RUN_ID = '_lake_run_id';
/**
 * True on a tombstone: the version that says its key was deleted from Postgres (README
 * "Deletes"). False on every exported row; files written before the column existed read NULL.
 */
export const META_DELETED = '_lake_deleted';
export const META_COLUMNS: readonly { name: string; glueType: string }[] = [
  { name: META_EXPORTED_AT, glueType: 'timestamp' },
  { name: META_RUN_ID, glueType: 'string' },
  { name: META_DELETED, glueType: 'boolean' },
];

/** Everything about a table's shape that decoding needs; derived once per invocation. */
export interface PageLayout {
  readonly table: string;
  readonly columns: readonly ColumnPlan[];
  /** Field indexes of the keyset: the cursor (when `cursorFirst`), then the primary key columns. */
  readonly keyFields: readonly number[];
  /** False for snapshot tables, whose keyset is the primary key alone. */
  readonly cursorFirst: boolean;
  /** Field whose UTC date partitions the rows; −1: the run's own date (snapshot tables). */
  readonly partitionField: number;
  readonly years: { readonly from: number; readonly to: number };
  /** Month or year partitions (lake/keys.ts): a partition's rows are grouped by its first day, one file for all its days. */
  readonly granularity?: Granularity;
}

/** Bytes of one of a chunk's files, in the order the file is written. */
export interface FilePart {
  /** The file's number within its chunk. */
  readonly file: number;
  readonly day: PartitionDay;
  readonly bytes: Uint8Array;
}

/** A file of a chunk, complete. */
export interface ChunkFile {
  readonly file: number;
  readonly day: PartitionDay;
  readonly rows: number;
  readonly bytes: number;
}

/** How a chunk's files are written (lake.rowGroupMB, lake.targetFileMB). */
export interface ChunkSettings {
  readonly rowGroupRows: number;
  readonly rowGroupBytes: number;
  /** A chunk ends once one of its files has this many bytes. */
  readonly targetFileBytes: number;
}

/** What appending a page to a chunk gave. */
export interface AppendedPage {
  readonly rows: number;
  /** Bytes of the chunk's files produced since the last page (row groups flushed; at the end, the rest). */
  readonly parts: FilePart[];
  /** Files whose every byte is now in `parts` (finished early, or at the chunk's end): their uploads can complete. */
  readonly finished: readonly number[];
  /** Set when the chunk ended with this page: its files, complete once `parts` are written. */
  readonly closed: ChunkFile[] | null;
  /** Text of the first and last row's (cursor, pk…), for the journal and the next page. */
  readonly firstKey: string[];
  readonly lastKey: string[];
}

export interface RunStamp {
  readonly runId: string;
  /** µs since 1970 of the run's start, as decimal text (the same in every file of the run). */
  readonly exportedAtMicros: string;
}

/** (cursor, pk…) of a row as text; the cursor in its canonical form. */
export function rowKeyText(layout: PageLayout, buf: Buffer, rowStart: number): string[] {
  return layout.keyFields.map((f, i) => {
    const pos = fieldOffset(buf, rowStart, f);
    const len = buf.readInt32BE(pos);
    if (len < 0) return 'NULL';
    const type = layout.columns[f].lakeType;
    return i === 0 && layout.cursorFirst ? cursorText(type, buf, pos + 4) : fieldText(type, buf, pos + 4, len);
  });
}

/** A column name as messages show it: plain names as they are, others quoted (`"Order Id"`). */
export function showColumn(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name);
}

/** `table.column` for messages: `public.orders.amount`, `public."Order Items"."unit price"`. */
export function columnWhere(table: string, name: string): string {
  return `${table}.${showColumn(name)}`;
}

/** A key value as messages show it: JSON-quoted when it could be misread (separators, blanks, control characters). */
function showKeyValue(value: string): string {
  return value === '' || /[,=()"\\\p{Cc}]|^\s|\s$/u.test(value) ? JSON.stringify(value) : value;
}

/** The row's key for messages: `updated_at=2024-01-01 00:00:00.000000+00, id=2`; hostile names and values quoted. */
export function describeKey(layout: PageLayout, key: string[]): string {
  return layout.keyFields.map((f, i) => `${showColumn(layout.columns[f].name)}=${showKeyValue(key[i])}`).join(', ');
}
