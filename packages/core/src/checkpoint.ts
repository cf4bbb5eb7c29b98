/**
 * Checkpoint and restore (dockerd's experimental `docker checkpoint create/ls/rm` and
 * `docker start --checkpoint`): the operation lives here, the storage in a plugin.
 *
 * - The engine's part (`engine.checkpoints`, CheckpointService): name rules, the container's
 *   lock and state, the runtime backend's `checkpoint()` and the capability check, the hooks
 *   `beforeCheckpoint`/`afterCheckpoint` around the dump (and `beforeRestore`/`afterRestore`
 *   around the backend's create in the start's runtimeCreate step, start-steps.ts), undo steps,
 *   the `checkpoint` event, and the stop of a checkpoint without `--leave-running`.
 * - The storage (`ICheckpointStore`, provided by @berth/plugin-checkpoint): where checkpoints
 *   live (`<container dir>/checkpoints/<name>/` as dockerd, or a CheckpointDir), publishing one
 *   only once complete, listing, removal, metadata. A build without such a plugin has no
 *   checkpoints: `available` is false, the daemon mounts no checkpoint routes, and a start
 *   from a checkpoint is refused (501).
 */
import type { InjectionToken } from 'tsyringe';
import { InvalidParameterError, NotImplementedError, SystemError, errorKind, errorMessage, notRunning } from './errors.js';
import type { ExitHandler } from './exit-handler.js';
import { declareFailpoint, failpoint } from './failpoint.js';
import { type DeepReadonly, type EngineInfo, UndoableContext } from './hooks.js';
import type { ContainerKernel } from './kernel.js';
import type { RuntimeBackend } from './runtime.js';
import { isActive } from './state.js';
import type { Stopper } from './stop-kill.js';
import type { ContainerRecord } from './types.js';

/** A checkpoint as the checkpoint hooks see it. */
export interface CheckpointRef {
  /** The checkpoint's name (dockerd's rules, see core checkpoint.ts). */
  readonly name: string;
  /**
   * Its directory. beforeCheckpoint/afterCheckpoint: where its files are being written now (a
   * temporary directory, renamed to `<dir>/<name>` only once the checkpoint is complete);
   * beforeRestore/afterRestore: the checkpoint the container is restored from.
   */
  readonly path: string;
}

/**
 * beforeCheckpoint / afterCheckpoint (`docker checkpoint create`): a running container is
 * checkpointed by its runtime backend between the two. A plugin that holds per-container state
 * saves it under `checkpoint.path` in afterCheckpoint (say in `berth/<plugin>/`); throw to fail
 * the checkpoint (nothing is published, the undo steps run).
 */
export class CheckpointContext extends UndoableContext {
  constructor(
    /** A copy of the record. */
    readonly container: DeepReadonly<ContainerRecord>,
    readonly checkpoint: CheckpointRef,
    /** true: the container stops once checkpointed (the API's `Exit`); false: `--leave-running`. */
    readonly exit: boolean,
    readonly engine: EngineInfo,
  ) {
    super();
  }

  /** `docker checkpoint create --leave-running`: the container goes on running. */
  get leaveRunning(): boolean {
    return !this.exit;
  }
}

/**
 * beforeRestore / afterRestore (`docker start --checkpoint`): inside the start's runtimeCreate
 * step, around the backend's create, which restores the process from the checkpoint instead of
 * starting it. The container's networking files and spec are ready (HostsPath, … set); a plugin
 * puts the state it saved in afterCheckpoint back in beforeRestore. Throw to fail the start; the
 * undo steps run when the start fails later.
 */
export class CheckpointRestoreContext extends UndoableContext {
  constructor(
    /** A copy of the record. */
    readonly container: DeepReadonly<ContainerRecord>,
    readonly checkpoint: CheckpointRef,
    readonly engine: EngineInfo,
  ) {
    super();
  }
}

/** The crash-consistency points of checkpoint and restore (failpoint.ts; docs/reliability.md). */
export const CHECKPOINT_FP = {
  afterDump: declareFailpoint(
    'checkpoint.afterDump',
    'checkpoint create: the runtime wrote the checkpoint into its temporary directory, before the afterCheckpoint taps and the publish',
  ),
  restoreAfterRuntimeCreate: declareFailpoint(
    'restore.afterRuntimeCreate',
    'start from a checkpoint: the runtime restored the container (its process runs), before the afterRestore taps and the running state is saved',
  ),
} as const;

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** True for a valid checkpoint name (validateCheckpointName's rule): what a store lists. */
export function isCheckpointName(name: string): boolean {
  return NAME_RE.test(name) && !name.endsWith('.');
}

/**
 * dockerd's rule for checkpoint names (its RestrictedNamePattern, no trailing dot): a name is
 * one path element, so `..`, `a/b` or `.hidden` never leave the checkpoint directory.
 */
export function validateCheckpointName(name: string): void {
  if (!isCheckpointName(name)) {
    throw new InvalidParameterError(`invalid checkpoint ID ${JSON.stringify(name)}, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
}

/**
 * Refuses a runtime that cannot checkpoint: the 400 a create or a start from a checkpoint gets.
 * Asks the backend's `checkpointSupported` when it has one (it waits for a probe still running,
 * where `features()` would say false), else `features()`.
 */
export async function assertCheckpointSupported(backend: RuntimeBackend, runtime: string): Promise<void> {
  const can = backend.checkpoint !== undefined && (backend.checkpointSupported ? await backend.checkpointSupported(runtime) : backend.features(runtime).checkpoint);
  if (!can) throw new InvalidParameterError(`checkpoint is not supported by runtime ${runtime}`);
}

/** Which container's checkpoints, and where (the API's CheckpointDir, `checkpoint-dir`, `dir`). */
export interface CheckpointTarget {
  /** A copy of the container's record. */
  readonly container: DeepReadonly<ContainerRecord>;
  /** A directory of checkpoints chosen by the client; unset: the container's own (`<container dir>/checkpoints`). */
  readonly dir?: string;
}

/** A checkpoint being written: listed by nobody until `commit`. */
export interface PendingCheckpoint {
  /** Where the runtime and the afterCheckpoint taps write its files. */
  readonly path: string;
  /** Publish it under its name, complete (one rename). */
  commit(): Promise<void>;
  /** Drop what was written (a failed checkpoint). */
  abort(): Promise<void>;
}

/** Checkpoint storage, provided by a plugin (@berth/plugin-checkpoint) under `ICheckpointStore`. */
export interface CheckpointStore {
  /** A new checkpoint `name` (validated by the engine); ConflictError when one exists by that name. */
  prepare(target: CheckpointTarget, name: string, meta: { exit: boolean }): Promise<PendingCheckpoint>;
  /** The directory of the complete checkpoint `name`; NotFoundError when there is none. */
  resolve(target: CheckpointTarget, name: string): Promise<string>;
  /** The complete checkpoints (dockerd's `[{Name}]`); a half-written one is never listed. */
  list(target: CheckpointTarget): Promise<Array<{ Name: string }>>;
  /** Delete checkpoint `name`; NotFoundError when there is none. */
  remove(target: CheckpointTarget, name: string): Promise<void>;
}
export type ICheckpointStore = CheckpointStore;
export const ICheckpointStore: InjectionToken<ICheckpointStore> = Symbol('ICheckpointStore');

export interface CheckpointCreateOptions {
  /** The checkpoint's name (the API's CheckpointID). */
  name: string;
  /** The API's CheckpointDir. */
  dir?: string;
  /** Stop the container once checkpointed (the API's Exit; the CLI's default, `--leave-running` = false). */
  exit: boolean;
}

/** `engine.checkpoints`: create, list and remove a container's checkpoints. */
export class CheckpointService {
  constructor(
    private readonly k: ContainerKernel,
    private readonly parts: { exits: ExitHandler; stopper: Stopper },
    private readonly store: CheckpointStore | undefined,
  ) {}

  /** False when no plugin provides checkpoint storage: the build has no checkpoint API. */
  get available(): boolean {
    return this.store !== undefined;
  }

  /**
   * Checkpoint a running container (dockerd's CheckpointCreate). With `exit` the container is
   * stopped by the checkpoint (counted as a stop by hand: restart policies leave it stopped) and
   * this resolves once its exit has been processed.
   */
  async create(idOrName: string, opts: CheckpointCreateOptions): Promise<void> {
    validateCheckpointName(opts.name);
    const store = this.usable();
    const rec = this.k.index.resolve(idOrName);
    await this.k.withLock(rec.ID, async () => {
      if (!isActive(rec) || rec.State.Status === 'restarting') throw notRunning(rec.ID);
      const backend = this.k.backendOf(rec);
      const runtime = rec.RuntimeName || rec.HostConfig.Runtime || this.k.d.config.defaultRuntime;
      await assertCheckpointSupported(backend, runtime);
      const target = this.target(rec, opts.dir);
      const pending = await store.prepare(target, opts.name, { exit: opts.exit });
      const ctx = new CheckpointContext(target.container, { name: opts.name, path: pending.path }, opts.exit, this.k.d.info);
      const exited = opts.exit ? this.parts.exits.nextExitDone(rec.ID) : undefined;
      const manual = rec.HasBeenManuallyStopped;
      let dumped = false;
      try {
        await this.k.d.hooks.beforeCheckpoint.promise(ctx);
        if (opts.exit) rec.HasBeenManuallyStopped = true;
        try {
          await backend.checkpoint!(rec.ID, { path: pending.path, exit: opts.exit });
        } catch (err) {
          // dockerd's words; a refusal keeps its kind (a 4xx), a runtime/CRIU failure is a 500.
          if (errorKind(err) !== 'System') throw err;
          throw new SystemError(`Cannot checkpoint container ${idOrName}: ${errorMessage(err)}`, { cause: err });
        }
        dumped = true;
        failpoint(CHECKPOINT_FP.afterDump);
        await this.k.d.hooks.afterCheckpoint.promise(ctx);
        await pending.commit();
      } catch (err) {
        if (!dumped || !opts.exit) rec.HasBeenManuallyStopped = manual;
        await this.k.runUndos(ctx.undos);
        await pending.abort().catch((e: unknown) => this.k.d.logger.error('removing a failed checkpoint failed', { container: rec.ID, path: pending.path, error: errorMessage(e) }));
        if (dumped && exited) await this.parts.stopper.awaitExit(rec, exited, 'checkpointed container').catch(() => {});
        throw err;
      }
      this.k.emit(rec, 'checkpoint');
      if (exited && isActive(rec)) await this.parts.stopper.awaitExit(rec, exited, 'checkpointed container');
    });
  }

  /** The container's complete checkpoints, `[{Name}]` (dockerd's CheckpointList). */
  async list(idOrName: string, dir?: string): Promise<Array<{ Name: string }>> {
    const store = this.usable();
    const rec = this.k.index.resolve(idOrName);
    return store.list(this.target(rec, dir));
  }

  /** Delete a checkpoint (dockerd's CheckpointDelete). */
  async remove(idOrName: string, name: string, dir?: string): Promise<void> {
    validateCheckpointName(name);
    const store = this.usable();
    const rec = this.k.index.resolve(idOrName);
    await this.k.withLock(rec.ID, () => store.remove(this.target(rec, dir), name));
  }

  /** The checkpoint a start restores from (`docker start --checkpoint NAME [--checkpoint-dir DIR]`). */
  async forStart(rec: ContainerRecord, name: string, dir?: string): Promise<CheckpointRef> {
    validateCheckpointName(name);
    const store = this.usable();
    return { name, path: await store.resolve(this.target(rec, dir), name) };
  }

  private usable(): CheckpointStore {
    if (!this.store) throw new NotImplementedError('checkpoints are not available: no plugin of this build stores them (@berth/plugin-checkpoint)');
    if (!this.k.d.config.experimental) throw new InvalidParameterError('checkpoint is only supported in experimental mode');
    return this.store;
  }

  private target(rec: ContainerRecord, dir: string | undefined): CheckpointTarget {
    return { container: structuredClone(rec), ...(dir ? { dir } : {}) };
  }
}
