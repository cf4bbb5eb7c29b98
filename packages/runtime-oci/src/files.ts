/**
 * File-level helpers of the OCI backend: runc's fast start through its exec fifo, writing to
 * conmon's control fifo, the mounts below a bundle and the removal of a container's files,
 * listing a dir that may be gone.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ConflictError, SystemError, mountPointsUnder, readMountInfo } from '@berth/core';
import { nativeAddon, removeTrees } from '@berth/native';

/**
 * What `runc start` does in runc 1.x: open `<root>/<id>/exec.fifo` for reading, which lets
 * the waiting `runc init` write one byte and exec the container's process, then remove the
 * fifo (runc's state is 'created' while it exists). False when this does not apply or did
 * not work, so that the caller runs `runc start` (which reports the proper error).
 */
export async function fastStartRunc(meta: { runtimePath: string; globalArgs: string[]; id: string }): Promise<boolean> {
  if (path.basename(meta.runtimePath) !== 'runc') return false;
  let root = '/run/runc';
  for (let i = 0; i < meta.globalArgs.length; i++) {
    const a = meta.globalArgs[i];
    if (a === '--root') root = meta.globalArgs[i + 1] ?? root;
    else if (a.startsWith('--root=')) root = a.slice('--root='.length);
  }
  const fifo = path.join(root, meta.id, 'exec.fifo');
  let fd: number;
  try {
    if (!fs.statSync(fifo).isFIFO()) return false;
    fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return false;
  }
  const buf = Buffer.alloc(16);
  const deadline = Date.now() + 2000;
  try {
    for (;;) {
      try {
        if (fs.readSync(fd, buf, 0, buf.length, null) > 0) break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return false;
      }
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 1));
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.rmSync(fifo, { force: true });
  return true;
}

export async function writeFifo(file: string, data: string): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw new ConflictError(`monitor control fifo unavailable (${(err as NodeJS.ErrnoException).code}): container not running`, {
      cause: err,
    });
  }
  try {
    await fh.write(data);
  } finally {
    await fh.close();
  }
}

/** Mount points at or below `dir` (from /proc/self/mountinfo). */
export async function mountsUnder(dir: string): Promise<string[]> {
  return mountPointsUnder(dir, await readMountInfo().catch(() => []));
}

/**
 * Remove a container's files: `others` (its exit file, socket dir entry, log pump files), then
 * its bundle dir, never through anything still mounted in the bundle. With the native addon
 * ONE thread-pool job that does not descend into a mount point: what is not under the mount is
 * removed, the mount and the dirs above it stay and the call fails. Without it, Node's fs.rm
 * of each after a /proc/self/mountinfo check of the bundle (then the bundle is left whole).
 */
export async function removeContainerFiles(bundle: string, id: string, others: string[] = []): Promise<void> {
  const addon = nativeAddon();
  if (!addon) {
    await removeTrees(null, others);
    const mounts = await mountsUnder(bundle);
    if (mounts.length) throw new SystemError(`bundle of ${id} still has mounts (${mounts.join(', ')}); not removing it`);
    return removeTrees(null, [bundle]);
  }
  try {
    await removeTrees(addon, [...others, bundle]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'EBUSY' || !e.path) throw err;
    const where = e.path === bundle || e.path.startsWith(`${bundle}/`) ? `bundle of ${id} still has mounts` : `a file of ${id} is a mount point`;
    throw new SystemError(`${where} (${e.path}); removed what is not under it, not removing it`, { cause: err });
  }
}

export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
