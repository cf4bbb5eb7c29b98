/**
 * Paths inside a directory that never lead out of it: symlinks are followed as if the
 * directory were `/` (an absolute link or `..` stays inside), as moby's symlink.FollowSymlinkInScope.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidParameterError } from '@berth/core';

/**
 * The host path of `rel` inside `root`, every symlink on the way resolved inside `root`.
 * The last component is resolved too unless `followLast` is false (COPY of a link copies the link).
 */
export async function resolveInside(root: string, rel: string, followLast = true): Promise<string> {
  const parts = rel.split('/').filter((p) => p && p !== '.');
  const done: string[] = [];
  let hops = 0;
  while (parts.length) {
    const p = parts.shift()!;
    if (p === '..') {
      done.pop();
      continue;
    }
    const full = path.join(root, ...done, p);
    const st = await fsp.lstat(full).catch(() => null);
    if (st?.isSymbolicLink() && (followLast || parts.length > 0)) {
      if (++hops > 40) throw new InvalidParameterError(`too many levels of symbolic links: ${rel}`);
      const target = await fsp.readlink(full);
      if (target.startsWith('/')) done.length = 0;
      parts.unshift(...target.split('/').filter((x) => x && x !== '.'));
      continue;
    }
    done.push(p);
  }
  return path.join(root, ...done);
}
