/**
 * GET /system/df (`docker system df`): the disk usage of images, containers, volumes and the
 * build cache, answered per API version as dockerd does — before 1.52 the legacy fields
 * (LayersSize, Images, Containers, Volumes, BuildCache); from 1.52 the ImageUsage,
 * ContainerUsage, VolumeUsage and BuildCacheUsage summaries, plus the legacy fields unless
 * the client asks with `verbose` (then the summaries carry the Items). Volumes come from the
 * volumes plugin when loaded (UsageData per volume); berth has no builder cache: that list is
 * empty and its summary zero.
 */
import { InvalidParameterError, errorKind } from '@berth/core';
import type { Digest, ImageService } from '@berth/image-store';
import type { EnginePort } from '../port.js';
import { boolValue, sendJson } from '../http.js';
import type { RequestContext } from '../router.js';
import { versionLessThan } from '../version.js';
import { summary } from './containers.js';

export interface DiskUsage {
  ActiveCount: number;
  TotalCount: number;
  Reclaimable: number;
  TotalSize: number;
  Items: Array<Record<string, unknown>>;
}

const ACTIVE_STATES = new Set(['running', 'paused', 'restarting']);

/** Every container with SizeRw/SizeRootFs; active = running, paused or restarting; reclaimable = the others' SizeRw. */
export async function containerDiskUsage(port: EnginePort): Promise<DiskUsage> {
  const cs = port.containers;
  const now = Date.now();
  const du: DiskUsage = { ActiveCount: 0, TotalCount: 0, Reclaimable: 0, TotalSize: 0, Items: [] };
  for (const c of await cs.list()) {
    let sizes = { SizeRw: 0, SizeRootFs: 0 };
    if (cs.sizes) {
      try {
        sizes = await cs.sizes(c.ID);
      } catch (err) {
        // Removed while being measured: no longer part of the answer. A layer that cannot be
        // measured counts as 0 bytes, as dockerd logs and goes on.
        if (errorKind(err) === 'NotFound' && !(await cs.inspect(c.ID).then(() => true, () => false))) continue;
      }
    }
    const s: Record<string, unknown> = { ...summary(c, now), ...sizes };
    du.Items.push(s);
    du.TotalCount++;
    du.TotalSize += sizes.SizeRw;
    if (ACTIVE_STATES.has(s.State as string)) du.ActiveCount++;
    else du.Reclaimable += sizes.SizeRw;
  }
  return du;
}

/**
 * The top-level images with SharedSize (bytes of their layers that another listed image uses
 * too) and Containers; TotalSize is the size of every layer in the store (dockerd's
 * LayersSize); reclaimable = Size - SharedSize of the images no container uses.
 */
export async function imageDiskUsage(images: ImageService | undefined): Promise<DiskUsage> {
  const du: DiskUsage = { ActiveCount: 0, TotalCount: 0, Reclaimable: 0, TotalSize: 0, Items: [] };
  if (!images) return du;
  const list = await images.list({ containers: true });
  const chains = new Map<string, Array<{ chainId: string; size: number }>>();
  const users = new Map<string, number>();
  for (const img of list) {
    const chain = await images.store.layerChain(img.Id as Digest).catch(() => []);
    chains.set(img.Id, chain);
    for (const l of new Set(chain.map((x) => x.chainId))) users.set(l, (users.get(l) ?? 0) + 1);
  }
  for (const l of await images.store.layers.list()) du.TotalSize += l.size;
  for (const img of list) {
    let shared = 0;
    for (const l of chains.get(img.Id) ?? []) if ((users.get(l.chainId) ?? 0) > 1) shared += l.size;
    du.Items.push({ ...img, SharedSize: shared });
    du.TotalCount++;
    if (img.Containers > 0) du.ActiveCount++;
    else if (img.Containers === 0) du.Reclaimable += img.Size - shared;
  }
  return du;
}

/** Every volume with UsageData; active = used by a container; reclaimable = the unused ones' sizes (-1 = not measured, not counted). */
export async function volumeDiskUsage(port: EnginePort): Promise<DiskUsage> {
  const du: DiskUsage = { ActiveCount: 0, TotalCount: 0, Reclaimable: 0, TotalSize: 0, Items: [] };
  for (const v of (await port.volumes?.usage()) ?? []) {
    const size = Math.max(0, v.UsageData?.Size ?? 0);
    du.Items.push({ ...v });
    du.TotalCount++;
    du.TotalSize += size;
    if ((v.UsageData?.RefCount ?? 0) > 0) du.ActiveCount++;
    else du.Reclaimable += size;
  }
  return du;
}

const TYPES = ['container', 'image', 'volume', 'build-cache'] as const;
type DfType = (typeof TYPES)[number];

/** The handler of GET /system/df. */
export function systemDf(port: EnginePort): (ctx: RequestContext) => Promise<void> {
  return async (ctx) => {
    const v = ctx.version;
    const asked = ctx.query.getAll('type');
    const want = new Set<DfType>(versionLessThan(v, '1.42') || asked.length === 0 ? TYPES : []);
    if (want.size === 0) {
      for (const t of asked) {
        if (!(TYPES as readonly string[]).includes(t)) throw new InvalidParameterError(`unknown object type: ${t}`);
        want.add(t as DfType);
      }
    }
    const legacyOnly = versionLessThan(v, '1.52');
    const verbose = !legacyOnly && boolValue(ctx.query, 'verbose');
    const legacy = legacyOnly || !verbose;
    const empty = (): DiskUsage => ({ ActiveCount: 0, TotalCount: 0, Reclaimable: 0, TotalSize: 0, Items: [] });
    const [containers, images] = await Promise.all([
      want.has('container') ? containerDiskUsage(port) : null,
      want.has('image') ? imageDiskUsage(port.imageService?.()) : null,
    ]);
    const volumes = want.has('volume') ? await volumeDiskUsage(port) : null;
    const buildCache = want.has('build-cache') ? empty() : null;

    const body: Record<string, unknown> = {};
    if (legacy) {
      // dockerd leaves LayersSize out when it is 0 and each list out when not asked for.
      if (images?.TotalSize) body.LayersSize = images.TotalSize;
      if (images) body.Images = images.Items;
      if (containers) body.Containers = containers.Items;
      if (volumes) body.Volumes = volumes.Items;
      if (buildCache) body.BuildCache = buildCache.Items;
    }
    if (!legacyOnly) {
      const usage = (du: DiskUsage | null): Record<string, unknown> | undefined => {
        if (!du) return undefined;
        const { Items, ...counts } = du;
        return verbose && Items.length > 0 ? { ...counts, Items } : counts;
      };
      const parts = { ImageUsage: usage(images), ContainerUsage: usage(containers), VolumeUsage: usage(volumes), BuildCacheUsage: usage(buildCache) };
      for (const [k, u] of Object.entries(parts)) if (u) body[k] = u;
    }
    sendJson(ctx.res, 200, body);
  };
}
