/**
 * docker cp and docker export on a container's root filesystem: paths are resolved inside
 * the root (symlinks followed as the container would, `..` clamped at the root), tar
 * entries that would land outside it are refused, and the final component of a write
 * target is never followed.
 */
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { InvalidParameterError, NotFoundError } from '@berth/core';

const MAX_LINKS = 40;

type TarHeader = Partial<tar.Header> & { name: string };

/**
 * Resolve `p` (a container path) to a host path under `root`. Symlinks in every component
 * are followed inside the root; the last one only when `followLast`.
 */
export async function resolveInRoot(root: string, p: string, followLast: boolean): Promise<string> {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  const stack: string[] = [];
  let hops = 0;
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === '..') {
      stack.pop();
      continue;
    }
    const host = path.join(root, ...stack, part);
    const last = parts.length === 0;
    let st;
    try {
      st = await fs.lstat(host);
    } catch {
      stack.push(part);
      continue;
    }
    if (st.isSymbolicLink() && (!last || followLast)) {
      if (++hops > MAX_LINKS) throw new InvalidParameterError(`too many levels of symbolic links resolving ${p}`);
      const target = await fs.readlink(host);
      if (target.startsWith('/')) stack.length = 0;
      parts.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    stack.push(part);
  }
  const out = path.join(root, ...stack);
  if (out !== root && !out.startsWith(root.endsWith('/') ? root : root + '/')) throw new InvalidParameterError(`path ${p} escapes the container root`);
  return out;
}

/** Go's os.FileMode bits, as the docker CLI decodes X-Docker-Container-Path-Stat. */
function goMode(st: import('node:fs').Stats): number {
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

export async function statPath(root: string, containerPath: string, containerId: string): Promise<{ host: string; stat: PathStat }> {
  if (!containerPath) throw new InvalidParameterError('Path cannot be empty');
  const host = await resolveInRoot(root, containerPath, false);
  let st;
  try {
    st = await fs.lstat(host);
  } catch {
    throw new NotFoundError(`Could not find the file ${containerPath} in container ${containerId}`);
  }
  let linkTarget = '';
  if (st.isSymbolicLink()) {
    const target = await resolveInRoot(root, containerPath, true);
    linkTarget = '/' + path.relative(root, target);
  }
  return {
    host,
    stat: { name: path.basename(containerPath.replace(/\/+$/, '')) || '/', size: st.size, mode: goMode(st), mtime: st.mtime.toISOString(), linkTarget },
  };
}

export function encodeStat(stat: PathStat): string {
  return Buffer.from(JSON.stringify(stat)).toString('base64');
}

function tarType(st: import('node:fs').Stats): tar.Header['type'] {
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'character-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  return 'file';
}

/** Tar `host` (file or directory) with entries named under `name` ('' = the directory's contents). */
export function tarPath(host: string, name: string, signal: AbortSignal): Readable {
  const pack = tar.pack();
  const seen = new Map<string, string>();
  const add = async (hostPath: string, entryName: string): Promise<void> => {
    if (signal.aborted) throw new Error('aborted');
    const st = await fs.lstat(hostPath);
    const header: TarHeader = {
      name: entryName + (st.isDirectory() && entryName !== '' ? '/' : ''),
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime: st.mtime,
      type: tarType(st),
    };
    if (st.isSymbolicLink()) header.linkname = await fs.readlink(hostPath);
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      header.devmajor = Math.floor(st.rdev / 256);
      header.devminor = st.rdev % 256;
    }
    const key = `${st.dev}:${st.ino}`;
    if (st.isFile() && st.nlink > 1 && seen.has(key)) {
      header.type = 'link';
      header.linkname = seen.get(key)!;
      header.size = 0;
      await new Promise<void>((res, rej) => pack.entry(header, (e) => (e ? rej(e) : res())));
      return;
    }
    if (st.isFile()) {
      if (st.nlink > 1) seen.set(key, entryName);
      header.size = st.size;
      const fh = st.size > 0 ? await fs.open(hostPath, fsc.O_RDONLY | fsc.O_NOFOLLOW) : null;
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry(header, (e) => (e ? reject(e) : resolve())) as unknown as NodeJS.WritableStream;
        if (!fh) {
          entry.end();
          return;
        }
        const src = fh.createReadStream({ start: 0, end: st.size - 1 });
        src.on('error', reject);
        src.on('data', (chunk) => {
          if (!entry.write(chunk as Buffer)) {
            src.pause();
            entry.once('drain', () => src.resume());
          }
        });
        src.on('end', () => entry.end());
      });
    } else if (entryName !== '') {
      await new Promise<void>((res, rej) => pack.entry(header, (e) => (e ? rej(e) : res())));
    }
    if (st.isDirectory()) {
      const names = (await fs.readdir(hostPath)).sort();
      for (const n of names) await add(path.join(hostPath, n), entryName === '' ? n : `${entryName}/${n}`);
    }
  };
  add(host, name).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err as Error),
  );
  return Readable.from(pack);
}

export interface ExtractOptions {
  noOverwriteDirNonDir: boolean;
  copyUIDGID: boolean;
}

/** Extract a tar stream into `destContainerPath` (an existing directory) of the root. */
export async function extractInto(root: string, destContainerPath: string, input: NodeJS.ReadableStream, opts: ExtractOptions): Promise<void> {
  const dest = await resolveInRoot(root, destContainerPath, true);
  let st;
  try {
    st = await fs.stat(dest);
  } catch {
    throw new NotFoundError(`Could not find the file ${destContainerPath} in container`);
  }
  if (!st.isDirectory()) throw new InvalidParameterError('extraction point is not a directory');
  const destRel = '/' + path.relative(root, dest);
  const extract = tar.extract();
  const handle = async (h: tar.Header, stream: AsyncIterable<Buffer> & { resume(): unknown }): Promise<void> => {
    const rel = path.posix.normalize('/' + h.name).replace(/\/+$/, '');
    if (h.name.split('/').includes('..')) throw new InvalidParameterError(`invalid tar entry ${JSON.stringify(h.name)}: path traversal`);
    if (rel === '' || rel === '/') {
      stream.resume();
      return;
    }
    const target = await resolveInRoot(root, path.posix.join(destRel, rel), false);
    const uid = opts.copyUIDGID ? (h.uid ?? 0) : 0;
    const gid = opts.copyUIDGID ? (h.gid ?? 0) : 0;
    const existing = await fs.lstat(target).catch(() => null);
    if (existing && opts.noOverwriteDirNonDir) {
      const isDir = h.type === 'directory';
      if (existing.isDirectory() !== isDir) {
        throw new InvalidParameterError(`cannot overwrite ${existing.isDirectory() ? 'directory' : 'non-directory'} ${rel} with ${isDir ? 'directory' : 'non-directory'}`);
      }
    }
    switch (h.type) {
      case 'directory':
        if (existing && !existing.isDirectory()) await fs.rm(target, { force: true });
        await fs.mkdir(target, { recursive: true, mode: h.mode ?? 0o755 });
        await fs.chmod(target, (h.mode ?? 0o755) & 0o7777);
        await fs.lchown(target, uid, gid);
        stream.resume();
        return;
      case 'file':
      case 'contiguous-file': {
        if (existing) await fs.rm(target, { recursive: existing.isDirectory(), force: true });
        await fs.mkdir(path.dirname(target), { recursive: true });
        const fh = await fs.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, (h.mode ?? 0o644) & 0o7777);
        try {
          for await (const chunk of stream) await fh.write(chunk);
        } finally {
          await fh.close().catch(() => {});
        }
        await fs.chmod(target, (h.mode ?? 0o644) & 0o7777);
        await fs.lchown(target, uid, gid);
        if (h.mtime) await fs.lutimes(target, h.mtime, h.mtime);
        return;
      }
      case 'symlink':
        if (existing) await fs.rm(target, { recursive: existing.isDirectory(), force: true });
        await fs.symlink(h.linkname ?? '', target);
        await fs.lchown(target, uid, gid);
        stream.resume();
        return;
      case 'link': {
        const linkRel = path.posix.normalize('/' + (h.linkname ?? ''));
        if ((h.linkname ?? '').split('/').includes('..')) throw new InvalidParameterError(`invalid hard link ${JSON.stringify(h.linkname)}: path traversal`);
        const src = await resolveInRoot(root, path.posix.join(destRel, linkRel), false);
        if (existing) await fs.rm(target, { recursive: existing.isDirectory(), force: true });
        await fs.link(src, target);
        stream.resume();
        return;
      }
      default:
        // Devices and FIFOs are not created by docker cp either (it needs the host's mknod rights).
        stream.resume();
    }
  };
  (input as Readable).pipe(extract as unknown as NodeJS.WritableStream);
  (input as Readable).on('error', (err) => extract.destroy(err));
  for await (const entry of extract) {
    try {
      await handle(entry.header, entry as unknown as AsyncIterable<Buffer> & { resume(): unknown });
    } catch (err) {
      extract.destroy();
      (input as Readable).unpipe?.();
      throw err;
    }
  }
}
