/**
 * Timestamps of Docker's json-file logs: RFC 3339 with nanoseconds, in UTC ("Z"), trailing
 * zeros of the fraction trimmed (Go's time.RFC3339Nano). Compared as bigint nanoseconds so
 * that since/until keep the full precision JS Dates lose.
 */
import { parseDockerTime } from '../docker-filters.js';

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})$/;

/** The last whole second parsed in json-file's own form ("YYYY-MM-DDTHH:MM:SS"), in ns. */
let lastSecond = '';
let lastSecondNs = 0n;

/** The nanoseconds of a ".fraction" of 1-9 digits at [from, to), as a Number; -1 if not digits. */
function fractionNs(ts: string, from: number, to: number): number {
  const digits = to - from;
  if (digits < 1 || digits > 9) return -1;
  let v = 0;
  for (let i = from; i < to; i++) {
    const c = ts.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v * 10 ** (9 - digits);
}

/** Nanoseconds since the epoch of an RFC 3339 timestamp (any offset); throws on bad input. */
export function parseLogTime(ts: string): bigint {
  // Fast path for a log's consecutive entries: UTC times of the same second as the last one
  // parsed share its value and differ only in the fraction.
  const n = ts.length;
  if (lastSecond !== '' && n >= 20 && ts.charCodeAt(n - 1) === 90 /* Z */ && ts.startsWith(lastSecond)) {
    if (n === 20) return lastSecondNs;
    const frac = ts.charCodeAt(19) === 46 /* . */ ? fractionNs(ts, 20, n - 1) : -1;
    if (frac >= 0) return lastSecondNs + BigInt(frac);
  }
  const m = RFC3339.exec(ts.trim());
  if (!m) throw new TypeError(`invalid RFC 3339 timestamp: ${JSON.stringify(ts)}`);
  const [, y, mo, d, h, mi, s, frac = '', off] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  let offsetMin = 0;
  if (off !== 'Z' && off !== 'z') {
    const sign = off.startsWith('-') ? -1 : 1;
    const digits = off.slice(1).replace(':', '');
    offsetMin = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4)));
  }
  const nanos = BigInt(Number(frac.padEnd(9, '0') || '0'));
  const second = (BigInt(ms) - BigInt(offsetMin) * 60_000n) * 1_000_000n;
  if (off === 'Z' && ts.length >= 20 && ts[10] === 'T') {
    lastSecond = ts.slice(0, 19);
    lastSecondNs = second;
  }
  return second + nanos;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/**
 * Format nanoseconds since the epoch as RFC 3339 in UTC. `fixed` keeps all nine fraction
 * digits (Docker's RFC3339NanoFixed, used for `docker logs --timestamps`); otherwise
 * trailing zeros are trimmed as Go's RFC3339Nano does (json-file's `time`).
 */
export function formatLogTime(ns: bigint, fixed = false): string {
  let secs = ns / 1_000_000_000n;
  let frac = ns % 1_000_000_000n;
  if (frac < 0n) {
    frac += 1_000_000_000n;
    secs -= 1n;
  }
  const d = new Date(Number(secs) * 1000);
  const base =
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  let f = frac.toString().padStart(9, '0');
  if (!fixed) f = f.replace(/0+$/, '');
  return f ? `${base}.${f}Z` : `${base}Z`;
}

/** Normalise any RFC 3339 timestamp (e.g. conmon's `+00:00`) to json-file's UTC form. */
export function toJsonLogTime(ts: string): string {
  return formatLogTime(parseLogTime(ts));
}

/** Now, as nanoseconds since the epoch (the clock's millisecond precision). */
export function nowNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/**
 * A since/until bound: nanoseconds, a number of UNIX seconds, a Date, or a string in any of
 * Docker's timestamp forms (parseDockerTime: "1700000000.123456789", RFC 3339, "10m" before
 * now). Returns nanoseconds.
 */
export function toNanos(v: number | string | Date | bigint): bigint {
  if (typeof v === 'bigint') return v;
  if (v instanceof Date) return BigInt(v.getTime()) * 1_000_000n;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`invalid time: ${v}`);
    const whole = Math.trunc(v);
    return BigInt(whole) * 1_000_000_000n + BigInt(Math.round((v - whole) * 1e9));
  }
  // strings: Docker's timestamp forms, read by the one parser of them (docker-filters.ts)
  const ns = parseDockerTime(v, 'time', nowNanos());
  if (ns === null) throw new TypeError('invalid time: empty');
  return ns;
}
