import { lstat, readlink } from 'node:fs/promises';
import path from 'node:path';

const MAX_SYMLINKS = 255;

/**
 * The host path of `unsafePath` inside `root`, resolving symlinks as if `root` were `/`
 * (a symlink to `/etc/passwd` or `../../etc/passwd` inside an image stays inside the
 * rootfs), like moby's FollowSymlinkInScope / securejoin. The result may not exist.
 */
export async function resolveInRoot(root: string, unsafePath: string): Promise<string> {
  const rootAbs = path.resolve(root);
  let pending = unsafePath.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(rootAbs, ...done, part);
    let isLink = false;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      const err = new Error(`too many levels of symbolic links: ${unsafePath}`) as NodeJS.ErrnoException;
      err.code = 'ELOOP';
      throw err;
    }
    const target = await readlink(candidate);
    const targetParts = target.split('/').filter((p) => p !== '' && p !== '.');
    if (target.startsWith('/')) done.length = 0;
    pending = [...targetParts, ...pending];
  }
  return path.join(rootAbs, ...done);
}
