/**
 * The checkpoint store (core's `CheckpointStore`, token `ICheckpointStore`): checkpoints on disk
 * as dockerd keeps them, `<container dir>/checkpoints/<name>/` or `<CheckpointDir>/<name>/`, the
 * runtime's image files (CRIU's) right in that directory, plus `berth-checkpoint.json` (what was
 * checkpointed, when, how).
 *
 * Crash safety: a checkpoint is written into a temporary directory beside its final place
 * (`.tmp-<name>.<rand>`, core's temp mark), its files are fsync'd and it is renamed to `<name>`
 * only when complete; removal renames it away first. So after a crash at any point a name is
 * either a whole checkpoint or absent: `list` shows only whole ones, and the temp directories
 * left in a container's own checkpoint directory are swept at the next daemon start.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import {
  ATOMIC_TMP_PREFIX,
  ConflictError,
  InvalidParameterError,
  NotFoundError,
  atomicWriteFile,
  isAtomicTempFile,
  isCheckpointName,
  type CheckpointStore,
  type CheckpointTarget,
  type EngineInfo,
  type PendingCheckpoint,
} from '@berth/core';

/** The metadata file berth writes into each checkpoint. */
export const CHECKPOINT_META_FILE = 'berth-checkpoint.json';

/** What `berth-checkpoint.json` holds. */
export interface CheckpointMeta {
  Name: string;
  ContainerID: string;
  ContainerName: string;
  /** RFC 3339. */
  Created: string;
  /** true: the container was stopped by the checkpoint; false: `--leave-running`. */
  Exit: boolean;
  /** The OCI runtime that made it (a restore needs one that can read it). */
  Runtime: string;
  Image: string;
}

function containerName(t: CheckpointTarget): string {
  return t.container.Name.replace(/^\//, '');
}

async function exists(path: string): Promise<'dir' | 'other' | null> {
  try {
    return (await lstat(path)).isDirectory() ? 'dir' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** fsync every file under `dir` and the directories themselves (a checkpoint is published whole). */
async function syncTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await syncTree(p);
    else if (e.isFile()) await syncPath(p);
  }
  await syncPath(dir);
}

async function syncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class FileCheckpointStore implements CheckpointStore {
  constructor(private readonly engine: EngineInfo) {}

  /** Where a container's checkpoints live: the client's directory, else `<container dir>/checkpoints`. */
  rootOf(t: CheckpointTarget): string {
    if (t.dir === undefined) return join(this.engine.containerDir(t.container.ID), 'checkpoints');
    if (!isAbsolute(t.dir)) throw new InvalidParameterError(`checkpoint directory must be an absolute path: ${t.dir}`);
    return t.dir;
  }

  async prepare(t: CheckpointTarget, name: string, meta: { exit: boolean }): Promise<PendingCheckpoint> {
    const root = this.rootOf(t);
    const final = join(root, name);
    if ((await exists(final)) !== null) throw new ConflictError(`checkpoint with name ${name} already exists for container ${containerName(t)}`);
    await mkdir(root, { recursive: true, mode: 0o700 });
    const path = join(root, `${ATOMIC_TMP_PREFIX}${name}.${randomBytes(4).toString('hex')}`);
    await mkdir(path, { mode: 0o700 });
    const record: CheckpointMeta = {
      Name: name,
      ContainerID: t.container.ID,
      ContainerName: containerName(t),
      Created: new Date().toISOString(),
      Exit: meta.exit,
      Runtime: t.container.RuntimeName ?? t.container.HostConfig.Runtime ?? '',
      Image: t.container.Config.Image ?? '',
    };
    return {
      path,
      async commit() {
        await atomicWriteFile(join(path, CHECKPOINT_META_FILE), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
        await syncTree(path);
        try {
          await rename(path, final);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new ConflictError(`checkpoint with name ${name} already exists for container ${containerName(t)}`);
          throw err;
        }
        await syncPath(root);
      },
      async abort() {
        await rm(path, { recursive: true, force: true });
      },
    };
  }

  async resolve(t: CheckpointTarget, name: string): Promise<string> {
    const final = join(this.rootOf(t), name);
    if ((await exists(final)) !== 'dir') throw new NotFoundError(`checkpoint ${name} does not exist for container ${containerName(t)}`);
    return final;
  }

  async list(t: CheckpointTarget): Promise<Array<{ Name: string }>> {
    const root = this.rootOf(t);
    let entries;
    try {
      entries = await readdir(root, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // dockerd: no checkpoint yet in the container's own directory is an empty list; a
      // directory the client named that does not exist is a 404.
      if (t.dir === undefined) return [];
      throw new NotFoundError(`checkpoint directory "${t.dir}" does not exist for container ${containerName(t)}`);
    }
    return entries
      .filter((e) => e.isDirectory() && isCheckpointName(e.name))
      .map((e) => e.name)
      .sort()
      .map((Name) => ({ Name }));
  }

  async remove(t: CheckpointTarget, name: string): Promise<void> {
    const root = this.rootOf(t);
    const final = join(root, name);
    if ((await exists(final)) !== 'dir') throw new NotFoundError(`checkpoint ${name} does not exist for container ${containerName(t)}`);
    // Out of the listing in one step, then deleted: a crash midway never leaves half a checkpoint under its name.
    const doomed = join(root, `${ATOMIC_TMP_PREFIX}${name}.${randomBytes(4).toString('hex')}`);
    await rename(final, doomed);
    await rm(doomed, { recursive: true, force: true });
  }

  /**
   * Delete what a crash left in a container's own checkpoint directory: temporary directories
   * of checkpoints being written or removed. Returns the names removed.
   */
  async sweep(containerId: string): Promise<string[]> {
    const root = join(this.engine.containerDir(containerId), 'checkpoints');
    let names: string[];
    try {
      names = await readdir(root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const leftovers = names.filter(isAtomicTempFile);
    for (const n of leftovers) await rm(join(root, n), { recursive: true, force: true });
    return leftovers;
  }
}
