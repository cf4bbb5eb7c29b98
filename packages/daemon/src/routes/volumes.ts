/**
 * Docker's /volumes routes (moby api/server/router/volume): list (filters dangling, driver,
 * label, name) → {Volumes, Warnings}, inspect, create (201; an existing name is returned as
 * it is), remove (204; in use → 409, `force`), prune (unused anonymous volumes; named ones too
 * with the `all=true` filter, and always before API 1.42, as dockerd) → {VolumesDeleted,
 * SpaceReclaimed}. Mounted only when the volumes plugin is loaded (EnginePort.volumes); a
 * build without it answers 404 for them like any unknown path.
 */
import { InvalidParameterError } from '@berth/core';
import { boolValue, parseFilters, readJsonBody, sendEmpty, sendJson } from '../http.js';
import type { EnginePort, VolumePort } from '../port.js';
import type { RequestContext, Route } from '../router.js';
import { versionLessThan } from '../version.js';

const LIST_FILTERS = ['dangling', 'driver', 'label', 'name'];
const PRUNE_FILTERS = ['label', 'label!', 'all'];

export function volumeRoutes(port: EnginePort): Route[] {
  const vols = port.volumes;
  if (!vols) return [];
  const h = (fn: (ctx: RequestContext, v: VolumePort) => Promise<void>) => (ctx: RequestContext) => fn(ctx, vols);
  return [
    { method: 'GET', path: '/volumes', handler: h(async (ctx, v) => sendJson(ctx.res, 200, await v.list(parseFilters(ctx.query.get('filters'), LIST_FILTERS)))) },
    {
      method: 'POST',
      path: '/volumes/create',
      handler: h(async (ctx, v) => {
        const body = (await readJsonBody(ctx, { optional: true })) ?? {};
        sendJson(ctx.res, 201, await v.create(body));
      }),
    },
    {
      method: 'POST',
      path: '/volumes/prune',
      handler: h(async (ctx, v) => {
        const filters = parseFilters(ctx.query.get('filters'), PRUNE_FILTERS);
        const allValues = [...(filters.get('all') ?? [])];
        for (const a of allValues) if (!['true', 'false', '1', '0'].includes(a)) throw new InvalidParameterError(`invalid filter 'all=${a}'`);
        const all = versionLessThan(ctx.version, '1.42') || allValues.some((a) => a === 'true' || a === '1');
        sendJson(ctx.res, 200, await v.prune(filters, all));
      }),
    },
    { method: 'GET', path: '/volumes/{name}', handler: h(async (ctx, v) => sendJson(ctx.res, 200, await v.inspect(ctx.params.name))) },
    {
      method: 'DELETE',
      path: '/volumes/{name}',
      handler: h(async (ctx, v) => {
        await v.remove(ctx.params.name, { force: boolValue(ctx.query, 'force') });
        sendEmpty(ctx.res, 204);
      }),
    },
  ];
}
