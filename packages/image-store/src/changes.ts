/**
 * Dockerfile instructions accepted by `docker import --change` and `docker commit --change`
 * (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK
 * is not among dockerd's allowed set), applied to an image runtime config.
 */
import { InvalidParameterError } from '@berth/core';
import type { ImageRuntimeConfig } from './types.js';

const ALLOWED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'USER', 'VOLUME', 'WORKDIR', 'STOPSIGNAL']);

/** The JSON (exec) form's strings, or null for the shell form. */
export function jsonArray(rest: string): string[] | null {
  const t = rest.trim();
  if (!t.startsWith('[')) return null;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  } catch {
    // not JSON: shell form
  }
  return null;
}

/** Splits words honouring double/single quotes and `escape` (a Dockerfile's `# escape=`; default backslash). */
export function words(s: string, escape = '\\'): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let any = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === escape && i + 1 < s.length && quote !== "'") {
      cur += s[++i];
      any = true;
    } else if (quote) {
      if (c === quote) quote = null;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      any = true;
    } else if (/\s/.test(c)) {
      if (any) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += c;
      any = true;
    }
  }
  if (quote) throw new InvalidParameterError(`unterminated quote in ${JSON.stringify(s)}`);
  if (any) out.push(cur);
  return out;
}

function keyValues(instr: string, rest: string): Array<[string, string]> {
  const ws = words(rest);
  if (ws.length === 0) throw new InvalidParameterError(`${instr} requires at least one argument`);
  if (!ws[0].includes('=')) {
    // legacy form: ENV key value with spaces
    const m = /^\s*(\S+)\s+(.*)$/.exec(rest);
    if (!m) throw new InvalidParameterError(`${instr} requires two arguments`);
    return [[m[1], words(m[2]).join(' ')]];
  }
  return ws.map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw new InvalidParameterError(`${instr} names can not be blank: ${w}`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}

export function applyChanges(config: ImageRuntimeConfig, changes: string[]): ImageRuntimeConfig {
  const out: ImageRuntimeConfig = { ...config };
  for (const raw of changes) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\S+)\s*(.*)$/s.exec(line)!;
    const instr = m[1].toUpperCase();
    const rest = m[2];
    if (!ALLOWED.has(instr)) throw new InvalidParameterError(`${instr} is not a valid change command`);
    switch (instr) {
      case 'CMD':
      case 'ENTRYPOINT': {
        const arr = jsonArray(rest) ?? ['/bin/sh', '-c', rest];
        if (instr === 'CMD') out.Cmd = arr;
        else {
          out.Entrypoint = arr;
          out.Cmd = null;
        }
        break;
      }
      case 'ENV': {
        const env = [...(out.Env ?? [])];
        for (const [k, v] of keyValues(instr, rest)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        out.Env = env;
        break;
      }
      case 'LABEL':
        out.Labels = { ...(out.Labels ?? {}), ...Object.fromEntries(keyValues(instr, rest)) };
        break;
      case 'EXPOSE': {
        const ports = { ...(out.ExposedPorts ?? {}) };
        for (const p of words(rest)) {
          if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/i.test(p)) throw new InvalidParameterError(`invalid containerPort: ${p}`);
          ports[p.includes('/') ? p.toLowerCase() : `${p}/tcp`] = {};
        }
        out.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const vols = { ...(out.Volumes ?? {}) };
        for (const v of jsonArray(rest) ?? words(rest)) {
          if (!v) throw new InvalidParameterError('VOLUME specified can not be an empty string');
          vols[v] = {};
        }
        out.Volumes = vols;
        break;
      }
      case 'USER':
        out.User = rest.trim();
        break;
      case 'WORKDIR': {
        const w = rest.trim();
        out.WorkingDir = w.startsWith('/') ? w : `${(out.WorkingDir || '/').replace(/\/$/, '')}/${w}`;
        break;
      }
      case 'STOPSIGNAL':
        out.StopSignal = rest.trim();
        break;
      case 'ONBUILD':
        out.OnBuild = [...(out.OnBuild ?? []), rest.trim()];
        break;
    }
  }
  return out;
}
