/**
 * `docker container prune` through the engine (`engine.pruneContainers(filters)`), as moby's
 * daemon/prune.go ContainersPrune: every container that does not run (and is not being removed)
 * and passes the `until` / `label` / `label!` filters is removed; SpaceReclaimed adds up their
 * writable layers, measured before each removal (the image store's `rootfsSizes`, when it has one).
 */
import { InvalidParameterError } from './errors.js';
import type { ImageStore } from './image.js';
import type { ContainerService } from './service.js';
import type { ContainerRecord } from './types.js';

/** Docker filters: name → accepted values (`until`, `label`, `label!` are used here). */
export type PruneFilters = ReadonlyMap<string, ReadonlySet<string>>;

export interface PruneReport {
  ContainersDeleted: string[];
  SpaceReclaimed: number;
}

/** The container service's part prune needs (ContainerService fits). */
export type PruneContainers = Pick<ContainerService, 'list' | 'remove'>;

export async function pruneContainers(containers: PruneContainers, images: ImageStore | undefined, filters: PruneFilters, now = Date.now()): Promise<PruneReport> {
  const deleted: string[] = [];
  let reclaimed = 0;
  const until = [...(filters.get('until') ?? [])][0];
  const untilMs = until ? parseUntil(until, now) : null;
  for (const c of containers.list()) {
    if (c.State.Running || c.State.Status === 'removing') continue;
    if (untilMs !== null && Date.parse(c.Created) >= untilMs) continue;
    if (!labelsMatch(c, filters.get('label'), true) || !labelsMatch(c, filters.get('label!'), false)) continue;
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

/** `until`: Unix seconds, a duration before now (10m), or a date; milliseconds since the epoch. */
function parseUntil(v: string, now: number): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = /^(\d+)(s|m|h)$/.exec(v);
  if (d) return now - Number(d[1]) * { s: 1e3, m: 6e4, h: 36e5 }[d[2] as 's' | 'm' | 'h'];
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new InvalidParameterError(`invalid until filter ${v}`);
  return ms;
}

function labelsMatch(c: ContainerRecord, want: ReadonlySet<string> | undefined, positive: boolean): boolean {
  if (!want || want.size === 0) return true;
  const l = c.Config.Labels ?? {};
  for (const f of want) {
    const eq = f.indexOf('=');
    const hit = eq < 0 ? f in l : l[f.slice(0, eq)] === f.slice(eq + 1);
    if (hit !== positive) return false;
  }
  return true;
}
