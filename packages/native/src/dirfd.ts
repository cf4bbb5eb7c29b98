/**
 * One step of an fd-relative walk: open or read the symlink `name` (a single component) inside
 * a directory fd the caller holds, never following a symlink at `name` and never leaving the
 * directory. With the addon this is openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS (the kernel refuses any escape even if a caller passed a bad name);
 * without it, the same single step through `/proc/self/fd/<dirfd>/<name>` with O_NOFOLLOW (the
 * kernel jumps to the directory of our own fd, then looks up one component there). Either way
 * the container owning the directory can change what `name` is between two steps, but never
 * make a step land outside the directory.
 */
import fs, { constants as fsc, promises as fsp } from 'node:fs';
import { promisify } from 'node:util';
import { errnoName, nativeAddon, type NativeAddon } from './index.js';

/** open(2)'s O_PATH (Linux), which Node's fs.constants does not export. */
export const O_PATH = 0o10000000;

/** openat2 `resolve` flags (linux/openat2.h). */
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;

// fs.open, not fs.promises.open: a raw fd the caller owns (a FileHandle would close it when collected)
const openFd = promisify(fs.open);

export interface DirFdOps {
  /** 'openat2' (the addon) or 'procfd' (the fallback). */
  readonly kind: 'openat2' | 'procfd';
  /** Open `name` in `dirfd` with `flags` (O_NOFOLLOW and O_CLOEXEC added); the caller closes the fd. */
  openAt(dirfd: number, name: string, flags: number, mode?: number): Promise<number>;
  /** The target of the symlink `name` in `dirfd` (EINVAL when it is not a symlink). */
  readlinkAt(dirfd: number, name: string): Promise<string>;
}

/** The path that names `name` inside the directory of our own fd `dirfd` (the whole dir without `name`). */
export function procFdPath(dirfd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${dirfd}` : `/proc/self/fd/${dirfd}/${checkName(name)}`;
}

/** A single path component: not empty, no '/', no NUL, not '..' ('.' names the directory itself). */
export function checkName(name: string): string {
  if (typeof name !== 'string' || name === '' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new TypeError(`not a single path component: ${JSON.stringify(name)}`);
  }
  return name;
}

function checkFd(fd: number): number {
  if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`not a file descriptor: ${String(fd)}`);
  return fd;
}

/** The addon's errors carry a numeric errno; give them Node's `code` too, so callers test one field. */
function withCode(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e === 'object' && e.code === undefined) {
    const code = errnoName(e);
    if (code) e.code = code;
  }
  return err;
}

const WALK_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

function nativeOps(n: NativeAddon): DirFdOps {
  // a kernel before 5.6 (or a seccomp filter that does not know openat2) says ENOSYS: from then on the fallback
  let enosys = false;
  return {
    kind: 'openat2',
    openAt: async (dirfd, name, flags, mode = 0) => {
      checkFd(dirfd);
      checkName(name);
      if (enosys) return procOps.openAt(dirfd, name, flags, mode);
      try {
        return await n.openat2(dirfd, name, flags | fsc.O_NOFOLLOW, mode, WALK_RESOLVE);
      } catch (e) {
        if (errnoName(e) !== 'ENOSYS') throw withCode(e);
        enosys = true;
        return procOps.openAt(dirfd, name, flags, mode);
      }
    },
    readlinkAt: async (dirfd, name) => {
      checkFd(dirfd);
      checkName(name);
      return n.readlinkat(dirfd, name).catch((e: unknown) => Promise.reject(withCode(e)));
    },
  };
}

const procOps: DirFdOps = {
  kind: 'procfd',
  // libuv adds O_CLOEXEC to every open
  openAt: async (dirfd, name, flags, mode = 0) => openFd(procFdPath(checkFd(dirfd), name), flags | fsc.O_NOFOLLOW, mode),
  readlinkAt: async (dirfd, name) => fsp.readlink(procFdPath(checkFd(dirfd), name)),
};

/** The addon's openat2 when it is loaded (`native` overrides, null forces the fallback). */
export function dirFdOps(native: NativeAddon | null = nativeAddon()): DirFdOps {
  return native ? nativeOps(native) : procOps;
}
