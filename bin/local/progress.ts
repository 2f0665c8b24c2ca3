// Progress of an export, one line per table: a bar, rows so far (of the total, or of an
// estimate marked ~), rows per second and the time left. On a terminal the lines are redrawn in
// place; anywhere else (a pipe, a log file) a plain line is written now and then, so a cron log
// shows progress without a line per page. `run` and the demo share it.

/** Where the lines go: a terminal gets bars redrawn in place, anything else plain lines. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export interface ProgressOptions {
  readonly stream: ProgressStream;
  /** Off a terminal: at most one line per table this often. @default Infinity (only when done) */
  readonly lineEveryMillis?: number;
  /** Off a terminal: a line when a table reaches its total. @default true */
  readonly lineWhenDone?: boolean;
  /** The clock (tests fix it). @default Date.now */
  readonly now?: () => number;
}

interface TableProgress {
  total: number | null;
  estimated: boolean;
  rows: number;
  startedAt: number;
  lastLineAt: number;
}

const BAR_WIDTH = 24;
// Redrawing for every page of a fast table would cost more than the page.
const REDRAW_MILLIS = 100;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');

export class ProgressBars {
  private readonly tables = new Map<string, TableProgress>();
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly lineEveryMillis: number;
  private readonly lineWhenDone: boolean;
  private readonly now: () => number;
  private drawn = 0;
  private drawnAt = 0;

  constructor(options: ProgressOptions) {
    this.stream = options.stream;
    this.tty = options.stream.isTTY === true;
    this.lineEveryMillis = options.lineEveryMillis ?? Number.POSITIVE_INFINITY;
    this.lineWhenDone = options.lineWhenDone ?? true;
    this.now = options.now ?? Date.now;
  }

  /** Declare a table and how many rows it will have (`estimated`: a planner estimate, shown as ~). */
  begin(table: string, total: number | null, options: { estimated?: boolean; startedAt?: number } = {}): void {
    const at = options.startedAt ?? this.now();
    this.tables.set(table, { total, estimated: options.estimated === true, rows: 0, startedAt: at, lastLineAt: at });
    if (this.tty) this.draw(true);
  }

  /** Rows exported so far; `startedAt` begins the table's clock if it was not declared first. */
  update(table: string, rows: number, startedAt?: number): void {
    let entry = this.tables.get(table);
    if (!entry) {
      this.begin(table, null, { startedAt });
      entry = this.tables.get(table)!;
    }
    const before = entry.rows;
    entry.rows = rows;
    const reached = entry.total !== null && rows >= entry.total && before < entry.total;
    if (this.tty) {
      this.draw(reached);
      return;
    }
    const now = this.now();
    if ((reached && this.lineWhenDone) || (!reached && now - entry.lastLineAt >= this.lineEveryMillis)) {
      entry.lastLineAt = now;
      this.stream.write(`  ${this.line(table, entry)}\n`);
    }
  }

  /** The table is done with `rows` rows: its bar is full, whatever the estimate said. */
  finish(table: string, rows: number): void {
    const entry = this.tables.get(table);
    if (!entry) return;
    entry.total = rows;
    entry.estimated = false;
    entry.rows = rows;
    if (this.tty) this.draw(true);
  }

  /** Write a line above the bars (a message while they are shown), then redraw them. */
  print(text: string): void {
    if (!this.tty || this.drawn === 0) {
      this.stream.write(`${text}\n`);
      return;
    }
    this.erase();
    this.stream.write(`${text}\n`);
    this.draw(true);
  }

  /** Draw the final state (a terminal keeps the bars; nothing is redrawn after this). */
  end(): void {
    if (this.tty && this.tables.size) this.draw(true);
    this.drawn = 0;
  }

  line(table: string, entry: TableProgress = this.tables.get(table)!): string {
    const seconds = Math.max((this.now() - entry.startedAt) / 1000, 0.001);
    const rate = entry.rows / seconds;
    const label = table.length > 20 ? `${table.slice(0, 19)}…` : table.padEnd(20);
    if (entry.total === null) {
      return `${label} ${count(entry.rows).padStart(11)} rows  ${count(rate).padStart(9)} rows/s`;
    }
    // An estimate can be short of the truth: the bar then waits at 99 % and the time left is unknown.
    const over = entry.rows >= entry.total && entry.estimated;
    const done = entry.total === 0 ? 1 : Math.min(over ? 0.99 : 1, entry.rows / entry.total);
    const bar = '█'.repeat(Math.round(done * BAR_WIDTH)).padEnd(BAR_WIDTH, '░');
    const total = `${entry.estimated ? '~' : ''}${count(entry.total)}`;
    const left = done >= 1 ? 'done' : over || rate === 0 ? 'ETA ?' : `ETA ${formatDuration((entry.total - entry.rows) / rate)}`;
    return `${label} ${bar} ${String(Math.floor(done * 100)).padStart(3)}%  ${count(entry.rows).padStart(11)} / ${total} rows  ${count(rate).padStart(9)} rows/s  ${left}`;
  }

  private erase(): void {
    if (this.drawn) this.stream.write(`\x1b[${this.drawn}A${'\x1b[2K\n'.repeat(this.drawn)}\x1b[${this.drawn}A`);
    this.drawn = 0;
  }

  private draw(force: boolean): void {
    const now = this.now();
    if (!force && now - this.drawnAt < REDRAW_MILLIS) return;
    this.drawnAt = now;
    let text = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const [table, entry] of this.tables) text += `\x1b[2K  ${this.line(table, entry)}\n`;
    this.stream.write(text);
    this.drawn = this.tables.size;
  }
}
