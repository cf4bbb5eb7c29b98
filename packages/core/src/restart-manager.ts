/**
 * dockerd's restart manager: whether a container that exited is started again (its restart
 * policy, then the `shouldRestart` hook), the backoff between policy restarts (100 ms,
 * doubling up to 1 minute, back to 100 ms after a run of 10 s or more), and cancelling a
 * pending restart (stop, kill, remove, close).
 */
import { errorMessage } from './errors.js';
import type { ContainerKernel } from './kernel.js';
import type { ExitInfo } from './runtime.js';
import { setStopped } from './state.js';
import type { ContainerRecord } from './types.js';

export class RestartManager {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly backoff = new Map<string, number>();
  /** Containers being stopped by a daemon shutdown (no policy restart now, but at the next boot). */
  private readonly shuttingDown = new Set<string>();

  constructor(
    private readonly k: ContainerKernel,
    /** Start a container again by its policy (called under its lock, status `restarting`). */
    private readonly startByPolicy: (rec: ContainerRecord) => Promise<void>,
  ) {}

  /** always / unless-stopped unless stopped by hand; on-failure after a failure, up to its count. */
  policyWants(rec: ContainerRecord, exitCode: number): boolean {
    if (rec.HasBeenManuallyStopped || rec.RemovalInProgress) return false;
    if (this.shuttingDown.has(rec.ID)) return false;
    const rp = rec.HostConfig.RestartPolicy;
    switch (rp?.Name) {
      case 'always':
      case 'unless-stopped':
        return true;
      case 'on-failure': {
        const max = rp.MaximumRetryCount ?? 0;
        return exitCode !== 0 && (max === 0 || rec.RestartCount < max);
      }
      default:
        return false;
    }
  }

  /** The decision at an exit: the policy's answer, unless a `shouldRestart` tap returns a boolean. */
  async decide(rec: ContainerRecord, exit: ExitInfo, durationMs: number): Promise<boolean> {
    if (this.k.closed) return false;
    const policy = this.policyWants(rec, exit.exitCode);
    const { hooks, logger } = this.k.d;
    if (hooks.shouldRestart.taps.length === 0) return policy;
    try {
      const r = await hooks.shouldRestart.promise({
        container: structuredClone(rec),
        exitCode: exit.exitCode,
        oomKilled: exit.oomKilled,
        executionDurationMs: durationMs,
        restartCount: rec.RestartCount,
        policy,
      });
      return typeof r === 'boolean' ? r : policy;
    } catch (err) {
      logger.error('shouldRestart failed; following the restart policy', { container: rec.ID, error: errorMessage(err) });
      return policy;
    }
  }

  /** Start the container again after the backoff (it is `restarting` meanwhile). */
  schedule(rec: ContainerRecord, durationMs: number): void {
    const id = rec.ID;
    const prev = this.backoff.get(id);
    const delay = prev === undefined || durationMs >= 10_000 ? 100 : Math.min(prev * 2, 60_000);
    this.backoff.set(id, delay);
    const timer = setTimeout(() => {
      this.timers.delete(id);
      this.k.track(
        this.k
          .withLock(id, async () => {
            if (!this.k.index.has(id) || rec.State.Status !== 'restarting' || this.k.closed) return;
            rec.RestartCount += 1;
            await this.startByPolicy(rec);
          })
          .catch((err) => this.k.d.logger.error('restart by policy failed', { container: id, error: errorMessage(err) })),
      );
    }, delay);
    timer.unref?.();
    this.timers.set(id, timer);
  }

  /** A start by hand or a failed policy start: the next policy restart waits 100 ms again. */
  resetBackoff(id: string): void {
    this.backoff.delete(id);
  }

  /** A container waiting for a policy restart stops for good (stop, kill, remove). */
  async cancel(rec: ContainerRecord, reason: string): Promise<void> {
    const timer = this.timers.get(rec.ID);
    if (timer) clearTimeout(timer);
    this.timers.delete(rec.ID);
    this.backoff.delete(rec.ID);
    if (rec.State.Status !== 'restarting') return;
    setStopped(rec, { exitCode: rec.State.ExitCode, oomKilled: rec.State.OOMKilled, finishedAt: rec.State.FinishedAt });
    this.k.waits.resolve(rec, ['not-running']);
    await this.k.persistQuietly(rec);
    await this.k.stateChange(rec, 'restarting', 'exited', reason);
  }

  /** A daemon shutdown stops the container: no policy restart for this exit. */
  shutdownStop(id: string, stopping: boolean): void {
    if (stopping) this.shuttingDown.add(id);
    else this.shuttingDown.delete(id);
  }

  /** No more policy restarts (engine close). */
  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
