/** Small helpers shared by the core. */
import { InvalidParameterError } from './errors.js';

/** Docker's size strings ("10m", "1.5g", "512k", "100") in bytes, 1024-based (go-units RAMInBytes). */
export function parseSize(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*$/i.exec(raw);
  if (!m) throw new InvalidParameterError(`invalid size: '${raw}'`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.floor(Number(m[1]) * mult[m[2]!.toLowerCase()]!);
}

export function sleep(ms: number): { promise: Promise<void>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let done!: () => void;
  const promise = new Promise<void>((resolve) => {
    done = resolve;
    timer = setTimeout(resolve, ms);
  });
  return {
    promise,
    cancel() {
      if (timer) clearTimeout(timer);
      done();
    },
  };
}

/** A promise with its resolve/reject outside. */
export function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Messages along an error's cause chain, joined: runtime errors often wrap the useful text. */
export function fullMessage(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let i = 0; cur && i < 8; i++) {
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    cur = (cur as { cause?: unknown }).cause;
  }
  return parts.join(': ');
}
