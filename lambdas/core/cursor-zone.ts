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

/**
 * Whether `name` is an IANA zone name this runtime knows. Offsets ('+05:00', '-0800') are
 * refused: Intl reads them as ISO offsets, Postgres as POSIX ones, with the opposite sign.
 */
export function isTimeZone(name: string): boolean {
  if (!/^[A-Za-z]/.test(name)) return false;
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
        timeZone: name, hourCycle: 'h23', era: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
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
    // Years before 1 come as "1 BC" = year 0, "2 BC" = −1 …
    const year = parts.era === 'BC' || parts.era === 'B' ? 1 - Number(parts.year) : Number(parts.year);
    const wall = utcMs(year, Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
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
    const candidates = this.instantsAt(wall);
    return text(prefer === 'earlier' ? Math.min(...candidates) : Math.max(...candidates), fraction);
  }

  /**
   * `utcText`, or — when its wall-clock time will come round again (the first pass of the hour
   * repeated when clocks go back) — the instant just before that repeated hour began. A window
   * ending inside the first pass would leave the second pass's rows, whose wall times are not
   * above the watermark, behind it.
   */
  beforeRepeat(utcText: string): string {
    if (this.utc || !WALL.test(utcText)) return utcText;
    const { ms } = parse(utcText); // whole seconds
    const later = Math.max(...this.instantsAt(ms + this.offsetMs(ms)));
    if (later <= ms) return utcText;
    // The transition lies between the two passes; find it to the millisecond.
    let lo = ms;
    let hi = later;
    const before = this.offsetMs(lo);
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.offsetMs(mid) === before) lo = mid;
      else hi = mid;
    }
    const repeatStart = hi - (before - this.offsetMs(hi)); // first pass of the repeated wall times
    return text(repeatStart - 1000, '.999999');
  }

  /**
   * The instants (ms) at which the wall clock shows `wall` (ms, whole seconds): two in an hour
   * the clocks repeat; none in one they skip, and then the instants an hour either side.
   */
  private instantsAt(wall: number): number[] {
    // The offsets in force around that wall time: at most two (a transition within a day).
    const offsets = [...new Set([this.offsetMs(wall - 86_400_000), this.offsetMs(wall), this.offsetMs(wall + 86_400_000)])];
    const fits = offsets.map((o) => wall - o).filter((ms) => ms + this.offsetMs(ms) === wall);
    return fits.length > 0 ? fits : offsets.map((o) => wall - o);
  }
}

function parse(canonical: string): { ms: number; fraction: string } {
  const m = WALL.exec(canonical);
  if (!m) throw new ConfigError(`cursor value ${JSON.stringify(canonical)} is not a timestamp text this exporter wrote`);
  return { ms: utcMs(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])), fraction: (m[7] ?? '.000000').padEnd(7, '0') };
}

/** Date.UTC without its two-digit-year rule (years 0–99 would be read as 1900–1999). */
function utcMs(year: number, month: number, day: number, hour: number, minute: number, second: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}

function text(ms: number, fraction: string): string {
  const date = new Date(ms);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}${fraction}+00`;
}
