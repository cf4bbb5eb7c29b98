/**
 * network-basic's state across a checkpoint: the container's hostname, hosts and resolv.conf
 * files are bind mounts its process may have changed (`echo … >> /etc/hosts`). The checkpoint
 * hooks carry them: afterCheckpoint copies them into the checkpoint (`berth/network-basic/`),
 * beforeRestore — after this start's networking step wrote fresh ones — puts the saved ones
 * back, so the restored process finds the files it left. Only the files this plugin writes in
 * the container's own directory (not a `container:` mode's shared ones).
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile, type AtomicWriteOptions, type CheckpointRef, type ContainerRecord, type DeepReadonly, type EngineInfo } from '@berth/core';

/** Where in a checkpoint the plugin keeps the files. */
export const CHECKPOINT_SUBDIR = join('berth', 'network-basic');

/** The files of `c` this plugin wrote (in the container's directory), by file name. */
function ownFiles(c: DeepReadonly<ContainerRecord>, engine: EngineInfo, names: readonly string[]): string[] {
  const dir = engine.containerDir(c.ID);
  const paths = new Set([c.HostnamePath, c.HostsPath, c.ResolvConfPath]);
  return names.filter((n) => paths.has(join(dir, n)));
}

/** afterCheckpoint: copy the container's files into the checkpoint being written. */
export async function saveNetworkFiles(c: DeepReadonly<ContainerRecord>, checkpoint: CheckpointRef, engine: EngineInfo, names: readonly string[]): Promise<void> {
  const files = ownFiles(c, engine, names);
  if (files.length === 0) return;
  const to = join(checkpoint.path, CHECKPOINT_SUBDIR);
  await mkdir(to, { recursive: true, mode: 0o700 });
  for (const n of files) await copyFile(join(engine.containerDir(c.ID), n), join(to, n));
}

/** beforeRestore: write the saved files over the ones this start's networking step made. */
export async function restoreNetworkFiles(
  c: DeepReadonly<ContainerRecord>,
  checkpoint: CheckpointRef,
  engine: EngineInfo,
  names: readonly string[],
  write: AtomicWriteOptions,
): Promise<void> {
  for (const n of ownFiles(c, engine, names)) {
    let saved: Buffer;
    try {
      saved = await readFile(join(checkpoint.path, CHECKPOINT_SUBDIR, n));
    } catch (err) {
      // a checkpoint made without this plugin (or by dockerd): the fresh file stays
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    await atomicWriteFile(join(engine.containerDir(c.ID), n), saved, write);
  }
}
