/**
 * Docker's list/prune/events filter arguments, one set of helpers for every package (the
 * daemon's routes, the engine's container prune, the image store's list and prune): the
 * filters map and its validation, label matching (`label`, `label!`), and Docker's timestamp
 * values (`since`/`until`: Unix seconds with a fraction, RFC 3339, or a duration before now),
 * as moby's api/types/filters and api/types/time do.
 */
import { InvalidParameterError } from './errors.js';

/** Docker filters: name → accepted values (e.g. `label` → {"a=b", "c"}). */
export type DockerFilters = ReadonlyMap<string, ReadonlySet<string>>;

/**
 * Filters from their decoded JSON: `{"key":["v1","v2"]}` or the legacy `{"key":{"v1":true}}`;
 * null/undefined → none. A key not in `allowed` → 400 "invalid filter 'key'".
 */
export function filtersFrom(value: unknown, allowed: readonly string[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  if (value === null || value === undefined) return out;
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidParameterError('invalid filter: expected a JSON object');
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (!allowed.includes(key)) throw new InvalidParameterError(`invalid filter '${key}'`);
    const set = new Set<string>();
    if (Array.isArray(v)) {
      for (const item of v) {
        if (typeof item !== 'string') throw new InvalidParameterError(`invalid filter '${key}': values must be strings`);
        set.add(item);
      }
    } else if (typeof v === 'object' && v !== null) {
      for (const [item, on] of Object.entries(v as Record<string, unknown>)) {
        if (typeof on !== 'boolean') throw new InvalidParameterError(`invalid filter '${key}': values must be booleans`);
        if (on) set.add(item);
      }
    } else {
      throw new InvalidParameterError(`invalid filter '${key}': expected a list of strings`);
    }
    out.set(key, set);
  }
  return out;
}

/** Refuses a filter whose name is not in `allowed` (400 "invalid filter 'key'"). */
export function checkFilterNames(filters: DockerFilters | undefined, allowed: readonly string[]): void {
  for (const key of filters?.keys() ?? []) if (!allowed.includes(key)) throw new InvalidParameterError(`invalid filter '${key}'`);
}

/** The values of one filter (empty when absent). */
export function filterValues(filters: DockerFilters | undefined, key: string): string[] {
  return [...(filters?.get(key) ?? [])];
}

function hasLabel(want: string, labels: Readonly<Record<string, string>>): boolean {
  const eq = want.indexOf('=');
  return eq < 0 ? Object.hasOwn(labels, want) : labels[want.slice(0, eq)] === want.slice(eq + 1);
}

/** Docker's `label` filter: every "key" (present) or "key=value" (equal) matches; no filter matches all. */
export function matchLabels(want: ReadonlySet<string> | undefined, labels: Readonly<Record<string, string>> | null | undefined): boolean {
  if (!want || want.size === 0) return true;
  const l = labels ?? {};
  for (const f of want) if (!hasLabel(f, l)) return false;
  return true;
}

/** Docker's `label!` filter: none of them matches; no filter matches all. */
export function matchNoLabel(unwanted: ReadonlySet<string> | undefined, labels: Readonly<Record<string, string>> | null | undefined): boolean {
  if (!unwanted || unwanted.size === 0) return true;
  const l = labels ?? {};
  for (const f of unwanted) if (hasLabel(f, l)) return false;
  return true;
}

const DURATION_NS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/**
 * Docker's timestamp values (events and logs since/until, the `until` filter of prunes and
 * lists): Unix seconds with an optional fraction ("1700000000.123"), RFC 3339, or a duration
 * before now ("10m", "1.5h"). Nanoseconds since the epoch, exact (bigint); absent → null;
 * anything else → 400 naming `name`.
 */
export function parseDockerTime(v: string | null | undefined, name: string, nowNano: bigint): bigint | null {
  if (v === null || v === undefined || v === '') return null;
  const s = v.trim();
  const nanosOf = (frac: string): bigint => BigInt((frac + '000000000').slice(0, 9));
  if (/^-?\d+(\.\d+)?$/.test(s)) {
    const [sec = '0', frac = ''] = s.split('.');
    return BigInt(sec) * 1_000_000_000n + nanosOf(frac);
  }
  const dur = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/.exec(s);
  if (dur) return nowNano - BigInt(Math.round(Number(dur[1]) * DURATION_NS[dur[2]!]!));
  if (/^\d{4}-\d{2}-\d{2}/.test(s)) {
    const ms = Date.parse(s);
    if (!Number.isNaN(ms)) {
      const frac = /\.(\d+)/.exec(s)?.[1] ?? '';
      return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n + nanosOf(frac);
    }
  }
  throw new InvalidParameterError(`invalid value for ${name}: ${JSON.stringify(v)}: expected a Unix timestamp, an RFC 3339 date or a duration`);
}

/** `parseDockerTime` in milliseconds since the epoch (for comparisons with Date values). */
export function parseDockerTimeMs(v: string | null | undefined, name: string, nowMs: number): number | null {
  const ns = parseDockerTime(v, name, BigInt(Math.round(nowMs)) * 1_000_000n);
  return ns === null ? null : Number(ns / 1_000_000n);
}
