/**
 * Stop and kill (dockerd's containerStop / Kill): the stop signal, the timeout, SIGKILL, and
 * the wait for the exit — asking the backend between waits, so a backend that lost the exit
 * event (exit-handler.ts's reconcileLost) never keeps a stop waiting for the 30 s limit.
 */
import { NotModifiedError, SystemError, errorMessage, noSuchContainer } from './errors.js';
import type { ExitHandler } from './exit-handler.js';
import type { ContainerKernel } from './kernel.js';
import type { RestartManager } from './restart-manager.js';
import { SIGKILL, parseSignal } from './signals.js';
import { isActive, setUnpaused } from './state.js';
import type { ContainerRecord } from './types.js';
import { sleep } from './util.js';

/** dockerd's default StopTimeout. */
export const DEFAULT_STOP_TIMEOUT = 10;
/** How long to wait for the exit after SIGKILL before giving up. */
const KILL_WAIT_MS = 30_000;

export class Stopper {
  constructor(
    private readonly k: ContainerKernel,
    private readonly exits: ExitHandler,
    private readonly restarts: RestartManager,
  ) {}

  /** Stop under the container's lock; `manual` = a stop by hand (a daemon shutdown is not). */
  async stopLocked(rec: ContainerRecord, opts: { timeout?: number; signal?: number }, manual = true): Promise<void> {
    if (!this.k.index.has(rec.ID)) throw noSuchContainer(rec.ID);
    if (!isActive(rec)) throw new NotModifiedError('Container already stopped');
    const signal = opts.signal ?? parseSignal(rec.Config.StopSignal || 'SIGTERM');
    const timeout = opts.timeout ?? rec.Config.StopTimeout ?? DEFAULT_STOP_TIMEOUT;
    const exited = this.exits.nextExitDone(rec.ID);
    await this.k.d.hooks.beforeStop.promise({ container: structuredClone(rec), signal, timeout });
    // A daemon shutdown does not count as a stop by hand (unless-stopped containers come back at boot).
    if (manual) rec.HasBeenManuallyStopped = true;
    else this.restarts.shutdownStop(rec.ID, true);
    if (rec.State.Status === 'restarting') {
      await this.restarts.cancel(rec, 'stop');
      this.k.emit(rec, 'stop');
      return;
    }
    if (isActive(rec)) {
      try {
        await this.signal(rec, signal);
      } catch (err) {
        if (!(await this.exits.reconcileLost(rec))) throw err;
      }
      let gone = !isActive(rec);
      if (!gone && timeout < 0) {
        await exited;
        gone = true;
      } else if (!gone) {
        const t = sleep(timeout * 1000);
        gone = await Promise.race([exited.then(() => true), t.promise.then(() => false)]);
        t.cancel();
      }
      if (!gone && isActive(rec)) {
        this.k.d.logger.info('container did not exit within the stop timeout, sending SIGKILL', { container: rec.ID, timeout });
        await this.killAndWait(rec, exited);
      }
    }
    await this.exits.settled(rec.ID);
    this.k.emit(rec, 'stop');
  }

  /** Send a signal (resuming a paused container so it can act on it); emits `kill`. */
  private async signal(rec: ContainerRecord, signal: number): Promise<void> {
    const backend = this.k.backendOf(rec);
    await backend.kill(rec.ID, signal);
    this.k.emit(rec, 'kill', { signal: String(signal) });
    if (rec.State.Status !== 'paused') return;
    try {
      await backend.resume(rec.ID);
      if (rec.State.Status === 'paused') {
        setUnpaused(rec);
        await this.k.persistQuietly(rec);
      }
    } catch (err) {
      this.k.d.logger.warn('resume after signal failed', { container: rec.ID, error: errorMessage(err) });
    }
  }

  async killAndWait(rec: ContainerRecord, exited: Promise<void>): Promise<void> {
    try {
      await this.signal(rec, SIGKILL);
    } catch (err) {
      if (await this.exits.reconcileLost(rec)) return;
      throw err;
    }
    await this.awaitExit(rec, exited, 'tried to kill container');
  }

  /**
   * Wait for a container's exit that is on its way (SIGKILL sent, a checkpoint that stops it):
   * `exited` is `exits.nextExitDone(id)` taken before the exit was caused. Throws a SystemError
   * `<what> <id>, but did not receive an exit event` when none came within the limit.
   */
  async awaitExit(rec: ContainerRecord, exited: Promise<void>, what: string): Promise<void> {
    // Wait for the exit event, asking the backend's state between waits (1 s, then every 2 s):
    // one that lost the exit (e.g. its monitor was killed) says "stopped" long before the limit.
    const deadline = Date.now() + KILL_WAIT_MS;
    let gone = false;
    for (let pollMs = 1000; !gone && isActive(rec) && Date.now() < deadline; pollMs = 2000) {
      const t = sleep(Math.max(0, Math.min(pollMs, deadline - Date.now())));
      gone = await Promise.race([exited.then(() => true), t.promise.then(() => false)]);
      t.cancel();
      if (!gone && isActive(rec) && (await this.exits.reconcileLost(rec))) return;
    }
    if (!gone && isActive(rec)) {
      // The backend may have lost the exit event: ask it.
      if (await this.exits.reconcileLost(rec)) return;
      throw new SystemError(`${what} ${rec.ID}, but did not receive an exit event`);
    }
  }


  /** `docker kill` with a parsed signal: SIGKILL waits for the exit, others are only sent. */
  async kill(rec: ContainerRecord, sig: number): Promise<void> {
    if (sig === SIGKILL) {
      await this.killAndWait(rec, this.exits.nextExitDone(rec.ID));
      return;
    }
    await this.k.backendOf(rec).kill(rec.ID, sig);
    this.k.emit(rec, 'kill', { signal: String(sig) });
  }
}
