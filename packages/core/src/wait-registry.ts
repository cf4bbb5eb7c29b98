/**
 * Waiters of `docker wait` / `POST /containers/{id}/wait`, per container and condition
 * (not-running, next-exit, removed). The service resolves them at exits, failed starts,
 * cancelled restarts and removal; an AbortSignal takes a waiter back out.
 */
import type { ContainerRecord } from './types.js';

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface WaitResult {
  StatusCode: number;
  Error?: { Message: string };
}

interface Waiter {
  condition: WaitCondition;
  resolve(r: WaitResult): void;
}

/** What a waiter gets: the exit code and, when the container has one, its error. */
export function waitResultOf(rec: ContainerRecord): WaitResult {
  const r: WaitResult = { StatusCode: rec.State.ExitCode };
  if (rec.State.Error) r.Error = { Message: rec.State.Error };
  return r;
}

export class WaitRegistry {
  private readonly waiters = new Map<string, Waiter[]>();

  /** Resolve the container's waiters for any of `conditions` with its current exit code and error. */
  resolve(rec: ContainerRecord, conditions: readonly WaitCondition[]): void {
    const list = this.waiters.get(rec.ID);
    if (!list) return;
    const result = waitResultOf(rec);
    const keep = list.filter((w) => !conditions.includes(w.condition));
    for (const w of list) if (conditions.includes(w.condition)) w.resolve(result);
    if (keep.length) this.waiters.set(rec.ID, keep);
    else this.waiters.delete(rec.ID);
  }

  /** Wait for `condition` on container `id`; rejects with the signal's reason when it aborts. */
  add(id: string, condition: WaitCondition, signal?: AbortSignal): Promise<WaitResult> {
    return new Promise<WaitResult>((resolve, reject) => {
      const w: Waiter = {
        condition,
        resolve: (r) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        },
      };
      const onAbort = () => {
        const l = this.waiters.get(id);
        const i = l ? l.indexOf(w) : -1;
        if (l && i >= 0) l.splice(i, 1);
        if (l && l.length === 0) this.waiters.delete(id);
        reject(signal?.reason ?? new Error('wait aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const list = this.waiters.get(id) ?? [];
      list.push(w);
      this.waiters.set(id, list);
    });
  }
}
