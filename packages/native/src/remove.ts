/**
 * `removeTrees()`: `rm -rf` of a removal's paths as ONE thread-pool job through the addon's
 * removeTrees (native/remove.c; issue 12: a removal was one Node fs round trip per lstat,
 * unlink and rmdir). The addon never descends into a mount point: a directory in a tree that
 * is a mount root, or a path that is one, is left as it is and the job fails with EBUSY
 * (syscall 'rmdir', `path` naming it) after removing the rest. Without the addon (not built,
 * BERTH_NATIVE=0) each path is Node's `fs.rm(recursive, force)`, which does descend into mounts:
 * a caller that must not remove through a mount checks first on that path (runtime-oci's bundle).
 */
import { rm } from 'node:fs/promises';
import { asFsError } from './files.js';
import type { NativeAddon } from './index.js';

/**
 * Remove each absolute path like `rm -rf` (a missing one is fine), all of them tried, in one
 * job where `addon` is loaded; the first failure rejects, shaped as Node's fs errors are.
 */
export async function removeTrees(addon: NativeAddon | null, paths: string[]): Promise<void> {
  if (!addon) {
    for (const p of paths) await rm(p, { recursive: true, force: true });
    return;
  }
  try {
    await addon.removeTrees(paths);
  } catch (err) {
    throw asFsError(err);
  }
}
