/**
 * Network namespaces as files: a new namespace is made by `unshare --net=FILE` (util-linux),
 * which bind-mounts the namespace onto FILE so it outlives the process that made it — the way
 * `ip netns add` and CNI runtimes keep a container's namespace before its runtime starts. The
 * file's path is what the OCI spec's `linux.namespaces[type=network].path` and CNI_NETNS name.
 * Its loopback interface is brought up in the same exec (`ip link set lo up` run by unshare inside
 * the new namespace; the kernel then gives lo 127.0.0.1/8 and ::1): what the CNI loopback plugin
 * would do, without a plugin exec and a result-cache entry on every start and stop (a namespace
 * that goes away takes its lo with it, so nothing is undone at release).
 * Removal unmounts (lazily: an exiting container's process may still hold it) and unlinks;
 * removing a namespace that is already gone is not an error.
 * The processes run without forking the daemon and the mounts are syscalls when the native
 * addon is loaded (spawn.ts; @berth/native's mount/umount2), else the binaries do it.
 */
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MNT_DETACH, nativeAddon } from '@berth/native';
import { lookPath, runTool } from './spawn.js';

/** mount(2) flag of a bind mount. */
const MS_BIND = 4096;

/** umount -l: detach now, free when no longer busy. */
async function detach(file: string): Promise<void> {
  const native = nativeAddon();
  if (native) await native.umount2(file, MNT_DETACH);
  else await runTool('umount', ['-l', file]);
}

/** `ip` as an absolute path for unshare/nsenter to exec (they would search PATH otherwise). */
async function ipBinary(): Promise<string> {
  return (await lookPath('ip')) ?? 'ip';
}

/** Whether `file` is a mount point of an nsfs (a kept namespace), from /proc/self/mountinfo. */
export async function isNamespaceFile(file: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => {
    const f = l.split(' ');
    const sep = f.indexOf('-');
    return f[4] === escapeMountPath(file) && sep > 0 && f[sep + 1] === 'nsfs';
  });
}

function escapeMountPath(p: string): string {
  return p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** Make a new network namespace kept at `file` (created; its directory too), lo up in it. */
export async function createNetns(file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o711 });
  const fh = await open(file, 'wx', 0o444); // refuse to reuse a path: it may be a live namespace
  await fh.close();
  try {
    await runTool('unshare', [`--net=${file}`, await ipBinary(), 'link', 'set', 'lo', 'up']);
  } catch (err) {
    if (await isNamespaceFile(file)) await detach(file).catch(() => {}); // made, but lo failed
    await unlink(file).catch(() => {});
    throw new Error(`creating the network namespace ${file} failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
}

/**
 * Keep an existing namespace (`source`, e.g. /proc/<pid>/ns/net of a container whose runtime
 * made it) at `file`, as `ip netns attach` does: a bind mount on a new empty file; lo is
 * brought up in it (idempotent: a runtime that made the namespace may have done so already).
 */
export async function bindNetns(file: string, source: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o711 });
  const fh = await open(file, 'wx', 0o444);
  await fh.close();
  try {
    const native = nativeAddon();
    if (native) await native.mount(source, file, null, MS_BIND, null);
    else await runTool('mount', ['--bind', source, file]);
    await runTool('nsenter', [`--net=${file}`, await ipBinary(), 'link', 'set', 'lo', 'up']);
  } catch (err) {
    if (await isNamespaceFile(file)) await detach(file).catch(() => {});
    await unlink(file).catch(() => {});
    throw new Error(`keeping the network namespace ${source} at ${file} failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
}

/** Drop the namespace kept at `file` (idempotent). */
export async function removeNetns(file: string): Promise<void> {
  if (await isNamespaceFile(file)) {
    try {
      await detach(file);
    } catch (err) {
      if (await isNamespaceFile(file)) throw new Error(`unmounting the network namespace ${file} failed: ${(err as Error).message}`);
    }
  }
  await unlink(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
