// The chaos suite's judge. It reads the lake as a user's query engine would — DuckDB over the
// visible `year=*/month=*/day=*/*.parquet` files, not our reader — and Postgres's audit of every
// row version written, and compares them as text. It trusts nothing of the exporter's but the
// manifests' file lists and windows (what the exporter claims), which it checks against both.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TableState, type RunManifest, type Window } from '../../lambdas/core/protocol/table-state.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { valuesText, type AuditVersion } from './world.ts';

export interface LakeVersion {
  readonly id: string;
  readonly us: bigint;
  readonly values: string;
  readonly file: string;
  readonly runId: string;
}

export interface Violation {
  /** a duplicate · b invented · c lost · d re-run destroyed / current went back · e files and state · f liveness */
  readonly check: 'a' | 'b' | 'c' | 'd' | 'e' | 'f';
  readonly message: string;
}

/** A run the harness started, as it saw it: wall-clock µs around the child's whole life. */
export interface RunTimes {
  readonly runId: string;
  readonly name: string;
  readonly startUs: bigint;
  readonly endUs: bigint;
}

const DATA_FILE = /^year=\d{4}\/month=\d{2}\/day=\d{2}\/(.+)-p\d{6}(?:-c?\d+)?\.parquet$/;

export const versionKey = (id: string, us: bigint) => `${id}@${us}`;

/** `2024-03-01 00:00:00.123456+00` (the exporter's canonical cursor text) → µs since the epoch. */
export function cursorMicros(text: string): bigint {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\+00$/.exec(text);
  if (!m) throw new Error(`not a canonical cursor: ${JSON.stringify(text)}`);
  return BigInt(Date.parse(`${m[1]}T${m[2]}Z`)) * 1000n + BigInt((m[3] ?? '').padEnd(6, '0'));
}

export function inWindow(us: bigint, window: Window): boolean {
  const from = window.from === null ? null : cursorMicros(window.from);
  const above = from === null || (window.fromInclusive ? us >= from : us > from);
  return above && us <= cursorMicros(window.to);
}

export class LakeReader {
  readonly table: string;
  readonly state: TableState;
  /** Where DuckDB reads the files: the lake directory itself, or a local copy of the bucket's. */
  private readonly dir: string;
  private readonly mirrored: boolean;
  private readonly connection: Promise<DuckDBConnection>;

  /** `mirrorDir`: for a lake that is not a directory (S3), where data files are copied to be read. */
  constructor(store: ObjectStore, table: string, dir: string, mirrored: boolean) {
    this.table = table;
    this.dir = dir;
    this.mirrored = mirrored;
    this.state = new TableState(store, 'raw', table);
    this.connection = DuckDBInstance.create(':memory:').then(async (db) => {
      const connection = await db.connect();
      await connection.run("SET TimeZone = 'UTC'");
      return connection;
    });
  }

  /** Data files a query engine sees: `raw/<table>/year=…/month=…/day=…/*.parquet`. */
  async visibleFiles(): Promise<string[]> {
    const prefix = `raw/${this.table}/`;
    return (await this.state.store.list(prefix)).filter((k) => DATA_FILE.test(k.slice(prefix.length)));
  }

  static runOf(file: string): string {
    return /\/([^/]+)-p\d{6}(?:-c?\d+)?\.parquet$/.exec(file)![1];
  }

  async read(files: readonly string[]): Promise<LakeVersion[]> {
    if (files.length === 0) return [];
    if (this.mirrored) {
      await fs.rm(this.dir, { recursive: true, force: true });
      for (const file of files) {
        const object = await this.state.store.get(file);
        if (!object) throw new Error(`${file} was listed but cannot be read`);
        await fs.mkdir(path.dirname(path.join(this.dir, file)), { recursive: true });
        await fs.writeFile(path.join(this.dir, file), object.body);
      }
    }
    const list = files.map((f) => `'${path.join(this.dir, f).replaceAll("'", "''")}'`).join(', ');
    const connection = await this.connection;
    const reader = await connection.runAndReadAll(`
      SELECT CAST(id AS VARCHAR) AS id, CAST(epoch_us(updated_at) AS VARCHAR) AS us,
             CAST(grp AS VARCHAR) AS grp, payload, CAST(n AS VARCHAR) AS n, CAST(amount AS VARCHAR) AS amount,
             CAST(flag AS VARCHAR) AS flag, filename
        FROM read_parquet([${list}], filename = true)`);
    const prefix = `${this.dir}/`;
    return (reader.getRowObjectsJson() as Record<string, string | null>[]).map((r) => {
      const file = r.filename!.startsWith(prefix) ? r.filename!.slice(prefix.length) : r.filename!;
      return { id: r.id!, us: BigInt(r.us!), values: valuesText(r), file, runId: LakeReader.runOf(file) };
    });
  }

  async manifests(): Promise<RunManifest[]> {
    return this.state.manifests();
  }

  /** Every `*.tmp` or `*.lock` file anywhere in a directory lake (S3 has none). */
  async strayFiles(): Promise<string[]> {
    const out: string[] = [];
    if (this.mirrored) return out;
    const walk = async (dir: string): Promise<void> => {
      for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const full = path.join(dir, e.name);
        if (e.isDirectory()) await walk(full);
        else if (e.name.endsWith('.tmp') || e.name.endsWith('.lock')) out.push(path.relative(this.dir, full));
      }
    };
    await walk(this.dir);
    return out.sort();
  }

  close(): void {
    this.connection.then((c) => c.closeSync(), () => undefined);
  }
}

const sample = (items: readonly string[], n = 5) => `${items.slice(0, n).join('; ')}${items.length > n ? `; … (${items.length} in all)` : ''}`;

/** (a) no (pk, cursor) twice. */
export function checkDuplicates(rows: readonly LakeVersion[], where: string): Violation[] {
  const seen = new Map<string, string[]>();
  for (const r of rows) {
    const k = versionKey(r.id, r.us);
    seen.set(k, [...(seen.get(k) ?? []), r.file]);
  }
  const twice = [...seen].filter(([, files]) => files.length > 1);
  if (twice.length === 0) return [];
  const files = new Set(twice.flatMap(([, f]) => f));
  return [{ check: 'a', message: `${where}: ${twice.length} versions (pk@cursor µs) are in the lake more than once, in ${files.size} files: ${sample(twice.map(([k, f]) => `${k} in ${f.join(' + ')}`), 3)}` }];
}

/** (b) every lake version equals, in every column, a version the audit recorded. */
export function checkInvented(rows: readonly LakeVersion[], audit: ReadonlyMap<string, AuditVersion[]>, where: string): Violation[] {
  const invented = rows.filter((r) => !(audit.get(versionKey(r.id, r.us)) ?? []).some((a) => a.values === r.values));
  if (invented.length === 0) return [];
  return [{
    check: 'b',
    message: `${where}: ${invented.length} lake versions match no audited version: ${sample(invented.map((r) => {
      const known = audit.get(versionKey(r.id, r.us));
      return `${versionKey(r.id, r.us)} = ${r.values} in ${r.file}${known ? ` (audit: ${known.map((a) => a.values).join(' / ')})` : ' (no such (pk, cursor) audited)'}`;
    }))}`,
  }];
}

/** The audit indexed by (pk, cursor). */
export function indexAudit(audit: readonly AuditVersion[]): Map<string, AuditVersion[]> {
  const out = new Map<string, AuditVersion[]>();
  for (const a of audit) {
    const k = versionKey(a.id, a.us);
    out.set(k, [...(out.get(k) ?? []), a]);
  }
  return out;
}

/** Each audited version with the commit time of its row's next version (null: still current). */
export function lifetimes(audit: readonly AuditVersion[]): { version: AuditVersion; supersededUs: bigint | null }[] {
  const byId = new Map<string, AuditVersion[]>();
  for (const a of audit) byId.set(a.id, [...(byId.get(a.id) ?? []), a]);
  const out: { version: AuditVersion; supersededUs: bigint | null }[] = [];
  for (const versions of byId.values()) {
    // Row locks serialize a row's writers: commit order is version order (seq within one transaction).
    versions.sort((x, y) => (x.commitUs === y.commitUs ? x.seq - y.seq : x.commitUs < y.commitUs ? -1 : 1));
    versions.forEach((v, i) => out.push({ version: v, supersededUs: versions[i + 1]?.commitUs ?? null }));
  }
  return out;
}

/** Which steps wrote the versions, most first: a lost batch usually has one writer. */
function writersSummary(versions: readonly AuditVersion[], writerOf: (txid: string) => string): string {
  const counts = new Map<string, number>();
  for (const v of versions) counts.set(writerOf(v.txid), (counts.get(writerOf(v.txid)) ?? 0) + 1);
  return `; written by ${[...counts].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([w, n]) => `${w} ×${n}`).join(', ')}`;
}

export interface CommittedRun {
  readonly times: RunTimes;
  readonly kind: RunManifest['kind'];
  readonly window: Window;
}

/**
 * (c) none lost: a version that was committed before a committed run started and still its row's
 * current version when the run ended was what that run read. If its cursor lies in the run's
 * window it must be in the lake. For a scheduled or full run, a cursor at or below the window's
 * upper bound counts too: the run moved the watermark there, claiming everything below it, and a
 * version committed before the run with a cursor under the watermark that no run exported (a late
 * commit the window was not held back for) is lost for good.
 */
export function checkLost(
  lifetimes: readonly { version: AuditVersion; supersededUs: bigint | null }[],
  runs: readonly CommittedRun[],
  lake: ReadonlySet<string>,
  writerOf: (txid: string) => string,
): Violation[] {
  const out: Violation[] = [];
  for (const run of runs) {
    const to = cursorMicros(run.window.to);
    const lost: AuditVersion[] = [];
    let below = 0;
    for (const { version, supersededUs } of lifetimes) {
      if (version.commitUs >= run.times.startUs || (supersededUs !== null && supersededUs <= run.times.endUs)) continue;
      const inScope = inWindow(version.us, run.window) || (run.kind !== 'window' && version.us <= to);
      if (!inScope || lake.has(versionKey(version.id, version.us))) continue;
      lost.push(version);
      if (!inWindow(version.us, run.window)) below++;
    }
    if (lost.length) {
      out.push({
        check: 'c',
        message: `run ${run.times.name} (${run.times.runId}, ${run.kind}, window ${run.window.from ?? '-∞'} ${run.window.fromInclusive ? '≤' : '<'} cursor ≤ ${run.window.to}): ${lost.length} versions committed before it started and current until it ended are not in the lake${below ? ` (${below} of them below its window's lower bound, i.e. behind an earlier watermark)` : ''}: ${sample(lost.map((v) => `${versionKey(v.id, v.us)} (committed at ${v.commitUs} µs by ${writerOf(v.txid)})`))}${writersSummary(lost, writerOf)}`,
      });
    }
  }
  return out;
}
