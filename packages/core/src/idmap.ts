/**
 * A container's user-namespace ID mappings (the OCI spec's `linux.uidMappings/gidMappings`)
 * and the translation of one ID through them, as moby's pkg/idtools does for the archive
 * code: container → host when files go into the container (docker cp), host → container when
 * they come out (docker cp, export, commit). An ID outside every range is an error, as dockerd's.
 */
import { SystemError } from './errors.js';
import type { OciIdMapping } from './oci.js';

/** The mappings a container last started with (empty lists: no user namespace). */
export interface IdMappings {
  uid: OciIdMapping[];
  gid: OciIdMapping[];
}

/** True when the mappings change nothing (no user namespace). */
function isIdentity(maps: IdMappings | undefined): boolean {
  return !maps || (maps.uid.length === 0 && maps.gid.length === 0);
}

/** The host ID of container ID `id` under `maps`, undefined when no range covers it. */
export function mapToHost(id: number, maps: readonly OciIdMapping[]): number | undefined {
  const m = maps.find((x) => id >= x.containerID && id < x.containerID + x.size);
  return m ? m.hostID + (id - m.containerID) : undefined;
}

/** The container ID of host ID `id` under `maps`, undefined when no range covers it. */
export function mapToContainer(id: number, maps: readonly OciIdMapping[]): number | undefined {
  const m = maps.find((x) => id >= x.hostID && id < x.hostID + x.size);
  return m ? m.containerID + (id - m.hostID) : undefined;
}

/** The host ID of container ID `id`; an ID no range covers → SystemError (dockerd's error). Empty maps: `id`. */
export function toHost(id: number, maps: readonly OciIdMapping[]): number {
  if (maps.length === 0) return id;
  const h = mapToHost(id, maps);
  if (h === undefined) throw new SystemError(`Container ID ${id} cannot be mapped to a host ID`);
  return h;
}

/** The container ID of host ID `id`; an ID no range covers → SystemError (dockerd's error). Empty maps: `id`. */
export function toContainer(id: number, maps: readonly OciIdMapping[]): number {
  if (maps.length === 0) return id;
  const c = mapToContainer(id, maps);
  if (c === undefined) throw new SystemError(`Host ID ${id} cannot be mapped to a container ID`);
  return c;
}

/** An owner pair translated one way; archive code takes one of these (identity without a namespace). */
export type OwnerMap = (uid: number, gid: number) => { uid: number; gid: number };

/** Container owners → host owners (files written into the container). */
export function ownerToHost(maps: IdMappings | undefined): OwnerMap | undefined {
  if (!maps || isIdentity(maps)) return undefined;
  return (uid, gid) => ({ uid: toHost(uid, maps.uid), gid: toHost(gid, maps.gid) });
}

/**
 * Host owners → container owners (files read out of the container). `outside`: what an ID no
 * range covers does — 'error' as dockerd (commit: a container's own layer only holds mapped
 * IDs), or 'keep' for a tree that mixes them (a stopped container's rootfs mounted without the
 * idmapped layers shows the image's files in container IDs already).
 */
export function ownerToContainer(maps: IdMappings | undefined, outside: 'error' | 'keep'): OwnerMap | undefined {
  if (!maps || isIdentity(maps)) return undefined;
  if (outside === 'error') return (uid, gid) => ({ uid: toContainer(uid, maps.uid), gid: toContainer(gid, maps.gid) });
  return (uid, gid) => ({ uid: mapToContainer(uid, maps.uid) ?? uid, gid: mapToContainer(gid, maps.gid) ?? gid });
}
