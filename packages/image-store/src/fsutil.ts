/** Small filesystem helpers: how the store's metadata is written (core's atomic write), directory sizes, closing streams. */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { SystemError, type AtomicWriteOptions } from '@berth/core';

/** core's `atomicWriteFile` options for the store's metadata: world-readable, durable (file and directory fsync'd), directory made. */
export const STORE_WRITE: AtomicWriteOptions = { mode: 0o644, fsync: true, syncDir: true, mkdir: true };

/** Destroys a stream and waits until it has closed (its fd is released); null and closed streams return at once. */
export async function destroyed(stream: Readable | Writable | null | undefined): Promise<void> {
  if (!stream || stream.closed) return;
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  stream.destroy();
  // a stream that emits no 'close' (emitClose: false) must not hang the caller
  await Promise.race([closed, new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
}

export async function fsyncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, 'r');
  try {
    await dh.sync();
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    await dh.close();
  }
}

/** A JSON file, null when absent; a file that does not parse is an error naming it. */
export async function readJson<T>(file: string): Promise<T | null> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new SystemError(`${file} is unreadable: ${(err as Error).message}`, { cause: err });
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Apparent size in bytes of regular files and symlinks under `root` (hard links counted once), like `du -b`-ish as dockerd's SizeRw. */
export async function dirSize(root: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      const st = await fsp.lstat(p);
      if (st.isDirectory()) {
        await walk(p);
        continue;
      }
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink > 1) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      if (st.isFile() || st.isSymbolicLink()) total += st.size;
    }
  };
  await walk(root);
  return total;
}

export function randomId(n = 16): string {
  return randomBytes(n).toString('hex');
}
