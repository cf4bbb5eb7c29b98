import { access, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mountOf, type MountInfoEntry } from '../mountinfo.js';

/** What the builder needs to know about the host. Tests pass their own values. */
export interface SpecHostInfo {
  /** /proc/sys/kernel/cap_last_cap: the highest capability number the kernel knows. */
  capLastCap: number;
  /** The unified cgroup v2 hierarchy is mounted at /sys/fs/cgroup. */
  cgroupV2: boolean;
  /** Online CPUs (bounds NanoCpus like dockerd). */
  cpuCount: number;
  /**
   * berthd's capability bounding set (CapBnd of /proc/self/status) as a bit mask; absent = every
   * capability. A privileged container gets only what is in it: runc cannot give more.
   */
  capBounding?: bigint;
}

let boundingSet: Promise<bigint | undefined> | undefined;

/** berthd's capability bounding set, read once (it cannot grow while the process runs). */
export function daemonBoundingSet(): Promise<bigint | undefined> {
  boundingSet ??= readFile('/proc/self/status', 'utf8').then(
    (s) => {
      const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(s)?.[1];
      return hex === undefined ? undefined : BigInt(`0x${hex}`);
    },
    () => undefined,
  );
  return boundingSet;
}

let kernelFacts: Promise<{ capLastCap: number; cgroupV2: boolean }> | undefined;

/** The kernel's last capability and the cgroup layout, read once: neither changes while the host runs. */
function readKernelFacts(): Promise<{ capLastCap: number; cgroupV2: boolean }> {
  kernelFacts ??= (async () => {
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
    return { capLastCap, cgroupV2 };
  })();
  return kernelFacts;
}

/**
 * Probes the host: the kernel facts (cap_last_cap, cgroup v2) and berthd's bounding set are
 * read once per process, the CPU count at each call (affinity may change).
 */
export async function probeHost(): Promise<SpecHostInfo> {
  const [{ capLastCap, cgroupV2 }, capBounding] = await Promise.all([readKernelFacts(), daemonBoundingSet()]);
  const cpuCount = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return { capLastCap, cgroupV2, cpuCount, ...(capBounding === undefined ? {} : { capBounding }) };
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
