/**
 * A container's process exited (dockerd's handleContainerExit): the state becomes exited
 * (or restarting, when the restart manager wants it back), waiters wake, `oom`/`die` go out,
 * the state is saved before the runtime's delete (so a crash never loses the exit code), the
 * release hooks and the backend's delete run, and AutoRemove removes the container.
 *
 * Exits are processed one at a time per container and never under the container's lock (a
 * stop holds it while it waits for the exit); every locked call first waits for the exit in
 * flight (kernel.withLock). An exit that arrives while a start is still in progress is held
 * and processed right after the start, so `die` never precedes `start`. A lost exit — the
 * backend no longer runs the container but reported no exit — gets the exit the backend
 * recorded, else EXIT_CODE_UNKNOWN.
 */
import { normaliseTime } from './clock.js';
import { errorKind, errorMessage } from './errors.js';
import { EXIT_CODE_UNKNOWN } from './exit-codes.js';
import { failpoint } from './failpoint.js';
import type { ReleaseContext } from './hooks.js';
import type { ContainerKernel } from './kernel.js';
import { FP } from './points.js';
import type { RestartManager } from './restart-manager.js';
import type { ExitInfo, RuntimeBackend } from './runtime.js';
import { isActive, setRestarting, setStopped } from './state.js';
import type { ContainerRecord } from './types.js';
import { deferred } from './util.js';

export class ExitHandler {
  /** Listeners for the end of the next exit's processing (stop, kill, remove -f). */
  private readonly exitDone = new Map<string, Array<() => void>>();
  /** Containers in the middle of a start, and the exits that arrived meanwhile. */
  private readonly starting = new Set<string>();
  private readonly earlyExits = new Map<string, ExitInfo>();
  /** Exits of exec processes go to the exec service. */
  private execListener: ((exit: ExitInfo) => void) | undefined;

  constructor(
    private readonly k: ContainerKernel,
    private readonly restarts: RestartManager,
    /** Remove the container (under its lock) for AutoRemove. */
    private readonly removeLocked: (rec: ContainerRecord) => Promise<void>,
  ) {}

  /** Where exec exits go (the exec service sets it). */
  onExecExit(listener: (exit: ExitInfo) => void): void {
    this.execListener = listener;
  }

  /** A backend reported an exit. */
  onRuntimeExit(backend: RuntimeBackend, exit: ExitInfo): void {
    if (exit.execId) {
      this.execListener?.(exit);
      return;
    }
    const rec = this.k.index.byId(exit.id);
    if (!rec) return;
    if ((rec.RuntimeBackend ?? this.k.d.backends.default()?.name) !== backend.name) return;
    if (this.starting.has(rec.ID)) {
      this.earlyExits.set(rec.ID, exit);
      return;
    }
    if (!isActive(rec)) return;
    this.process(rec, exit);
  }

  /** A start begins: exits are held until `endStart`. */
  beginStart(id: string): void {
    this.starting.add(id);
    this.earlyExits.delete(id);
  }

  /** The start is over (announced or failed): the exit held meanwhile, if any. */
  endStart(id: string): ExitInfo | undefined {
    this.starting.delete(id);
    const early = this.earlyExits.get(id);
    this.earlyExits.delete(id);
    return early;
  }

  isStarting(id: string): boolean {
    return this.starting.has(id);
  }

  /** Process an exit after the one in flight, if any. */
  process(rec: ContainerRecord, exit: ExitInfo): void {
    const id = rec.ID;
    const prev = this.k.exitWork.get(id) ?? Promise.resolve();
    const work = prev.catch(() => {}).then(() => this.handle(rec, exit));
    this.k.exitWork.set(id, work);
    void work
      .finally(() => {
        if (this.k.exitWork.get(id) === work) this.k.exitWork.delete(id);
        this.dropListeners(id);
        if (rec.HostConfig.AutoRemove && this.k.index.has(id) && !rec.RemovalInProgress && !isActive(rec)) {
          this.k.track(this.autoRemove(rec));
        }
      })
      .catch(() => {});
  }

  /** Resolves when the next exit of the container has been fully processed. */
  nextExitDone(id: string): Promise<void> {
    const d = deferred<void>();
    const list = this.exitDone.get(id) ?? [];
    list.push(() => d.resolve());
    this.exitDone.set(id, list);
    return d.promise;
  }

  /** Wake whoever waits for the container's next exit (it was processed, or the container is gone). */
  dropListeners(id: string): void {
    const list = this.exitDone.get(id);
    this.exitDone.delete(id);
    for (const l of list ?? []) l();
  }

  /** The exit in flight, if any, has been processed. */
  async settled(id: string): Promise<void> {
    await this.k.exitWork.get(id)?.catch(() => {});
  }

  /**
   * The backend no longer runs the container but no exit came: process the exit it recorded,
   * else one with EXIT_CODE_UNKNOWN. False when the backend still runs it.
   */
  async reconcileLost(rec: ContainerRecord): Promise<boolean> {
    const st = await this.k.backendOf(rec).state(rec.ID).catch(() => null);
    if (st && st.status !== 'stopped') return false;
    if (isActive(rec)) this.process(rec, st?.exit ?? { id: rec.ID, exitCode: EXIT_CODE_UNKNOWN, oomKilled: false, exitedAt: this.k.now() });
    await this.settled(rec.ID);
    return true;
  }

  /**
   * After an exit: the network and mount release (releaseNetwork, unmount) and the runtime
   * backend's delete run side by side; the process is gone, neither needs the other.
   */
  async cleanup(rec: ContainerRecord, reason: ReleaseContext['reason'], opts: { deleteFromBackend?: boolean } = {}): Promise<void> {
    const release = this.k.live.delete(rec.ID) ? this.k.release(rec, reason) : Promise.resolve();
    if (opts.deleteFromBackend === false) {
      this.k.d.logger.error('container state not saved after its exit; its runtime keeps it (and its exit code) until the next restart', { container: rec.ID });
      await release;
      return;
    }
    const del = this.k
      .backendOf(rec)
      .delete(rec.ID, { force: true })
      .then(
        () => void this.k.inBackend.delete(rec.ID),
        (err: unknown) => this.k.d.logger.warn('runtime delete after exit failed', { container: rec.ID, error: errorMessage(err) }),
      );
    await Promise.all([release, del]);
  }

  /** AutoRemove after an exit: under the lock, and only if nothing restarted the container meanwhile. */
  private async autoRemove(rec: ContainerRecord): Promise<void> {
    await this.k
      .withLock(rec.ID, async () => {
        if (!this.k.index.has(rec.ID) || rec.RemovalInProgress || isActive(rec)) return;
        await this.removeLocked(rec);
      })
      .catch((err) => {
        if (errorKind(err) !== 'NotFound' && errorKind(err) !== 'Conflict') throw err;
      });
  }

  private async handle(rec: ContainerRecord, exit: ExitInfo): Promise<void> {
    if (!isActive(rec) || rec.State.Status === 'restarting') return;
    failpoint(FP.exitAfterSeen);
    const from = rec.State.Status;
    const finishedAt = normaliseTime(exit.exitedAt, this.k.now());
    const startedMs = Date.parse(rec.State.StartedAt);
    const durationMs = Number.isNaN(startedMs) ? 0 : Math.max(0, Date.parse(finishedAt) - startedMs);
    const restart = await this.restarts.decide(rec, exit, durationMs);
    if (restart) setRestarting(rec, { exitCode: exit.exitCode, oomKilled: exit.oomKilled, finishedAt });
    else setStopped(rec, { exitCode: exit.exitCode, oomKilled: exit.oomKilled, finishedAt });
    // Waiters first: `docker run --rm` must return within milliseconds of the exit.
    this.k.waits.resolve(rec, restart ? ['next-exit'] : ['not-running', 'next-exit']);
    if (exit.oomKilled) this.k.emit(rec, 'oom');
    this.k.emit(rec, 'die', { exitCode: String(exit.exitCode), execDuration: String(Math.round(durationMs / 1000)) });
    await this.k.stateChange(rec, from, restart ? 'restarting' : 'exited', 'exit');
    // Saved before the runtime's delete: until the record says exited, the runtime keeps the
    // exit code for the restore. A record that cannot be saved keeps the runtime's copy.
    // An AutoRemove container is removed right after this, and a crash before that removal
    // ends has the restore reconcile it (exited, or EXIT_CODE_UNKNOWN once the runtime's
    // copy is gone) and remove it: no one could read the saved exit code, so it is not saved.
    failpoint(FP.exitBeforeSave);
    const removedNext = !restart && !!rec.HostConfig.AutoRemove;
    const saved = removedNext || (await this.k.persist(rec).then(() => true, () => false));
    failpoint(FP.exitAfterSave);
    await this.cleanup(rec, 'exit', { deleteFromBackend: saved });
    if (restart) this.restarts.schedule(rec, durationMs);
  }
}
