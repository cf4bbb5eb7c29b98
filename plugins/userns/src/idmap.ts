/**
 * The idmapped-mount strategy: the image's layers are given to a container's mapped root
 * without copying or chowning them. The kernel cannot idmap an overlay mount itself (EINVAL),
 * but overlayfs (≥ 5.19) accepts idmapped lower layers: the image store's overlay at the rootfs
 * is replaced by one whose lower layers are idmapped bind mounts (`<container dir>/
 * userns-layers/N`, made with the native addon's idmapBind) of the same directories. The
 * upper (the container's own writable layer) stays a plain directory in the host's IDs, as
 * dockerd's remapped layers are: overlayfs writes it with the mounter's (host root's)
 * credentials, which an idmapped upper would not map. It is shifted to the mapping like the
 * chown strategy does — in practice its root directory and whatever a previous start left —
 * with its own marker, `userns-upper.json`.
 *
 * A user namespace with the mapping is needed for each mapping: a short-lived `unshare --user`
 * child whose maps this process writes; its namespace fd is kept (one per mapping, closed when
 * the engine closes) and the child is killed. `probeIdmap` tries the whole thing once at start
 * (an overlay over idmapped layers in a scratch directory) and the plugin falls back to the
 * chown strategy when any step is refused.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SystemError, mountOf, mountPointsUnder, readMountInfo } from '@berth/core';
import { MNT_DETACH, nativeAddon, type NativeAddon } from '@berth/native';
import { IDENTITY, SHIFT_MARKER, chownStrategy, markedWith, shiftOwnership, type RootfsStrategy } from './ownership.js';
import type { IdMaps } from './subid.js';

/** In a container's directory: where its idmapped layers are mounted. */
export const LAYERS_DIR = 'userns-layers';

const mapText = (maps: IdMaps['uidMappings']): string => maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');

/** A user namespace with these maps, as an fd (the caller closes it). */
export async function openUserNamespace(maps: IdMaps): Promise<number> {
  const child = spawn('unshare', ['--user', 'sleep', '60'], { stdio: 'ignore' });
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', () => {});
  try {
    const pid = child.pid;
    if (pid === undefined) throw new SystemError('userns: cannot run unshare --user');
    const own = readlinkSync('/proc/self/ns/user');
    for (let i = 0; ; i++) {
      let ns = own;
      try {
        ns = readlinkSync(`/proc/${pid}/ns/user`);
      } catch {
        /* not yet */
      }
      if (ns !== own) break;
      if (i >= 200 || child.exitCode !== null) throw new SystemError('userns: unshare --user did not make a user namespace');
      await sleep(5);
    }
    writeFileSync(`/proc/${pid}/uid_map`, mapText(maps.uidMappings));
    writeFileSync(`/proc/${pid}/gid_map`, mapText(maps.gidMappings));
    return openSync(`/proc/${pid}/ns/user`, 'r');
  } finally {
    child.kill('SIGKILL');
    await gone;
  }
}

/** lowerdir/upperdir/workdir of an overlay mount's options (null when not all absolute paths). */
function overlayDirs(superOptions: readonly string[]): { lower: string[]; upper: string; work: string } | null {
  const get = (k: string): string | undefined => superOptions.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
  const lower = get('lowerdir')?.split(':');
  const upper = get('upperdir');
  const work = get('workdir');
  if (!lower || !upper || !work || ![...lower, upper, work].every(isAbsolute) || dirname(upper) !== dirname(work)) return null;
  return { lower, upper, work };
}

/** Detach every mount under `dir` and remove it. */
async function dropLayers(native: NativeAddon, dir: string): Promise<void> {
  for (const mp of mountPointsUnder(dir, await readMountInfo()).reverse()) {
    await native.umount2(mp, MNT_DETACH).catch(() => {});
  }
  await rm(dir, { recursive: true, force: true });
}

/** In a container's directory: the mapping its upper layer was last shifted to. */
export const UPPER_MARKER = 'userns-upper.json';

/** Mount an overlay at `target` over idmapped copies (under `layers`) of the lower directories. */
async function mountIdmappedOverlay(native: NativeAddon, fd: number, dirs: { lower: string[]; upper: string; work: string }, layers: string, target: string): Promise<void> {
  await mkdir(layers, { recursive: true, mode: 0o711 });
  const lowers: string[] = [];
  for (const [i, l] of dirs.lower.entries()) {
    const at = join(layers, String(i));
    await mkdir(at);
    native.idmapBind(l, at, fd);
    lowers.push(at);
  }
  await native.mount('overlay', target, 'overlay', 0, `lowerdir=${lowers.join(':')},upperdir=${dirs.upper},workdir=${dirs.work}`);
}

/** The idmapped strategy, or null with the reason why this host cannot use it. */
export async function probeIdmap(scratch: string): Promise<{ strategy: RootfsStrategy; close(): void } | { reason: string }> {
  const native = nativeAddon();
  if (!native?.idmapBind) return { reason: 'the native addon (idmapBind) is not available' };
  const maps: IdMaps = { uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }] };
  let fd = -1;
  try {
    await rm(scratch, { recursive: true, force: true });
    for (const d of ['lower', 'upper', 'work', 'merged']) await mkdir(join(scratch, d), { recursive: true });
    await writeFile(join(scratch, 'lower', 'f'), '');
    fd = await openUserNamespace(maps);
    await mountIdmappedOverlay(native, fd, { lower: [join(scratch, 'lower')], upper: join(scratch, 'upper'), work: join(scratch, 'work') }, join(scratch, 'layers'), join(scratch, 'merged'));
    const st = await stat(join(scratch, 'merged', 'f'));
    if (st.uid !== 100000) throw new Error(`a lower file shows uid ${st.uid} through the overlay, not the mapped 100000`);
    await writeFile(join(scratch, 'merged', 'g'), '');
  } catch (err) {
    return { reason: `idmapped overlay layers refused: ${(err as Error).message}` };
  } finally {
    if (fd >= 0) closeSync(fd);
    await native.umount2(join(scratch, 'merged'), MNT_DETACH).catch(() => {});
    await dropLayers(native, join(scratch, 'layers')).catch(() => {});
    await rm(scratch, { recursive: true, force: true }).catch(() => {});
  }
  return idmapStrategy(native);
}

function idmapStrategy(native: NativeAddon): { strategy: RootfsStrategy; close(): void } {
  const namespaces = new Map<string, Promise<number>>();
  const fallback = chownStrategy();
  const strategy: RootfsStrategy = {
    name: 'idmap',
    async prepare(rootfs, maps, containerDir) {
      const layers = join(containerDir, LAYERS_DIR);
      // an earlier start by the chown strategy shifted the whole tree: back to the image's IDs
      await shiftOwnership(rootfs, IDENTITY, join(containerDir, SHIFT_MARKER));
      const m = mountOf(rootfs, await readMountInfo());
      const dirs = m?.mountPoint === rootfs && m.fsType === 'overlay' ? overlayDirs(m.superOptions) : null;
      if (!dirs) return fallback.prepare(rootfs, maps, containerDir);
      if (dirs.lower[0]?.startsWith(`${layers}/`)) return; // already ours: still mounted from a start with this mapping
      const upperMarker = join(containerDir, UPPER_MARKER);
      const mapped = maps.uidMappings.length > 0;
      if (!mapped && (await markedWith(upperMarker, IDENTITY))) return;
      const plain = `lowerdir=${dirs.lower.join(':')},upperdir=${dirs.upper},workdir=${dirs.work}`;
      // the upper layer is changed (shifted) only while no overlay sits on it
      await native.umount2(rootfs, 0);
      try {
        await shiftOwnership(dirs.upper, maps, upperMarker);
        if (!mapped) return await native.mount('overlay', rootfs, 'overlay', 0, plain);
        await dropLayers(native, layers);
        const key = JSON.stringify(maps);
        if (!namespaces.has(key)) namespaces.set(key, openUserNamespace(maps));
        await mountIdmappedOverlay(native, await namespaces.get(key)!, dirs, layers, rootfs);
      } catch (err) {
        await dropLayers(native, layers).catch(() => {});
        await native.mount('overlay', rootfs, 'overlay', 0, plain).catch(() => {});
        throw new SystemError(`userns: giving the root filesystem ${rootfs} to the mapping failed: ${(err as Error).message}`, { cause: err });
      }
    },
    async release(containerDir) {
      const layers = join(containerDir, LAYERS_DIR);
      if (existsSync(layers)) await dropLayers(native, layers);
    },
    check: fallback.check,
  };
  return {
    strategy,
    close() {
      for (const p of namespaces.values()) void p.then(closeSync, () => {});
      namespaces.clear();
    },
  };
}
