// Times: the API writes RFC 3339 with microseconds; JavaScript dates keep milliseconds. Ordering
// (alarm `updated_at`) needs the microseconds, so they are parsed here.

const RFC3339 =
  /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$/;

/** Microseconds since the Unix epoch, or NaN when `text` is not RFC 3339. */
export function parseMicros(text: string): number {
  const m = RFC3339.exec(text);
  if (!m) return Number.NaN;
  const base = Date.parse(`${m[1] ?? ''}${m[3] === 'z' ? 'Z' : (m[3] ?? 'Z')}`);
  if (Number.isNaN(base)) return Number.NaN;
  const fraction = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
  return base * 1000 + Number(fraction);
}

/** Milliseconds since the Unix epoch (NaN when unparsable). */
export function parseMillis(text: string): number {
  const micros = parseMicros(text);
  return Number.isNaN(micros) ? Number.NaN : Math.floor(micros / 1000);
}

/** RFC 3339 in UTC with milliseconds, as the API accepts in `from`/`to`. */
export function toIso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Orders two RFC 3339 times: negative when `a` is earlier. Unparsable times sort first. */
export function compareTimes(a: string, b: string): number {
  const x = parseMicros(a);
  const y = parseMicros(b);
  if (Number.isNaN(x) && Number.isNaN(y)) return 0;
  if (Number.isNaN(x)) return -1;
  if (Number.isNaN(y)) return 1;
  return x - y;
}

/**
 * The browser's clock may be off: `serverNow` corrects it with the offset measured from the
 * live `hello.server_time`.
 */
export class Clock {
  private offsetMs = 0;

  constructor(private readonly local: () => number = () => Date.now()) {}

  /** Records the server's time as seen now. */
  sync(serverTime: string): void {
    const server = parseMillis(serverTime);
    if (!Number.isNaN(server)) this.offsetMs = server - this.local();
  }

  now(): number {
    return this.local() + this.offsetMs;
  }

  offset(): number {
    return this.offsetMs;
  }
}
