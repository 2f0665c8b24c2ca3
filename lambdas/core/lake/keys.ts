import { ConfigError } from '../errors.ts';

// Where everything lives in the lake. The Glue partition projection is generated from the same
// PARTITION_KEYS and path code that writes the files, so the two cannot drift apart.
//
//   <prefix>/<lakeTable>/year=YYYY/month=MM/day=DD/<runId>-p<page>.parquet   data (Athena reads)
//   <prefix>/<lakeTable>/generation=<id>/year=…/…                            data after a compaction
//   <prefix>/_state/<lakeTable>/…                                            watermark, lease, run journals
//
// A table's partitions are days, months or years (tables[].partition.granularity): the scheme
// stops after year= or month= for the coarser ones. A compaction writes the whole table into a
// new generation folder and switches readers to it in one update (protocol/compact.ts).

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

export const GRANULARITIES = ['day', 'month', 'year'] as const;
/** How much time one partition holds. */
export type Granularity = (typeof GRANULARITIES)[number];

/** The partition keys of a granularity: year, month, day; year, month; or year. */
export function partitionKeysOf(granularity: Granularity = 'day'): readonly PartitionKey[] {
  return PARTITION_KEYS.slice(0, { year: 1, month: 2, day: 3 }[granularity]);
}

/** Whether `to` holds whole partitions of `from` (same, or coarser): a compaction can merge into it. */
export function isCoarserOrSame(from: Granularity, to: Granularity): boolean {
  return GRANULARITIES.indexOf(to) >= GRANULARITIES.indexOf(from);
}

/**
 * Where a table's files live, as recorded with its schema (`_state/<table>/schema.json`): the
 * partition granularity of its files and the generation folder a compaction wrote them to.
 * Absent fields: day partitions, directly under the table's folder (lakes before compaction).
 */
export interface DataLocation {
  readonly granularity?: Granularity;
  readonly generation?: string;
  /** Snapshot tables: the run whose snapshot the table shows (its data folder). */
  readonly snapshotRunId?: string;
}

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

/**
 * The location a committed schema records (schema.json also holds the columns): what the Glue
 * table, the local views and the next export's keys follow.
 */
export function locationOf(schema: DataLocation | null | undefined): DataLocation {
  if (!schema) return {};
  const { granularity, generation, snapshotRunId } = schema;
  return { ...(granularity ? { granularity } : {}), ...(generation ? { generation } : {}), ...(snapshotRunId ? { snapshotRunId } : {}) };
}

/** `year=2024/month=03/day=07` (or its first one or two segments) — or, given placeholders, the Glue location template. */
function partitionSegments(values: Record<PartitionKey['name'], string | number>, granularity: Granularity = 'day'): string {
  return partitionKeysOf(granularity).map((k) => {
    const v = values[k.name];
    return `${k.name}=${typeof v === 'number' ? pad(v, k.digits) : v}`;
  }).join('/');
}

/** Where a table's data lives: a snapshot under its run's folder, a compacted table under its generation's. */
export function tableDataPrefix(prefix: string, lakeTable: string, location: DataLocation = {}): string {
  if (location.snapshotRunId) return `${prefix}/${lakeTable}/snapshot=${location.snapshotRunId}/`;
  if (location.generation) return `${prefix}/${lakeTable}/generation=${location.generation}/`;
  return `${prefix}/${lakeTable}/`;
}

export function partitionPrefix(prefix: string, lakeTable: string, day: PartitionDay, location: DataLocation = {}): string {
  return `${tableDataPrefix(prefix, lakeTable, location)}${partitionSegments(day, location.granularity)}/`;
}

/** The day-of-partition part of a file name in a month or year partition (`-d07`, `-d0307`), so each day of a page keeps its own file. */
function daySuffix(day: PartitionDay, granularity: Granularity): string {
  if (granularity === 'month') return `-d${pad(day.day, 2)}`;
  if (granularity === 'year') return `-d${pad(day.month, 2)}${pad(day.day, 2)}`;
  return '';
}

/**
 * `snapshot`: the file belongs to a snapshot table, under its run's own folder. `location`: the
 * table's live granularity and generation (protocol/compact.ts liveDataLocation). A file of a
 * month or year partition names its first day, so a writer that still splits a page by day
 * gives each day its own key.
 */
export function dataFileKey(prefix: string, lakeTable: string, day: PartitionDay, runId: string, page: number, snapshot = false, location: DataLocation = {}): string {
  const where: DataLocation = snapshot ? { snapshotRunId: runId, granularity: location.granularity } : { granularity: location.granularity, generation: location.generation };
  return `${partitionPrefix(prefix, lakeTable, day, where)}${runId}-p${pad(page, 6)}${daySuffix(day, location.granularity ?? 'day')}.parquet`;
}

/** The partition a day falls in: the day itself, or the first day of its month or year. */
export function partitionOf(day: PartitionDay, granularity: Granularity = 'day'): PartitionDay {
  if (granularity === 'year') return { year: day.year, month: 1, day: 1 };
  if (granularity === 'month') return { year: day.year, month: day.month, day: 1 };
  return day;
}

/**
 * The epoch day (days since 1970-01-01) of the first day of the partition `epochDay` falls in:
 * what a writer groups a page's rows by, so a month or year partition gets one file, not one a day.
 */
export function partitionStartDay(epochDay: number, granularity: Granularity = 'day'): number {
  if (granularity === 'day') return epochDay;
  const { year, month } = dayFromEpochDays(epochDay);
  return epochDaysOf({ year, month: granularity === 'month' ? month : 1, day: 1 });
}

/** The partition a data file's key lies in (year, month, day; missing segments as 1), or null for a key outside the layout. */
export function partitionOfKey(key: string): PartitionDay | null {
  const match = /\/year=(\d{4})\/(?:month=(\d{2})\/(?:day=(\d{2})\/)?)?[^/]+$/.exec(key);
  if (!match) return null;
  return { year: Number(match[1]), month: Number(match[2] ?? 1), day: Number(match[3] ?? 1) };
}

/** The folder of a data file (`…/year=2024/month=03/`), its partition's prefix. */
export function folderOfKey(key: string): string {
  return key.slice(0, key.lastIndexOf('/') + 1);
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
export function projectionYears(covered: { readonly from: number; readonly to: number } | null, written: Iterable<number>, thisYear: number): { from: number; to: number } {
  // A loop, not Math.min(...written): a run may publish more files (one year each) than a call takes arguments.
  let from = Math.min(covered?.from ?? thisYear, thisYear);
  let to = Math.max(covered?.to ?? thisYear + 1, thisYear + 1);
  for (const year of written) {
    if (year < from) from = year;
    if (year > to) to = year;
  }
  return { from, to };
}

export function tableStatePrefix(prefix: string, lakeTable: string): string {
  return `${prefix}/${STATE_DIR}/${lakeTable}/`;
}

/**
 * Proleptic Gregorian year, month, day of a count of days since 1970-01-01, by integer arithmetic
 * (H. Hinnant's civil_from_days). Not JS Date: its range ends in 275760 (Postgres dates reach
 * 5874897), and Date.UTC reads years 0–99 as 1900–1999.
 */
export function dayFromEpochDays(days: number): PartitionDay {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

/** Days since 1970-01-01 of a proleptic Gregorian day (days_from_civil: dayFromEpochDays's inverse). */
export function epochDaysOf({ year, month, day }: PartitionDay): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * ((month + 9) % 12) + 2) / 5) + day - 1;
  return era * 146097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719468;
}

/** Glue table parameters for partition projection over `s3://bucket/<prefix>/<lakeTable>/…`. */
export function partitionProjection(
  bucket: string,
  prefix: string,
  lakeTable: string,
  years: { readonly from: number; readonly to: number },
  location: DataLocation = {},
): Record<string, string> {
  const ranges: Record<PartitionKey['name'], string> = {
    year: `${years.from},${years.to}`,
    month: '1,12',
    day: '1,31',
  };
  const parameters: Record<string, string> = {
    'projection.enabled': 'true',
    'storage.location.template': `s3://${bucket}/${tableDataPrefix(prefix, lakeTable, location)}${partitionSegments({ year: '${year}', month: '${month}', day: '${day}' }, location.granularity)}/`,
  };
  for (const key of partitionKeysOf(location.granularity)) {
    parameters[`projection.${key.name}.type`] = 'integer';
    parameters[`projection.${key.name}.range`] = ranges[key.name];
    parameters[`projection.${key.name}.digits`] = String(key.digits);
  }
  return parameters;
}
