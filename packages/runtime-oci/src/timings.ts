/**
 * Where a container's time goes in the OCI backend, for bench/runtime: an optional observer
 * given in the backend's options (`timings`). Without one the backend measures nothing.
 */

/** The measured steps (milliseconds). */
export interface OciTimings {
  /** Bundle dir, config.json, metadata. */
  prepare?: number;
  /** conmon spawn until it reports the pid (includes the runtime's `create`). */
  monitorCreate?: number;
  /** The runtime's `start`. */
  start?: number;
  /** From the exit file's mtime to the exit event (detection + final log conversion). */
  exitNotify?: number;
  /** delete: runtime delete, monitor gone, files removed. */
  delete?: number;
}

export type OciStep = keyof OciTimings;

/** Receives the duration of each step of each container. */
export interface OciTimingObserver {
  step(id: string, step: OciStep, ms: number): void;
}

/** Run `fn`, and report its duration to the observer when there is one and `fn` succeeded. */
export function timed<T>(observer: OciTimingObserver | undefined, id: string, step: OciStep, fn: () => Promise<T>): Promise<T> {
  if (!observer) return fn();
  const t0 = performance.now();
  return fn().then((v) => {
    observer.step(id, step, performance.now() - t0);
    return v;
  });
}

/** An observer that keeps the steps of the last `limit` containers. */
export class TimingLog implements OciTimingObserver {
  private readonly log = new Map<string, OciTimings>();

  constructor(private readonly limit = 1000) {}

  step(id: string, step: OciStep, ms: number): void {
    let t = this.log.get(id);
    if (!t) {
      if (this.log.size >= this.limit) this.log.delete(this.log.keys().next().value!);
      t = {};
      this.log.set(id, t);
    }
    t[step] = ms;
  }

  /** The steps measured for a container so far. */
  get(id: string): OciTimings | undefined {
    return this.log.get(id);
  }
}
