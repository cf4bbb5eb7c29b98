/**
 * A container's file tree as the container sees it, for docker cp: its root filesystem with
 * its bind mounts at their destinations (dockerd mounts them for archive requests too), walked
 * one component at a time from directory fds berth holds. Every step opens or reads a single
 * name inside the directory of the previous step and never follows a symlink there
 * (@berth/native's dirFdOps: openat2 with RESOLVE_BENEATH, or /proc/self/fd/<fd>/<name> with
 * O_NOFOLLOW without the addon); symlinks are read and resolved by the walk itself, `..` and
 * absolute targets clamped at the container's root. A container that swaps a directory for a
 * symlink while a request runs can change which of its own files the request reaches, never
 * make it reach a host file (the CVE-2018-15664 class).
 *
 * What a walk returns is an Entry: the directory fd holding the final name and that name ('.'
 * when the entry is the directory itself: the root, a mount's root). Every operation on it
 * goes through that fd; `close()` gives the fds back.
 */
import fs, { constants as fsc } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { InvalidParameterError, NotFoundError, type MountPoint } from '@berth/core';
import { O_PATH, dirFdOps, procFdPath, type DirFdOps } from '@berth/native';

/** Symlinks (and races retried) one walk follows before it gives up, as the kernel's ELOOP limit. */
const MAX_HOPS = 40;
/** Directories one walk may create (a tar entry's missing parents). */
const MAX_MADE = 4096;

const closeFd = promisify(fs.close);
const openFd = promisify(fs.open);
const fstatFd = promisify(fs.fstat);

/** A bind mount of the container: `source` (a host path) seen at `destination` inside it. */
export interface RootMount {
  destination: string;
  source: string;
  readOnly: boolean;
}

/**
 * The container's bind mounts from its inspect `Mounts` (volumes that have a host source too);
 * `volumes`: where the volumes mounted for the request are (by destination), in place of the
 * recorded Source (a driver's path can differ, or be empty, while the volume is unmounted).
 */
export function rootMounts(mounts: readonly MountPoint[] | null | undefined, volumes?: ReadonlyMap<string, string>): RootMount[] {
  return (mounts ?? [])
    .filter((m) => m.Type === 'bind' || m.Type === 'volume')
    .map((m) => ({ destination: m.Destination, source: (m.Type === 'volume' ? volumes?.get(m.Destination) : undefined) ?? m.Source, readOnly: !m.RW }))
    .filter((m) => m.source.startsWith('/') && m.destination.startsWith('/'))
    .map((m) => ({ ...m, destination: cleanContainerPath(m.destination) }));
}

/** Components of a container path: no empty ones, no '.'. */
function components(p: string): string[] {
  return p.split('/').filter((x) => x !== '' && x !== '.');
}

/** `/a/b`: a container path, normalised, without trailing slash. */
export function cleanContainerPath(p: string): string {
  return '/' + path.posix.normalize('/' + p).split('/').filter(Boolean).join('/');
}

export function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** The final name of a walk, in the directory fd that holds it. */
export class Entry {
  constructor(
    /** The directory holding `name`, or the entry itself when `name` is '.'. */
    readonly dirfd: number,
    readonly name: string,
    /** The entry's container path (symlinks resolved, except a final one not followed). */
    readonly path: string,
    /** The innermost bind mount holding the entry (null: the root filesystem). */
    readonly mount: RootMount | null,
    private readonly ops: DirFdOps,
    private readonly owned: boolean,
  ) {}

  /** lstat(2) of the entry. */
  lstat(): Promise<fs.Stats> {
    return this.name === '.' ? fstatFd(this.dirfd) : fsp.lstat(procFdPath(this.dirfd, this.name));
  }

  /** Open the entry (a symlink there fails with ELOOP/ENOTDIR); the caller closes the fd. */
  open(flags: number, mode = 0): Promise<number> {
    // '.': reopen our own fd (the magic link /proc/self/fd/<fd> must be followed)
    return this.name === '.' ? openFd(procFdPath(this.dirfd), flags & ~fsc.O_NOFOLLOW, mode) : this.ops.openAt(this.dirfd, this.name, flags, mode);
  }

  readlink(): Promise<string> {
    return this.ops.readlinkAt(this.dirfd, this.name);
  }

  /** The path that names this entry for one single-component call (lchown, mkdir, link …); never for '.'. */
  at(): string {
    if (this.name === '.') throw new InvalidParameterError(`cannot replace ${this.path}: it is a mount point or the root`);
    return procFdPath(this.dirfd, this.name);
  }

  async close(): Promise<void> {
    if (this.owned) await closeFd(this.dirfd).catch(() => undefined);
  }
}

interface Frame {
  name: string;
  fd: number;
  mount: RootMount | null;
  /** Opened by this walk (closed by it unless handed to the Entry); the root and mount fds belong to the ContainerRoot. */
  owned: boolean;
}

export interface WalkOptions {
  /** Follow a symlink in the final component (stat/GET do not, an extraction point does). */
  followLast: boolean;
  /**
   * Create missing directories before the final component (0755, as tar extraction does);
   * called with the mount that would hold each one first, and may refuse by throwing.
   */
  create?: (mount: RootMount | null) => void;
}

/** The container's tree for one request: open() it, walk paths, close() it (also on failure). */
export class ContainerRoot {
  private readonly mountFds = new Map<string, Promise<number>>();
  private readonly byDest: Map<string, RootMount>;

  private constructor(
    private readonly rootFd: number,
    mounts: readonly RootMount[],
    readonly ops: DirFdOps,
  ) {
    this.byDest = new Map(mounts.map((m) => [m.destination, m]));
  }

  /** `root`: the host path of the mounted root filesystem (trusted); `mounts`: the container's binds. */
  static async open(root: string, mounts: readonly RootMount[] = [], ops: DirFdOps = dirFdOps()): Promise<ContainerRoot> {
    const fd = await openFd(root, O_PATH | fsc.O_DIRECTORY);
    const tree = new ContainerRoot(fd, mounts, ops);
    try {
      await tree.aliasMountTargets();
    } catch (err) {
      await tree.close();
      throw err;
    }
    return tree;
  }

  /**
   * A destination the image reaches through a symlink (-v src:/var/run with /var/run -> /run)
   * is mounted by the runtime where the symlink leads: the mount is seen at that path too.
   */
  private async aliasMountTargets(): Promise<void> {
    for (const [dest, m] of [...this.byDest.entries()].sort((a, b) => a[0].length - b[0].length)) {
      // resolve the destination in what lies under the mount (the mount itself set aside)
      this.byDest.delete(dest);
      let at: string | null = null;
      try {
        const e = await this.walk(dest, { followLast: true });
        at = e.path;
        await e.close();
      } catch (err) {
        if (!(err instanceof NotFoundError) && !(err instanceof InvalidParameterError)) throw err;
      } finally {
        this.byDest.set(dest, m);
      }
      if (at !== null && !this.byDest.has(at)) this.byDest.set(at, m);
    }
  }

  /** An entry met while reading the directory `dirfd` (which the caller keeps open and closes). */
  entryIn(dirfd: number, name: string, containerPath: string, mount: RootMount | null): Entry {
    return new Entry(dirfd, name, containerPath, mount, this.ops, false);
  }

  /** The bind mount whose destination is exactly `containerPath`. */
  mountAt(containerPath: string): RootMount | undefined {
    return this.byDest.get(containerPath);
  }

  /** The innermost bind mount at or above `containerPath` (lexically, as dockerd's HasResource). */
  mountOf(containerPath: string): RootMount | null {
    let best: { at: string; m: RootMount } | null = null;
    for (const [at, m] of this.byDest) {
      const inside = containerPath === at || containerPath.startsWith(at + '/');
      if (inside && (!best || at.length > best.at.length)) best = { at, m };
    }
    return best?.m ?? null;
  }

  private mountFd(m: RootMount): Promise<number> {
    let p = this.mountFds.get(m.destination);
    if (!p) {
      // the operator's host path, followed as the runtime did when it mounted it
      p = openFd(m.source, O_PATH);
      p.catch(() => undefined);
      this.mountFds.set(m.destination, p);
    }
    return p;
  }

  /**
   * Walk `p` (a container path) from the root. Missing final components are fine (the Entry
   * then names something that does not exist); a missing or non-directory component before it
   * is a NotFoundError unless `create`.
   */
  async walk(p: string, opts: WalkOptions): Promise<Entry> {
    const root: Frame = { name: '', fd: this.rootFd, mount: null, owned: false };
    const frames: Frame[] = [root];
    const parts = components(p);
    const cpath = (extra?: string) => '/' + [...frames.slice(1).map((f) => f.name), ...(extra === undefined ? [] : [extra])].join('/');
    const drop = async (keep?: Frame) => {
      for (const f of frames) if (f.owned && f !== keep) await closeFd(f.fd).catch(() => undefined);
    };
    const entry = (f: Frame, name: string, at: string, mount: RootMount | null) => {
      frames.splice(frames.indexOf(f), 1);
      return new Entry(f.fd, name, at, mount, this.ops, f.owned);
    };
    let hops = 0;
    let made = 0;
    const hop = () => {
      if (++hops > MAX_HOPS) throw new InvalidParameterError(`too many levels of symbolic links resolving ${p}`);
    };
    try {
      while (parts.length > 0) {
        const part = parts.shift()!;
        const top = frames[frames.length - 1]!;
        if (part === '..') {
          if (frames.length > 1) {
            frames.pop();
            if (top.owned) await closeFd(top.fd);
          }
          continue;
        }
        const last = parts.length === 0;
        const here = cpath(part);
        const mount = this.byDest.get(here);
        if (mount) {
          const fd = await this.mountFd(mount);
          const f: Frame = { name: part, fd, mount, owned: false };
          frames.push(f);
          if (last) return entry(f, '.', here, mount);
          continue;
        }
        let st: fs.Stats | null;
        try {
          st = await fsp.lstat(procFdPath(top.fd, part));
        } catch (err) {
          // below a file (a file bind, say): nothing there
          if (errCode(err) === 'ENOTDIR') throw new NotFoundError(`not a directory: ${cpath()}`);
          if (errCode(err) !== 'ENOENT') throw err;
          st = null;
        }
        if (!st) {
          if (last) return entry(top, part, here, top.mount);
          if (!opts.create) throw new NotFoundError(`no such file or directory: ${here}`);
          opts.create(top.mount);
          await fsp.mkdir(procFdPath(top.fd, part), 0o755).catch((err: unknown) => {
            if (errCode(err) !== 'EEXIST') throw err;
          });
          // bounded apart from the symlinks: a deep path makes many, a racing container no end of them
          if (++made > MAX_MADE) throw new InvalidParameterError(`cannot create the directories of ${p}: they keep disappearing`);
          parts.unshift(part);
          continue;
        }
        if (st.isSymbolicLink() && (!last || opts.followLast)) {
          hop();
          let target: string;
          try {
            target = await this.ops.readlinkAt(top.fd, part);
          } catch (err) {
            // no longer a symlink (swapped meanwhile): look at the name again
            if (errCode(err) !== 'EINVAL' && errCode(err) !== 'ENOENT') throw err;
            parts.unshift(part);
            continue;
          }
          if (target.startsWith('/')) {
            await drop(root);
            frames.length = 1;
          }
          parts.unshift(...components(target));
          continue;
        }
        if (last) return entry(top, part, here, top.mount);
        if (!st.isDirectory()) throw new NotFoundError(`not a directory: ${here}`);
        let fd: number;
        try {
          fd = await this.ops.openAt(top.fd, part, O_PATH | fsc.O_DIRECTORY);
        } catch (err) {
          const code = errCode(err);
          // swapped for a symlink or a file, or removed, since the lstat: look again
          if (code !== 'ELOOP' && code !== 'ENOTDIR' && code !== 'ENOENT') throw err;
          hop();
          parts.unshift(part);
          continue;
        }
        frames.push({ name: part, fd, mount: top.mount, owned: true });
      }
      const top = frames[frames.length - 1]!;
      return entry(top, '.', cpath(), top.mount);
    } finally {
      await drop();
    }
  }

  async close(): Promise<void> {
    await closeFd(this.rootFd).catch(() => undefined);
    for (const p of this.mountFds.values()) {
      const fd = await p.catch(() => null);
      if (fd !== null) await closeFd(fd).catch(() => undefined);
    }
    this.mountFds.clear();
  }
}

/** Remove `name` in `dirfd` and, for a directory, everything below it, one fd-relative step at a time. */
export async function removeTree(ops: DirFdOps, dirfd: number, name: string): Promise<void> {
  const at = procFdPath(dirfd, name);
  try {
    await fsp.unlink(at);
    return;
  } catch (err) {
    const code = errCode(err);
    if (code === 'ENOENT') return;
    if (code !== 'EISDIR' && code !== 'EPERM') throw err;
  }
  let fd: number;
  try {
    fd = await ops.openAt(dirfd, name, O_PATH | fsc.O_DIRECTORY);
  } catch (err) {
    // replaced meanwhile: one more unlink of whatever is there now
    if (errCode(err) === 'ELOOP' || errCode(err) === 'ENOTDIR') return fsp.unlink(at);
    throw err;
  }
  try {
    for (const child of await fsp.readdir(procFdPath(fd))) await removeTree(ops, fd, child);
  } finally {
    await closeFd(fd).catch(() => undefined);
  }
  await fsp.rmdir(at);
}
