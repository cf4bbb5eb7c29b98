/**
 * The orphan sweep at engine start: containers a backend holds that no record knows of — a
 * daemon killed between the backend's create and the store's write leaves one running (or
 * created) with nobody to stop it. Each is force-deleted and logged at warn.
 */
import { errorMessage } from './errors.js';
import { isFullId } from './ids.js';
import type { ContainerKernel } from './kernel.js';
import { listHoldings, type Holdings } from './reconcile.js';

/**
 * Delete the orphans. `holdings` is what the restore listed (else the backends are listed
 * now); `keep` lists IDs to leave alone although no record was loaded (containers whose files
 * are unreadable: the operator decides). A failing list or delete is logged and never stops
 * the engine. Returns the IDs that were deleted.
 */
export async function sweepOrphans(k: ContainerKernel, holdings: Map<string, Holdings> | undefined, keep: Iterable<string>): Promise<string[]> {
  const { logger, backends } = k.d;
  const kept = new Set(keep);
  const removed: string[] = [];
  const held = holdings ?? (await listHoldings(backends.all()));
  for (const backend of backends.all()) {
    const h = held.get(backend.name);
    if (!h) continue;
    if ('error' in h) {
      logger.error('could not list the containers of a runtime backend; orphans not removed', { backend: backend.name, error: errorMessage(h.error) });
      continue;
    }
    for (const id of h.ids) {
      if (k.index.has(id)) continue;
      if (kept.has(id)) {
        logger.warn('runtime backend holds a container whose stored state could not be loaded; left alone', { container: id, backend: backend.name });
        continue;
      }
      if (!isFullId(id)) {
        logger.warn('runtime backend holds something that is not a container ID; left alone', { entry: id, backend: backend.name });
        continue;
      }
      logger.warn('removing orphaned container unknown to the state store', { container: id, backend: backend.name });
      try {
        await k.withLock(id, async () => {
          // A record made meanwhile (a create under this ID) owns it now.
          if (k.index.has(id)) return;
          await backend.delete(id, { force: true });
        });
        if (!k.index.has(id)) removed.push(id);
      } catch (err) {
        logger.error('removing orphaned container failed', { container: id, backend: backend.name, error: errorMessage(err) });
      }
    }
  }
  return removed;
}
