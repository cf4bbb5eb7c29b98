/**
 * OOM kills of a container, read from its memory cgroup as conmon does for the OCI backend:
 * containerd's runc shim does not put them in the exit status. While the container runs, the
 * backend finds the cgroup file that counts them (`oomCounterFile`, from /proc/<pid>/cgroup:
 * v2 `memory.events`, v1 `memory.oom_control`, both with an `oom_kill N` line); at the exit,
 * before the task is deleted (which removes the cgroup), it reads the count (`oomKills`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMountInfoSync } from '@berth/core';

export interface CgroupPaths {
  /** Where /proc is (tests: a fake tree). */
  proc?: string;
  /** Mount point of the cgroup v2 hierarchy. */
  unified?: string;
  /** Mount point of the v1 memory controller (default: from mountinfo, else /sys/fs/cgroup/memory). */
  memoryV1?: string;
}

function v1MemoryMount(): string {
  try {
    const m = readMountInfoSync().find((e) => e.fsType === 'cgroup' && e.superOptions.includes('memory'));
    if (m) return m.mountPoint;
  } catch {
    /* no mountinfo: the conventional place */
  }
  return '/sys/fs/cgroup/memory';
}

/** The OOM counter file of the memory cgroup holding `pid`; null when there is none to read. */
export function oomCounterFile(pid: number, paths: CgroupPaths = {}): string | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(paths.proc ?? '/proc', String(pid), 'cgroup'), 'utf8');
  } catch {
    return null;
  }
  let unified: string | null = null;
  for (const line of text.split('\n')) {
    const [hid, ctrls, ...rest] = line.split(':');
    const p = rest.join(':');
    if (ctrls?.split(',').includes('memory')) return path.join(paths.memoryV1 ?? v1MemoryMount(), p, 'memory.oom_control');
    if (hid === '0' && ctrls === '') unified = p;
  }
  return unified === null ? null : path.join(paths.unified ?? '/sys/fs/cgroup', unified, 'memory.events');
}

/** The `oom_kill` count in a counter file; 0 when it cannot be read. */
export function oomKills(file: string | null): number {
  if (!file) return 0;
  try {
    const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
