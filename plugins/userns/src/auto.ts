/**
 * `HostConfig.UsernsMode=auto` (Podman's --userns=auto): each such container gets its own
 * slice of AUTO_SIZE IDs out of the remap user's subordinate IDs, never shared with another
 * auto container. The slices live in one JSON file under the data root (written atomically),
 * so a daemon restart keeps them; a container's slice is freed when it is removed.
 *
 * A slice is an offset into the remap maps' container-ID space: offset k·AUTO_SIZE maps
 * container IDs 0…AUTO_SIZE−1 onto the remap user's host IDs from that offset on (one or more
 * mapping entries when the slice spans several subordinate ranges).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConflictError, atomicWriteFile, type OciIdMapping } from '@berth/core';
import type { IdMaps } from './subid.js';

/** IDs per auto container (Podman's default for --userns=auto). */
export const AUTO_SIZE = 65_536;

/** The part of maps covering container IDs [offset, offset+size), renumbered from 0. */
export function sliceMappings(maps: readonly OciIdMapping[], offset: number, size: number): OciIdMapping[] {
  const out: OciIdMapping[] = [];
  for (const m of maps) {
    const lo = Math.max(offset, m.containerID);
    const hi = Math.min(offset + size, m.containerID + m.size);
    if (lo < hi) out.push({ containerID: lo - offset, hostID: m.hostID + (lo - m.containerID), size: hi - lo });
  }
  return out;
}

function spanOf(maps: readonly OciIdMapping[]): number {
  return maps.reduce((n, m) => Math.max(n, m.containerID + m.size), 0);
}

/** The auto slices of one engine: container ID → offset, persisted in `file`. */
export class AutoAllocator {
  private readonly slots: Map<string, number>;
  /** Saves run one after another, each writing the table as it is then (the last one wins with the newest). */
  private saving: Promise<void> = Promise.resolve();
  /** How many slices fit in both the uid and the gid maps. */
  readonly capacity: number;

  constructor(
    private readonly file: string,
    private readonly maps: IdMaps,
  ) {
    this.capacity = Math.floor(Math.min(spanOf(maps.uidMappings), spanOf(maps.gidMappings)) / AUTO_SIZE);
    this.slots = new Map(Object.entries(readSlots(file)));
  }

  /** The container's slice (allocated on first call; the lowest free one), saved before it resolves. */
  async allocate(id: string): Promise<IdMaps> {
    let slot = this.slots.get(id);
    if (slot === undefined) {
      const used = new Set(this.slots.values());
      slot = 0;
      while (used.has(slot)) slot++;
      if (slot >= this.capacity) {
        throw new ConflictError(`UsernsMode=auto: no free range of ${AUTO_SIZE} ids left (${this.capacity} in the remap user's subordinate ids, all in use)`);
      }
      this.slots.set(id, slot);
      await this.save();
    }
    return this.mapsOf(slot);
  }

  /** The container's slice if it has one. */
  get(id: string): IdMaps | undefined {
    const slot = this.slots.get(id);
    return slot === undefined ? undefined : this.mapsOf(slot);
  }

  /** Free the container's slice (no-op when it has none). */
  async free(id: string): Promise<void> {
    if (this.slots.delete(id)) await this.save();
  }

  /** Container ID → slot, for inspection and tests. */
  allocations(): ReadonlyMap<string, number> {
    return new Map(this.slots);
  }

  private mapsOf(slot: number): IdMaps {
    return {
      uidMappings: sliceMappings(this.maps.uidMappings, slot * AUTO_SIZE, AUTO_SIZE),
      gidMappings: sliceMappings(this.maps.gidMappings, slot * AUTO_SIZE, AUTO_SIZE),
    };
  }

  private save(): Promise<void> {
    const next = this.saving.then(async () => {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      await atomicWriteFile(this.file, JSON.stringify(Object.fromEntries(this.slots)), { mode: 0o600 });
    });
    this.saving = next.catch(() => {});
    return next;
  }
}

function readSlots(file: string): Record<string, number> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || Object.values(v).some((x) => !Number.isInteger(x) || (x as number) < 0)) {
    throw new Error(`userns: ${file} is not a map of container IDs to slots`);
  }
  return v as Record<string, number>;
}
