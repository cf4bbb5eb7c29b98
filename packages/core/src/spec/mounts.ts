import path from 'node:path';
import { InvalidParameterError, NotImplementedError } from '../errors.js';
import type { OciMount, OciSpec } from '../oci.js';
import type { Mount } from '../types.js';
import type { SpecOpt } from './opts.js';

export const PROPAGATION_MODES: readonly string[] = Object.freeze(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);
const RW_MODES = ['rw', 'ro'];
const LABEL_MODES = ['z', 'Z'];
const COPY_MODES = ['nocopy'];
const CONSISTENCY_MODES = ['consistent', 'cached', 'delegated'];
const DEFAULT_PROPAGATION = 'rprivate';

/** A bind, volume or tmpfs requested by Binds, Mounts or Tmpfs, before it becomes an OciMount. */
export interface ParsedMount {
  type: 'bind' | 'volume' | 'tmpfs';
  /** Host path (bind), volume name ('' = anonymous volume), or '' (tmpfs). */
  source: string;
  destination: string;
  readOnly: boolean;
  /** Bind propagation (default rprivate). */
  propagation: string;
  /** SELinux relabel request ("z" / "Z"): a security plugin's job, kept for it. */
  label?: 'z' | 'Z';
  nonRecursive?: boolean;
  readOnlyForceRecursive?: boolean;
  /** Binds: create a missing source directory (dockerd's legacy -v behaviour). Mounts: fail instead. */
  createSource: boolean;
  /** tmpfs mount options (already merged with the defaults). */
  tmpfsOptions?: string[];
  /** Volumes: do not copy the image's content at the destination into an empty volume (`nocopy`, `volume-nocopy`). */
  noCopy?: boolean;
  /** Volumes from Mounts: labels and driver (name, options) for a volume created for this mount. */
  volumeOptions?: { labels?: Record<string, string>; driver?: string; driverOpts?: Record<string, string> };
  /** Where it came from, for error messages. */
  origin: 'Binds' | 'Mounts' | 'Tmpfs';
}

/** filepath.Clean for absolute paths: normalized, no trailing slash (but "/"). */
export function cleanPath(p: string): string {
  return path.posix.normalize(p).replace(/(.)\/+$/, '$1');
}

function invalidSpec(raw: string, detail?: string): InvalidParameterError {
  return new InvalidParameterError(`invalid volume specification: '${raw}'${detail ? `: ${detail}` : ''}`);
}

/** True if `mode` ("ro,Z,rslave") is a valid -v mode list (dockerd's ValidMountMode). */
export function isValidMountMode(mode: string): boolean {
  if (mode === '') return false;
  const counts = { rw: 0, label: 0, propagation: 0, copy: 0, consistency: 0 };
  for (const o of mode.split(',')) {
    if (RW_MODES.includes(o)) counts.rw++;
    else if (LABEL_MODES.includes(o)) counts.label++;
    else if (PROPAGATION_MODES.includes(o)) counts.propagation++;
    else if (COPY_MODES.includes(o)) counts.copy++;
    else if (CONSISTENCY_MODES.includes(o)) counts.consistency++;
    else return false;
  }
  return Object.values(counts).every((c) => c <= 1);
}

function checkDestination(dest: string, type: string, prefix: (msg: string) => InvalidParameterError): string {
  if (!path.posix.isAbsolute(dest)) throw prefix(`invalid mount config for type "${type}": invalid mount path: '${dest}' mount path must be absolute`);
  const clean = cleanPath(dest);
  if (clean === '/') throw prefix(`invalid mount config for type "${type}": invalid specification: destination can't be '/'`);
  return clean;
}

/**
 * Parses one HostConfig.Binds entry, "src:dst[:mode]" (Linux rules of dockerd's
 * volume/mounts parser): src absolute → bind, else a named volume; "dst" alone or
 * "dst:mode" → anonymous volume. mode = rw|ro, z|Z, a propagation, nocopy, each at most once.
 */
export function parseBind(raw: string): ParsedMount {
  const parts = raw.split(':');
  if (parts.some((p) => p === '')) throw invalidSpec(raw);
  let source = '';
  let destination: string;
  let mode = '';
  switch (parts.length) {
    case 1:
      destination = parts[0];
      break;
    case 2:
      if (isValidMountMode(parts[1])) {
        destination = parts[0];
        mode = parts[1];
      } else {
        [source, destination] = parts;
      }
      break;
    case 3:
      [source, destination, mode] = parts;
      if (!isValidMountMode(mode)) throw new InvalidParameterError(`invalid mode: ${mode}`);
      break;
    default:
      throw invalidSpec(raw);
  }
  const type = source.startsWith('/') ? 'bind' : 'volume';
  const modes = mode === '' ? [] : mode.split(',');
  if (type === 'bind' && modes.includes('nocopy')) throw new InvalidParameterError(`invalid mode: ${mode}`);
  const dest = checkDestination(destination, type, (m) => invalidSpec(raw, m));
  const label = modes.find((m): m is 'z' | 'Z' => m === 'z' || m === 'Z');
  const parsed: ParsedMount = {
    type,
    source: type === 'bind' ? cleanPath(source) : source,
    destination: dest,
    readOnly: modes.includes('ro'),
    propagation: modes.find((m) => PROPAGATION_MODES.includes(m)) ?? DEFAULT_PROPAGATION,
    createSource: true,
    origin: 'Binds',
  };
  if (label) parsed.label = label;
  if (modes.includes('nocopy')) parsed.noCopy = true;
  return parsed;
}

// ---- tmpfs options (dockerd's mount.MergeTmpfsOptions) ----

/** Mount flags grouped by what they set: a later flag of a group overrides an earlier one. */
const FLAG_GROUPS: readonly (readonly string[])[] = [
  ['ro', 'rw'],
  ['suid', 'nosuid'],
  ['dev', 'nodev'],
  ['exec', 'noexec'],
  ['sync', 'async'],
  ['dirsync'],
  ['remount'],
  ['mand', 'nomand'],
  ['atime', 'noatime'],
  ['diratime', 'nodiratime'],
  ['relatime', 'norelatime'],
  ['strictatime', 'nostrictatime'],
  ['bind'],
  ['rbind'],
  ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'unbindable', 'runbindable'],
];
const TMPFS_DATA_OPTIONS = ['size', 'mode', 'uid', 'gid', 'nr_inodes', 'nr_blocks', 'mpol'];

/**
 * Merges tmpfs options, later ones winning: one flag per group (ro/rw, exec/noexec, …) and
 * one value per data key (size=, mode=, uid=, gid=, nr_inodes=, nr_blocks=, mpol=).
 * Unknown options → InvalidParameterError `Invalid tmpfs option ["x"]`.
 */
export function mergeTmpfsOptions(options: readonly string[]): string[] {
  const out: string[] = [];
  const seenGroups = new Set<number>();
  const seenData = new Set<string>();
  for (let i = options.length - 1; i >= 0; i--) {
    const o = options[i];
    if (o === 'defaults' || o === '') continue;
    const g = FLAG_GROUPS.findIndex((grp) => grp.includes(o));
    if (g >= 0) {
      if (seenGroups.has(g)) continue;
      seenGroups.add(g);
      out.unshift(o);
      continue;
    }
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    if (eq < 0 || !TMPFS_DATA_OPTIONS.includes(key)) {
      throw new InvalidParameterError(`Invalid tmpfs option ${JSON.stringify(eq < 0 ? [o] : [key, o.slice(eq + 1)])}`);
    }
    if (seenData.has(key)) continue;
    seenData.add(key);
    out.unshift(o);
  }
  return out;
}

const TMPFS_DEFAULTS = ['noexec', 'nosuid', 'nodev', DEFAULT_PROPAGATION];

/** One HostConfig.Tmpfs entry: destination → "opt,opt". */
export function parseTmpfs(destination: string, options: string): ParsedMount {
  const dest = checkDestinationPlain(destination);
  return {
    type: 'tmpfs',
    source: '',
    destination: dest,
    readOnly: false,
    propagation: DEFAULT_PROPAGATION,
    createSource: false,
    tmpfsOptions: mergeTmpfsOptions([...TMPFS_DEFAULTS, ...(options === '' ? [] : options.split(','))]),
    origin: 'Tmpfs',
  };
}

function checkDestinationPlain(dest: string): string {
  if (!path.posix.isAbsolute(dest)) throw new InvalidParameterError(`invalid mount path: '${dest}' mount path must be absolute`);
  const clean = cleanPath(dest);
  if (clean === '/') throw new InvalidParameterError(`invalid specification: destination can't be '/'`);
  return clean;
}

/** 1048576 → "1m", 3 GiB → "3g", 1000 → "1000" (dockerd's tmpfs size suffix rule). */
export function formatTmpfsSize(bytes: number): string {
  for (const [suffix, div] of [['g', 1 << 30], ['m', 1 << 20], ['k', 1 << 10]] as const) {
    if (bytes % div === 0) return `${bytes / div}${suffix}`;
  }
  return String(bytes);
}

/** One HostConfig.Mounts entry (API mount object), validated like dockerd's validateMountConfig. */
export function parseApiMount(m: Mount): ParsedMount {
  const type = m.Type;
  const err = (msg: string) => new InvalidParameterError(`invalid mount config for type "${type}": ${msg}`);
  if (!m.Target) throw err('field Target must not be empty');
  switch (type) {
    case 'bind': {
      if (!m.Source) throw err('field Source must not be empty');
      if (m.VolumeOptions) throw err('field VolumeOptions must not be specified');
      if (m.TmpfsOptions) throw err('field TmpfsOptions must not be specified');
      if (!path.posix.isAbsolute(m.Source)) throw err(`invalid mount path: '${m.Source}' mount path must be absolute`);
      const dest = checkDestination(m.Target, type, (msg) => new InvalidParameterError(msg));
      const propagation = m.BindOptions?.Propagation || DEFAULT_PROPAGATION;
      if (!PROPAGATION_MODES.includes(propagation)) throw err(`invalid propagation mode: ${propagation}`);
      const parsed: ParsedMount = {
        type: 'bind',
        source: cleanPath(m.Source),
        destination: dest,
        readOnly: m.ReadOnly === true,
        propagation,
        createSource: m.BindOptions?.CreateMountpoint === true,
        origin: 'Mounts',
      };
      if (m.BindOptions?.NonRecursive) parsed.nonRecursive = true;
      if (m.BindOptions?.ReadOnlyForceRecursive) {
        if (!m.ReadOnly) throw err('must set ReadOnly when ReadOnlyForceRecursive is set');
        if (m.BindOptions.ReadOnlyNonRecursive) throw err('cannot set both ReadOnlyNonRecursive and ReadOnlyForceRecursive');
        parsed.readOnlyForceRecursive = true;
      }
      return parsed;
    }
    case 'tmpfs': {
      if (m.Source) throw err('field Source must not be specified');
      if (m.BindOptions) throw err('field BindOptions must not be specified');
      if (m.VolumeOptions) throw err('field VolumeOptions must not be specified');
      const dest = checkDestination(m.Target, type, (msg) => new InvalidParameterError(msg));
      const opts: string[] = [];
      if (m.ReadOnly) opts.push('ro');
      const t = m.TmpfsOptions ?? {};
      if (t.SizeBytes !== undefined && t.SizeBytes < 0) throw err(`invalid tmpfs size: ${t.SizeBytes}`);
      if (t.Mode) opts.push(`mode=${t.Mode.toString(8)}`);
      if (t.SizeBytes) opts.push(`size=${formatTmpfsSize(t.SizeBytes)}`);
      for (const o of t.Options ?? []) opts.push(o.length > 1 ? `${o[0]}=${o[1]}` : o[0]);
      return {
        type: 'tmpfs',
        source: '',
        destination: dest,
        readOnly: m.ReadOnly === true,
        propagation: DEFAULT_PROPAGATION,
        createSource: false,
        tmpfsOptions: mergeTmpfsOptions([...TMPFS_DEFAULTS, ...opts]),
        origin: 'Mounts',
      };
    }
    case 'volume': {
      checkDestination(m.Target, type, (msg) => new InvalidParameterError(msg));
      if (m.BindOptions) throw err('field BindOptions must not be specified');
      if (m.TmpfsOptions) throw err('field TmpfsOptions must not be specified');
      const parsed: ParsedMount = { type: 'volume', source: m.Source ?? '', destination: cleanPath(m.Target), readOnly: m.ReadOnly === true, propagation: DEFAULT_PROPAGATION, createSource: false, origin: 'Mounts' };
      const vo = m.VolumeOptions;
      if (vo?.NoCopy) parsed.noCopy = true;
      if (vo && (vo.Labels || vo.DriverConfig)) {
        parsed.volumeOptions = {
          ...(vo.Labels ? { labels: { ...vo.Labels } } : {}),
          ...(vo.DriverConfig?.Name ? { driver: vo.DriverConfig.Name } : {}),
          ...(vo.DriverConfig?.Options ? { driverOpts: { ...vo.DriverConfig.Options } } : {}),
        };
      }
      if (vo?.Subpath) throw new NotImplementedError('volume subpath is not supported');
      return parsed;
    }
    case 'image':
    case 'npipe':
    case 'cluster':
      throw new NotImplementedError(`mount type "${type}" is not supported`);
    default:
      throw err('mount type unknown');
  }
}

/**
 * All mounts a container asks for (Binds, then Mounts, then Tmpfs), parsed and checked for
 * duplicate destinations ("Duplicate mount point: /x"). Volumes are parsed here and resolved
 * by a volume plugin (create.ts refuses them when none is loaded).
 */
export function parseUserMounts(hc: { Binds?: string[] | null; Mounts?: Mount[] | null; Tmpfs?: Record<string, string> | null }): ParsedMount[] {
  const out: ParsedMount[] = [];
  const seen = new Set<string>();
  const add = (m: ParsedMount) => {
    if (seen.has(m.destination)) throw new InvalidParameterError(`Duplicate mount point: ${m.destination}`);
    seen.add(m.destination);
    out.push(m);
  };
  for (const b of hc.Binds ?? []) add(parseBind(b));
  for (const m of hc.Mounts ?? []) add(parseApiMount(m));
  for (const [dest, opts] of Object.entries(hc.Tmpfs ?? {})) add(parseTmpfs(dest, opts ?? ''));
  return out;
}

/** The OciMount of a parsed bind or tmpfs. */
export function toOciMount(m: ParsedMount): OciMount {
  if (m.type === 'tmpfs') return { destination: m.destination, type: 'tmpfs', source: 'tmpfs', options: [...(m.tmpfsOptions ?? [])] };
  if (m.type !== 'bind') throw new NotImplementedError(`mount type "${m.type}" is not supported`);
  const options = [m.nonRecursive ? 'bind' : 'rbind'];
  if (m.readOnly) options.push(m.readOnlyForceRecursive ? 'rro' : 'ro');
  options.push(m.propagation);
  return { destination: m.destination, type: 'bind', source: m.source, options };
}

/** A plain bind mount of a file or directory the engine prepared (resolv.conf, hosts, shm…). */
export function engineBind(source: string, destination: string, readOnly = false): OciMount {
  return { destination, type: 'bind', source, options: readOnly ? ['rbind', 'ro', 'rprivate'] : ['rbind', 'rprivate'] };
}

function depth(dest: string): number {
  return (cleanPath(dest).match(/\//g) ?? []).length;
}

/** Stable sort by path depth, so a parent is mounted before what is mounted inside it (dockerd's sortMounts). */
export function sortMountsByDepth(mounts: readonly OciMount[]): OciMount[] {
  return mounts
    .map((m, i) => ({ m, i, d: depth(m.destination) }))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .map((x) => x.m);
}

const NEVER_READONLY = ['/proc', '/dev/pts', '/dev/shm', '/dev/mqueue', '/dev'];

export interface MountsOptions {
  /** Container mounts: user mounts (ParsedMount → OciMount), network files, IPC. Sorted by depth here. */
  containerMounts: readonly OciMount[];
  /** Mounts placed right after the defaults, not sorted (the init binary). */
  extraDefaultMounts?: readonly OciMount[];
  readonlyRootfs?: boolean;
  privileged?: boolean;
  /** IpcMode none (and host/container, whose /dev/shm comes in `containerMounts`): no default /dev/shm. */
  dropDefaultShm?: boolean;
  /** /dev/shm size for the default tmpfs. */
  shmSize?: number;
  /** SecurityOpt writable-cgroups=true. */
  writableCgroups?: boolean;
}

function withoutRo(m: OciMount): OciMount {
  return { ...m, options: (m.options ?? []).filter((o) => o !== 'ro') };
}

/**
 * Sets spec.mounts like dockerd's WithMounts: default mounts not overridden by a container
 * mount (a container mount at /dev also drops the defaults below /dev), then the container
 * mounts sorted by depth; read-only rootfs → the defaults (but /proc, /dev, /dev/pts,
 * /dev/shm, /dev/mqueue) become read-only; privileged → /sys and cgroup mounts read-write.
 * Also sets linux.rootfsPropagation to "shared" when a bind asks for shared propagation.
 */
export function withMounts(o: MountsOptions): SpecOpt {
  return (spec: OciSpec) => {
    const userDest = new Set(o.containerMounts.map((m) => m.destination));
    const mountsDev = userDest.has('/dev');
    let defaults = (spec.mounts ?? []).filter((m) => {
      if (userDest.has(m.destination)) return false;
      if (mountsDev && m.destination.startsWith('/dev/')) return false;
      if (m.destination === '/dev/shm' && o.dropDefaultShm) return false;
      return true;
    });
    if (o.shmSize !== undefined) {
      defaults = defaults.map((m) =>
        m.destination === '/dev/shm' && m.type === 'tmpfs'
          ? { ...m, options: [...(m.options ?? []).filter((x) => !x.startsWith('size=')), `size=${o.shmSize}`] }
          : m,
      );
    }
    defaults = [...defaults, ...(o.extraDefaultMounts ?? [])];
    if (o.readonlyRootfs) {
      defaults = defaults.map((m) =>
        NEVER_READONLY.includes(m.destination) || (m.options ?? []).includes('ro') ? m : { ...m, options: [...(m.options ?? []), 'ro'] },
      );
    }
    if (o.privileged) defaults = defaults.map((m) => (m.destination === '/sys' ? withoutRo(m) : m));
    if (o.privileged || o.writableCgroups) defaults = defaults.map((m) => (m.type === 'cgroup' ? withoutRo(m) : m));

    // A shared bind needs a shared rootfs (dockerd sets "shared"). A slave bind needs the
    // rootfs to be rslave, which dockerd writes as "rslave": that is runc's default for the
    // rootfs and not a value of the spec's schema, so berth leaves the field out instead.
    const linux = { ...(spec.linux ?? {}) };
    if (o.containerMounts.some((m) => m.type === 'bind' && (m.options ?? []).some((x) => x === 'shared' || x === 'rshared'))) {
      linux.rootfsPropagation = 'shared';
    }
    return { ...spec, mounts: [...defaults, ...sortMountsByDepth(o.containerMounts)], linux };
  };
}
