/**
 * Restore-time reconciliation: what each runtime backend holds, listed once per engine start
 * and used twice — by the restore (a record that names no backend yet, because the daemon
 * died between the runtime's create and the record's save, is restored on the backend that
 * holds it) and by the orphan sweep (held containers no record knows are force-deleted).
 */
import type { RuntimeBackend } from './runtime.js';

/** One backend's `list()`: the IDs it holds, or why it could not say. */
export type Holdings = { ids: string[] } | { error: unknown };

/** `list()` of every backend that has it (the method is optional); failures are kept, not thrown. */
export async function listHoldings(backends: readonly RuntimeBackend[]): Promise<Map<string, Holdings>> {
  const out = new Map<string, Holdings>();
  for (const b of backends) {
    if (!b.list) continue;
    try {
      out.set(b.name, { ids: await b.list() });
    } catch (error) {
      out.set(b.name, { error });
    }
  }
  return out;
}

/** Container ID → name of the first backend that holds it. */
export function holders(holdings: ReadonlyMap<string, Holdings>): Map<string, string> {
  const held = new Map<string, string>();
  for (const [name, h] of holdings) if ('ids' in h) for (const id of h.ids) if (!held.has(id)) held.set(id, name);
  return held;
}
