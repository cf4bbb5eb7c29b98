/**
 * dockerd's copy-up (moby daemon/volumes_unix.go copyExistingContents): on a mount, an empty
 * volume gets the image's content at the mount's destination, ownership and modes kept
 * (`cp -a`, which also gives the volume's root the directory's owner and mode). A destination
 * that resolves outside the container's root filesystem (an absolute symlink in the image) is
 * never followed: nothing is copied.
 */
import { execFile } from 'node:child_process';
import { readdir, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { promisify } from 'node:util';
import { SystemError } from '@berth/core';

const run = promisify(execFile);

/** Copy `rootfs`+`destination` into `volumePath` when the volume is empty and the image has a directory there. Returns whether it copied. */
export async function copyUp(rootfs: string, destination: string, volumePath: string): Promise<boolean> {
  if ((await readdir(volumePath)).length > 0) return false;
  const root = await realpath(rootfs);
  const src = await realpath(join(root, destination)).catch(() => null);
  if (!src || !(src === root || src.startsWith(root + sep))) return false;
  if (!(await stat(src)).isDirectory()) return false;
  await run('cp', ['-a', '--', `${src}/.`, `${volumePath}/`]).catch((err: unknown) => {
    throw new SystemError(`copying the image's content at ${destination} into the volume failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, { cause: err });
  });
  return true;
}
