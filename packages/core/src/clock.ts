/** Time source (token `IClock`), so tests can pin time. Docker prints times as RFC 3339 with nanoseconds. */

export interface Clock {
  /** Unix time in nanoseconds. */
  nowNano(): bigint;
}

const hrBase = process.hrtime.bigint();
const wallBase = BigInt(Date.now()) * 1_000_000n;

/** Wall clock with nanosecond digits (monotonic offset from a wall-clock base). */
export class SystemClock implements Clock {
  nowNano(): bigint {
    return wallBase + (process.hrtime.bigint() - hrBase);
  }
}

/** The last second formatted (YYYY-MM-DDTHH:MM:SS): the hook interceptor stamps every tap call, many per second (issue 18). */
let lastSecond: bigint | undefined;
let lastBase = '';

/** Go's time.RFC3339Nano in UTC: trailing zeros of the fraction trimmed, "Z" suffix. */
export function formatRfc3339Nano(unixNano: bigint): string {
  let nanos = unixNano % 1_000_000_000n;
  if (nanos < 0n) nanos += 1_000_000_000n;
  const second = (unixNano - nanos) / 1_000_000_000n;
  if (second !== lastSecond) {
    lastBase = new Date(Number(second) * 1000).toISOString().slice(0, 19);
    lastSecond = second;
  }
  const base = lastBase;
  if (nanos === 0n) return `${base}Z`;
  const frac = nanos.toString().padStart(9, '0').replace(/0+$/, '');
  return `${base}.${frac}Z`;
}

/** Parse an RFC 3339 time (any fraction length, Z or offset) into unix nanoseconds; null when invalid. */
export function parseRfc3339Nano(s: string): bigint | null {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(s);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return null;
  const frac = BigInt((m[2] ?? '').padEnd(9, '0') || '0');
  return BigInt(ms) * 1_000_000n + frac;
}

/** Normalise a time from a backend to RFC3339Nano UTC; falls back to `fallback` when unparsable. */
export function normaliseTime(s: string | undefined, fallback: string): string {
  if (!s) return fallback;
  const n = parseRfc3339Nano(s);
  return n === null ? fallback : formatRfc3339Nano(n);
}

