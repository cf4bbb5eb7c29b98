/**
 * The checkpoint routes of dockerd's experimental API (moby daemon/server/router/checkpoint):
 * `POST /containers/{id}/checkpoints` {CheckpointID, CheckpointDir, Exit} → 201,
 * `GET /containers/{id}/checkpoints?dir=` → `[{Name}]`, `DELETE
 * /containers/{id}/checkpoints/{name}?dir=` → 204. Mounted only when the engine has checkpoint
 * storage (@berth/plugin-checkpoint; a build without it has no such routes), before the
 * container routes (whose `DELETE /containers/{id:.*}` would take the DELETE, as in dockerd);
 * without `--experimental` they answer dockerd's 501. `POST /containers/{id}/start?checkpoint=`
 * is the start route's (containers.ts).
 */
import { InvalidParameterError, NotImplementedError } from '@berth/core';
import { readJsonBody, sendEmpty, sendJson } from '../http.js';
import type { CheckpointPort, EnginePort } from '../port.js';
import type { RequestContext, Route } from '../router.js';

/** dockerd's answer on an experimental route of a daemon not in experimental mode (501). */
export const EXPERIMENTAL_DISABLED =
  'This experimental feature is disabled by default. Start the Docker daemon in experimental mode in order to enable it.';

function field<T>(body: Record<string, unknown>, key: string, type: 'string' | 'boolean'): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type) throw new InvalidParameterError(`invalid JSON: ${key} must be a ${type}`);
  return v as T;
}

export function checkpointRoutes(port: EnginePort): Route[] {
  const cp = port.checkpoints;
  if (!cp) return [];
  // dockerd's router.Experimental: the route exists, and says why it does not answer.
  const experimental = (handler: (ctx: RequestContext, cp: CheckpointPort) => Promise<void>) => async (ctx: RequestContext) => {
    if (!port.facts().experimental) throw new NotImplementedError(EXPERIMENTAL_DISABLED);
    await handler(ctx, cp);
  };
  const dirOf = (ctx: RequestContext) => ctx.query.get('dir') || undefined;

  return [
    {
      method: 'POST',
      path: '/containers/{id}/checkpoints',
      handler: experimental(async (ctx, c) => {
        const body = (await readJsonBody(ctx, { optional: true })) ?? {};
        const name = field<string>(body, 'CheckpointID', 'string') ?? '';
        const dir = field<string>(body, 'CheckpointDir', 'string');
        const exit = field<boolean>(body, 'Exit', 'boolean') ?? false;
        await c.create(ctx.params.id, { name, ...(dir ? { dir } : {}), exit });
        sendEmpty(ctx.res, 201);
      }),
    },
    {
      method: 'GET',
      path: '/containers/{id}/checkpoints',
      handler: experimental(async (ctx, c) => sendJson(ctx.res, 200, await c.list(ctx.params.id, dirOf(ctx)))),
    },
    {
      method: 'DELETE',
      path: '/containers/{id}/checkpoints/{checkpoint}',
      handler: experimental(async (ctx, c) => {
        await c.remove(ctx.params.id, ctx.params.checkpoint, dirOf(ctx));
        sendEmpty(ctx.res, 204);
      }),
    },
  ];
}
