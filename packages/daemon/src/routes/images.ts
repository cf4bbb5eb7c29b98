/**
 * Image routes over the image-store plugin's ImageService (token IImageService): list,
 * inspect, history, tag, remove, prune, load, save, pull/import (/images/create), push,
 * commit, auth. Long operations stream Docker's JSON progress messages.
 */
import { Readable } from 'node:stream';
import { InvalidParameterError, NotImplementedError, type ContainerConfig } from '@berth/core';
import { decodeRegistryAuth, errorMessageOf, type ImageService, type JSONMessage } from '@berth/image-store';
import type { ContainerPort } from '../port.js';
import { boolValue, boolValueOr, parseFilters, readJsonBody, sendJson, checkJsonContentType } from '../http.js';
import { sendStream } from '../request-streams.js';
import type { RequestContext, Route } from '../router.js';

const LIST_FILTERS = ['dangling', 'label', 'reference', 'before', 'since', 'until'];
const PRUNE_FILTERS = ['dangling', 'label', 'label!', 'until'];

/**
 * Run `op` with a progress emitter: the 200 head goes out with the first message; an error
 * before it is an ordinary error answer, an error after it is the stream's last message.
 */
export async function withProgress(ctx: RequestContext, op: (emit: (m: JSONMessage) => void) => Promise<void>): Promise<void> {
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    ctx.streaming();
    ctx.res.statusCode = 200;
    ctx.res.setHeader('Content-Type', 'application/json');
    ctx.res.flushHeaders();
  };
  const emit = (m: JSONMessage) => {
    start();
    if (!ctx.res.writableEnded) ctx.res.write(JSON.stringify(m) + '\r\n');
  };
  try {
    await op(emit);
  } catch (err) {
    if (!started) throw err;
    emit(errorMessageOf(err));
  }
  start();
  ctx.res.end();
}

export function imageRoutes(images: () => ImageService | undefined, containers: ContainerPort): Route[] {
  const svc = (): ImageService => {
    const s = images();
    if (!s) throw new NotImplementedError('this daemon runs without an image store (plugin image-store not loaded)');
    return s;
  };

  const list = async (ctx: RequestContext) => {
    const q = ctx.query;
    const filters = parseFilters(q.get('filters'), LIST_FILTERS);
    const ref = q.get('filter');
    if (ref) filters.set('reference', (filters.get('reference') ?? new Set()).add(ref));
    const r = await svc().list({ all: boolValue(q, 'all'), filters, sharedSize: boolValue(q, 'shared-size'), containers: true });
    sendJson(ctx.res, 200, r);
  };

  const inspect = async (ctx: RequestContext) => sendJson(ctx.res, 200, await svc().inspect(ctx.params.name));
  const history = async (ctx: RequestContext) => sendJson(ctx.res, 200, await svc().history(ctx.params.name));

  const tag = async (ctx: RequestContext) => {
    const repo = ctx.query.get('repo') ?? '';
    await svc().tag(ctx.params.name, repo, ctx.query.get('tag') || undefined);
    ctx.res.statusCode = 201;
    ctx.res.end();
  };

  const remove = async (ctx: RequestContext) => {
    sendJson(ctx.res, 200, await svc().remove(ctx.params.name, { force: boolValue(ctx.query, 'force'), noprune: boolValue(ctx.query, 'noprune') }));
  };

  const prune = async (ctx: RequestContext) => {
    sendJson(ctx.res, 200, await svc().prune({ filters: parseFilters(ctx.query.get('filters'), PRUNE_FILTERS) }));
  };

  const load = async (ctx: RequestContext) => {
    const s = svc();
    const quiet = boolValue(ctx.query, 'quiet');
    await withProgress(ctx, async (emit) => {
      await s.load(ctx.own(Readable.from(ctx.body as AsyncIterable<Buffer>), 'image load body'), { quiet, progress: emit });
    });
  };

  const save = async (ctx: RequestContext) => {
    const names = ctx.params.name ? [ctx.params.name] : ctx.query.getAll('names');
    const tar = await svc().save(names);
    await sendStream(ctx, tar, { name: 'image save tar', contentType: 'application/x-tar' });
  };

  const create = async (ctx: RequestContext) => {
    const q = ctx.query;
    const s = svc();
    const fromImage = q.get('fromImage');
    const fromSrc = q.get('fromSrc');
    if (!fromImage && !fromSrc) throw new InvalidParameterError('fromImage or fromSrc is required');
    if (fromImage && fromSrc) throw new InvalidParameterError('fromImage and fromSrc are mutually exclusive');
    const platform = q.get('platform') || undefined;
    if (fromImage) {
      const auth = decodeRegistryAuth(ctx.req.headers['x-registry-auth'] as string | undefined);
      await withProgress(ctx, async (emit) => {
        await s.pull(fromImage, { ...(q.get('tag') ? { tag: q.get('tag')! } : {}), ...(platform ? { platform } : {}), auth, progress: emit, signal: ctx.signal });
      });
      return;
    }
    await withProgress(ctx, async (emit) => {
      await s.import(ctx.own(Readable.from(ctx.body as AsyncIterable<Buffer>), 'image import body'), {
        ...(q.get('repo') ? { repo: q.get('repo')! } : {}),
        ...(q.get('tag') ? { tag: q.get('tag')! } : {}),
        ...(q.get('message') ? { message: q.get('message')! } : {}),
        changes: q.getAll('changes'),
        ...(platform ? { platform } : {}),
        source: fromSrc!,
        progress: emit,
      });
    });
  };

  const push = async (ctx: RequestContext) => {
    const s = svc();
    const auth = decodeRegistryAuth(ctx.req.headers['x-registry-auth'] as string | undefined);
    await withProgress(ctx, async (emit) => {
      await s.push(ctx.params.name, { ...(ctx.query.get('tag') ? { tag: ctx.query.get('tag')! } : {}), auth, progress: emit, signal: ctx.signal });
    });
  };

  const commit = async (ctx: RequestContext) => {
    const q = ctx.query;
    const s = svc();
    const name = q.get('container');
    if (!name) throw new InvalidParameterError('container is required');
    const body = ((await readJsonBody(ctx, { optional: true })) ?? {}) as ContainerConfig;
    const c = await containers.inspect(name);
    const pause = boolValueOr(q, 'pause', true);
    const paused = pause && c.State.Running && !c.State.Paused && containers.pause && containers.unpause;
    if (paused) await containers.pause!(c.ID);
    try {
      const config: ContainerConfig = { ...c.Config };
      for (const [k, v] of Object.entries(body)) if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) (config as Record<string, unknown>)[k] = v;
      const id = await s.commit({
        containerId: c.ID,
        image: c.Image || c.Config.Image || '',
        ...(c.IdMappings ? { idMappings: c.IdMappings } : {}),
        config,
        ...(q.get('repo') ? { repo: q.get('repo')! } : {}),
        ...(q.get('tag') ? { tag: q.get('tag')! } : {}),
        ...(q.get('comment') ? { comment: q.get('comment')! } : {}),
        ...(q.get('author') ? { author: q.get('author')! } : {}),
        changes: q.getAll('changes').flatMap((x) => x.split('\n')).filter(Boolean),
      });
      sendJson(ctx.res, 201, { Id: id });
    } finally {
      if (paused) await containers.unpause!(c.ID).catch(() => {});
    }
  };

  const auth = async (ctx: RequestContext) => {
    checkJsonContentType(ctx);
    const body = (await readJsonBody(ctx)) as Record<string, unknown>;
    sendJson(ctx.res, 200, await svc().login(body as never));
  };

  const search = async () => {
    throw new NotImplementedError('image search is not supported by berth');
  };

  return [
    { method: 'GET', path: '/images/json', handler: list },
    { method: 'POST', path: '/images/load', handler: load },
    { method: 'GET', path: '/images/get', handler: save },
    { method: 'POST', path: '/images/create', handler: create },
    { method: 'POST', path: '/images/prune', handler: prune },
    { method: 'GET', path: '/images/search', handler: search },
    { method: 'GET', path: '/images/{name:.*}/json', handler: inspect },
    { method: 'GET', path: '/images/{name:.*}/history', handler: history },
    { method: 'GET', path: '/images/{name:.*}/get', handler: save },
    { method: 'POST', path: '/images/{name:.*}/tag', handler: tag },
    { method: 'POST', path: '/images/{name:.*}/push', handler: push },
    { method: 'DELETE', path: '/images/{name:.*}', handler: remove },
    { method: 'POST', path: '/commit', handler: commit },
    { method: 'POST', path: '/auth', handler: auth },
  ];
}
