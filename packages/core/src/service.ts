/**
 * The container service: the public calls on containers — create, start, stop, kill, wait,
 * remove, restart, pause/unpause, rename, update, lookup. One per engine. Its parts live in
 * files of their own and share one ContainerKernel (kernel.ts): the start path as a step
 * table (start-steps.ts), the exit handler (exit-handler.ts), the restart manager
 * (restart-manager.ts), restore and the orphan sweep (restore.ts, orphan-sweep.ts), the
 * name/ID index (name-index.ts), the waiters (wait-registry.ts), the record factory
 * (record-factory.ts) and HostConfig validation for create and update (hostconfig-validate.ts).
 *
 * Concurrency: calls on one container serialize on a per-container lock; calls on
 * different containers run in parallel. Exit events from the runtime do not take that lock
 * (a stop holds it while it waits for the exit); their processing is tracked per container
 * and every locked operation first waits for it to finish. `kill` is not serialized (like
 * dockerd, it must reach a container while a stop is waiting).
 */
import type { BackendRegistry } from './backends.js';
import { CheckpointService, type CheckpointStore, validateCheckpointName } from './checkpoint.js';
import type { Clock } from './clock.js';
import { createContainer, normaliseHostConfig, type CreateOptions, type CreateResult } from './create.js';
import {
  ConflictError,
  InvalidParameterError,
  NotImplementedError,
  NotModifiedError,
  SystemError,
  errorKind,
  errorMessage,
  noSuchContainer,
  notRunning,
} from './errors.js';
import type { EventBus } from './events.js';
import { ExitHandler } from './exit-handler.js';
import { type EngineInfo, type Hooks, StartContext } from './hooks.js';
import { updatedHostConfig } from './hostconfig-validate.js';
import { isFullId, normaliseName } from './ids.js';
import type { ImageStore } from './image.js';
import { ContainerKernel } from './kernel.js';
import type { Logger } from './logger.js';
import type { OciSpec } from './oci.js';
import { sweepOrphans } from './orphan-sweep.js';
import type { ProvenanceRecorder } from './provenance.js';
import type { Holdings } from './reconcile.js';
import { newContainerRecord } from './record-factory.js';
import { removeLocked, type RemoveOptions, type RemoveParts } from './remove.js';
import { restoreContainers } from './restore.js';
import { RestartManager } from './restart-manager.js';
import type { ExitInfo, RuntimeBackend } from './runtime.js';
import { SIGKILL, SIGTERM, parseSignal } from './signals.js';
import { Stopper } from './stop-kill.js';
import { StartStepError } from './start-error.js';
import { failStart, runStartSteps, startSteps, type StartRun, type StartStep } from './start-steps.js';
import { isActive, setPaused, setUnpaused } from './state.js';
import type { StateStore } from './store.js';
import type { EngineConfig } from './tokens.js';
import type { ContainerRecord, HostConfig } from './types.js';
import { UnreadableContainers } from './unreadable.js';
import { waitResultOf, type WaitCondition, type WaitResult } from './wait-registry.js';

export interface StartOptions {
  checkpoint?: string;
  checkpointDir?: string;
  /**
   * API < 1.24 only: a HostConfig in the start body replaces the stored one before the start
   * (deprecated in dockerd, still honoured for old clients).
   */
  hostConfig?: HostConfig | null;
}

export interface StopOptions {
  /** Seconds to wait before SIGKILL; default Config.StopTimeout, else 10. Negative: wait forever. */
  timeout?: number;
  /** Signal name or number; default Config.StopSignal, else SIGTERM. */
  signal?: string | number;
}


export interface ContainerServiceDeps {
  hooks: Hooks;
  /** The engine's runtime backends (sealed: every backend registered, the default runtime fixed). */
  backends: BackendRegistry;
  store: StateStore;
  events: EventBus;
  logger: Logger;
  clock: Clock;
  config: EngineConfig;
  info: EngineInfo;
  provenance: ProvenanceRecorder;
  images?: ImageStore;
  /**
   * The security options the loaded plugins announced (engine.securityOptions()): create then
   * refuses apparmor=/seccomp= options no loaded plugin enforces (hostconfig-validate.ts).
   */
  securityOptions?: readonly string[];
  /** Checkpoint storage, when a plugin provides it (checkpoint.ts): without it there are no checkpoints. */
  checkpointStore?: CheckpointStore;
}

export class ContainerService {
  private readonly k: ContainerKernel;
  private readonly restarts: RestartManager;
  private readonly exits: ExitHandler;
  private readonly stopper: Stopper;
  private readonly parts: RemoveParts;
  private readonly steps: readonly StartStep[];
  private unwatchExits: (() => void) | undefined;
  /** What the backends held when load() ran, for the orphan sweep right after it. */
  private holdings: Map<string, Holdings> | undefined;
  /** Containers whose record could not be read at start-up (the engine sets them): /info warnings, rm -f by ID. */
  readonly unreadable: UnreadableContainers;
  /** Checkpoints of containers (checkpoint.ts; `engine.checkpoints`). */
  readonly checkpoints: CheckpointService;

  constructor(private readonly d: ContainerServiceDeps) {
    const k = (this.k = new ContainerKernel(d, (rec) => this.backendOf(rec)));
    this.restarts = new RestartManager(k, (rec) => this.startLocked(rec, {}, true));
    this.exits = new ExitHandler(k, this.restarts, (rec) => this.removeLocked(rec, { force: true, volumes: true }));
    this.stopper = new Stopper(k, this.exits, this.restarts);
    this.parts = { stopper: this.stopper, exits: this.exits, restarts: this.restarts };
    this.checkpoints = new CheckpointService(k, this.parts, d.checkpointStore);
    this.steps = startSteps(k, { links: this, resetBackoff: (id) => this.restarts.resetBackoff(id) });
    this.unwatchExits = d.backends.watchExits((backend, exit) => this.exits.onRuntimeExit(backend, exit));
    this.unreadable = new UnreadableContainers({ ...d, backends: () => d.backends.all(), newRecord: newContainerRecord });
  }

  /** The backend that runs (or ran) a container: the one its record names (core/src/backends.ts). */
  backendOf(rec: ContainerRecord): RuntimeBackend {
    return this.d.backends.backendOf(rec);
  }

  // ---------------------------------------------------------------- lookup

  /** A copy of the container's record (lookup by full ID, name or unique ID prefix). */
  get(idOrName: string): ContainerRecord {
    return structuredClone(this.k.index.resolve(idOrName));
  }

  /** Same as get: the whole record, for the API's inspect. */
  inspect(idOrName: string): ContainerRecord {
    return this.get(idOrName);
  }

  /**
   * Copies of all containers (or those `keep` accepts), newest first (like `docker ps -a`);
   * with `view`, what it makes of each live record instead of a copy (see NameIndex).
   */
  list<T = ContainerRecord>(keep?: (r: Readonly<ContainerRecord>) => boolean, view?: (r: Readonly<ContainerRecord>) => T): T[] {
    return this.k.index.listNewestFirst(keep, view);
  }

  has(idOrName: string): boolean {
    try {
      this.k.index.resolve(idOrName);
      return true;
    } catch {
      return false;
    }
  }

  // ---------------------------------------------------------------- create

  async create(opts: CreateOptions): Promise<CreateResult> {
    return createContainer(this.k, this, opts);
  }

  // ---------------------------------------------------------------- start

  async start(idOrName: string, opts: StartOptions = {}): Promise<void> {
    // dockerd's order: the name first, then experimental mode
    if (opts.checkpoint) validateCheckpointName(opts.checkpoint);
    if (opts.checkpoint && !this.d.config.experimental) {
      throw new InvalidParameterError('checkpoint is only supported in experimental mode');
    }
    const rec = this.k.index.resolve(idOrName);
    await this.k.withLock(rec.ID, () => this.startLocked(rec, opts));
  }

  /**
   * moby's containerStart: the preconditions, then the step table (start-steps.ts); a failed
   * step ends in failStart and a StartStepError. Running and saved, the start is announced;
   * an exit held during the start is processed right after.
   */
  private async startLocked(rec: ContainerRecord, opts: StartOptions, policy = false): Promise<void> {
    if (!this.k.index.has(rec.ID)) throw noSuchContainer(rec.ID);
    if (isActive(rec) && !(policy && rec.State.Status === 'restarting')) throw new NotModifiedError('Container already started');
    if (rec.RemovalInProgress || rec.State.Dead || rec.State.Status === 'removing' || rec.State.Status === 'dead') {
      throw new ConflictError('container is marked for removal and cannot be started');
    }
    const id = rec.ID;
    if (opts.hostConfig && Object.keys(opts.hostConfig).length > 0) {
      const { hostConfig, mounts } = normaliseHostConfig(this.k, opts.hostConfig);
      rec.HostConfig = hostConfig;
      rec.Mounts = mounts;
    }
    const checkpoint = opts.checkpoint ? await this.checkpoints.forStart(rec, opts.checkpoint, opts.checkpointDir) : undefined;
    this.d.provenance.reset(id, this.k.now());
    const run: StartRun = { rec, ctx: new StartContext(rec, this.d.info, checkpoint), policy };
    this.exits.beginStart(id);
    try {
      await runStartSteps(this.steps, run, this.k);
    } catch (err) {
      this.exits.endStart(id);
      // What the failed start did (taps, undo steps) is kept for `berth explain` (an AutoRemove may follow).
      await this.d.provenance.flush(id);
      const failure = err as StartStepError;
      await failStart(this.k, rec, failure, {
        forgetBackoff: (cid) => this.restarts.resetBackoff(cid),
        remove: (r) => this.removeLocked(r, { force: true, volumes: true }),
      });
      throw failure;
    }
    // Running and saved. Exits that arrive until the start is fully announced are held, so `die` never precedes `start`.
    this.k.emit(rec, 'start');
    await this.k.stateChange(rec, run.from ?? 'created', 'running', policy ? 'restart-policy' : 'start');
    // The explain record is written after the answer (a removal waits for it: remove.ts).
    this.k.track(this.d.provenance.flush(id));
    const early = this.exits.endStart(id);
    if (early) this.exits.process(rec, early);
  }

  // ---------------------------------------------------------------- stop / kill

  /**
   * Daemon shutdown without live restore (dockerd's shutdownContainer): stop every running
   * container in parallel, without marking it stopped by hand, so restart policies bring it
   * back at the next boot. Errors are logged.
   */
  async stopAll(opts: { timeout?: number } = {}): Promise<void> {
    await Promise.all(
      this.k.index
        .all()
        .filter(isActive)
        .map((rec) =>
          this.k
            .withLock(rec.ID, async () => {
              if (!isActive(rec)) return;
              try {
                await this.stopper.stopLocked(rec, { ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}) }, false);
              } finally {
                this.restarts.shutdownStop(rec.ID, false);
              }
            })
            .catch((err) => this.d.logger.error('stopping container at shutdown failed', { container: rec.ID, error: errorMessage(err) })),
        ),
    );
  }

  async stop(idOrName: string, opts: StopOptions = {}): Promise<void> {
    const rec = this.k.index.resolve(idOrName);
    const signal = opts.signal !== undefined && opts.signal !== '' ? parseSignal(opts.signal) : undefined;
    if (opts.timeout !== undefined && (typeof opts.timeout !== 'number' || !Number.isFinite(opts.timeout))) {
      throw new InvalidParameterError(`invalid stop timeout: ${String(opts.timeout)}`);
    }
    await this.k.withLock(rec.ID, () => this.stopper.stopLocked(rec, { ...opts, signal }));
  }

  /** Send a signal (default SIGKILL). Not serialized with the other calls, like dockerd. */
  async kill(idOrName: string, signal: string | number = 'SIGKILL'): Promise<void> {
    const rec = this.k.index.resolve(idOrName);
    const sig = parseSignal(signal === '' ? 'SIGKILL' : signal);
    if (!isActive(rec)) throw notRunning(rec.ID);
    if (rec.State.Status === 'restarting') throw new ConflictError(`Container ${rec.ID} is restarting, wait until the container is running`);
    const stopSignal = rec.Config.StopSignal ? parseSignal(rec.Config.StopSignal) : SIGTERM;
    if (sig === SIGKILL || sig === SIGTERM || sig === stopSignal) rec.HasBeenManuallyStopped = true;
    await this.stopper.kill(rec, sig);
  }

  // ---------------------------------------------------------------- wait

  async wait(idOrName: string, condition: WaitCondition = 'not-running', opts: { signal?: AbortSignal } = {}): Promise<WaitResult> {
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) {
      throw new InvalidParameterError(`invalid condition: "${condition}"`);
    }
    const rec = this.k.index.resolve(idOrName);
    if (condition === 'not-running' && !isActive(rec) && !this.exits.isStarting(rec.ID)) return waitResultOf(rec);
    return this.k.waits.add(rec.ID, condition, opts.signal);
  }

  // ---------------------------------------------------------------- remove

  async remove(idOrName: string, opts: RemoveOptions = {}): Promise<void> {
    if (this.unreadable.has(idOrName) && !this.k.index.has(idOrName)) {
      await this.k.withLock(idOrName, () => this.unreadable.remove(idOrName, opts));
      return;
    }
    const rec = this.k.index.resolve(idOrName);
    if (rec.RemovalInProgress) throw new ConflictError(`removal of container ${rec.ID} is already in progress`);
    await this.k.withLock(rec.ID, () => this.removeLocked(rec, opts));
  }

  private removeLocked(rec: ContainerRecord, opts: RemoveOptions): Promise<void> {
    return removeLocked(this.k, this.parts, rec, opts);
  }

  // ---------------------------------------------------------------- restart, pause, rename, update

  async restart(idOrName: string, opts: StopOptions = {}): Promise<void> {
    const rec = this.k.index.resolve(idOrName);
    const signal = opts.signal !== undefined && opts.signal !== '' ? parseSignal(opts.signal) : undefined;
    await this.k.withLock(rec.ID, async () => {
      if (isActive(rec)) {
        try {
          await this.stopper.stopLocked(rec, { timeout: opts.timeout, signal });
        } catch (err) {
          if (errorKind(err) !== 'NotModified') throw err;
        }
      }
      await this.exits.settled(rec.ID);
      await this.startLocked(rec, {});
      this.k.emit(rec, 'restart');
    });
  }

  async pause(idOrName: string): Promise<void> {
    const rec = this.k.index.resolve(idOrName);
    await this.k.withLock(rec.ID, async () => {
      if (!isActive(rec)) throw notRunning(rec.ID);
      if (rec.State.Status === 'paused') throw new ConflictError(`Container ${rec.ID} is already paused`);
      if (rec.State.Status === 'restarting') throw new ConflictError(`Container ${rec.ID} is restarting, wait until the container is running`);
      await this.backendOf(rec).pause(rec.ID);
      setPaused(rec);
      await this.k.persistQuietly(rec);
      this.k.emit(rec, 'pause');
      await this.k.stateChange(rec, 'running', 'paused', 'pause');
    });
  }

  async unpause(idOrName: string): Promise<void> {
    const rec = this.k.index.resolve(idOrName);
    await this.k.withLock(rec.ID, async () => {
      if (rec.State.Status !== 'paused') throw new ConflictError(`Container ${rec.ID} is not paused`);
      await this.backendOf(rec).resume(rec.ID);
      setUnpaused(rec);
      await this.k.persistQuietly(rec);
      this.k.emit(rec, 'unpause');
      await this.k.stateChange(rec, 'paused', 'running', 'unpause');
    });
  }

  async rename(idOrName: string, newName: string): Promise<void> {
    if (!newName) throw new InvalidParameterError('Neither old nor new names may be empty');
    const rec = this.k.index.resolve(idOrName);
    const name = normaliseName(newName);
    await this.k.withLock(rec.ID, async () => {
      if (!this.k.index.has(rec.ID)) throw noSuchContainer(idOrName);
      const old = rec.Name;
      if (name === old) throw new InvalidParameterError('Renaming a container with the same name as its current name');
      this.k.index.reserveName(name, rec.ID);
      rec.Name = name;
      try {
        await this.k.persist(rec);
      } catch (err) {
        rec.Name = old;
        this.k.index.releaseName(name, rec.ID);
        throw err;
      }
      this.k.index.releaseName(old, rec.ID);
      this.k.emit(rec, 'rename', { oldName: old });
    });
  }

  /**
   * `docker update`: resource limits and the restart policy (dockerd's ContainerUpdate),
   * checked and merged by hostconfig-validate.ts's updatedHostConfig. A running container
   * gets the new limits through its backend's `update`; if that fails, nothing changes.
   */
  async update(idOrName: string, changes: HostConfig): Promise<{ Warnings: string[] }> {
    const rec = this.k.index.resolve(idOrName);
    return this.k.withLock(rec.ID, async () => {
      if (!this.k.index.has(rec.ID)) throw noSuchContainer(idOrName);
      if (rec.RemovalInProgress || rec.State.Status === 'dead') {
        throw new ConflictError(`Cannot update container ${rec.ID}: container is marked for removal and cannot be "update"`);
      }
      const { hostConfig, resources } = updatedHostConfig(rec.ID, rec.HostConfig, changes);
      if (isActive(rec) && resources) {
        const backend = this.backendOf(rec);
        if (!backend.update) throw new NotImplementedError(`Cannot update container ${rec.ID}: runtime backend ${backend.name} cannot update resources`);
        try {
          await backend.update(rec.ID, resources);
        } catch (err) {
          throw new SystemError(`Cannot update container ${rec.ID}: ${errorMessage(err)}`, { cause: err });
        }
      }
      rec.HostConfig = hostConfig;
      await this.k.persist(rec);
      this.k.emit(rec, 'update');
      return { Warnings: [] };
    });
  }

  // ---------------------------------------------------------------- for exec, links, attach (ExecContainers, LinkContainers)

  /** The OCI spec the container was last started with (in this engine's lifetime). */
  specOf(id: string): OciSpec | undefined {
    return this.k.specs.get(id);
  }

  /** A live record (not a copy), for the engine's own parts. */
  liveRecord(idOrName: string): ContainerRecord {
    return this.k.index.resolve(idOrName);
  }

  /**
   * Run `fn` with the live record under the container's lock, as start, stop and rename run
   * (after any exit processing in flight): for the engine's parts that change a container from
   * outside the core (network connect/disconnect).
   */
  async withRecordLocked<T>(idOrName: string, fn: (rec: ContainerRecord) => Promise<T>): Promise<T> {
    const rec = this.k.index.resolve(idOrName);
    return this.k.withLock(rec.ID, async () => {
      if (!this.k.index.has(rec.ID)) throw noSuchContainer(idOrName);
      return fn(rec);
    });
  }

  /** Persist a record change. */
  async save(rec: ContainerRecord): Promise<void> {
    await this.k.persist(rec);
  }

  emitEvent(rec: ContainerRecord, action: string, extra?: Record<string, string>): void {
    this.k.emit(rec, action, extra);
  }

  /** Where exits of exec processes go (the exec service). */
  onExecExit(listener: (exit: ExitInfo) => void): void {
    this.exits.onExecExit(listener);
  }

  // ---------------------------------------------------------------- load, restore, close

  /** Load the stored containers and reconcile them with their backends (restore.ts). */
  async load(records: ContainerRecord[]): Promise<void> {
    this.holdings = await restoreContainers(this.k, {
      exits: this.exits,
      restarts: this.restarts,
      removeLocked: (rec) => this.removeLocked(rec, { force: true, volumes: true }),
      startLocked: (rec) => this.startLocked(rec, {}),
    }, records);
  }

  /** Delete containers a backend holds that no record knows of, except `keep` (orphan-sweep.ts). Returns the deleted IDs. */
  async removeOrphans(keep: Iterable<string> = []): Promise<string[]> {
    const holdings = this.holdings;
    this.holdings = undefined;
    return sweepOrphans(this.k, holdings, keep);
  }

  /** Stop listening to runtime events; containers keep running. */
  async close(): Promise<void> {
    this.k.closed = true;
    this.restarts.close();
    this.unwatchExits?.();
    this.unwatchExits = undefined;
    await this.k.settle(1);
  }

  /** Wait for background work (auto-removes, exit processing) to settle: for tests and shutdown. */
  async idle(): Promise<void> {
    await this.k.settle();
  }

  /** IDs of containers that are running, paused or restarting. */
  activeIds(): string[] {
    return this.k.index.all().filter(isActive).map((r) => r.ID);
  }

  /** Full IDs only (for callers that must not resolve names). */
  static isFullId(s: string): boolean {
    return isFullId(s);
  }
}
