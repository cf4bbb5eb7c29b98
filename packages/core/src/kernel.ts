/**
 * What the parts of the container service share — service.ts (the public calls),
 * start-steps.ts, exit-handler.ts, restart-manager.ts, restore.ts, orphan-sweep.ts: the
 * index of records, the per-container lock, the waiters, which containers are set up or
 * held by a backend, and the small helpers each part needs (save, events, the
 * onStateChange hook, the release hooks). One per ContainerService; not exported from the
 * package.
 */
import { formatRfc3339Nano } from './clock.js';
import { SystemError, errorMessage } from './errors.js';
import type { ReleaseContext, UndoEntry } from './hooks.js';
import { KeyedLock } from './lock.js';
import { clearNetworkOperationalData } from './record-factory.js';
import { NameIndex } from './name-index.js';
import type { OciSpec } from './oci.js';
import type { RuntimeBackend } from './runtime.js';
import type { ContainerServiceDeps } from './service.js';
import { saveRetrying } from './store.js';
import type { ContainerRecord, ContainerStatus } from './types.js';
import { WaitRegistry } from './wait-registry.js';

export class ContainerKernel {
  readonly index = new NameIndex();
  readonly waits = new WaitRegistry();
  private readonly lock = new KeyedLock();
  /** Containers whose mounts/networking are set up and must be released. */
  readonly live = new Set<string>();
  /** Containers the backend holds (created and not yet deleted). */
  readonly inBackend = new Set<string>();
  /** The spec each container was last started with (exec builds its process from it). */
  readonly specs = new Map<string, OciSpec>();
  /** Exit processing in flight, per container (exit-handler.ts). */
  readonly exitWork = new Map<string, Promise<void>>();
  private readonly background = new Set<Promise<unknown>>();
  closed = false;

  constructor(
    readonly d: ContainerServiceDeps,
    /** The backend that runs a container (the one its record names). */
    readonly backendOf: (rec: ContainerRecord) => RuntimeBackend,
  ) {}

  now(): string {
    return formatRfc3339Nano(this.d.clock.nowNano());
  }

  /** Publish a container event with Docker's attributes (labels, image, name). */
  emit(rec: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    const attributes = { ...(rec.Config.Labels ?? {}), image: rec.Config.Image ?? '', name: rec.Name.replace(/^\//, ''), ...extra };
    this.d.events.publish('container', action, rec.ID, attributes);
  }

  async stateChange(rec: ContainerRecord, from: ContainerStatus | null, to: ContainerStatus | null, reason: string): Promise<void> {
    // Isolated by the core interceptor: a failing tap is logged, never thrown.
    await this.d.hooks.onStateChange.promise({ container: structuredClone(rec), from, to, reason });
  }

  /** Save the record (retried a few times: a full disk may free up); throws, logged, when it cannot. */
  async persist(rec: ContainerRecord): Promise<void> {
    if (!this.index.has(rec.ID) && !rec.RemovalInProgress) return;
    try {
      await saveRetrying(this.d.store, rec, {
        onRetry: (err, attempt) => this.d.logger.warn('saving container state failed; trying again', { container: rec.ID, attempt, error: errorMessage(err) }),
      });
    } catch (err) {
      this.d.logger.error('failed to persist container state', { container: rec.ID, error: errorMessage(err) });
      throw new SystemError(`failed to save state of container ${rec.ID}: ${errorMessage(err)}`, { cause: err });
    }
  }

  async persistQuietly(rec: ContainerRecord): Promise<void> {
    await this.persist(rec).catch(() => {});
  }

  /** Run `fn` under the container's lock, after any exit processing in flight. */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(id, async () => {
      await this.exitWork.get(id)?.catch(() => {});
      return fn();
    });
  }

  /** Keep a background task (auto-remove, policy restart) until it settles; its error is logged. */
  track(p: Promise<unknown>): void {
    const q = p.catch((err) => this.d.logger.error('background task failed', { error: errorMessage(err) }));
    this.background.add(q);
    void q.finally(() => this.background.delete(q));
  }

  /** Wait for background work and exit processing to settle (close, idle). */
  async settle(rounds = 10): Promise<void> {
    for (let i = 0; i < rounds && (this.exitWork.size || this.background.size); i++) {
      await Promise.allSettled([...this.exitWork.values(), ...this.background]);
    }
  }

  /** Run undo steps taps registered with addUndo, newest first; failures are logged, never thrown. */
  async runUndos(undos: readonly UndoEntry[], containerId?: string): Promise<void> {
    for (const u of [...undos].reverse()) {
      // With a container: each step goes into its explain record (berth explain's undo list).
      const rec = { plugin: u.plugin, hook: u.hook, ...(u.label !== undefined ? { label: u.label } : {}), startedAt: this.now() };
      const t0 = performance.now();
      try {
        await u.fn();
        if (containerId) this.d.provenance.recordUndo(containerId, { ...rec, durationMs: performance.now() - t0 });
      } catch (err) {
        if (containerId) this.d.provenance.recordUndo(containerId, { ...rec, durationMs: performance.now() - t0, error: errorMessage(err) });
        this.d.logger.error('undo step failed', { plugin: u.plugin, hook: u.hook, label: u.label, error: errorMessage(err) });
      }
    }
  }

  /** The release hooks (releaseNetwork, then unmount); failures are logged, never thrown. */
  async release(rec: ContainerRecord, reason: ReleaseContext['reason'], which: { network: boolean; mount: boolean } = { network: true, mount: true }): Promise<void> {
    const ctx: ReleaseContext = { container: structuredClone(rec), reason, engine: this.d.info };
    if (which.network) {
      await this.d.hooks.releaseNetwork.promise(ctx).catch((err) =>
        this.d.logger.error('releaseNetwork failed', { container: rec.ID, reason, error: errorMessage(err) }),
      );
      if (rec.NetworkSettings) clearNetworkOperationalData(rec.NetworkSettings);
    }
    if (which.mount) {
      await this.d.hooks.unmount.promise(ctx).catch((err) =>
        this.d.logger.error('unmount failed', { container: rec.ID, reason, error: errorMessage(err) }),
      );
    }
  }
}
