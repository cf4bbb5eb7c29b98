import { InvalidParameterError } from '../errors.js';
import type { OciSpec } from '../oci.js';
import type { SpecOpt } from './opts.js';

/** Every Linux capability, indexed by its number (linux/capability.h). */
export const ALL_CAPABILITIES: readonly string[] = Object.freeze([
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
]);

/** The capabilities of an unprivileged container, in dockerd's order (oci/caps DefaultCapabilities). */
export const DEFAULT_CAPABILITIES: readonly string[] = Object.freeze([
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
]);

/**
 * The capabilities berthd can give a container: the known ones that are in its bounding set
 * (`bounding` as CapBnd's bit mask; absent = all). A privileged container and CapAdd ALL get
 * these, as Podman and containerd's CRI do (dockerd asks for every known capability, which
 * runc cannot grant when the daemon itself runs with a reduced bounding set).
 */
export function grantableCapabilities(known: readonly string[], bounding?: bigint): string[] {
  if (bounding === undefined) return [...known];
  return known.filter((name) => (bounding >> BigInt(ALL_CAPABILITIES.indexOf(name))) & 1n);
}

/** The capabilities this host's kernel knows: all up to /proc/sys/kernel/cap_last_cap. */
export function knownCapabilities(capLastCap: number = ALL_CAPABILITIES.length - 1): string[] {
  return ALL_CAPABILITIES.slice(0, Math.max(0, Math.min(capLastCap, ALL_CAPABILITIES.length - 1)) + 1);
}

/**
 * "net_admin", "CAP_NET_ADMIN", "Cap_Net_Admin" → "CAP_NET_ADMIN"; "all" → "ALL".
 * Throws InvalidParameterError `unknown capability: "CAP_X"` for a name the host does not know.
 */
export function normalizeCapability(name: string, known: readonly string[] = ALL_CAPABILITIES): string {
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const cap = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!known.includes(cap)) throw new InvalidParameterError(`unknown capability: ${JSON.stringify(cap)}`);
  return cap;
}

function normalizeList(field: 'CapAdd' | 'CapDrop', names: readonly string[] | null | undefined, known: readonly string[]): string[] {
  const out: string[] = [];
  for (const n of names ?? []) {
    let cap: string;
    try {
      cap = normalizeCapability(n, known);
    } catch (err) {
      throw new InvalidParameterError(`invalid ${field}: ${(err as Error).message}`, { cause: err });
    }
    if (!out.includes(cap)) out.push(cap);
  }
  return out;
}

export interface CapabilityOptions {
  capAdd?: readonly string[] | null;
  capDrop?: readonly string[] | null;
  privileged?: boolean;
  /** The host's known capabilities (default: all of ALL_CAPABILITIES). */
  known?: readonly string[];
  /** Base set (default: DEFAULT_CAPABILITIES). */
  basics?: readonly string[];
  /** What privileged and CapAdd ALL give (default: `known`; see grantableCapabilities). */
  grantable?: readonly string[];
}

/**
 * The container's capability set, like dockerd's caps.TweakCapabilities: privileged → every
 * grantable cap; CapAdd ALL → every grantable cap but the dropped ones; CapDrop ALL → only CapAdd;
 * otherwise basics minus CapDrop, then CapAdd. Names are case-insensitive, with or without
 * CAP_. (Unlike dockerd 20.10, a cap added twice or already in the basics is listed once.)
 */
export function parseCapabilities(opts: CapabilityOptions = {}): string[] {
  const known = opts.known ?? ALL_CAPABILITIES;
  const grantable = opts.grantable ?? known;
  if (opts.privileged) return [...grantable];
  const basics = opts.basics ?? DEFAULT_CAPABILITIES;
  const drop = normalizeList('CapDrop', opts.capDrop, known);
  const add = normalizeList('CapAdd', opts.capAdd, known);
  if (drop.length === 0 && add.length === 0) return [...basics];
  let caps: string[];
  if (add.includes('ALL')) {
    caps = grantable.filter((c) => !drop.includes(c));
  } else if (drop.includes('ALL')) {
    caps = [...add];
  } else {
    caps = [...basics.filter((c) => !drop.includes(c)), ...add];
  }
  return [...new Set(caps)];
}

/**
 * Sets bounding/effective/permitted to `caps`. A process that does not run as uid 0 gets
 * empty effective and permitted sets (like dockerd: caps of a non-root user only matter
 * through file capabilities after exec). Apply after `withUser`.
 */
export function withCapabilities(caps: readonly string[]): SpecOpt {
  return (spec: OciSpec) => {
    const process = spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' };
    const root = process.user.uid === 0;
    return {
      ...spec,
      process: {
        ...process,
        capabilities: root
          ? { bounding: [...caps], effective: [...caps], permitted: [...caps] }
          : { bounding: [...caps] },
      },
    };
  };
}
