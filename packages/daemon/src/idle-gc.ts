/**
 * berthd gives memory back after a burst. Under load V8 grows its young generation (up to
 * 2 × 16 MiB semi-spaces on Node 20) and its old space, and left alone it keeps them committed
 * and resident when the load is over: 30 s after creating 1,000 containers berthd still held
 * everything the burst had grown (docs/benchmarks.md, "RSS with 1,000 created").
 *
 * The idle collector looks every `intervalMs` (2 s; an unref'd timer, so it never keeps a
 * process alive): when the event loop was idle for that whole interval (utilisation below
 * `idleBelow`) and V8's committed heap has grown by at least `growthBytes` since the last
 * collection, it runs a minor collection, and `fullAfterLooks` looks later (3: 6 s), if the loop
 * stayed idle at each, a full one — so a burst's memory is back 8–10 s after it ends. The two
 * steps are what makes V8 (Node 20's V8 11.3, as measured) give the young generation back: a
 * full collection shrinks it only when little was allocated over V8's last ~5 s of allocation
 * samples, and the burst's allocations count there until a collection ≥ 5 s later closes
 * them. A busy daemon is never interrupted; a daemon at rest pays a minor and a full
 * collection (~10–20 ms of the event loop) per burst, and nothing while the heap stays as it
 * is. The first idle looks after start collect the start-up garbage (module loading). After the
 * full collection, glibc's malloc_trim (through @berth/native, where the addon is loaded) hands
 * the free memory of malloc's arenas back too: at rest after 1,000 creates 79 → 71 MiB.
 *
 * berthd installs it (berthdMain); a process embedding the daemon keeps its own GC policy.
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '@berth/core';
import { nativeAddon } from '@berth/native';

export interface IdleCollectorProbes {
  /** Run a minor (young generation) garbage collection (synchronous). */
  collectMinor(): void;
  /** Run a full garbage collection (synchronous). */
  collect(): void;
  /** V8's committed heap in bytes (v8.getHeapStatistics().total_heap_size). */
  heapCommitted(): number;
  /** The event loop's utilisation (0..1) since the previous call. */
  busySinceLastCall(): number;
}

export interface IdleCollectorOptions {
  /** Collect only when the heap has grown by this much since the last collection (default 8 MiB). */
  growthBytes?: number;
  /** An interval counts as idle below this event-loop utilisation (default 0.05). */
  idleBelow?: number;
  /** Idle looks from the minor collection to the full one (default 3: ≥ 5 s at berthd's 2 s interval). */
  fullAfterLooks?: number;
}

const MiB = 2 ** 20;

/** The decision, apart from the timer and V8 (tick() is what the timer calls). */
export class IdleCollector {
  private readonly growth: number;
  private readonly idleBelow: number;
  private readonly fullAfter: number;
  /** Committed heap right after the last collection; 0 before the first (start-up garbage). */
  private baseline = 0;
  private count = 0;
  /** Full collections in a row that gave nothing back (V8 kept its young generation). */
  private fruitless = 0;
  /** Idle looks since the minor collection (0: none ran); the full one follows at `fullAfter`. */
  private sincePrime = 0;

  constructor(
    private readonly probes: IdleCollectorProbes,
    opts: IdleCollectorOptions = {},
  ) {
    this.growth = opts.growthBytes ?? 8 * MiB;
    this.idleBelow = opts.idleBelow ?? 0.05;
    this.fullAfter = Math.max(1, opts.fullAfterLooks ?? 3);
  }

  /** Collections made so far. */
  get collections(): number {
    return this.count;
  }

  /**
   * One look. After an idle interval with the heap grown: a minor collection the first time,
   * the full collection (returns true) `fullAfterLooks` looks later if every interval between
   * was idle too (a busy one starts over).
   */
  tick(): boolean {
    const idle = this.probes.busySinceLastCall() < this.idleBelow;
    if (!idle || this.probes.heapCommitted() < this.baseline + this.growth) {
      this.sincePrime = 0;
      return false;
    }
    if (this.sincePrime === 0) {
      this.probes.collectMinor();
      this.sincePrime = 1;
      return false;
    }
    if (this.sincePrime < this.fullAfter) {
      this.sincePrime++;
      return false;
    }
    this.sincePrime = 0;
    const before = this.probes.heapCommitted();
    this.probes.collect();
    this.count++;
    const after = this.probes.heapCommitted();
    // A collection that gave nothing back is tried again at the next idle stretch, twice at
    // most; after that the heap must grow anew (no endless collections of a heap at rest).
    if (before - after < MiB && ++this.fruitless < 3) return true;
    this.fruitless = 0;
    this.baseline = after;
    return true;
  }
}

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' }) => void;

/**
 * V8's `gc` function (full collection without arguments, `{ type: 'minor' }` a minor one), or
 * null where it cannot be had. Node exposes `gc` only to contexts created after --expose-gc is
 * set, so the flag is set and a fresh context's `gc` taken (as jest's leak detector does); the
 * main context's globals are unchanged.
 */
export function v8Gc(): GcFunction | null {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as GcFunction;
  v8.setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
  return typeof gc === 'function' ? (gc as GcFunction) : null;
}

/**
 * The probes of this process: collections through `gc` (v8Gc()) — the full one followed by
 * `trimMalloc` when given — the heap from V8, the utilisation from perf_hooks.
 */
export function processProbes(gc: GcFunction, trimMalloc?: () => unknown): IdleCollectorProbes {
  let last = performance.eventLoopUtilization();
  return {
    collectMinor: () => gc({ type: 'minor', execution: 'sync' }),
    collect: () => {
      gc();
      trimMalloc?.();
    },
    heapCommitted: () => v8.getHeapStatistics().total_heap_size,
    busySinceLastCall: () => {
      const now = performance.eventLoopUtilization();
      const busy = performance.eventLoopUtilization(now, last).utilization;
      last = now;
      return busy;
    },
  };
}

export interface IdleCollectorHandle {
  readonly collector: IdleCollector;
  stop(): void;
}

/**
 * Start the idle collector on an unref'd timer, every `intervalMs` (default 2 s; with the
 * default `fullAfterLooks` the full collection comes ≥ 5 s after the minor one, as V8 needs);
 * null (said at debug) without V8's gc.
 */
export function installIdleCollector(opts: IdleCollectorOptions & { intervalMs?: number; logger?: Logger } = {}): IdleCollectorHandle | null {
  const gc = v8Gc();
  if (!gc) {
    opts.logger?.debug('idle collector off: no V8 gc function in this process');
    return null;
  }
  const addon = nativeAddon();
  const trim = typeof addon?.mallocTrim === 'function' ? () => addon.mallocTrim() : undefined;
  const collector = new IdleCollector(processProbes(gc, trim), opts);
  const timer = setInterval(() => {
    if (collector.tick()) opts.logger?.debug('idle: heap collected', { heapMiB: Math.round(v8.getHeapStatistics().total_heap_size / MiB) });
  }, opts.intervalMs ?? 2000);
  timer.unref();
  return { collector, stop: () => clearInterval(timer) };
}
