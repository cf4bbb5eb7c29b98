import { InvalidParameterError } from '../errors.js';

/** HostConfig.SecurityOpt, parsed like dockerd's parseSecurityOpt. */
export interface SecurityOptions {
  noNewPrivileges: boolean;
  /** systempaths=unconfined: no masked and no read-only paths. */
  unconfinedSystemPaths: boolean;
  /** writable-cgroups=true: the cgroup mount is read-write. */
  writableCgroups: boolean;
  /** label=… values (and "disable"), for an SELinux plugin. */
  label: string[];
  /** apparmor=… (for the AppArmor plugin). */
  apparmor?: string;
  /** seccomp=… (for the seccomp plugin). */
  seccomp?: string;
}

/** Go's strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/**
 * Parses SecurityOpt entries: "no-new-privileges", "no-new-privileges=true|false" (":" works
 * too, as in dockerd), "label=…", "label:disable", "disable", "apparmor=…", "seccomp=…",
 * "systempaths=unconfined", "writable-cgroups=true|false". Anything else →
 * InvalidParameterError `invalid --security-opt 2: "…"` (dockerd's wording).
 */
export function parseSecurityOpts(opts: readonly string[] | null | undefined): SecurityOptions {
  const out: SecurityOptions = { noNewPrivileges: false, unconfinedSystemPaths: false, writableCgroups: false, label: [] };
  for (const opt of opts ?? []) {
    if (opt === 'no-new-privileges') {
      out.noNewPrivileges = true;
      continue;
    }
    if (opt === 'disable') {
      out.label.push('disable');
      continue;
    }
    const sep = opt.includes('=') ? '=' : opt.includes(':') ? ':' : null;
    if (!sep) throw new InvalidParameterError(`invalid --security-opt 1: ${JSON.stringify(opt)}`);
    const key = opt.slice(0, opt.indexOf(sep));
    const value = opt.slice(opt.indexOf(sep) + 1);
    const invalid = () => new InvalidParameterError(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
    switch (key) {
      case 'label':
        out.label.push(value);
        break;
      case 'apparmor':
        out.apparmor = value;
        break;
      case 'seccomp':
        out.seccomp = value;
        break;
      case 'no-new-privileges': {
        const b = parseGoBool(value);
        if (b === undefined) throw invalid();
        out.noNewPrivileges = b;
        break;
      }
      case 'writable-cgroups': {
        const b = parseGoBool(value);
        if (b === undefined) throw invalid();
        out.writableCgroups = b;
        break;
      }
      case 'systempaths':
        if (value !== 'unconfined') throw invalid();
        out.unconfinedSystemPaths = true;
        break;
      default:
        throw invalid();
    }
  }
  return out;
}
