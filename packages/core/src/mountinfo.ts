/**
 * /proc/self/mountinfo: the one parser every package uses (the spec builder's propagation
 * checks, `docker top`'s cgroup v1 hierarchies, the image store's overlay mounts, the OCI
 * backend's bundle sweep). Fields as proc(5) lists them; paths have their octal escapes
 * (`\040` for a space, …) decoded.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const MOUNTINFO_PATH = '/proc/self/mountinfo';

export interface MountInfoEntry {
  /** Where it is mounted (field 5). */
  mountPoint: string;
  /** The root of the mount within its filesystem (field 4: a bind mount's source directory). */
  root: string;
  /** Optional fields: "shared:N", "master:N", "propagate_from:N", "unbindable". */
  optional: string[];
  /** Filesystem type after the separator ("overlay", "cgroup", "proc", …). */
  fsType: string;
  /** Mount source ("overlay", "/dev/sda1", "none", …). */
  source: string;
  /** Per-superblock options ("rw,lowerdir=…", a cgroup v1 hierarchy's controllers, …). */
  superOptions: string[];
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses mountinfo content; malformed lines are skipped. */
export function parseMountInfo(content: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of content.split('\n')) {
    const f = line.trim().split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0) continue;
    out.push({
      mountPoint: unescape(f[4]),
      root: unescape(f[3]),
      optional: f.slice(6, sep),
      fsType: f[sep + 1] ?? '',
      source: unescape(f[sep + 2] ?? ''),
      superOptions: (f[sep + 3] ?? '').split(',').filter((o) => o !== ''),
    });
  }
  return out;
}

/** The mounts of this process (throws when /proc is not readable). */
export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile(MOUNTINFO_PATH, 'utf8'));
}

/** `readMountInfo` for callers that must not yield. */
export function readMountInfoSync(): MountInfoEntry[] {
  return parseMountInfo(readFileSync(MOUNTINFO_PATH, 'utf8'));
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

/** Mount points at or below `dir`, in mount order. */
export function mountPointsUnder(dir: string, mounts: readonly MountInfoEntry[]): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return mounts.map((m) => m.mountPoint).filter((mp) => mp === dir || mp.startsWith(prefix));
}
