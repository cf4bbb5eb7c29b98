import { access, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** What the builder needs to know about the host. Tests pass their own values. */
export interface SpecHostInfo {
  /** /proc/sys/kernel/cap_last_cap: the highest capability number the kernel knows. */
  capLastCap: number;
  /** The unified cgroup v2 hierarchy is mounted at /sys/fs/cgroup. */
  cgroupV2: boolean;
  /** Online CPUs (bounds NanoCpus like dockerd). */
  cpuCount: number;
}

/** Probes the host (cheap reads of /proc and /sys). */
export async function probeHost(): Promise<SpecHostInfo> {
  let capLastCap = 40;
  try {
    const n = Number((await readFile('/proc/sys/kernel/cap_last_cap', 'utf8')).trim());
    if (Number.isInteger(n) && n >= 0) capLastCap = n;
  } catch {
    // no procfs: assume a current kernel
  }
  let cgroupV2 = false;
  try {
    await access('/sys/fs/cgroup/cgroup.controllers');
    cgroupV2 = true;
  } catch {
    cgroupV2 = false;
  }
  const cpuCount = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return { capLastCap, cgroupV2, cpuCount };
}

export interface MountInfoEntry {
  mountPoint: string;
  /** Optional fields: "shared:N", "master:N", "propagate_from:N", "unbindable". */
  optional: string[];
}

function unescapeMountInfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo content. */
export function parseMountInfo(content: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of content.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 10) continue;
    const sep = f.indexOf('-', 6);
    if (sep < 0) continue;
    out.push({ mountPoint: unescapeMountInfo(f[4]), optional: f.slice(6, sep) });
  }
  return out;
}

/** The mount that contains `p` (the last one mounted at the longest matching mount point). */
export function mountOf(p: string, mounts: readonly MountInfoEntry[]): MountInfoEntry | undefined {
  let best: MountInfoEntry | undefined;
  for (const m of mounts) {
    const mp = m.mountPoint;
    const inside = mp === '/' || p === mp || p.startsWith(mp.endsWith('/') ? mp : `${mp}/`);
    if (!inside) continue;
    if (!best || mp.length >= best.mountPoint.length) best = m;
  }
  return best;
}

export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/**
 * Checks that a bind source can give the propagation asked for (dockerd's ensureShared /
 * ensureSharedOrSlave): shared/rshared need a shared host mount, slave/rslave a shared or
 * slave one. Returns an error message, or null when fine.
 */
export function checkPropagation(source: string, propagation: string, mounts: readonly MountInfoEntry[]): string | null {
  const wantsShared = propagation === 'shared' || propagation === 'rshared';
  const wantsSlave = propagation === 'slave' || propagation === 'rslave';
  if (!wantsShared && !wantsSlave) return null;
  const m = mountOf(path.resolve(source), mounts);
  if (!m) return `path ${source} is not in any mount`;
  const shared = m.optional.some((o) => o.startsWith('shared:'));
  const slave = m.optional.some((o) => o.startsWith('master:'));
  if (wantsShared && !shared) return `path ${source} is mounted on ${m.mountPoint} but it is not a shared mount`;
  if (wantsSlave && !shared && !slave) return `path ${source} is mounted on ${m.mountPoint} but it is not a shared or slave mount`;
  return null;
}
