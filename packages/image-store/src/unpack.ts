/**
 * Safe layer unpacking. Every entry is resolved component by component inside the layer
 * directory (openat-style): no absolute names, no `..`, never through a symlink, hard links
 * only to files already inside the layer. OCI whiteouts become overlayfs whiteouts
 * (character device 0:0, `trusted.overlay.opaque=y`) and are also returned as lists so that
 * the copy-based fallback can apply them without overlayfs.
 */
import { createHash } from 'node:crypto';
import { closeSync, createWriteStream, fsyncSync, openSync, promises as fsp, writeSync, type WriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar, { type Extract, type Header } from 'tar-stream';

type TarEntry = Extract extends AsyncIterable<infer S> ? S : never;

/**
 * tar-stream decodes every PAX value as UTF-8, which mangles binary xattr values
 * (security.capability). Its decoder is swapped, once, for one that keeps SCHILY.xattr.*
 * values as latin1 strings (one char per byte) and decodes everything else as UTF-8.
 */
function patchPaxDecoder(): void {
  const require = createRequire(import.meta.url);
  const headersPath = path.join(path.dirname(require.resolve('tar-stream')), 'headers.js');
  const headers = require(headersPath) as { decodePax: (buf: Buffer) => Record<string, string>; __berthBinaryXattrs?: boolean };
  if (headers.__berthBinaryXattrs) return;
  headers.decodePax = (buf: Buffer) => {
    const result: Record<string, string> = {};
    let rest = Buffer.from(buf);
    while (rest.length) {
      const sp = rest.indexOf(0x20);
      if (sp <= 0) break;
      const len = parseInt(rest.subarray(0, sp).toString('latin1'), 10);
      if (!len || len > rest.length) break;
      const record = rest.subarray(sp + 1, len - 1);
      const eq = record.indexOf(0x3d);
      if (eq === -1) break;
      const key = record.subarray(0, eq).toString('utf8');
      const value = record.subarray(eq + 1);
      result[key] = key.startsWith('SCHILY.xattr.') ? value.toString('latin1') : value.toString('utf8');
      rest = rest.subarray(len);
    }
    return result;
  };
  headers.__berthBinaryXattrs = true;
}
import { InvalidParameterError, idsOf } from '@berth/core';
import { decompress, type Compression } from './compression.js';
import { destroyed } from './fsutil.js';
import type { Digest } from './digest.js';
import { OVERLAY_OPAQUE_XATTR, SpecialOpError, SpecialOps } from './special.js';

export class UnsafeLayerError extends InvalidParameterError {
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super(`refusing layer entry ${JSON.stringify(entry)}: ${reason}`);
  }
}

export class InvalidLayerError extends InvalidParameterError {}

export interface UnpackOptions {
  /** Create character/block device entries (default: when running as root). Refused otherwise. */
  devices?: boolean;
  /** Apply ownership from the tar headers (default: when running as root). */
  chown?: boolean;
  /** Apply SCHILY.xattr.* from PAX headers where the host allows (default true). */
  xattrs?: boolean;
  /** Represent whiteouts for overlayfs (device 0:0 and opaque xattr; needs root). Default: when root. */
  overlayWhiteouts?: boolean;
  /** Progress: uncompressed bytes read so far. */
  onBytes?: (n: number) => void;
  /** Also write the uncompressed tar to this file (kept as the layer's tar blob). */
  tarCopy?: string;
  /** Shared helper for mknod/xattrs; one is created and closed when absent. */
  special?: SpecialOps;
}

export interface UnpackResult {
  /** sha256 of the uncompressed tar stream (the layer's DiffID). */
  diffId: Digest;
  /** Uncompressed tar size in bytes. */
  tarSize: number;
  /** The layer's content size: regular files and symlinks (hard links once), as dockerd's directory.Size. */
  size: number;
  compression: Compression;
  /** Paths (relative, `/`-separated) hidden by whiteouts in this layer. */
  whiteouts: string[];
  /** Directories (relative) marked opaque in this layer. */
  opaqueDirs: string[];
}

/**
 * An error of the host rather than of the archive (a full disk, a quota, an I/O error): it
 * goes to the client as it is (a 500, as dockerd answers "no space left on device"), never
 * as an "invalid layer" 400.
 */
export function isHostError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException | null;
  return !!e && typeof e.code === 'string' && ['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EMFILE', 'ENFILE', 'ENOMEM'].includes(e.code);
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** Splits a tar entry name into safe components; throws on absolute names and `..`. */
export function entryComponents(name: string, what = 'path'): string[] {
  if (name.includes('\0')) throw new UnsafeLayerError(name, `${what} contains a NUL byte`);
  if (name.startsWith('/')) throw new UnsafeLayerError(name, `absolute ${what} is not allowed`);
  const comps = name.split('/').filter((c) => c !== '' && c !== '.');
  if (comps.includes('..')) throw new UnsafeLayerError(name, `${what} traversal through ".." is not allowed`);
  return comps;
}

interface DirMeta {
  full: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

function headerXattrs(h: Header): Array<[string, Buffer]> {
  const pax = h.pax as Record<string, string> | null | undefined;
  if (!pax) return [];
  const out: Array<[string, Buffer]> = [];
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith('SCHILY.xattr.')) out.push([k.slice('SCHILY.xattr.'.length), Buffer.from(v, 'latin1')]);
  }
  return out;
}

/** Unpacks a (compressed) layer tar into `dest`, which must exist and be empty. */
export async function unpackLayer(src: Readable, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  patchPaxDecoder();
  const root = isRoot();
  const devices = opts.devices ?? root;
  const chown = opts.chown ?? root;
  const xattrs = opts.xattrs ?? true;
  const overlay = opts.overlayWhiteouts ?? root;
  const special = opts.special ?? new SpecialOps();
  const ownsSpecial = !opts.special;

  const { stream, compression } = await decompress(src);
  const hash = createHash('sha256');
  let tarSize = 0;
  const copyFd = opts.tarCopy ? openSync(opts.tarCopy, 'w', 0o644) : null;
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      // a full disk fails the pipeline (never a throw out of the stream machinery)
      try {
        for (let off = 0; copyFd !== null && off < chunk.length; ) off += writeSync(copyFd, chunk, off);
      } catch (err) {
        cb(err as Error);
        return;
      }
      tarSize += chunk.length;
      opts.onBytes?.(chunk.length);
      cb(null, chunk);
    },
  });
  const extract = tar.extract();
  const feeding = pipeline(stream, tap, extract as unknown as NodeJS.WritableStream).then(
    () => null,
    (err: unknown) => err as Error,
  );

  const okDirs = new Set<string>([dest]);
  const dirs: DirMeta[] = [];
  const whiteouts: string[] = [];
  const opaqueDirs: string[] = [];
  let size = 0;

  const forget = (full: string) => {
    for (const d of okDirs) if (d === full || d.startsWith(`${full}/`)) okDirs.delete(d);
  };

  /** Walks (creating as needed) the parent directories; never through a symlink. */
  const ensureDirs = async (entry: string, comps: string[], create: boolean): Promise<string> => {
    let cur = dest;
    for (const c of comps) {
      const next = path.join(cur, c);
      if (!okDirs.has(next)) {
        let st: import('node:fs').Stats | null = null;
        try {
          st = await fsp.lstat(next);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        if (!st) {
          if (!create) throw new UnsafeLayerError(entry, `${path.relative(dest, next)} does not exist in the layer`);
          await fsp.mkdir(next, { mode: 0o755 });
        } else if (st.isSymbolicLink()) {
          throw new UnsafeLayerError(entry, `path component ${path.relative(dest, next)} is a symlink; refusing to write through it`);
        } else if (!st.isDirectory()) {
          throw new UnsafeLayerError(entry, `path component ${path.relative(dest, next)} is not a directory`);
        }
        okDirs.add(next);
      }
      cur = next;
    }
    return cur;
  };

  /** Removes whatever the layer already has at `full` (tar semantics: later entries replace earlier ones). */
  const clear = async (full: string, keepDir: boolean): Promise<boolean> => {
    let st: import('node:fs').Stats;
    try {
      st = await fsp.lstat(full);
    } catch {
      return false;
    }
    if (keepDir && st.isDirectory()) return true;
    forget(full);
    await fsp.rm(full, { recursive: true, force: true });
    return false;
  };

  const applyMeta = async (full: string, h: Header, symlink: boolean) => {
    if (chown) {
      const { uid, gid } = idsOf(h);
      await fsp.lchown(full, uid, gid);
    }
    if (!symlink) await fsp.chmod(full, (h.mode ?? 0o644) & 0o7777);
    if (xattrs) {
      for (const [name, value] of headerXattrs(h)) {
        try {
          await special.setxattr(full, name, value);
        } catch (err) {
          const code = err instanceof SpecialOpError ? err.code : '';
          if (!['EPERM', 'ENOTSUP', 'EACCES', 'EINVAL'].includes(code)) throw err;
        }
      }
    }
    const mt = h.mtime ?? new Date(0);
    await fsp.lutimes(full, mt, mt);
  };

  const handle = async (entry: TarEntry): Promise<void> => {
    const h = entry.header;
    const name = h.name;
    const comps = entryComponents(name);
    const type = h.type ?? 'file';
    if (comps.length === 0) {
      if (type !== 'directory') throw new UnsafeLayerError(name, 'the layer root can only be a directory');
      dirs.push({ full: dest, mode: (h.mode ?? 0o755) & 0o7777, ...idsOf(h), mtime: h.mtime ?? new Date(0) });
      return;
    }
    const base = comps[comps.length - 1];
    const parent = await ensureDirs(name, comps.slice(0, -1), true);
    const full = path.join(parent, base);

    if (base.startsWith('.wh.')) {
      if (base === '.wh..wh..opq') {
        const dirRel = comps.slice(0, -1).join('/');
        opaqueDirs.push(dirRel);
        if (overlay) await special.setxattr(parent, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
      } else if (!base.startsWith('.wh..wh.')) {
        const target = base.slice('.wh.'.length);
        if (!target || target === '.' || target === '..') throw new UnsafeLayerError(name, 'invalid whiteout');
        const hidden = path.join(parent, target);
        await clear(hidden, false);
        whiteouts.push([...comps.slice(0, -1), target].join('/'));
        if (overlay) await special.mknod(hidden, 'c', 0, 0, 0);
      }
      return;
    }

    switch (type) {
      case 'directory': {
        const existing = await clear(full, true);
        if (!existing) await fsp.mkdir(full, { mode: 0o700 });
        okDirs.add(full);
        dirs.push({ full, mode: (h.mode ?? 0o755) & 0o7777, ...idsOf(h), mtime: h.mtime ?? new Date(0) });
        return;
      }
      case 'file':
      case 'contiguous-file': {
        await clear(full, false);
        const ws = createWriteStream(full, { flags: 'wx', mode: 0o600 });
        writing.add(ws);
        try {
          await pipeline(entry as unknown as Readable, ws);
        } finally {
          writing.delete(ws);
        }
        size += h.size ?? 0;
        await applyMeta(full, h, false);
        return;
      }
      case 'symlink': {
        if (!h.linkname) throw new UnsafeLayerError(name, 'symlink without a target');
        if (h.linkname.includes('\0')) throw new UnsafeLayerError(name, 'symlink target contains a NUL byte');
        await clear(full, false);
        await fsp.symlink(h.linkname, full);
        size += Buffer.byteLength(h.linkname);
        await applyMeta(full, h, true);
        return;
      }
      case 'link': {
        const tcomps = entryComponents(h.linkname ?? '', 'hard link target');
        if (tcomps.length === 0) throw new UnsafeLayerError(name, 'hard link to the layer root');
        const tparent = await ensureDirs(name, tcomps.slice(0, -1), false);
        const target = path.join(tparent, tcomps[tcomps.length - 1]);
        let tst: import('node:fs').Stats;
        try {
          tst = await fsp.lstat(target);
        } catch {
          throw new UnsafeLayerError(name, `hard link target ${h.linkname} does not exist in the layer`);
        }
        if (tst.isDirectory()) throw new UnsafeLayerError(name, `hard link target ${h.linkname} is a directory`);
        if (target === full) return;
        await clear(full, false);
        await fsp.link(target, full);
        return;
      }
      case 'character-device':
      case 'block-device': {
        if (!devices) throw new UnsafeLayerError(name, 'device nodes are not allowed here');
        await clear(full, false);
        await special.mknod(full, type === 'character-device' ? 'c' : 'b', 0o600, h.devmajor ?? 0, h.devminor ?? 0);
        await applyMeta(full, h, false);
        return;
      }
      case 'fifo': {
        await clear(full, false);
        await special.mknod(full, 'p', 0o600);
        await applyMeta(full, h, false);
        return;
      }
      default:
        throw new UnsafeLayerError(name, `unsupported tar entry type ${String(type)}`);
    }
  };

  /** Files being written: a failure closes them before the caller removes the directory. */
  const writing = new Set<WriteStream>();
  try {
    try {
      // a truncated archive fails the feeding pipeline while an entry is still open: stop waiting for it
      const aborted = new Promise<never>((_resolve, reject) => {
        void feeding.then((err) => err && reject(err));
      });
      aborted.catch(() => undefined);
      for await (const entry of extract) {
        try {
          await Promise.race([handle(entry), aborted]);
        } catch (err) {
          entry.destroy();
          throw err;
        }
        entry.resume();
      }
    } catch (err) {
      extract.destroy();
      stream.destroy();
      const feedErr = await feeding;
      await Promise.all([...writing].map((ws) => destroyed(ws)));
      const host = [err, feedErr].find(isHostError);
      if (host) throw host;
      if (err instanceof InvalidParameterError) throw err;
      throw new InvalidLayerError(`invalid layer archive: ${(feedErr ?? (err as Error)).message}`, { cause: err });
    }
    const feedErr = await feeding;
    if (feedErr && isHostError(feedErr)) throw feedErr;
    if (feedErr) throw new InvalidLayerError(`invalid layer archive: ${feedErr.message}`, { cause: feedErr });
    for (const d of dirs.reverse()) {
      if (chown) await fsp.lchown(d.full, d.uid, d.gid);
      await fsp.chmod(d.full, d.mode);
      await fsp.utimes(d.full, d.mtime, d.mtime);
    }
    if (copyFd !== null) fsyncSync(copyFd);
  } finally {
    if (copyFd !== null) closeSync(copyFd);
    if (ownsSpecial) await special.close();
  }
  return { diffId: `sha256:${hash.digest('hex')}`, tarSize, size, compression, whiteouts, opaqueDirs };
}
