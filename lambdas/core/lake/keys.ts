import { ConfigError } from '../errors.ts';

// Where everything lives in the lake. The Glue partition projection is generated from the same
// PARTITION_KEYS and path code that writes the files, so the two cannot drift apart.
//
//   <prefix>/<lakeTable>/year=YYYY/month=MM/day=DD/<runId>-p<page>.parquet   data (Athena reads)
//   <prefix>/_state/<lakeTable>/…                                            watermark, lease, run journals

export interface PartitionDay {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

export interface PartitionKey {
  readonly name: 'year' | 'month' | 'day';
  readonly digits: number;
}

export const PARTITION_KEYS: readonly PartitionKey[] = [
  { name: 'year', digits: 4 },
  { name: 'month', digits: 2 },
  { name: 'day', digits: 2 },
];

export const STATE_DIR = '_state';

// Letters that Unicode decomposition does not reduce to ASCII, spelled as they are usually
// transliterated (NFKD already turns é into e, ﬁ into fi, ² into 2).
const TRANSLITERATIONS: Record<string, string> = {
  ß: 'ss', æ: 'ae', œ: 'oe', ø: 'o', đ: 'd', ð: 'd', þ: 'th', ł: 'l', ı: 'i', ŋ: 'ng', ħ: 'h', ŧ: 't', ĸ: 'k', ſ: 's',
};

/**
 * Folder / Glue table name for a Postgres table name: lower case ASCII letters and digits, runs
 * of other characters → `_`. Letters keep their place: accents are dropped (`"Ärger"` → `arger`,
 * `"Straße"` → `strasse`), and a letter or digit with no ASCII spelling becomes `u` and its code
 * point in hex (`"订单"` → `u8ba2_u5355`), so no two names differ only in a lost letter.
 */
export function lakeTableName(tableName: string): string {
  const plain = tableName.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase();
  let spelled = '';
  for (const char of plain) {
    if (/[a-z0-9]/.test(char)) spelled += char;
    else if (TRANSLITERATIONS[char] !== undefined) spelled += TRANSLITERATIONS[char];
    else if (/[\p{L}\p{N}]/u.test(char)) spelled += `_u${char.codePointAt(0)!.toString(16)}_`;
    else spelled += '_';
  }
  const slug = spelled.replace(/_+/g, '_').replace(/^_+|_+$/g, '');
  if (!slug) throw new ConfigError(`table name ${JSON.stringify(tableName)} has no letters or digits to name a lake folder; set lakeName`);
  return slug;
}

function pad(value: number, digits: number): string {
  return String(value).padStart(digits, '0');
}

/** `year=2024/month=03/day=07` — or, given placeholders, the Glue location template. */
function partitionSegments(values: Record<PartitionKey['name'], string | number>): string {
  return PARTITION_KEYS.map((k) => {
    const v = values[k.name];
    return `${k.name}=${typeof v === 'number' ? pad(v, k.digits) : v}`;
  }).join('/');
}

/** Where a table's data lives; a snapshot table keeps each snapshot under its own folder. */
export function tableDataPrefix(prefix: string, lakeTable: string, snapshotRunId?: string): string {
  return snapshotRunId ? `${prefix}/${lakeTable}/snapshot=${snapshotRunId}/` : `${prefix}/${lakeTable}/`;
}

export function partitionPrefix(prefix: string, lakeTable: string, day: PartitionDay, snapshotRunId?: string): string {
  return `${tableDataPrefix(prefix, lakeTable, snapshotRunId)}${partitionSegments(day)}/`;
}

/** `snapshot`: the file belongs to a snapshot table, under its run's own folder. */
export function dataFileKey(prefix: string, lakeTable: string, day: PartitionDay, runId: string, page: number, snapshot = false): string {
  return `${partitionPrefix(prefix, lakeTable, day, snapshot ? runId : undefined)}${runId}-p${pad(page, 6)}.parquet`;
}

/** The partition year of a data file's key (`…/year=2024/…`), or null for a key outside the layout. */
export function partitionYearOf(key: string): number | null {
  const match = /\/year=(\d{4})\//.exec(key);
  return match ? Number(match[1]) : null;
}

/**
 * The years a table's projection must cover: every year already covered, every year written,
 * and through next year (so the next run's rows are visible before any widening). Never narrows.
 */
export function projectionYears(covered: { readonly from: number; readonly to: number } | null, written: readonly number[], thisYear: number): { from: number; to: number } {
  const from = Math.min(...written, covered?.from ?? thisYear, thisYear);
  const to = Math.max(...written, covered?.to ?? thisYear + 1, thisYear + 1);
  return { from, to };
}

export function tableStatePrefix(prefix: string, lakeTable: string): string {
  return `${prefix}/${STATE_DIR}/${lakeTable}/`;
}

/** UTC calendar day of a count of days since 1970-01-01. */
export function dayFromEpochDays(days: number): PartitionDay {
  const date = new Date(days * 86_400_000);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

/** Glue table parameters for partition projection over `s3://bucket/<prefix>/<lakeTable>/…`. */
export function partitionProjection(
  bucket: string,
  prefix: string,
  lakeTable: string,
  years: { readonly from: number; readonly to: number },
  snapshotRunId?: string,
): Record<string, string> {
  const ranges: Record<PartitionKey['name'], string> = {
    year: `${years.from},${years.to}`,
    month: '1,12',
    day: '1,31',
  };
  const parameters: Record<string, string> = {
    'projection.enabled': 'true',
    'storage.location.template': `s3://${bucket}/${tableDataPrefix(prefix, lakeTable, snapshotRunId)}${partitionSegments({ year: '${year}', month: '${month}', day: '${day}' })}/`,
  };
  for (const key of PARTITION_KEYS) {
    parameters[`projection.${key.name}.type`] = 'integer';
    parameters[`projection.${key.name}.range`] = ranges[key.name];
    parameters[`projection.${key.name}.digits`] = String(key.digits);
  }
  return parameters;
}
