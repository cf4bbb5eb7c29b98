/**
 * `docker container prune` through the engine (`engine.pruneContainers(filters)`), as moby's
 * daemon/prune.go ContainersPrune: every container that does not run (and is not being removed)
 * and passes the `until` / `label` / `label!` filters is removed; SpaceReclaimed adds up their
 * writable layers, measured before each removal (the image store's `rootfsSizes`, when it has one).
 */
import { filterValues, matchLabels, matchNoLabel, parseDockerTimeMs, type DockerFilters } from './docker-filters.js';
import type { ImageStore } from './image.js';
import type { ContainerService } from './service.js';
import type { ContainerRecord } from './types.js';

export interface PruneReport {
  ContainersDeleted: string[];
  SpaceReclaimed: number;
}

/** The container service's part prune needs (ContainerService fits). */
/** What prune needs of the containers: a copy of every record, and removal. */
export interface PruneContainers {
  list(): ContainerRecord[];
  remove: ContainerService['remove'];
}

export async function pruneContainers(containers: PruneContainers, images: ImageStore | undefined, filters: DockerFilters, now = Date.now()): Promise<PruneReport> {
  const deleted: string[] = [];
  let reclaimed = 0;
  const untilMs = parseDockerTimeMs(filterValues(filters, 'until')[0], 'until', now);
  for (const c of containers.list()) {
    if (c.State.Running || c.State.Status === 'removing') continue;
    if (untilMs !== null && Date.parse(c.Created) >= untilMs) continue;
    if (!matchLabels(filters.get('label'), c.Config.Labels) || !matchNoLabel(filters.get('label!'), c.Config.Labels)) continue;
    // SpaceReclaimed: the writable layer's bytes, measured before the removal (as dockerd).
    const size = images?.rootfsSizes && c.Image ? await images.rootfsSizes(c.ID).then((s) => s.SizeRw, () => 0) : 0;
    try {
      await containers.remove(c.ID, {});
      deleted.push(c.ID);
      reclaimed += size;
    } catch {
      // raced with a start or another removal: leave it
    }
  }
  return { ContainersDeleted: deleted, SpaceReclaimed: reclaimed };
}
