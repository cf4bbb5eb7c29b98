/**
 * CRI CheckpointContainer (kubelet's forensic container checkpointing, KEP-2008): a running
 * container is checkpointed through the engine's checkpoint API (`engine.checkpoints`, what
 * `docker checkpoint create --leave-running` uses) and the result is packed into one tar
 * archive at the path kubelet chose. The container goes on running.
 *
 * The archive (docs/cri.md "CheckpointContainer"):
 *   checkpoint/       the engine's checkpoint: the runtime's image files (CRIU's), berth-checkpoint.json, berth/<plugin>/
 *   config.dump       checkpointctl's/containerd's keys (id, name, rootfsImage…, runtime, times), berth's view under `berth`
 *   status.dump       its CRI ContainerStatus (JSON, the proto's field names)
 *   spec.dump         the OCI spec it was started with (JSON)
 *   container.log     a copy of its CRI log file (when it has one)
 *   rootfs-diff.tar   files added or changed in its writable layer (containers on an image of the image store)
 *   deleted.files     JSON list of paths deleted from the image (idem)
 *
 * The archive is its owner's only (0600: it holds the container's memory, as kubelet asks of
 * runtimes). Written atomically: assembled in a temporary directory (0700) beside `location`,
 * packed into a temporary file there, fsync'd and renamed to `location`; on any failure (timeout
 * included) both temporaries are deleted and `location` is left as it was.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import {
  ConflictError,
  InvalidParameterError,
  NotImplementedError,
  assertCheckpointSupported,
  errorKind,
  isActive,
  type ContainerRecord,
  type DeepReadonly,
  type Engine,
} from '@berth/core';
import { IImageService } from '@berth/image-store';
import { LABEL, containerOf, containerStatusOf, labelsOf } from './mapping.js';
import { DeadlineError } from './runtime-service.js';

const run = promisify(execFile);

/** The timeout of a request that gives none (timeout 0), in seconds. */
export const DEFAULT_CHECKPOINT_TIMEOUT_S = 300;
/** The engine checkpoint's name inside the temporary directory (also the archive's folder). */
const CHECKPOINT_NAME = 'checkpoint';

/** The archive's path, checked: absolute, not a directory, in a directory that exists. */
async function archivePath(location: unknown): Promise<string> {
  if (typeof location !== 'string' || !location) throw new InvalidParameterError('checkpoint location is empty');
  if (!isAbsolute(location)) throw new InvalidParameterError(`checkpoint location ${JSON.stringify(location)} is not an absolute path`);
  const path = normalize(location);
  const dirStat = await stat(dirname(path)).catch(() => undefined);
  if (!dirStat?.isDirectory()) throw new InvalidParameterError(`checkpoint location ${JSON.stringify(location)}: directory ${dirname(path)} does not exist`);
  const at = await stat(path).catch(() => undefined);
  if (at?.isDirectory()) throw new InvalidParameterError(`checkpoint location ${JSON.stringify(location)} is a directory`);
  return path;
}

/** Refusals before anything is written: no checkpoint store, not experimental, not running, a runtime that cannot checkpoint. */
async function assertCheckpointable(e: Engine, rec: DeepReadonly<ContainerRecord>): Promise<void> {
  if (!e.checkpoints.available) throw new NotImplementedError('checkpoints are not available: no plugin of this berth build stores them (@berth/plugin-checkpoint)');
  if (!e.config.experimental) throw new ConflictError('checkpointing needs berthd in experimental mode (as docker checkpoint)');
  if (!isActive(rec as ContainerRecord) || rec.State.Status !== 'running') throw new ConflictError(`container ${rec.ID} is not running`);
  try {
    await assertCheckpointSupported(e.containers.backendOf(rec as ContainerRecord), runtimeOf(e, rec));
  } catch (err) {
    // an environment that lacks checkpointing (no CRIU, say): FAILED_PRECONDITION, not the request's fault
    if (errorKind(err) === 'InvalidParameter') throw new ConflictError((err as Error).message, { cause: err });
    throw err;
  }
}

/** rootfs-diff.tar + deleted.files from the image store's view of the container's writable layer (none on a plain rootfs). */
async function writeRootfsDiff(e: Engine, rec: DeepReadonly<ContainerRecord>, work: string, signal: AbortSignal): Promise<void> {
  if (!rec.Image || !e.container.isRegistered(IImageService, true)) return;
  const images = e.container.resolve(IImageService);
  const lease = await images.acquireRootfs(rec.ID);
  if (!lease) return;
  try {
    const changes = await images.containerChanges(rec.ID);
    const kept = changes.filter((c) => c.Kind !== 2).map((c) => c.Path.replace(/^\/+/, ''));
    const deleted = changes.filter((c) => c.Kind === 2).map((c) => c.Path);
    await writeFile(join(work, 'deleted.files'), JSON.stringify(deleted));
    const list = join(work, '.rootfs-diff.list');
    await writeFile(list, kept.map((p) => `${p}\0`).join(''));
    await run('tar', ['-C', lease.path, '--numeric-owner', '--no-recursion', '--null', '-T', list, '-cf', join(work, 'rootfs-diff.tar')], { signal });
    await rm(list);
  } finally {
    await lease.release();
  }
}

/**
 * config.dump: the keys checkpointctl and containerd read (id, name, rootfsImage*, runtime,
 * createdTime, checkpointedTime, restored), then what berth knows of the container under `berth`.
 */
function configDump(rec: DeepReadonly<ContainerRecord>, runtime: string, checkpointedAt: Date): string {
  const cri = containerOf(rec);
  const { labels, annotations } = labelsOf(rec);
  return JSON.stringify(
    {
      id: rec.ID,
      name: rec.Name.replace(/^\//, ''),
      rootfsImage: rec.Config.Image,
      rootfsImageRef: rec.Image,
      rootfsImageName: rec.Config.Image,
      runtime,
      createdTime: rec.Created,
      checkpointedTime: checkpointedAt.toISOString(),
      restored: false,
      berth: { podSandboxId: cri.pod_sandbox_id, metadata: cri.metadata, labels, annotations, config: rec.Config, hostConfig: rec.HostConfig },
    },
    null,
    2,
  );
}

/** The metadata files beside checkpoint/: config.dump, status.dump, spec.dump (when known), container.log (when there is one); returns their names. */
async function writeMetadata(e: Engine, rec: DeepReadonly<ContainerRecord>, work: string, checkpointedAt: Date): Promise<string[]> {
  const live = e.containers.get(rec.ID);
  const written = ['config.dump', 'status.dump'];
  await writeFile(join(work, 'config.dump'), configDump(live, runtimeOf(e, live), checkpointedAt));
  await writeFile(join(work, 'status.dump'), JSON.stringify(containerStatusOf(live), null, 2));
  const spec = e.containers.specOf(rec.ID);
  if (spec) {
    await writeFile(join(work, 'spec.dump'), JSON.stringify(spec, null, 2));
    written.push('spec.dump');
  }
  const logPath = live.Config.Labels?.[LABEL.logPath];
  if (logPath && (await copyFile(logPath, join(work, 'container.log')).then(() => true, () => false))) written.push('container.log');
  return written;
}

const runtimeOf = (e: Engine, rec: DeepReadonly<ContainerRecord>) => rec.RuntimeName || rec.HostConfig.Runtime || e.config.defaultRuntime;

/** Pack `work`'s entries into `tmp` (root's only: it holds the processes' memory; fsync'd). */
async function pack(work: string, tmp: string, entries: string[], signal: AbortSignal): Promise<void> {
  await (await open(tmp, 'wx', 0o600)).close(); // made 0600 before tar writes into it
  await run('tar', ['-C', work, '--numeric-owner', '-cf', tmp, ...entries], { signal });
  const fh = await open(tmp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Checkpoint the running CRI container `rec` into a tar archive at `location`, within
 * `timeoutS` seconds (0: DEFAULT_CHECKPOINT_TIMEOUT_S; over: DeadlineError, nothing left).
 */
export async function checkpointToArchive(e: Engine, rec: DeepReadonly<ContainerRecord>, location: unknown, timeoutS: number): Promise<void> {
  const path = await archivePath(location);
  await assertCheckpointable(e, rec);
  const seconds = timeoutS > 0 ? timeoutS : DEFAULT_CHECKPOINT_TIMEOUT_S;
  const timedOut = () => new DeadlineError(`checkpoint of container ${rec.ID} timed out after ${seconds}s`);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), seconds * 1000);
  const deadline = new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(timedOut()), { once: true }));
  deadline.catch(() => undefined);
  const work = await mkdtemp(join(dirname(path), `.${basename(path)}.berth-`));
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  // The engine's checkpoint cannot be cancelled: after a timeout its directory goes once it settled.
  let dumping: Promise<void> | undefined;
  try {
    const checkpointedAt = new Date();
    dumping = e.checkpoints.create(rec.ID, { name: CHECKPOINT_NAME, dir: work, exit: false });
    await Promise.race([dumping, deadline]);
    const entries = [CHECKPOINT_NAME, ...(await writeMetadata(e, rec, work, checkpointedAt))];
    // tar is killed by the signal at the deadline
    await writeRootfsDiff(e, rec, work, abort.signal);
    if ((await stat(join(work, 'rootfs-diff.tar')).catch(() => undefined))?.isFile()) entries.push('rootfs-diff.tar', 'deleted.files');
    await pack(work, tmp, entries, abort.signal);
    if (abort.signal.aborted) throw timedOut();
    await rename(tmp, path);
    const dir = await open(dirname(path), 'r');
    await dir.sync().finally(() => dir.close());
  } catch (err) {
    await rm(tmp, { force: true });
    throw abort.signal.aborted ? timedOut() : err;
  } finally {
    clearTimeout(timer);
    const cleanup = () => rm(work, { recursive: true, force: true });
    if (abort.signal.aborted && dumping) void dumping.then(cleanup, cleanup);
    else await cleanup();
  }
}
