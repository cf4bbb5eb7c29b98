/**
 * Atomic file writes: the one way berth's packages replace a file (the state store, the
 * image store's metadata, the OCI backend's bundle and record files, network-basic's
 * hosts/resolv.conf). A temp file `.tmp-<name>.<random>` is written in the same directory,
 * given its mode (whatever the umask), optionally fsync'd, then renamed over the file: a
 * reader, or a daemon killed meanwhile, sees the old or the new content, never half of it.
 * A failed write removes its temp file (on a full disk its space comes back at once); temp
 * files a crash left behind start with `ATOMIC_TMP_PREFIX` for whoever sweeps them.
 * Directories to make first (`dirs`, `mkdir`) go with the writes. Where @berth/native's addon
 * is loaded, all of it — mkdirs, opens, chmods, writes, fsyncs, renames — is one thread-pool
 * job (native/files.c; issue 18: a create made ~20 round trips through the daemon's one JS
 * thread); without it, the same steps through Node's fs calls below.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DIR_EXIST_OK, WRITE_NO_FSYNC, WRITE_SYNC_DIR, nativeAddon, writeFiles as nativeWriteFiles } from '@berth/native';

/** What the temp files of atomic writes start with (a sweep after a crash may delete them). */
export const ATOMIC_TMP_PREFIX = '.tmp-';

export interface AtomicWriteOptions {
  /** The file's mode, set whatever the process umask (default 0o600). */
  mode?: number;
  /**
   * fsync each temp file before its rename (default true): after a crash or power loss the
   * file is whole, old or new. Off for files that do not outlive a reboot (the exec root).
   */
  fsync?: boolean;
  /** fsync the directory after the renames, so that the new files are durable, not only whole (default false, as dockerd's atomic writer). */
  syncDir?: boolean;
  /** Create the directory (and its parents) first (default false). */
  mkdir?: boolean;
  /**
   * Directories made before the writes, in order (`makeDirs`): with the addon, in the same
   * thread-pool job.
   */
  dirs?: DirSpec[];
}

/** A directory to make: one mkdir with `mode` (umask applies), its missing parents made too. */
export interface DirSpec {
  path: string;
  mode: number;
  /** An existing directory is fine; else it fails the call with EEXIST (a caller tells "was there" from "made now"). */
  existOk?: boolean;
}

const nativeDirs = (dirs: DirSpec[]) => dirs.map((d): [string, number, number] => [d.path, d.mode, d.existOk ? DIR_EXIST_OK : 0]);

async function makeDir(d: DirSpec): Promise<void> {
  try {
    await mkdir(d.path, { mode: d.mode });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') await mkdir(d.path, { recursive: true, mode: d.mode });
    else if (code !== 'EEXIST' || !d.existOk) throw err;
  }
}

/** Make `dirs` in order, each with one mkdir when its parent exists (one thread-pool job with the addon). */
export async function makeDirs(dirs: DirSpec[]): Promise<void> {
  const addon = nativeAddon();
  if (addon) return nativeWriteFiles(addon, nativeDirs(dirs), '', [], 0, 0);
  for (const d of dirs) await makeDir(d);
}

function tempName(dir: string, name: string): string {
  return join(dir, `${ATOMIC_TMP_PREFIX}${name}.${randomBytes(4).toString('hex')}`);
}

/** Whether a directory entry is the temp file of an atomic write (left by a crash when found at start-up). */
export function isAtomicTempFile(name: string): boolean {
  return name.startsWith(ATOMIC_TMP_PREFIX);
}

/** Replace `file` with `data` atomically. */
export async function atomicWriteFile(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  await atomicWriteFiles(dirname(file), [[basename(file), data]], opts);
}

/**
 * Replace several files of one directory, each atomically: every temp file is written (and
 * fsync'd, concurrently) before the first rename, and the renames happen in the given order.
 * A crash leaves each file old or new, never torn or empty, and a later file is never newer
 * than an earlier one.
 */
export async function atomicWriteFiles(dir: string, files: [name: string, data: string | Uint8Array][], opts: AtomicWriteOptions = {}): Promise<void> {
  const mode = opts.mode ?? 0o600;
  const dirs = opts.mkdir ? [...(opts.dirs ?? []), { path: dir, mode: 0o777, existOk: true }] : (opts.dirs ?? []);
  const addon = nativeAddon();
  if (addon) {
    const flags = (opts.fsync === false ? WRITE_NO_FSYNC : 0) | (opts.syncDir ? WRITE_SYNC_DIR : 0);
    return nativeWriteFiles(addon, nativeDirs(dirs), dir, files, mode, flags);
  }
  for (const d of dirs) await makeDir(d);
  const tmps = files.map(([name]) => tempName(dir, name));
  const written = await Promise.allSettled(
    files.map(async ([, data], i) => {
      const fh = await open(tmps[i], 'w', mode);
      try {
        await fh.chmod(mode);
        await fh.writeFile(data);
        if (opts.fsync !== false) await fh.sync();
      } finally {
        await fh.close();
      }
    }),
  );
  const failed = written.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(tmps.map((t) => unlink(t).catch(() => {})));
    throw failed.reason;
  }
  for (let i = 0; i < files.length; i++) {
    try {
      await rename(tmps[i], join(dir, files[i][0]));
    } catch (err) {
      await Promise.all(tmps.slice(i).map((t) => unlink(t).catch(() => {})));
      throw err;
    }
  }
  if (opts.syncDir) {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } catch {
      // some filesystems refuse fsync on a directory; the renames are atomic all the same
    } finally {
      await dh.close();
    }
  }
}

/** `atomicWriteFile` for the few callers that must not yield (no fsync: they write to the exec root). */
export function atomicWriteFileSync(file: string, data: string | Uint8Array, opts: Pick<AtomicWriteOptions, 'mode'> = {}): void {
  const mode = opts.mode ?? 0o600;
  const tmp = tempName(dirname(file), basename(file));
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      fchmodSync(fd, mode);
      writeFileSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw err;
  }
}
