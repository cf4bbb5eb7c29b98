/**
 * Paths inside a tree that never lead out of it: symlinks are followed as if the tree's root
 * were `/` (an absolute link or `..` stays inside), as moby's symlink.FollowSymlinkInScope.
 */
import { InvalidParameterError } from '@berth/core';
import type { SourceTree } from './tree.js';

/**
 * The path of `rel` inside `tree` with every symlink on the way resolved inside it. The last
 * component is resolved too unless `followLast` is false (COPY of a link copies the link).
 */
export async function resolveInside(tree: SourceTree, rel: string, followLast = true): Promise<string> {
  const parts = rel.split('/').filter((p) => p && p !== '.');
  const done: string[] = [];
  let hops = 0;
  while (parts.length) {
    const p = parts.shift()!;
    if (p === '..') {
      done.pop();
      continue;
    }
    const st = await tree.lstat([...done, p].join('/'));
    if (st?.type === 'symlink' && (followLast || parts.length > 0)) {
      if (++hops > 40) throw new InvalidParameterError(`too many levels of symbolic links: ${rel}`);
      const target = st.linkname ?? '';
      if (target.startsWith('/')) done.length = 0;
      parts.unshift(...target.split('/').filter((x) => x && x !== '.'));
      continue;
    }
    done.push(p);
  }
  return done.join('/');
}
