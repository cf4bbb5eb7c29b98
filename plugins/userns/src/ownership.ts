/**
 * Giving a container's root filesystem to its mapped root without idmapped mounts: every file
 * of the container's overlay (merged view) is chowned from the IDs it had under the previous
 * mapping to the same container IDs under the new one (dockerd's chowned layer copy, done
 * through the container's own overlay: the chown copies the file up into the container's
 * writable layer; the image's layers stay untouched and shared). The mapping the tree was last
 * shifted to is kept in a marker file, so a restart with the same mapping walks nothing, and a
 * later `--userns=host` (identity) or another mapping shifts back/over correctly.
 *
 * setuid/setgid bits, which chown clears, are set again; symlinks are chowned themselves
 * (lchown); the walk stays on the root's file system (mounts below it are not entered) and
 * visits each inode once (hard links).
 */
import { lstat, lchown, chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidParameterError, mapToContainer, mapToHost, mountOf, readMountInfo, type MountInfoEntry, type OciIdMapping } from '@berth/core';
import type { IdMaps } from './subid.js';

/** No mapping: host ID = container ID. */
export const IDENTITY: IdMaps = Object.freeze({ uidMappings: [], gidMappings: [] });

/** A host ID under `from` → the host ID of the same container ID under `to` (unchanged when unmapped). */
function shiftId(from: readonly OciIdMapping[], to: readonly OciIdMapping[], id: number): number {
  const cid = from.length === 0 ? id : mapToContainer(id, from);
  if (cid === undefined) return id;
  if (to.length === 0) return cid;
  return mapToHost(cid, to) ?? id;
}

function sameMaps(a: IdMaps, b: IdMaps): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function readMarker(file: string): Promise<IdMaps> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as IdMaps;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return IDENTITY;
    throw err;
  }
}

/** Whether the tree `marker` belongs to was last shifted to `maps` (identity when never). */
export async function markedWith(marker: string, maps: IdMaps): Promise<boolean> {
  return sameMaps(await readMarker(marker), maps);
}

/**
 * Shift the ownership of every file under `root` to `to` (from the mapping in `marker`,
 * identity when there is none) and record `to` in `marker`. Returns the number of files
 * changed (0 when the tree already has that mapping).
 */
export async function shiftOwnership(root: string, to: IdMaps, marker: string): Promise<number> {
  const from = await readMarker(marker);
  if (sameMaps(from, to)) return 0;
  const top = await lstat(root);
  const seen = new Set<number>();
  let changed = 0;
  const visit = async (p: string): Promise<void> => {
    const st = await lstat(p);
    if (st.dev !== top.dev) return;
    if (st.nlink > 1 && !st.isDirectory()) {
      if (seen.has(st.ino)) return;
      seen.add(st.ino);
    }
    const uid = shiftId(from.uidMappings, to.uidMappings, st.uid);
    const gid = shiftId(from.gidMappings, to.gidMappings, st.gid);
    if (uid !== st.uid || gid !== st.gid) {
      await lchown(p, uid, gid);
      if (!st.isSymbolicLink() && (st.mode & 0o6000) !== 0) await chmod(p, st.mode & 0o7777);
      changed++;
    }
    if (st.isDirectory()) {
      for (const name of await readdir(p)) await visit(join(p, name));
    }
  };
  await visit(root);
  await writeFile(marker, JSON.stringify(to), { mode: 0o600 });
  return changed;
}

/** How a container's root filesystem is given to its mapped root (chosen once per engine). */
export interface RootfsStrategy {
  /** Shown in the log: 'chown' (the shifted copy-up below) or 'idmap' (idmap.ts). */
  readonly name: string;
  /** Make `rootfs` usable by the container's mapped root (identity maps: undo what an earlier mapping did). */
  prepare(rootfs: string, maps: IdMaps, containerDir: string): Promise<void>;
  /** At engine start: refuse a data root the mapped root cannot reach (a plain error fails the start). */
  check?(dataRoot: string): Promise<void>;
  /** The container's rootfs was unmounted (exit, failed start, remove): drop what prepare mounted. */
  release?(containerDir: string): Promise<void>;
}

/**
 * dockerd's rule: every directory above the data root must allow 'o+x', or the remapped root
 * (runc's init inside the namespace) cannot reach its rootfs.
 */
export async function checkAncestors(dataRoot: string): Promise<void> {
  for (let d = dirname(dataRoot); ; d = dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0) {
      throw new Error(`userns-remap: ${d} (above the data root ${dataRoot}) does not allow 'o+x': the remapped root could not reach its containers; allow it (chmod o+x) or choose another data root`);
    }
    if (d === dirname(d)) break;
  }
}

/** In a container's directory: the mapping its rootfs was last shifted to. */
export const SHIFT_MARKER = 'userns-rootfs.json';

/**
 * The chowned-copy strategy: only for the container's own overlay mount (a plain directory
 * given at create may be shared: refused for a mapped container).
 */
export function chownStrategy(mounts: () => Promise<MountInfoEntry[]> = readMountInfo): RootfsStrategy {
  return {
    name: 'chown',
    check: checkAncestors,
    async prepare(rootfs, maps, containerDir) {
      const m = mountOf(rootfs, await mounts());
      if (m?.mountPoint !== rootfs || m.fsType !== 'overlay') {
        if (maps.uidMappings.length === 0) return;
        throw new InvalidParameterError(
          `userns-remap: the root filesystem ${rootfs} is not the container's own overlay mount: berth cannot give it to the remapped root without changing a shared directory (use an image, or --userns=host)`,
        );
      }
      await shiftOwnership(rootfs, maps, join(containerDir, SHIFT_MARKER));
    },
  };
}
