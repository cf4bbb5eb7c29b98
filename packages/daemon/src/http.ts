/** Request/response helpers shared by the routes: JSON bodies, query values, filters, streams. */
import type { ServerResponse } from 'node:http';
import { InvalidParameterError, filtersFrom } from '@berth/core';
import { HttpError } from './http-errors.js';
import type { RequestContext } from './router.js';

/** Largest JSON body berthd reads (container create with many env vars stays far below). */
export const MAX_JSON_BODY = 4 * 1024 * 1024;

/**
 * Deepest nesting of objects and arrays berthd accepts in a JSON body or query value. Docker's
 * deepest real body (NetworkingConfig.EndpointsConfig.<net>.IPAMConfig.LinkLocalIPs) is 5
 * levels. dockerd's decoder stops at 10,000; V8's structuredClone and JSON.stringify (every
 * record is cloned and saved) overflow the stack near 5,000, so berth stops at 512.
 */
export const MAX_JSON_DEPTH = 512;

/**
 * Parse client JSON, refusing nesting deeper than MAX_JSON_DEPTH with dockerd's wording
 * ("exceeded max depth"). The depth is counted by a linear scan before parsing, so nothing
 * ever recurses on client input.
 */
export function parseClientJson(text: string, what = 'invalid JSON'): unknown {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) throw new InvalidParameterError(`${what}: invalid character '${text[i]}' exceeded max depth`);
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidParameterError(`${what}: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.statusCode = status;
  res.end();
}

/** dockerd's CheckForJSON: a Content-Type other than application/json is refused. */
export function checkJsonContentType(ctx: RequestContext): void {
  const ct = ctx.req.headers['content-type'];
  if (ct === undefined || ct === '') return;
  const mediaType = ct.split(';')[0].trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new InvalidParameterError(`unsupported Content-Type header (${ct}): must be 'application/json'`);
  }
}

/** Read the raw body, refusing more than `max` bytes (413). */
export async function readBody(ctx: RequestContext, max = MAX_JSON_BODY): Promise<Buffer> {
  const declared = Number(ctx.req.headers['content-length'] ?? '0');
  if (Number.isFinite(declared) && declared > max) {
    throw new HttpError(413, `request body too large: ${declared} bytes, at most ${max} are accepted`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.body) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > max) {
      throw new HttpError(413, `request body too large: more than ${max} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/**
 * Read a JSON object body. An empty body gives `undefined` when `optional`, else
 * dockerd's "invalid JSON: EOF"-style 400. Arrays and scalars are refused.
 */
export async function readJsonBody<T extends object = Record<string, unknown>>(
  ctx: RequestContext,
  opts: { optional?: boolean } = {},
): Promise<T | undefined> {
  checkJsonContentType(ctx);
  const raw = await readBody(ctx);
  const text = raw.toString('utf8').trim();
  if (text === '') {
    if (opts.optional) return undefined;
    throw new InvalidParameterError('invalid JSON: request body is empty');
  }
  const value = parseClientJson(text);
  if (value === null && opts.optional) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidParameterError('invalid JSON: expected an object');
  }
  return value as T;
}

/** dockerd's BoolValue: absent, "", "0", "no", "false", "none" are false; anything else true. */
export function boolValue(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null) return false;
  const s = v.trim().toLowerCase();
  return !(s === '' || s === '0' || s === 'no' || s === 'false' || s === 'none');
}

/** dockerd's BoolValueOrDefault. */
export function boolValueOr(q: URLSearchParams, name: string, def: boolean): boolean {
  return q.get(name) === null || q.get(name) === '' ? def : boolValue(q, name);
}

/** An integer query value; absent/empty → `def`; not an integer → 400. */
export function intValue(q: URLSearchParams, name: string, def: number | undefined): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return def;
  if (!/^-?\d+$/.test(v.trim())) throw new InvalidParameterError(`invalid value for ${name}: ${JSON.stringify(v)}: not an integer`);
  const n = Number.parseInt(v, 10);
  if (!Number.isSafeInteger(n)) throw new InvalidParameterError(`invalid value for ${name}: ${JSON.stringify(v)}: out of range`);
  return n;
}

/**
 * Docker's filters query argument, decoded with the client-JSON guard above and validated by
 * core's `filtersFrom` (the helpers every package uses: matchLabels, parseDockerTime, …).
 */
export function parseFilters(raw: string | null, allowed: readonly string[]): Map<string, Set<string>> {
  return filtersFrom(raw === null || raw.trim() === '' ? null : parseClientJson(raw, 'invalid filter'), allowed);
}
