// A `timestamp` (without time zone) or `date` cursor holds wall-clock values of some zone: what
// `now()` gives a writer whose session TimeZone is that zone. The window's bounds are instants
// (UTC), so the zone decides which wall values an instant covers. Taking a New York writer's
// wall clock for UTC would put the window's end five hours ahead of what that writer has
// committed, and a transaction committing late would land behind the watermark, lost.
//
// Postgres converts the bounds inside page queries (`bound AT TIME ZONE zone`); this converts
// texts in the exporter: the last complete day of a date cursor, and the keys of pages already
// in the lake when a re-run window is widened to whole pages.
import { ConfigError } from './errors.ts';

/** Whether `name` is a time zone this runtime knows (IANA names). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

const WALL = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(?:\+00)?$/;

export class CursorZone {
  readonly name: string;
  readonly utc: boolean;
  private readonly format: Intl.DateTimeFormat;

  constructor(name: string, where = 'cursorTimeZone') {
    try {
      this.format = new Intl.DateTimeFormat('en-US', {
        timeZone: name, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
      });
    } catch {
      throw new ConfigError(`${where}: ${JSON.stringify(name)} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)`);
    }
    this.name = name;
    this.utc = name === 'UTC';
  }

  /** Offset of the zone's wall clock from UTC at the instant `ms`. */
  private offsetMs(ms: number): number {
    const parts = Object.fromEntries(this.format.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
    const wall = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
    return wall - (ms - (((ms % 1000) + 1000) % 1000));
  }

  /** The wall-clock text, in this zone, of the instant `utcText` (canonical cursor texts). */
  wallOf(utcText: string): string {
    if (this.utc || !WALL.test(utcText)) return utcText; // ±infinity stay as they are
    const { ms, fraction } = parse(utcText);
    return text(ms + this.offsetMs(ms), fraction);
  }

  /**
   * The instant of the wall-clock text `wallText` in this zone. A time that occurs twice (clocks
   * set back) gives its earlier or later instant; one that never occurs (clocks set forward)
   * gives the instant an hour before or after: either way a window built from it only widens.
   */
  instantOf(wallText: string, prefer: 'earlier' | 'later'): string {
    if (this.utc || !WALL.test(wallText)) return wallText;
    const { ms: wall, fraction } = parse(wallText);
    // The offsets in force around that wall time: at most two (a transition within a day).
    const offsets = [...new Set([this.offsetMs(wall - 86_400_000), this.offsetMs(wall), this.offsetMs(wall + 86_400_000)])];
    const fits = offsets.map((o) => wall - o).filter((ms) => ms + this.offsetMs(ms) === wall);
    const candidates = fits.length > 0 ? fits : offsets.map((o) => wall - o);
    return text(prefer === 'earlier' ? Math.min(...candidates) : Math.max(...candidates), fraction);
  }
}

function parse(canonical: string): { ms: number; fraction: string } {
  const m = WALL.exec(canonical);
  if (!m) throw new ConfigError(`cursor value ${JSON.stringify(canonical)} is not a timestamp text this exporter wrote`);
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return { ms, fraction: (m[7] ?? '.000000').padEnd(7, '0') };
}

function text(ms: number, fraction: string): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction}+00`;
}
