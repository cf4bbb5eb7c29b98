/**
 * Docker's /networks routes (moby api/server/router/network): list (filters), inspect, create
 * (201 {Id, Warning}), remove (204), connect / disconnect (200), prune ({NetworksDeleted}).
 * Mounted only when a networking plugin serves networks (EnginePort.networks, from
 * @berth/plugin-network-cni); a build without it answers 404 for them like any unknown path.
 */
import { InvalidParameterError } from '@berth/core';
import { parseFilters, readJsonBody, sendEmpty, sendJson } from '../http.js';
import type { EnginePort, NetworkPort } from '../port.js';
import type { RequestContext, Route } from '../router.js';

const LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'label!', 'name', 'scope', 'type'];
const PRUNE_FILTERS = ['label', 'label!', 'until'];

function str(body: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = body[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw new InvalidParameterError(`${key} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new InvalidParameterError(`invalid JSON: ${key} must be a string`);
  return v;
}

export function networkRoutes(port: EnginePort): Route[] {
  const nets = port.networks;
  if (!nets) return [];
  const h = (fn: (ctx: RequestContext, n: NetworkPort) => Promise<void>) => (ctx: RequestContext) => fn(ctx, nets);
  return [
    { method: 'GET', path: '/networks', handler: h(async (ctx, n) => sendJson(ctx.res, 200, await n.list(parseFilters(ctx.query.get('filters'), LIST_FILTERS)))) },
    {
      method: 'POST',
      path: '/networks/create',
      handler: h(async (ctx, n) => {
        const body = (await readJsonBody(ctx))!;
        str(body, 'Name', true);
        sendJson(ctx.res, 201, await n.create(body));
      }),
    },
    { method: 'POST', path: '/networks/prune', handler: h(async (ctx, n) => sendJson(ctx.res, 200, await n.prune(parseFilters(ctx.query.get('filters'), PRUNE_FILTERS)))) },
    { method: 'GET', path: '/networks/{id}', handler: h(async (ctx, n) => sendJson(ctx.res, 200, await n.inspect(ctx.params.id))) },
    {
      method: 'DELETE',
      path: '/networks/{id}',
      handler: h(async (ctx, n) => {
        await n.remove(ctx.params.id);
        sendEmpty(ctx.res, 204);
      }),
    },
    {
      method: 'POST',
      path: '/networks/{id}/connect',
      handler: h(async (ctx, n) => {
        const body = (await readJsonBody(ctx))!;
        const container = str(body, 'Container', true)!;
        const ep = body.EndpointConfig;
        if (ep !== undefined && ep !== null && (typeof ep !== 'object' || Array.isArray(ep))) throw new InvalidParameterError('invalid JSON: EndpointConfig must be an object');
        await n.connect(ctx.params.id, container, (ep ?? undefined) as Parameters<NetworkPort['connect']>[2]);
        sendEmpty(ctx.res, 200);
      }),
    },
    {
      method: 'POST',
      path: '/networks/{id}/disconnect',
      handler: h(async (ctx, n) => {
        const body = (await readJsonBody(ctx))!;
        const container = str(body, 'Container', true)!;
        if (body.Force !== undefined && typeof body.Force !== 'boolean') throw new InvalidParameterError('invalid JSON: Force must be a boolean');
        await n.disconnect(ctx.params.id, container, body.Force === true);
        sendEmpty(ctx.res, 200);
      }),
    },
  ];
}
