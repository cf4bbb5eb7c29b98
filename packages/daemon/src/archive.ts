/**
 * docker cp and docker export on a container's tree: HEAD/GET/PUT /containers/{id}/archive and
 * GET /containers/{id}/export. Paths are resolved as the container sees them (symlinks followed
 * inside its root, `..` clamped there, its bind mounts at their destinations) and every read and
 * write goes through directory fds of that walk (container-root.ts), so a container racing the
 * request with symlink swaps never gets it to read or write a host file. Tar entries that would
 * land outside the extraction point are refused; a body that is not a tar is a 400.
 */
import fs, { constants as fsc } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { ForbiddenError, InvalidParameterError, NotFoundError, idsOf, withExactIds, type OwnerMap } from '@berth/core';
import { O_PATH, procFdPath } from '@berth/native';
import { ContainerRoot, cleanContainerPath, errCode, removeTree, type Entry, type RootMount } from './container-root.js';

export { rootMounts, type RootMount } from './container-root.js';

type TarHeader = Partial<tar.Header> & { name: string };

const closeFd = promisify(fs.close);
const fstatFd = promisify(fs.fstat);
const writeFd = promisify(fs.write);
const readFd = promisify(fs.read);
/** The size of one read of a file being tarred. */
const READ_CHUNK = 64 * 1024;

/** Run `fn` on the container's tree at `root`, closing every fd it opened whatever happens. */
async function withTree<T>(root: string, mounts: readonly RootMount[], fn: (tree: ContainerRoot) => Promise<T>): Promise<T> {
  const tree = await ContainerRoot.open(root, mounts);
  try {
    return await fn(tree);
  } finally {
    await tree.close();
  }
}

/** Go's os.FileMode bits, as the docker CLI decodes X-Docker-Container-Path-Stat. */
function goMode(st: fs.Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m |= 0x80000000;
  if (st.isSymbolicLink()) m |= 0x08000000;
  if (st.isFIFO()) m |= 0x02000000;
  if (st.isSocket()) m |= 0x01000000;
  if (st.isCharacterDevice()) m |= 0x04000000 | 0x00200000;
  if (st.isBlockDevice()) m |= 0x04000000;
  if (st.mode & 0o4000) m |= 0x00800000;
  if (st.mode & 0o2000) m |= 0x00400000;
  if (st.mode & 0o1000) m |= 0x00100000;
  return m >>> 0;
}

export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

function notFound(containerPath: string, containerId: string): NotFoundError {
  return new NotFoundError(`Could not find the file ${containerPath} in container ${containerId}`);
}

/** lstat of an entry; a missing one is the API's 404. */
async function lstatOr404(e: Entry, containerPath: string, containerId: string): Promise<fs.Stats> {
  try {
    return await e.lstat();
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') throw notFound(containerPath, containerId);
    throw err;
  }
}

/** Walk with a missing or non-directory intermediate component answered as the API's 404. */
async function walkOr404(tree: ContainerRoot, containerPath: string, followLast: boolean, containerId: string): Promise<Entry> {
  try {
    return await tree.walk(containerPath, { followLast });
  } catch (err) {
    if (err instanceof NotFoundError) throw notFound(containerPath, containerId);
    throw err;
  }
}

/** The X-Docker-Container-Path-Stat of `containerPath` (a final symlink is described, not followed). */
export async function statPath(root: string, containerPath: string, containerId: string, mounts: readonly RootMount[] = []): Promise<{ stat: PathStat }> {
  if (!containerPath) throw new InvalidParameterError('Path cannot be empty');
  return withTree(root, mounts, async (tree) => {
    const e = await walkOr404(tree, containerPath, false, containerId);
    try {
      const st = await lstatOr404(e, containerPath, containerId);
      let linkTarget = '';
      if (st.isSymbolicLink()) {
        const target = await tree.walk(containerPath, { followLast: true });
        linkTarget = target.path;
        await target.close();
      }
      const name = path.posix.basename(containerPath.replace(/\/+$/, '')) || '/';
      return { stat: { name, size: st.size, mode: goMode(st), mtime: st.mtime.toISOString(), linkTarget } };
    } finally {
      await e.close();
    }
  });
}

export function encodeStat(stat: PathStat): string {
  return Buffer.from(JSON.stringify(stat)).toString('base64');
}

function tarType(st: fs.Stats): tar.Header['type'] {
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'character-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  return 'file';
}

function addEntry(pack: tar.Pack, header: TarHeader): Promise<void> {
  return new Promise<void>((res, rej) => pack.entry(withExactIds(header), (e) => (e ? rej(e) : res())));
}

/**
 * Copy `size` bytes of the open file `fd` into a tar entry. A file the container shrinks
 * meanwhile fails the tar (tar-stream's size check, as dockerd's tar writer fails): an error
 * of this request, listened to here, never one without a listener. The fd stays the caller's:
 * read here with plain reads, each awaited, so that no read is in flight when the caller closes
 * it (a ReadStream closes its fd on destroy() even with autoClose: false, and the caller's
 * close then hit whatever the number had been reused for — another client's socket). An entry
 * destroyed with its pack (the client went away) ends the copy at once, also while it waits
 * for the entry to drain.
 */
async function addFile(pack: tar.Pack, header: TarHeader, fd: number, size: number): Promise<void> {
  let ended: { err: Error | null } | null = null;
  let wake: (() => void) | null = null;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const end = (err: Error | null): void => {
    ended ??= { err };
    wake?.();
    finish();
  };
  const entry = pack.entry(withExactIds(header), (e) => end(e ?? null)) as unknown as Writable;
  entry.on('error', (e) => end(e));
  entry.on('close', () => end(new Error('the tar entry was closed')));
  entry.on('drain', () => wake?.());
  let pos = 0;
  try {
    while (pos < size && !ended) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - pos));
      const { bytesRead } = await readFd(fd, chunk, 0, chunk.length, pos);
      // the file shrank: end the entry short, tar-stream's size check fails it
      if (bytesRead === 0) break;
      pos += bytesRead;
      if (!entry.write(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead)) && !ended) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    }
  } catch (err) {
    entry.destroy();
    throw err;
  }
  if (!ended) entry.end();
  await finished;
  const result = ended as { err: Error | null } | null;
  if (result?.err) throw result.err;
}

/**
 * Tar `containerPath` (file or directory, a final symlink as itself) of the container's tree,
 * entries named under `name` ('' = a directory's contents, as export). Bind mounts inside a
 * directory are tarred from the mount, as the container sees them; export passes none.
 */
export function tarPath(root: string, containerPath: string, name: string, signal: AbortSignal, mounts: readonly RootMount[] = [], owner?: OwnerMap): Readable {
  const pack = tar.pack();
  const seen = new Map<string, string>();
  const add = async (tree: ContainerRoot, e: Entry, entryName: string): Promise<void> => {
    if (signal.aborted) throw new Error('aborted');
    const st = await e.lstat();
    const header: TarHeader = {
      name: entryName + (st.isDirectory() && entryName !== '' ? '/' : ''),
      mode: st.mode & 0o7777,
      ...(owner ? owner(st.uid, st.gid) : { uid: st.uid, gid: st.gid }),
      mtime: st.mtime,
      type: tarType(st),
    };
    if (st.isSymbolicLink()) header.linkname = await e.readlink();
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      header.devmajor = Math.floor(st.rdev / 256);
      header.devminor = st.rdev % 256;
    }
    const key = `${st.dev}:${st.ino}`;
    if (st.isFile() && st.nlink > 1 && seen.has(key)) {
      await addEntry(pack, { ...header, type: 'link', linkname: seen.get(key)!, size: 0 });
      return;
    }
    if (st.isFile()) {
      // O_NONBLOCK: a FIFO swapped in after the lstat must not block the open
      const fd = await e.open(fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
      try {
        const fst = await fstatFd(fd);
        if (!fst.isFile()) return;
        if (fst.nlink > 1) seen.set(key, entryName);
        const ids = owner ? owner(fst.uid, fst.gid) : { uid: fst.uid, gid: fst.gid };
        await addFile(pack, { ...header, mode: fst.mode & 0o7777, ...ids, mtime: fst.mtime, size: fst.size }, fd, fst.size);
      } finally {
        await closeFd(fd).catch(() => undefined);
      }
      return;
    }
    if (entryName !== '') await addEntry(pack, header);
    if (!st.isDirectory()) return;
    const dirfd = await e.open(O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    try {
      const names = (await fsp.readdir(procFdPath(dirfd))).sort();
      for (const n of names) {
        const childPath = path.posix.join(e.path, n);
        const childName = entryName === '' ? n : `${entryName}/${n}`;
        // a bind mount inside: the walk puts the mount at its destination
        const child = tree.mountAt(childPath) ? await tree.walk(childPath, { followLast: false }) : null;
        const ce = child ?? tree.entryIn(dirfd, n, childPath, e.mount);
        try {
          await add(tree, ce, childName);
        } finally {
          await child?.close();
        }
      }
    } finally {
      await closeFd(dirfd).catch(() => undefined);
    }
  };
  withTree(root, mounts, async (tree) => {
    const e = await tree.walk(containerPath, { followLast: false });
    try {
      await add(tree, e, name);
    } finally {
      await e.close();
    }
  }).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err as Error),
  );
  return Readable.from(pack);
}


export interface ExtractOptions {
  noOverwriteDirNonDir: boolean;
  copyUIDGID: boolean;
  /** HostConfig.ReadonlyRootfs: then only a writable bind mount may be written. */
  readonlyRootfs?: boolean;
  mounts?: readonly RootMount[];
  /** A remapped container's container → host owner translation (its root included). */
  owner?: OwnerMap;
}

/** dockerd's refusals for a write at `containerPath`: a read-only bind, or a read-only rootfs outside any bind. */
function checkWritable(mount: RootMount | null, opts: ExtractOptions): void {
  if (mount?.readOnly) throw new InvalidParameterError('mounted volume is marked read-only');
  if (!mount && opts.readonlyRootfs) throw new ForbiddenError('container rootfs is marked read-only');
}

/** A directory of the extraction, held open by fd while consecutive entries land in it. */
interface Parent {
  key: string;
  fd: number;
  path: string;
  mount: RootMount | null;
}

/** Extract a tar stream into `destContainerPath` (an existing directory) of the container's tree. */
export async function extractInto(root: string, destContainerPath: string, input: NodeJS.ReadableStream, opts: ExtractOptions): Promise<void> {
  await withTree(root, opts.mounts ?? [], async (tree) => {
    let dest: Entry;
    try {
      dest = await tree.walk(destContainerPath, { followLast: true });
    } catch (err) {
      if (err instanceof NotFoundError) throw new NotFoundError(`Could not find the file ${destContainerPath} in container`);
      throw err;
    }
    let st: fs.Stats;
    try {
      st = await dest.lstat();
    } catch (err) {
      if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') throw new NotFoundError(`Could not find the file ${destContainerPath} in container`);
      throw err;
    } finally {
      await dest.close();
    }
    if (!st.isDirectory()) throw new InvalidParameterError('extraction point is not a directory');
    const destRel = dest.path;
    // dockerd checks the resolved extraction point against the container's mounts
    checkWritable(tree.mountOf(destRel), opts);

    let parent: Parent | null = null;
    const dropParent = async () => {
      if (parent) await closeFd(parent.fd).catch(() => undefined);
      parent = null;
    };
    /** The directory `dir` (a container path) open by fd, made (0755) where missing. */
    const parentDir = async (dir: string): Promise<Parent> => {
      if (parent?.key === dir) return parent;
      await dropParent();
      const e = await tree.walk(dir, { followLast: true, create: (m) => checkWritable(m, opts) });
      try {
        let fd: number;
        try {
          fd = await e.open(O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
        } catch (err) {
          if (errCode(err) !== 'ENOENT') throw new InvalidParameterError(`cannot extract into ${e.path}: not a directory`);
          checkWritable(e.mount, opts);
          await fsp.mkdir(e.at(), 0o755);
          fd = await e.open(O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
        }
        parent = { key: dir, fd, path: e.path, mount: e.mount };
        return parent;
      } finally {
        await e.close();
      }
    };

    let inputFailed: Error | null = null;
    /** A failure reading the body: the client's (it broke off) or the archive's (not a tar, truncated). */
    const bodyError = (err: unknown): Error => inputFailed ?? new InvalidParameterError(`invalid tar archive: ${(err as Error).message}`, { cause: err });

    const handle = async (h: tar.Header, stream: AsyncIterable<Buffer> & { resume(): unknown }): Promise<void> => {
      if (h.name.split('/').includes('..')) throw new InvalidParameterError(`invalid tar entry ${JSON.stringify(h.name)}: path traversal`);
      const rel = path.posix.normalize('/' + h.name).replace(/\/+$/, '');
      if (rel === '' || rel === '/') {
        stream.resume();
        return;
      }
      const p = await parentDir(path.posix.join(destRel, path.posix.dirname(rel)));
      checkWritable(p.mount, opts);
      const name = path.posix.basename(rel);
      const at = procFdPath(p.fd, name);
      const here = path.posix.join(p.path, name);
      if (tree.mountAt(here)) {
        // a bind mount's root: a directory entry leaves it as it is; nothing replaces it
        if (h.type !== 'directory') throw new InvalidParameterError(`cannot replace the mount point ${here} with a non-directory`);
        stream.resume();
        return;
      }
      const ids = idsOf(h);
      const inside = { uid: opts.copyUIDGID ? ids.uid : 0, gid: opts.copyUIDGID ? ids.gid : 0 };
      const { uid, gid } = opts.owner ? opts.owner(inside.uid, inside.gid) : inside;
      const mode = (h.mode ?? (h.type === 'directory' ? 0o755 : 0o644)) & 0o7777;
      const existing = await fsp.lstat(at).catch(() => null);
      if (existing && opts.noOverwriteDirNonDir) {
        const isDir = h.type === 'directory';
        if (existing.isDirectory() !== isDir) {
          throw new InvalidParameterError(`cannot overwrite ${existing.isDirectory() ? 'directory' : 'non-directory'} ${rel} with ${isDir ? 'directory' : 'non-directory'}`);
        }
      }
      switch (h.type) {
        case 'directory': {
          if (existing && !existing.isDirectory()) await removeTree(tree.ops, p.fd, name);
          await fsp.mkdir(at, mode).catch((err: unknown) => {
            if (errCode(err) !== 'EEXIST') throw err;
          });
          await withFd(await openIn(tree, p.fd, name, fsc.O_RDONLY | fsc.O_DIRECTORY, rel), async (fd) => {
            await fchown(fd, uid, gid);
            await fchmod(fd, mode);
          });
          stream.resume();
          return;
        }
        case 'file':
        case 'contiguous-file': {
          if (existing) await removeTree(tree.ops, p.fd, name);
          await withFd(await openIn(tree, p.fd, name, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, rel, mode), async (fd) => {
            const chunks = stream[Symbol.asyncIterator]();
            for (;;) {
              let next: IteratorResult<Buffer>;
              try {
                next = await chunks.next();
              } catch (err) {
                throw bodyError(err);
              }
              if (next.done) break;
              await writeAll(fd, next.value);
            }
            // owner first: a chown clears the set-id bits the mode may carry
            await fchown(fd, uid, gid);
            await fchmod(fd, mode);
            if (h.mtime) await futimes(fd, h.mtime, h.mtime);
          });
          return;
        }
        case 'symlink':
          if (existing) await removeTree(tree.ops, p.fd, name);
          await fsp.symlink(h.linkname ?? '', at);
          await fsp.lchown(at, uid, gid);
          stream.resume();
          return;
        case 'link':
          await hardLink(tree, destRel, h, p.fd, name, p.mount, existing !== null);
          stream.resume();
          return;
        default:
          // Devices and FIFOs are not created by docker cp either (it needs the host's mknod rights).
          stream.resume();
      }
    };

    const extract = tar.extract();
    (input as Readable).on('error', (err) => {
      inputFailed = err;
      extract.destroy(err);
    });
    (input as Readable).pipe(extract as unknown as NodeJS.WritableStream);
    const entries = extract[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<{ header: tar.Header }>;
        try {
          next = await entries.next();
        } catch (err) {
          throw bodyError(err);
        }
        if (next.done) break;
        await handle(next.value.header, next.value as unknown as AsyncIterable<Buffer> & { resume(): unknown });
      }
    } catch (err) {
      extract.destroy();
      (input as Readable).unpipe?.();
      throw err;
    } finally {
      await dropParent();
    }
  });
}

const fchown = promisify(fs.fchown);
const fchmod = promisify(fs.fchmod);
const futimes = promisify(fs.futimes);

async function withFd<T>(fd: number, fn: (fd: number) => Promise<T>): Promise<T> {
  try {
    return await fn(fd);
  } finally {
    await closeFd(fd).catch(() => undefined);
  }
}

async function writeAll(fd: number, chunk: Buffer): Promise<void> {
  for (let off = 0; off < chunk.length; ) off += (await writeFd(fd, chunk, off, chunk.length - off)).bytesWritten;
}

/** Open `name` in the extraction's directory fd; a symlink or file swapped in there is a 400, never followed. */
async function openIn(tree: ContainerRoot, dirfd: number, name: string, flags: number, rel: string, mode = 0): Promise<number> {
  try {
    return await tree.ops.openAt(dirfd, name, flags, mode);
  } catch (err) {
    const code = errCode(err);
    if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'EEXIST') throw new InvalidParameterError(`cannot extract ${rel}: the path changed during the extraction`);
    throw err;
  }
}

/**
 * A hard link entry: its target is another path of the extraction (absolute link names are
 * taken under the extraction point, as dockerd joins them); refused with a 400 that names the
 * archive's paths, never a host path, when it is missing, a directory or on another mount.
 */
async function hardLink(tree: ContainerRoot, destRel: string, h: tar.Header, dirfd: number, name: string, linkMount: RootMount | null, replace: boolean): Promise<void> {
  const linkname = h.linkname ?? '';
  const bad = (why: string) => new InvalidParameterError(`invalid hard link ${JSON.stringify(h.name)} -> ${JSON.stringify(linkname)}: ${why}`);
  if (linkname === '' || linkname.split('/').includes('..')) throw bad('path traversal');
  let src: Entry;
  try {
    src = await tree.walk(path.posix.join(destRel, cleanContainerPath(linkname)), { followLast: false });
  } catch (err) {
    if (err instanceof NotFoundError) throw bad('no such file in the archive or the container');
    throw err;
  }
  try {
    const st = await src.lstat().catch(() => null);
    if (!st) throw bad('no such file in the archive or the container');
    if (st.isDirectory()) throw bad('is a directory');
    // in the container these are different filesystems (link(2) would fail with EXDEV)
    if (src.mount !== linkMount) throw bad('the target is on another mount');
    if (replace) await removeTree(tree.ops, dirfd, name);
    // link(2) never follows the old path's last component: a symlink is linked as itself
    await fsp.link(src.at(), procFdPath(dirfd, name)).catch((err: unknown) => {
      const code = errCode(err);
      if (code === 'ENOENT') throw bad('no such file in the archive or the container');
      if (code === 'EXDEV') throw bad('the target is on another mount');
      if (code === 'EPERM' || code === 'EEXIST') throw bad(code === 'EPERM' ? 'not permitted' : 'exists');
      throw err;
    });
  } finally {
    await src.close();
  }
}
