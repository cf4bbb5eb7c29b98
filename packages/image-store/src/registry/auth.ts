/** Registry credentials: X-Registry-Auth (base64url JSON AuthConfig), Basic and Bearer challenges. */
import { InvalidParameterError } from '@berth/core';

export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64("user:password"), as in ~/.docker/config.json. */
  auth?: string;
  email?: string;
  serveraddress?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** Decodes the X-Registry-Auth header (base64url or base64 of a JSON AuthConfig); empty → null. */
export function decodeRegistryAuth(header: string | undefined | null): AuthConfig | null {
  if (!header || !header.trim()) return null;
  let json: string;
  try {
    json = Buffer.from(header.trim().replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
  } catch {
    throw new InvalidParameterError('invalid X-Registry-Auth header: not base64');
  }
  if (!json.trim() || json.trim() === '{}' || json.trim() === 'null') return null;
  try {
    return normalizeAuth(JSON.parse(json) as AuthConfig);
  } catch (err) {
    if (err instanceof InvalidParameterError) throw err;
    throw new InvalidParameterError('invalid X-Registry-Auth header: not a JSON auth config');
  }
}

export function encodeRegistryAuth(a: AuthConfig): string {
  return Buffer.from(JSON.stringify(a)).toString('base64url');
}

/** Fills username/password from `auth` when only that is given. */
export function normalizeAuth(a: AuthConfig): AuthConfig {
  if (a.auth && !a.username) {
    const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i === -1) throw new InvalidParameterError('invalid auth configuration: auth is not base64(user:password)');
    return { ...a, username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  return a;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses WWW-Authenticate: `Bearer realm="…",service="…",scope="…"` / `Basic realm="…"`. */
export function parseChallenges(header: string | null): Challenge[] {
  if (!header) return [];
  const out: Challenge[] = [];
  const re = /([A-Za-z]+)\s+((?:[A-Za-z0-9_-]+=(?:"(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?\s*)*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(header))) {
    const params: Record<string, string> = {};
    const pre = /([A-Za-z0-9_-]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
    let p: RegExpExecArray | null;
    while ((p = pre.exec(m[2]))) params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
    out.push({ scheme: m[1].toLowerCase(), params });
  }
  return out;
}
