/**
 * berth's own API, beside the Docker Engine API and outside its version prefix: what the
 * `berth` CLI and other tools read.
 *   GET /berth/v1/plugins                  every plugin of the build: status, type, version,
 *                                          config (secrets redacted), the hooks it taps
 *   GET /berth/v1/containers/{id}/explain  what the container's last start did, tap by tap
 * Errors are the Docker API's (`{"message": …}`, 404 for an unknown container).
 */
import { NotFoundError, NotImplementedError } from '@berth/core';
import { sendJson } from '../http.js';
import type { EnginePort } from '../port.js';
import type { Handler, RequestContext, Route } from '../router.js';

/** The prefix of berth's own API (v1: fields are only ever added). */
export const BERTH_API_PREFIX = '/berth/v1';

/** Only at its own prefix: the router would also match these paths behind a Docker version prefix (/v1.44/berth/v1/…). */
function unversioned(handler: Handler): Handler {
  return (ctx: RequestContext) => {
    if (!(ctx.req.url ?? '').startsWith(`${BERTH_API_PREFIX}/`)) throw new NotFoundError('page not found');
    return handler(ctx);
  };
}

export function berthRoutes(port: EnginePort): Route[] {
  return [
    {
      method: 'GET',
      path: `${BERTH_API_PREFIX}/plugins`,
      handler: unversioned((ctx) => sendJson(ctx.res, 200, port.facts().plugins)),
    },
    {
      method: 'GET',
      path: `${BERTH_API_PREFIX}/containers/{id}/explain`,
      handler: unversioned(async (ctx) => {
        const explain = port.containers.explain;
        if (!explain) throw new NotImplementedError('this engine does not record what starts do');
        sendJson(ctx.res, 200, await explain(ctx.params.id));
      }),
    },
  ];
}
