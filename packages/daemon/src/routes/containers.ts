/** Container routes of the Docker Engine API over the daemon's port to the engine (EnginePort). */
import {
  InvalidParameterError,
  NotImplementedError,
  SystemError,
  errorKind,
  matchLabels,
  parseDockerTime,
  type ContainerRecord,
  type DockerFilters,
} from '@berth/core';
import { checkSignal } from '../signals.js';
import type { ContainerPort, EnginePort } from '../port.js';
import { commandLine, endpointBody, frame, networkSettingsBody, stateName, stateString, unixSeconds } from '../format.js';
import { detachKeysFrom, hijackSession, streamContentType } from '../hijack-io.js';
import {
  boolValue,
  boolValueOr,
  intValue,
  parseFilters,
  readJsonBody,
  sendEmpty,
  sendJson,
  checkJsonContentType,
} from '../http.js';
import type { RequestContext, Route } from '../router.js';
import { checkContainerName, checkCreateBody, checkHostConfig } from '../validate.js';
import { API_VERSION, versionLessThan } from '../version.js';
import { sample, zeroSample, type StatsSample } from '../stats.js';

const LIST_FILTERS = ['id', 'name', 'label', 'status', 'exited', 'ancestor', 'before', 'since', 'health', 'network', 'volume', 'is-task', 'isolation', 'publish', 'expose'];
const STATUSES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];

/** The port's optional method, or 501 when the engine behind it has none. */
export function need<T>(fn: T | undefined, what: string): T {
  if (!fn) throw new NotImplementedError(`${what} is not supported by this daemon's engine`);
  return fn;
}

/**
 * ContainerSummary (GET /containers/json) of a record. Made from a live record by the list, it
 * shares the record's Labels, Mounts and endpoint values: serialise it, never change it.
 */
export function summary(c: Readonly<ContainerRecord>, now = Date.now()): Record<string, unknown> {
  const ports: Array<Record<string, unknown>> = [];
  for (const [key, bindings] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
    const [port, proto = 'tcp'] = key.split('/');
    if (!bindings || bindings.length === 0) ports.push({ PrivatePort: Number(port), Type: proto });
    else for (const b of bindings) ports.push({ IP: b.HostIp || '0.0.0.0', PrivatePort: Number(port), PublicPort: Number(b.HostPort), Type: proto });
  }
  return {
    Id: c.ID,
    Names: [c.Name],
    Image: c.Config.Image ?? '',
    ImageID: c.Image,
    Command: commandLine(c),
    Created: unixSeconds(c.Created),
    Ports: ports,
    Labels: c.Config.Labels ?? {},
    State: stateName(c.State),
    Status: stateString(c.State, now),
    HostConfig: { NetworkMode: c.HostConfig.NetworkMode ?? 'none', ...(c.HostConfig.Annotations ? { Annotations: c.HostConfig.Annotations } : {}) },
    NetworkSettings: { Networks: Object.fromEntries(Object.entries(c.NetworkSettings?.Networks ?? {}).map(([n, e]) => [n, endpointBody(e)])) },
    Mounts: c.Mounts ?? [],
  };
}

/** ContainerInspectResponse of a record, for an API version (NetworkSettings differ). */
export function inspectBody(c: ContainerRecord, version = API_VERSION): Record<string, unknown> {
  const state: Record<string, unknown> = { ...c.State };
  return {
    Id: c.ID,
    Created: c.Created,
    Path: c.Path,
    Args: c.Args ?? [],
    State: state,
    Image: c.Image,
    ResolvConfPath: c.ResolvConfPath,
    HostnamePath: c.HostnamePath,
    HostsPath: c.HostsPath,
    LogPath: c.LogPath,
    Name: c.Name,
    RestartCount: c.RestartCount,
    Driver: c.Driver,
    Platform: c.Platform,
    MountLabel: c.MountLabel,
    ProcessLabel: c.ProcessLabel,
    AppArmorProfile: c.AppArmorProfile,
    ExecIDs: c.ExecIDs && c.ExecIDs.length > 0 ? c.ExecIDs : null,
    HostConfig: c.HostConfig,
    GraphDriver: { Name: c.Driver, Data: c.BaseFS ? { MergedDir: c.BaseFS } : {} },
    Mounts: c.Mounts ?? [],
    Config: c.Config,
    NetworkSettings: networkSettingsBody(c.NetworkSettings, version),
    // berth fields: the runtime backend and the OCI runtime that really ran the last start
    // (HostConfig.Runtime is what was asked for, as dockerd shows it; a plugin may route elsewhere).
    ...(c.RuntimeBackend ? { RuntimeBackend: c.RuntimeBackend } : {}),
    ...(c.RuntimeName ? { RuntimeName: c.RuntimeName } : {}),
  };
}

async function resolveRef(port: EnginePort, ref: string): Promise<ContainerRecord | null> {
  try {
    return await port.containers.inspect(ref);
  } catch {
    return null;
  }
}

/** The list filters as a test of one record (run on the live records, before they are copied). */
async function listFilter(port: EnginePort, f: DockerFilters, all: boolean): Promise<(c: Readonly<ContainerRecord>) => boolean> {
  const status = f.get('status');
  for (const s of status ?? []) if (!STATUSES.includes(s)) throw new InvalidParameterError(`Invalid filter 'status=${s}'`);
  const exited = [...(f.get('exited') ?? [])].map((e) => {
    if (!/^-?\d+$/.test(e)) throw new InvalidParameterError(`invalid filter 'exited=${e}'`);
    return Number(e);
  });
  const health = f.get('health');
  for (const h of health ?? []) if (!['starting', 'healthy', 'unhealthy', 'none'].includes(h)) throw new InvalidParameterError(`Unrecognised filter value for health: ${h}`);
  const isTask = f.get('is-task');
  for (const t of isTask ?? []) if (t !== 'true' && t !== 'false') throw new InvalidParameterError(`invalid filter 'is-task=${t}'`);
  let before: number | null = null;
  let sinceT: number | null = null;
  for (const b of f.get('before') ?? []) {
    const c = await resolveRef(port, b);
    if (!c) throw new InvalidParameterError(`No such container: ${b}`);
    before = Date.parse(c.Created);
  }
  for (const s of f.get('since') ?? []) {
    const c = await resolveRef(port, s);
    if (!c) throw new InvalidParameterError(`No such container: ${s}`);
    sinceT = Date.parse(c.Created);
  }
  const ancestors = new Set<string>();
  for (const a of f.get('ancestor') ?? []) {
    ancestors.add(a);
    const id = port.images ? await port.images.resolve(a) : null;
    if (id) ancestors.add(id);
  }
  return (c) => {
    const st = stateName(c.State);
    if (!all && !c.State.Running && !status) return false;
    if (status && status.size > 0 && !status.has(st)) return false;
    const ids = f.get('id');
    if (ids && ids.size > 0 && ![...ids].some((x) => c.ID.startsWith(x))) return false;
    const names = f.get('name');
    if (names && names.size > 0) {
      const n = c.Name.replace(/^\//, '');
      if (![...names].some((x) => safeRegex(x.replace(/^\//, '')).test(n))) return false;
    }
    if (!matchLabels(f.get('label'), c.Config.Labels)) return false;
    if (exited.length > 0 && (st !== 'exited' || !exited.includes(c.State.ExitCode))) return false;
    if (health && health.size > 0 && !health.has(c.State.Health?.Status ?? 'none')) return false;
    if (isTask && isTask.size > 0 && !isTask.has('false')) return false;
    if (ancestors.size > 0 && !ancestors.has(c.Image) && !ancestors.has(c.Config.Image ?? '')) return false;
    const nets = f.get('network');
    if (nets && nets.size > 0 && !Object.keys(c.NetworkSettings?.Networks ?? {}).some((n) => nets.has(n))) return false;
    const vols = f.get('volume');
    if (vols && vols.size > 0 && !(c.Mounts ?? []).some((m) => vols.has(m.Name ?? '') || vols.has(m.Destination) || vols.has(m.Source))) return false;
    const created = Date.parse(c.Created);
    if (before !== null && !(created < before)) return false;
    if (sinceT !== null && !(created > sinceT)) return false;
    return true;
  };
}

function safeRegex(src: string): RegExp {
  try {
    return new RegExp(src);
  } catch {
    throw new InvalidParameterError(`invalid filter 'name=${src}': not a valid regular expression`);
  }
}

function stopOptions(ctx: RequestContext): { timeout?: number; signal?: string } {
  const t = intValue(ctx.query, 't', undefined);
  if (t !== undefined && t < -1) throw new InvalidParameterError(`invalid value for t: ${t}: must be -1 (no timeout) or more`);
  const signal = ctx.query.get('signal') ?? undefined;
  if (signal !== undefined && signal !== '') checkSignal(signal);
  return { timeout: t, signal: signal === '' ? undefined : signal };
}

export function containerRoutes(port: EnginePort): Route[] {
  const cs: ContainerPort = port.containers;

  const create = async (ctx: RequestContext) => {
    const rawName = ctx.query.get('name');
    const name = rawName === null || rawName === '' ? undefined : checkContainerName(rawName);
    const body = await readJsonBody(ctx);
    const { config, hostConfig, networkingConfig } = checkCreateBody(body as Record<string, unknown>);
    if (!config.Image) throw new InvalidParameterError('config cannot be empty in order to create a container');
    const platform = ctx.query.get('platform') ?? undefined;
    if (platform && !/^linux(\/|$)/.test(platform)) throw new InvalidParameterError(`invalid platform ${platform}: only linux containers run here`);
    const r = await cs.create({ name, config, hostConfig, networkingConfig, platform });
    sendJson(ctx.res, 201, { Id: r.id, Warnings: r.warnings });
  };

  const list = async (ctx: RequestContext) => {
    const q = ctx.query;
    const limit = intValue(q, 'limit', -1) as number;
    const filters = parseFilters(q.get('filters'), LIST_FILTERS);
    const all = boolValue(q, 'all') || limit > 0;
    const now = Date.now();
    const withHealth = !versionLessThan(ctx.version, '1.52');
    // The summaries are made from the live records (newest first), no record is copied (issue 18)
    let items = await cs.list(await listFilter(port, filters, all), (c) => {
      const s = summary(c, now);
      // API 1.52 added the health summary (dockerd's list drops it for older clients); none when no probe ran
      if (withHealth) s.Health = { Status: c.State.Health?.Status ?? 'none', FailingStreak: c.State.Health?.FailingStreak ?? 0 };
      return s;
    });
    if (limit > 0) items = items.slice(0, limit);
    const sizes = boolValue(q, 'size') ? cs.sizes?.bind(cs) : undefined;
    const out = [];
    for (const s of items) {
      if (sizes) {
        const id = s.Id as string;
        try {
          Object.assign(s, await sizes(id));
        } catch (err) {
          // removed while the list was being measured: it is no longer part of the answer
          if (errorKind(err) !== 'NotFound') throw err;
          if (!(await resolveRef(port, id))) continue;
          // the container exists but its layer does not: a daemon fault, not a 404 of the list
          throw new SystemError(`size of container ${id}: ${(err as Error).message}`, { cause: err });
        }
      }
      out.push(s);
    }
    sendJson(ctx.res, 200, out);
  };

  const inspect = async (ctx: RequestContext) => {
    const c = await cs.inspect(ctx.params.id);
    const body = inspectBody(c, ctx.version);
    if (boolValue(ctx.query, 'size') && cs.sizes) Object.assign(body, await cs.sizes(c.ID));
    sendJson(ctx.res, 200, body);
  };

  const start = async (ctx: RequestContext) => {
    // dockerd: a body longer than 7 bytes ("null", "{}" pass) or of unknown length is a HostConfig.
    const len = Number(ctx.req.headers['content-length'] ?? '0');
    const chunked = ctx.req.headers['transfer-encoding'] !== undefined;
    let hostConfig;
    if (len > 7 || chunked) {
      if (!versionLessThan(ctx.version, '1.24')) {
        throw new InvalidParameterError('starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24');
      }
      checkJsonContentType(ctx);
      hostConfig = checkHostConfig(await readJsonBody(ctx, { optional: true }), '');
    }
    const checkpoint = ctx.query.get('checkpoint') ?? undefined;
    const checkpointDir = ctx.query.get('checkpoint-dir') ?? undefined;
    await cs.start(ctx.params.id, { checkpoint: checkpoint || undefined, checkpointDir: checkpointDir || undefined, ...(hostConfig ? { hostConfig } : {}) });
    sendEmpty(ctx.res, 204);
  };

  const stop = async (ctx: RequestContext) => {
    await cs.stop(ctx.params.id, stopOptions(ctx));
    sendEmpty(ctx.res, 204);
  };

  const restart = async (ctx: RequestContext) => {
    await cs.restart(ctx.params.id, stopOptions(ctx));
    sendEmpty(ctx.res, 204);
  };

  const kill = async (ctx: RequestContext) => {
    const signal = ctx.query.get('signal');
    if (signal !== null && signal !== '') checkSignal(signal);
    await cs.kill(ctx.params.id, signal || undefined);
    sendEmpty(ctx.res, 204);
  };

  const wait = async (ctx: RequestContext) => {
    let condition = (ctx.query.get('condition') ?? '') as string;
    if (versionLessThan(ctx.version, '1.30')) condition = '';
    if (condition === '') condition = 'not-running';
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw new InvalidParameterError(`invalid condition: "${condition}"`);
    await cs.inspect(ctx.params.id);
    ctx.streaming();
    ctx.res.statusCode = 200;
    ctx.res.setHeader('Content-Type', 'application/json');
    ctx.res.flushHeaders();
    try {
      const r = await cs.wait(ctx.params.id, condition as 'not-running', ctx.signal);
      ctx.res.end(JSON.stringify(r.Error ? { StatusCode: r.StatusCode, Error: r.Error } : { StatusCode: r.StatusCode }) + '\n');
    } catch (err) {
      if (ctx.signal.aborted) return;
      ctx.res.end(JSON.stringify({ StatusCode: -1, Error: { Message: (err as Error).message } }) + '\n');
    }
  };

  const remove = async (ctx: RequestContext) => {
    await cs.remove(ctx.params.id, { force: boolValue(ctx.query, 'force'), volumes: boolValue(ctx.query, 'v'), link: boolValue(ctx.query, 'link') });
    sendEmpty(ctx.res, 204);
  };

  const logs = async (ctx: RequestContext) => {
    const q = ctx.query;
    const stdout = boolValue(q, 'stdout');
    const stderr = boolValue(q, 'stderr');
    if (!stdout && !stderr) throw new InvalidParameterError('Bad parameters: you must choose at least one stream');
    const tailRaw = q.get('tail') ?? 'all';
    let tail = -1;
    if (tailRaw !== '' && tailRaw !== 'all') {
      if (!/^-?\d+$/.test(tailRaw)) throw new InvalidParameterError(`invalid value for tail: ${JSON.stringify(tailRaw)}`);
      tail = Number(tailRaw);
    }
    const now = BigInt(Date.now()) * 1_000_000n;
    const since = parseDockerTime(q.get('since'), 'since', now);
    const until = parseDockerTime(q.get('until'), 'until', now);
    const c = await cs.inspect(ctx.params.id);
    const read = need(cs.logs, 'logs');
    const follow = boolValue(q, 'follow');
    if (follow) ctx.streaming();
    const tty = c.Config.Tty === true;
    const timestamps = boolValue(q, 'timestamps');
    // 0 is no bound (dockerd)
    const it = read.call(cs, c.ID, { follow, stdout, stderr, ...(since ? { since } : {}), ...(until ? { until } : {}), tail, signal: ctx.signal });
    ctx.res.statusCode = 200;
    ctx.res.setHeader('Content-Type', streamContentType(ctx.version, tty));
    ctx.res.flushHeaders();
    for await (const e of it) {
      if (ctx.signal.aborted) break;
      const payload = timestamps ? Buffer.concat([Buffer.from(e.time + ' '), e.line]) : e.line;
      const ok = ctx.res.write(tty ? payload : frame(e.stream === 'stdout' ? 1 : 2, payload));
      if (!ok) await new Promise<void>((resolve) => {
        const done = () => {
          ctx.res.off('drain', done);
          ctx.signal.removeEventListener('abort', done);
          resolve();
        };
        ctx.res.once('drain', done);
        ctx.signal.addEventListener('abort', done);
      });
    }
    if (!ctx.res.writableEnded) ctx.res.end();
  };

  const attach = async (ctx: RequestContext) => {
    const q = ctx.query;
    const keys = detachKeysFrom(q.get('detachKeys'));
    const c = await cs.inspect(ctx.params.id);
    const attachFn = need(cs.attach, 'attach');
    const wantStdin = boolValue(q, 'stdin');
    const wantStdout = boolValue(q, 'stdout');
    const wantStderr = boolValue(q, 'stderr');
    const replay = boolValue(q, 'logs');
    const stream = boolValue(q, 'stream');
    if (!stream && !replay) throw new InvalidParameterError('Bad parameters: you must choose at least one stream');
    const tty = c.Config.Tty === true;
    const forwardStdin = stream && wantStdin && c.Config.OpenStdin === true;
    await hijackSession(ctx, { tty, stdin: forwardStdin ? keys : null, stdout: wantStdout, stderr: wantStderr }, (io, signal) =>
      attachFn.call(cs, c.ID, { stdin: wantStdin, stdout: wantStdout, stderr: wantStderr, logs: replay, stream }, io, signal),
    );
  };

  const rename = async (ctx: RequestContext) => {
    const name = ctx.query.get('name');
    if (!name) throw new InvalidParameterError('Neither old nor new names may be empty');
    const newName = checkContainerName(name);
    await need(cs.rename, 'rename').call(cs, ctx.params.id, newName);
    sendEmpty(ctx.res, 204);
  };

  const pause = async (ctx: RequestContext) => {
    await need(cs.pause, 'pause').call(cs, ctx.params.id);
    sendEmpty(ctx.res, 204);
  };
  const unpause = async (ctx: RequestContext) => {
    await need(cs.unpause, 'unpause').call(cs, ctx.params.id);
    sendEmpty(ctx.res, 204);
  };

  const resize = async (ctx: RequestContext) => {
    const h = intValue(ctx.query, 'h', undefined);
    const w = intValue(ctx.query, 'w', undefined);
    if (h === undefined || w === undefined || h < 0 || w < 0) throw new InvalidParameterError('Bad parameters: h and w must be non-negative integers');
    await need(cs.resize, 'resize').call(cs, ctx.params.id, { height: h, width: w });
    sendEmpty(ctx.res, 200);
  };

  const update = async (ctx: RequestContext) => {
    const hc = checkHostConfig(await readJsonBody(ctx), '', 'update');
    const r = await need(cs.update, 'update').call(cs, ctx.params.id, hc);
    sendJson(ctx.res, 200, { Warnings: r.warnings });
  };

  const prune = async (ctx: RequestContext) => {
    const filters = parseFilters(ctx.query.get('filters'), ['until', 'label', 'label!']);
    const r = await need(cs.prune, 'prune').call(cs, filters);
    sendJson(ctx.res, 200, { ContainersDeleted: r.ContainersDeleted.length ? r.ContainersDeleted : null, SpaceReclaimed: r.SpaceReclaimed });
  };

  const top = async (ctx: RequestContext) => {
    const r = await need(cs.top, 'top').call(cs, ctx.params.id, ctx.query.get('ps_args') ?? '-ef');
    sendJson(ctx.res, 200, r);
  };

  const stats = async (ctx: RequestContext) => {
    const stream = boolValueOr(ctx.query, 'stream', true);
    const oneShot = boolValue(ctx.query, 'one-shot');
    if (oneShot && stream) throw new InvalidParameterError('cannot have stream=true and one-shot=true');
    const c = await cs.inspect(ctx.params.id);
    const take = async (): Promise<StatsSample> => {
      const cur = await cs.inspect(c.ID).catch(() => null);
      if (!cur || !cur.State.Running || cur.State.Pid <= 0) return zeroSample();
      return sample(cur.State.Pid).catch(() => zeroSample());
    };
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          ctx.signal.removeEventListener('abort', done);
          resolve();
        }
        ctx.signal.addEventListener('abort', done);
      });
    const body = (cur: StatsSample, pre: StatsSample | null) => ({
      name: c.Name,
      id: c.ID,
      read: cur.read,
      preread: pre?.read ?? '0001-01-01T00:00:00Z',
      pids_stats: cur.pids_stats,
      blkio_stats: cur.blkio_stats,
      num_procs: cur.num_procs,
      storage_stats: {},
      cpu_stats: cur.cpu_stats,
      precpu_stats: pre?.cpu_stats ?? zeroSample().cpu_stats,
      memory_stats: cur.memory_stats,
      ...(cur.networks ? { networks: cur.networks } : {}),
    });
    ctx.res.statusCode = 200;
    ctx.res.setHeader('Content-Type', 'application/json');
    if (!stream) {
      let pre: StatsSample | null = null;
      if (!oneShot && c.State.Running) {
        pre = await take();
        await sleep(1000);
      }
      const cur = await take();
      sendJson(ctx.res, 200, body(cur, pre));
      return;
    }
    ctx.streaming();
    ctx.res.flushHeaders();
    let pre: StatsSample | null = null;
    while (!ctx.signal.aborted) {
      const cur = await take();
      if (ctx.signal.aborted) break;
      ctx.res.write(JSON.stringify(body(cur, pre)) + '\n');
      const running = (await cs.inspect(c.ID).catch(() => null))?.State.Running ?? false;
      if (!running) break;
      pre = cur;
      await sleep(1000);
    }
    if (!ctx.res.writableEnded) ctx.res.end();
  };

  return [
    { method: 'POST', path: '/containers/create', handler: create },
    { method: 'GET', path: '/containers/{id}/stats', handler: stats },
    { method: 'GET', path: '/containers/json', handler: list },
    { method: 'POST', path: '/containers/prune', handler: prune },
    { method: 'GET', path: '/containers/{id}/json', handler: inspect },
    { method: 'POST', path: '/containers/{id}/start', handler: start },
    { method: 'POST', path: '/containers/{id}/stop', handler: stop },
    { method: 'POST', path: '/containers/{id}/restart', handler: restart },
    { method: 'POST', path: '/containers/{id}/kill', handler: kill },
    { method: 'POST', path: '/containers/{id}/wait', handler: wait },
    // {id:.*}: a link's name has a slash (DELETE /containers/web/db?link=1)
    { method: 'DELETE', path: '/containers/{id:.*}', handler: remove },
    { method: 'GET', path: '/containers/{id}/logs', handler: logs },
    { method: 'POST', path: '/containers/{id}/attach', handler: attach, hijack: true },
    { method: 'POST', path: '/containers/{id}/rename', handler: rename },
    { method: 'POST', path: '/containers/{id}/pause', handler: pause },
    { method: 'POST', path: '/containers/{id}/unpause', handler: unpause },
    { method: 'POST', path: '/containers/{id}/resize', handler: resize },
    { method: 'POST', path: '/containers/{id}/update', handler: update },
    { method: 'GET', path: '/containers/{id}/top', handler: top },
  ];
}
