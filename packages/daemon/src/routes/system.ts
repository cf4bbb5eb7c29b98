/** System routes: /_ping (GET, HEAD), /version, /info, /events. */
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import type { EnginePort, EventMessage } from '../port.js';
import { parseFilters, sendJson } from '../http.js';
import { InvalidParameterError, declareFailpoint, failpoint, matchLabels, parseDockerTime } from '@berth/core';
import type { Route, RequestContext } from '../router.js';
import { API_VERSION, ENGINE_VERSION, MIN_API_VERSION } from '../version.js';

// A throw in a request's own timer, outside its promise chain: the last guard's test (last-guard.ts).
const FP_EVENTS_UNTIL = declareFailpoint('api.events.untilTimer', "the timer that ends GET /events?until=… (a throw there is an uncaught exception in that request's context)");

function pingHeaders(ctx: RequestContext): void {
  ctx.res.setHeader('Cache-Control', 'no-cache, no-store, must-revalidate');
  ctx.res.setHeader('Pragma', 'no-cache');
  ctx.res.setHeader('Builder-Version', '1');
  ctx.res.setHeader('Swarm', 'inactive');
  ctx.res.setHeader('Content-Type', 'text/plain; charset=utf-8');
}

function osPrettyName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
    if (m) return m[1];
  } catch {
    // fall through: a host without os-release
  }
  return os.type();
}

function osVersion(): string {
  try {
    const m = /^VERSION_ID="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m) return m[1];
  } catch {
    // fall through
  }
  return '';
}

function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

function cgroupHas(file: string): boolean {
  try {
    readFileSync(file);
    return true;
  } catch {
    return false;
  }
}

export function systemRoutes(port: EnginePort): Route[] {
  const ping = (ctx: RequestContext) => {
    pingHeaders(ctx);
    if (ctx.req.method === 'HEAD') {
      ctx.res.setHeader('Content-Length', '0');
      ctx.res.statusCode = 200;
      ctx.res.end();
      return;
    }
    ctx.res.setHeader('Content-Length', '2');
    ctx.res.statusCode = 200;
    ctx.res.end('OK');
  };

  const version = (ctx: RequestContext) => {
    const f = port.facts();
    const body: Record<string, unknown> = {
      Platform: { Name: 'berth' },
      Components: [
        {
          Name: 'Engine',
          Version: ENGINE_VERSION,
          Details: {
            ApiVersion: API_VERSION,
            MinAPIVersion: MIN_API_VERSION,
            GitCommit: 'berth',
            GoVersion: `node ${process.version}`,
            BuildTime: '',
            Os: 'linux',
            Arch: goArch(),
            KernelVersion: os.release(),
            Experimental: String(f.experimental),
            NodeVersion: process.version,
          },
        },
        ...Object.entries(f.runtimes).map(([name, r]) => ({ Name: name, Version: 'unknown', Details: { Path: r.path } })),
      ],
      Version: ENGINE_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: 'berth',
      GoVersion: `node ${process.version}`,
      Os: 'linux',
      Arch: goArch(),
      KernelVersion: os.release(),
      BuildTime: '',
    };
    if (f.experimental) body.Experimental = true;
    sendJson(ctx.res, 200, body);
  };

  const info = async (ctx: RequestContext) => {
    const f = port.facts();
    const list = await port.containers.list();
    let running = 0;
    let paused = 0;
    for (const c of list) {
      if (c.State.Paused) paused++;
      else if (c.State.Running) running++;
    }
    const images = port.images ? await port.images.count() : 0;
    const v2 = f.cgroupVersion === '2';
    const mem = v2 ? cgroupHas('/sys/fs/cgroup/cgroup.controllers') : cgroupHas('/sys/fs/cgroup/memory/memory.limit_in_bytes');
    const runtimes: Record<string, unknown> = {};
    for (const [name, r] of Object.entries(f.runtimes)) {
      runtimes[name] = r.runtimeArgs && r.runtimeArgs.length > 0 ? { path: r.path, runtimeArgs: r.runtimeArgs } : { path: r.path };
    }
    sendJson(ctx.res, 200, {
      ID: f.id,
      Containers: list.length,
      ContainersRunning: running,
      ContainersPaused: paused,
      ContainersStopped: list.length - running - paused,
      Images: images,
      Driver: f.storageDriver,
      DriverStatus: [],
      DockerRootDir: f.dataRoot,
      Plugins: { Volume: ['local'], Network: ['host', 'none'], Authorization: [], Log: ['json-file'] },
      // berth-only (dockerd has no such field): every plugin of the build, a skipped one with why.
      BerthPlugins: f.plugins.map((p) => ({ Name: p.name, Type: p.type, Status: p.status, ...(p.reason !== undefined ? { Reason: p.reason } : {}) })),
      MemoryLimit: mem,
      SwapLimit: v2 ? mem : cgroupHas('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'),
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      OomKillDisable: !v2,
      IPv4Forwarding: readTrim('/proc/sys/net/ipv4/ip_forward') === '1',
      Debug: f.debug,
      NFd: openFds(),
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: f.loggingDriver,
      CgroupDriver: f.cgroupDriver,
      CgroupVersion: f.cgroupVersion,
      NEventsListener: port.events?.listeners?.() ?? 0,
      KernelVersion: os.release(),
      OperatingSystem: osPrettyName(),
      OSVersion: osVersion(),
      OSType: 'linux',
      Architecture: os.machine(),
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: ['127.0.0.0/8'], Mirrors: [] },
      GenericResources: [],
      HttpProxy: process.env.HTTP_PROXY ?? process.env.http_proxy ?? '',
      HttpsProxy: process.env.HTTPS_PROXY ?? process.env.https_proxy ?? '',
      NoProxy: process.env.NO_PROXY ?? process.env.no_proxy ?? '',
      Name: os.hostname(),
      Labels: f.labels,
      ExperimentalBuild: f.experimental,
      ServerVersion: ENGINE_VERSION,
      Runtimes: runtimes,
      DefaultRuntime: f.defaultRuntime,
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: f.liveRestore,
      Isolation: '',
      InitBinary: 'docker-init',
      ContainerdCommit: { ID: '' },
      RuncCommit: { ID: '' },
      InitCommit: { ID: f.initCommit ?? '' },
      SecurityOptions: f.securityOptions,
      // files the image store skipped or repaired at start (image-store src/recovery.ts)
      // and containers whose record could not be read (core src/unreadable.ts)
      Warnings: [...(port.imageService?.()?.warnings() ?? []), ...(port.engineWarnings?.() ?? [])],
    });
  };

  const events = async (ctx: RequestContext) => {
    const src = port.events;
    if (!src) {
      throw new InvalidParameterError('events are not available on this daemon');
    }
    const q = ctx.query;
    const filters = parseFilters(q.get('filters'), ['type', 'container', 'event', 'label', 'image', 'scope', 'daemon', 'network', 'volume', 'plugin', 'node', 'service', 'secret', 'config']);
    const now = BigInt(Date.now()) * 1_000_000n;
    const since = parseDockerTime(q.get('since'), 'since', now);
    const until = parseDockerTime(q.get('until'), 'until', now);
    if (since !== null && until !== null && until < since) {
      throw new InvalidParameterError('`since` time cannot be after `until` time');
    }
    const match = eventMatcher(filters);
    ctx.res.statusCode = 200;
    ctx.res.setHeader('Content-Type', 'application/json');
    ctx.streaming();
    ctx.res.flushHeaders();
    const write = (ev: EventMessage) => {
      if (since !== null && ev.timeNano < since) return;
      if (until !== null && ev.timeNano > until) return;
      if (!match(ev)) return;
      ctx.res.write(eventJson(ev) + '\n');
    };
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const sub = src.subscribe(since, write);
      const stop = () => {
        sub.unsubscribe();
        if (timer) clearTimeout(timer);
        ctx.signal.removeEventListener('abort', stop);
        resolve();
      };
      for (const ev of sub.past) write(ev);
      if (until !== null) {
        const ms = Math.max(0, Number((until - BigInt(Date.now()) * 1_000_000n) / 1_000_000n));
        timer = setTimeout(() => {
          failpoint(FP_EVENTS_UNTIL);
          stop();
        }, ms);
      }
      if (ctx.signal.aborted) stop();
      else ctx.signal.addEventListener('abort', stop);
    });
    if (!ctx.res.writableEnded) ctx.res.end();
  };

  return [
    { method: 'GET', path: '/_ping', handler: ping },
    { method: 'HEAD', path: '/_ping', handler: ping },
    { method: 'GET', path: '/version', handler: version },
    { method: 'GET', path: '/info', handler: info },
    { method: 'GET', path: '/events', handler: events },
  ];
}

function readTrim(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

export function goArch(): string {
  const a = process.arch;
  return a === 'x64' ? 'amd64' : a === 'ia32' ? '386' : a;
}

/**
 * An event as dockerd writes it: the fields in their order, `timeNano` an exact JSON integer
 * (JSON.stringify has no bigint, and a number would round it beyond 2^53).
 */
export function eventJson(ev: EventMessage): string {
  const { timeNano, ...rest } = ev;
  return `${JSON.stringify(rest).slice(0, -1)},"timeNano":${timeNano.toString()}}`;
}

export function eventMatcher(filters: Map<string, Set<string>>): (ev: EventMessage) => boolean {
  return (ev) => {
    const t = filters.get('type');
    if (t && t.size > 0 && !t.has(ev.Type)) return false;
    const e = filters.get('event');
    if (e && e.size > 0) {
      const action = ev.Action.split(':')[0];
      if (!e.has(ev.Action) && !e.has(action)) return false;
    }
    const c = filters.get('container');
    if (c && c.size > 0) {
      if (ev.Type !== 'container') return false;
      const name = ev.Actor.Attributes.name ?? '';
      if (![...c].some((x) => x === name || (x.length > 0 && ev.Actor.ID.startsWith(x)))) return false;
    }
    const im = filters.get('image');
    if (im && im.size > 0) {
      const image = ev.Actor.Attributes.image ?? (ev.Type === 'image' ? ev.Actor.ID : '');
      if (!im.has(image) && !im.has(image.split(':')[0])) return false;
    }
    const sc = filters.get('scope');
    if (sc && sc.size > 0 && !sc.has(ev.scope)) return false;
    if (!matchLabels(filters.get('label'), ev.Actor.Attributes)) return false;
    return true;
  };
}

