import { readdir, stat, lstat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidParameterError } from '../errors.js';
import type { OciDevice, OciDeviceCgroup, OciSpec } from '../oci.js';
import type { DeviceMapping } from '../types.js';
import type { SpecOpt } from './opts.js';

/** Splits a Linux dev_t into major and minor (glibc's gnu_dev_major/minor). */
export function splitDevNumber(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

/**
 * Parses the CLI form of a device, "/dev/host[:/dev/container][:perms]" (like docker's
 * --device): the container path defaults to the host path, perms to "rwm".
 */
export function parseDevice(spec: string): DeviceMapping {
  const parts = spec.split(':');
  let pathOnHost = parts[0];
  let pathInContainer = '';
  let perms = 'rwm';
  switch (parts.length) {
    case 1:
      break;
    case 2:
      if (isValidDevicePermissions(parts[1])) perms = parts[1];
      else pathInContainer = parts[1];
      break;
    case 3:
      pathInContainer = parts[1];
      perms = parts[2];
      if (!isValidDevicePermissions(perms)) throw new InvalidParameterError(`invalid device mode: ${perms}`);
      break;
    default:
      throw new InvalidParameterError(`invalid device specification: ${spec}`);
  }
  if (pathOnHost === '') throw new InvalidParameterError(`invalid device specification: ${spec}`);
  if (pathInContainer === '') pathInContainer = pathOnHost;
  if (!pathInContainer.startsWith('/')) throw new InvalidParameterError(`${pathInContainer} is not an absolute path`);
  pathOnHost = path.posix.normalize(pathOnHost);
  return { PathOnHost: pathOnHost, PathInContainer: pathInContainer, CgroupPermissions: perms };
}

/** "rwm", "r", "mw", … (each of r, w, m at most once, non-empty). */
export function isValidDevicePermissions(p: string): boolean {
  return /^[rwm]{1,3}$/.test(p) && new Set(p).size === p.length;
}

const RULE_RE = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/;

/**
 * Parses a DeviceCgroupRules entry, "c 42:* rmw" (type a|b|c, major and minor a number or
 * *, access of r, w, m) into an allow rule; * becomes -1, as dockerd writes it.
 */
export function parseDeviceCgroupRule(rule: string): OciDeviceCgroup {
  const m = RULE_RE.exec(rule);
  if (!m) throw new InvalidParameterError(`invalid device cgroup rule format: '${rule}'`);
  const num = (s: string) => (s === '*' ? -1 : Number(s));
  return { allow: true, type: m[1] as 'a' | 'b' | 'c', major: num(m[2]), minor: num(m[3]), access: m[4] };
}

export interface HostDevice {
  device: OciDevice;
  rule: OciDeviceCgroup;
}

async function deviceAt(hostPath: string, containerPath: string, perms: string): Promise<HostDevice | null> {
  const st = await stat(hostPath, { bigint: true });
  const mode = Number(st.mode);
  const fmt = mode & 0o170000;
  let type: 'c' | 'b';
  if (fmt === 0o020000) type = 'c';
  else if (fmt === 0o060000) type = 'b';
  else return null;
  const { major, minor } = splitDevNumber(st.rdev);
  return {
    device: { path: containerPath, type, major, minor, fileMode: mode & 0o7777, uid: Number(st.uid), gid: Number(st.gid) },
    rule: { allow: true, type, major, minor, access: perms },
  };
}

/**
 * The devices of one HostConfig.Devices entry (dockerd's DevicesFromPath): the device node
 * itself, or every device node below a directory (kept at the same relative path under
 * PathInContainer). Errors are InvalidParameterError with dockerd's wording.
 */
export async function devicesFromMapping(d: DeviceMapping): Promise<HostDevice[]> {
  const perms = d.CgroupPermissions || 'rwm';
  if (!isValidDevicePermissions(perms)) throw new InvalidParameterError(`invalid device mode: ${perms}`);
  const hostPath = d.PathOnHost;
  const inContainer = d.PathInContainer || hostPath;
  const fail = (reason: string, cause?: unknown) =>
    new InvalidParameterError(`error gathering device information while adding custom device ${JSON.stringify(hostPath)}: ${reason}`, { cause });
  if (!path.posix.isAbsolute(inContainer)) throw new InvalidParameterError(`${inContainer} is not an absolute path`);
  let st;
  try {
    st = await stat(hostPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message, err);
  }
  if (!st.isDirectory()) {
    const dev = await deviceAt(hostPath, inContainer, perms);
    if (!dev) throw fail('not a device node');
    return [dev];
  }
  const out: HostDevice[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        await walk(full);
        continue;
      }
      if (!e.isCharacterDevice() && !e.isBlockDevice()) continue;
      const dev = await deviceAt(full, path.posix.join(inContainer, path.relative(hostPath, full)), perms).catch(() => null);
      if (dev) out.push(dev);
    }
  };
  await walk(hostPath);
  return out;
}

/** Directories below /dev that runc's HostDevices skips, and /dev/console. */
const SKIP_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

/**
 * Every device node of the host below `root` (default /dev), for a privileged container —
 * like runc's HostDevices: skips /dev/pts, /dev/shm, /dev/fd, /dev/mqueue, /dev/console and
 * symlinks. Sorted by path.
 */
export async function hostDevices(root = '/dev'): Promise<OciDevice[]> {
  const out: OciDevice[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) await walk(full);
        continue;
      }
      if (full === '/dev/console' || e.isSymbolicLink()) continue;
      if (!e.isCharacterDevice() && !e.isBlockDevice()) continue;
      try {
        const ls = await lstat(full);
        if (ls.isSymbolicLink()) continue;
        const dev = await deviceAt(full, full, 'rwm');
        if (dev) out.push(dev.device);
      } catch {
        // a device that vanished while walking: not ours to report
      }
    }
  };
  await walk(root);
  return out;
}

export interface DevicesOptions {
  privileged?: boolean;
  /** Devices from HostConfig.Devices (resolved on the host). */
  devices?: readonly HostDevice[];
  /** Parsed HostConfig.DeviceCgroupRules. */
  cgroupRules?: readonly OciDeviceCgroup[];
  /** For privileged containers: all host devices. */
  hostDevices?: readonly OciDevice[];
}

/**
 * Sets linux.devices and the device cgroup: privileged → all host devices, allow all;
 * otherwise the defaults, then each requested device and rule, in order.
 */
export function withDevices(o: DevicesOptions): SpecOpt {
  return (spec: OciSpec) => {
    const linux = { ...(spec.linux ?? {}) };
    const resources = { ...(linux.resources ?? {}) };
    if (o.privileged) {
      const devs = (o.hostDevices ?? []).map((d) => ({ ...d }));
      if (devs.length > 0) linux.devices = devs;
      else delete linux.devices;
      resources.devices = [{ allow: true, access: 'rwm' }];
    } else {
      const devs = [...(linux.devices ?? []), ...(o.devices ?? []).map((d) => ({ ...d.device }))];
      if (devs.length > 0) linux.devices = devs;
      resources.devices = [...(resources.devices ?? []), ...(o.devices ?? []).map((d) => ({ ...d.rule })), ...(o.cgroupRules ?? []).map((r) => ({ ...r }))];
    }
    linux.resources = resources;
    return { ...spec, linux };
  };
}
