/**
 * POST /build: docker build's classic builder (@berth/builder) over the engine's containers
 * and the image service. The context tar is unpacked under the image store's tmp dir and
 * removed after the build, also when the client goes away (the build is aborted then).
 * @berth/builder (with dockerfile-ast and .dockerignore's matcher) is imported at the first
 * build, not at start: a daemon that never builds does not hold its code (docs/benchmarks.md,
 * "RSS with 1,000 created").
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { InvalidParameterError, NotImplementedError, type HostConfig } from '@berth/core';
import type { BuildContainers } from '@berth/builder';
import type { ImageService, JSONMessage } from '@berth/image-store';
import type { ContainerPort } from '../port.js';
import { boolValue, boolValueOr } from '../http.js';
import type { RequestContext, Route } from '../router.js';
import { withProgress } from './images.js';

function jsonMap(ctx: RequestContext, key: string): Record<string, string | null> {
  const raw = ctx.query.get(key);
  if (!raw) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new InvalidParameterError(`invalid ${key}: not JSON`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new InvalidParameterError(`invalid ${key}: not a JSON object`);
  return v as Record<string, string | null>;
}

/** The engine's ContainerPort as the builder uses it. */
export function buildContainers(port: ContainerPort): BuildContainers {
  return {
    create: async (req) => port.create({ config: req.config, hostConfig: req.hostConfig }),
    start: (id) => port.start(id, {}),
    output: async function* (id, signal) {
      if (!port.logs) return;
      for await (const m of port.logs(id, { follow: true, stdout: true, stderr: true, signal })) yield m.line;
    },
    wait: (id, signal) => port.wait(id, 'not-running', signal),
    remove: (id) => port.remove(id, { force: true, volumes: true, link: false }),
    mountRootfs: async (id) => {
      if (!port.mountRootfs) throw new NotImplementedError('COPY --from needs an image store with container root filesystems');
      return port.mountRootfs(id);
    },
  };
}

/** The RUN containers' resources from the build's query (`--memory`, `--cpu-shares`, …; the API's names). */
function runHostConfig(q: URLSearchParams): HostConfig {
  const hc: Record<string, unknown> = {};
  const ints: Array<[string, string]> = [
    ['memory', 'Memory'],
    ['memswap', 'MemorySwap'],
    ['cpushares', 'CpuShares'],
    ['cpuquota', 'CpuQuota'],
    ['cpuperiod', 'CpuPeriod'],
    ['shmsize', 'ShmSize'],
  ];
  for (const [param, field] of ints) {
    const v = q.get(param);
    if (!v) continue;
    if (!/^-?\d+$/.test(v)) throw new InvalidParameterError(`invalid ${param}: ${v}`);
    if (Number(v) !== 0) hc[field] = Number(v);
  }
  for (const [param, field] of [
    ['cpusetcpus', 'CpusetCpus'],
    ['cpusetmems', 'CpusetMems'],
    ['cgroupparent', 'CgroupParent'],
  ] as const) {
    if (q.get(param)) hc[field] = q.get(param);
  }
  const ulimits = q.get('ulimits');
  if (ulimits && ulimits !== 'null') {
    let v: unknown;
    try {
      v = JSON.parse(ulimits);
    } catch {
      throw new InvalidParameterError('invalid ulimits: not JSON');
    }
    if (!Array.isArray(v)) throw new InvalidParameterError('invalid ulimits: not a JSON array');
    if (v.length) hc.Ulimits = v;
  }
  return hc as HostConfig;
}

export function buildRoutes(images: () => ImageService | undefined, containers: ContainerPort): Route[] {
  const build = async (ctx: RequestContext) => {
    const svc = images();
    if (!svc) throw new NotImplementedError('this daemon runs without an image store (plugin image-store not loaded)');
    const q = ctx.query;
    if (q.get('remote')) throw new InvalidParameterError('remote build contexts (a URL or git repository) are not supported by berth; send the context as a tar in the request body');
    if (q.get('version') === '2') throw new NotImplementedError('BuildKit (version=2) is not supported by berth; use the classic builder (DOCKER_BUILDKIT=0)');
    const platform = q.get('platform');
    const labels = jsonMap(ctx, 'labels') as Record<string, string>;
    const buildArgs = jsonMap(ctx, 'buildargs');
    const quiet = boolValue(q, 'q');
    const resources = runHostConfig(q);
    const tmp = path.join(svc.store.root, 'tmp', `build-${randomBytes(8).toString('hex')}`);
    await fsp.mkdir(path.join(tmp, 'context'), { recursive: true, mode: 0o700 });
    await fsp.mkdir(path.join(tmp, 'scratch'), { recursive: true, mode: 0o700 });
    try {
      const { BuildCache, Builder, BuildStepError, prepareContext } = await import('@berth/builder');
      const body = ctx.own(Readable.from(ctx.body as AsyncIterable<Buffer>), 'build context');
      const context = await prepareContext(body, path.join(tmp, 'context'), q.get('dockerfile') || 'Dockerfile');
      const builder = new Builder(svc, buildContainers(containers), new BuildCache(svc.store.root, async (id) => svc.imageId(id).then(() => true, () => false)));
      await withProgress(ctx, async (emit) => {
        const out = (m: JSONMessage) => {
          if (!quiet || m.aux || m.error) emit(m);
        };
        try {
          const id = await builder.build(context, path.join(tmp, 'scratch'), {
            tags: q.getAll('t').filter(Boolean),
            buildArgs,
            labels,
            ...(q.get('target') ? { target: q.get('target')! } : {}),
            noCache: boolValue(q, 'nocache'),
            rm: boolValueOr(q, 'rm', true),
            forceRm: boolValue(q, 'forcerm'),
            pull: boolValue(q, 'pull') && q.get('pull') !== '',
            ...(q.get('networkmode') ? { networkMode: q.get('networkmode')! } : {}),
            runHostConfig: resources,
            ...(platform ? { platform } : {}),
            emit: out,
            signal: ctx.signal,
          });
          if (quiet) emit({ stream: `${id}\n` });
        } catch (err) {
          // once the stream runs, a step's failure is its last message (with the exit code, as dockerd's)
          if (err instanceof BuildStepError && err.code !== undefined) {
            emit({ errorDetail: { message: err.message, code: err.code }, error: err.message });
            return;
          }
          throw err;
        }
      });
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  };
  return [{ method: 'POST', path: '/build', handler: build }];
}

