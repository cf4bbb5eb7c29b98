/**
 * The daemon's port implemented over @berth/core's Engine: container service, exec
 * service, event bus, image store (when a plugin registers one), container logs
 * (json-file through core's readLogs) and the runtime backend's attach for stdin.
 */
import { once } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  ConflictError,
  IImageStore,
  InvalidParameterError,
  NotFoundError,
  NotImplementedError,
  inspectLinks,
  readLogs,
  removeLink,
  type Engine,
  type ContainerRecord,
  type ImageStore,
} from '@berth/core';
import type {
  AttachIo,
  AttachRequest,
  ContainerBackend,
  CreateContainerRequest,
  DaemonBackend,
  DaemonFacts,
  EventSource,
  ExecBackend,
  ImageLookup,
  LogEntry,
  LogReadOptions,
} from './backend.js';
import { top } from './top.js';
import type { AttachTracker } from './attach-drain.js';
import { IImageService, type ImageService } from '@berth/image-store';

export interface EngineBackendOptions {
  facts: DaemonFacts;
  /** berth-only: subdirectories of this directory are root filesystems usable by image name. */
  rootfsDir?: string;
  /** After a container's exit, the log follow stops once no entry came for this long (the log pump's last lines). */
  logDrainMs?: number;
  /** Attach sessions in progress, so that an auto-remove waits for them (attach-drain.ts). */
  attachTracker?: AttachTracker;
}

const ROOTFS_LABEL = 'io.berth.rootfs';

const START_UPDATABLE = new Set(['CpuShares', 'Memory', 'CpuPeriod', 'CpuQuota', 'CpuRealtimePeriod', 'CpuRealtimeRuntime', 'CpusetCpus', 'CpusetMems', 'MemoryReservation', 'MemorySwap', 'KernelMemoryTCP', 'BlkioWeight', 'PidsLimit', 'NanoCpus', 'RestartPolicy']);

function timeOf(sec: number): number | undefined {
  return sec > 0 ? sec : undefined;
}

export function engineBackend(engine: Engine, opts: EngineBackendOptions): DaemonBackend {
  const svc = engine.containers;
  const drainMs = opts.logDrainMs ?? 200;
  const imageStore: ImageStore | undefined = engine.container.isRegistered(IImageStore, true) ? engine.container.resolve(IImageStore) : undefined;
  const imageService: ImageService | undefined = engine.container.isRegistered(IImageService, true) ? engine.container.resolve(IImageService) : undefined;

  /** Resolves when the container (running now or soon) stops; rejects never. */
  const exited = (id: string, signal: AbortSignal): Promise<void> => {
    const rec = svc.get(id);
    const condition = rec.State.Running || rec.State.Status === 'created' ? 'next-exit' : 'not-running';
    return svc.wait(id, condition, { signal }).then(
      () => undefined,
      () => undefined,
    );
  };

  async function* logs(id: string, o: LogReadOptions): AsyncGenerator<LogEntry> {
    const rec = svc.get(id);
    if (!rec.LogPath) return;
    const follow = o.follow && rec.State.Running;
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    o.signal.addEventListener('abort', onAbort);
    const drain = new AbortController();
    if (follow) {
      const complete = svc.backendOf(rec).logCompleteAtExit === true;
      void exited(rec.ID, ac.signal).then(() => {
        if (ac.signal.aborted) return;
        // The log is complete at the exit: read to its end and stop. Otherwise give the
        // backend's last lines drainMs to arrive.
        if (complete) drain.abort();
        else setTimeout(() => ac.abort(), drainMs);
      });
    }
    try {
      for await (const m of readLogs(rec.LogPath, {
        follow,
        stdout: o.stdout,
        stderr: o.stderr,
        ...(timeOf(o.since) !== undefined ? { since: o.since } : {}),
        ...(timeOf(o.until) !== undefined ? { until: o.until } : {}),
        ...(o.tail >= 0 ? { tail: o.tail } : {}),
        signal: ac.signal,
        drain: drain.signal,
      })) {
        yield { stream: m.stream === 'stderr' ? 'stderr' : 'stdout', time: m.time, line: m.line };
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      if (ac.signal.aborted) return;
      throw err;
    } finally {
      o.signal.removeEventListener('abort', onAbort);
      ac.abort();
    }
  }

  const attach = async (id: string, req: AttachRequest, io: AttachIo, signal: AbortSignal): Promise<void> => {
    const rec = svc.get(id);
    if (!rec.State.Running && rec.State.Status !== 'created') throw new ConflictError('You cannot attach to a stopped container, start it first');
    if (rec.State.Paused) throw new ConflictError('You cannot attach to a paused container, unpause it first');
    svc.emitEvent(svc.liveRecord(rec.ID), 'attach');
    const session = new AbortController();
    const stopSession = () => session.abort();
    signal.addEventListener('abort', stopSession);
    const done = exited(rec.ID, session.signal);
    const tasks: Promise<unknown>[] = [];
    // Output: follow the container's log from now on (nothing is lost between attach and start).
    if ((io.stdout || io.stderr) && rec.LogPath) {
      const since = Date.now() / 1000;
      const outAc = new AbortController();
      session.signal.addEventListener('abort', () => outAc.abort());
      let lastEntry = Date.now();
      const drain = new AbortController();
      const complete = svc.backendOf(rec).logCompleteAtExit === true;
      // After the exit: a backend whose log is complete at the exit lets the follow end at
      // the end of the log; otherwise stop once the log has been quiet for drainMs (at most 5 s).
      void done.then(() => {
        if (complete) {
          drain.abort();
          return;
        }
        const exitAt = Date.now();
        const poll = setInterval(() => {
          const now = Date.now();
          if (now - Math.max(lastEntry, exitAt) >= drainMs || now - exitAt > 5000) {
            clearInterval(poll);
            outAc.abort();
          }
        }, 25);
        outAc.signal.addEventListener('abort', () => clearInterval(poll));
      });
      const output = (async () => {
        try {
          // readLogs reads a file that exists when it opens from its start, but may skip what
          // a file that appears while it follows got before it noticed: open only once it exists.
          while (!outAc.signal.aborted && !drain.signal.aborted && !existsSync(rec.LogPath)) await new Promise((r) => setTimeout(r, 10));
          for await (const m of readLogs(rec.LogPath, { follow: true, since, stdout: !!io.stdout, stderr: !!io.stderr, signal: outAc.signal, drain: drain.signal })) {
            lastEntry = Date.now();
            const target = m.stream === 'stderr' ? io.stderr : io.stdout;
            // A slow client slows the log reader down instead of piling output up in memory.
            if (target && !target.write(m.line)) await once(target, 'drain', { signal: outAc.signal });
          }
        } catch (err) {
          if (!outAc.signal.aborted && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      })();
      opts.attachTracker?.track(rec.ID, output);
      tasks.push(output);
    }
    // Input: the runtime backend's attach socket, once the container runs.
    if (req.stdin && io.stdin) {
      tasks.push(
        (async () => {
          let cur = svc.get(rec.ID);
          while (!cur.State.Running && !session.signal.aborted) {
            if (cur.State.Status !== 'created') return;
            await new Promise((r) => setTimeout(r, 20));
            cur = svc.get(rec.ID);
          }
          if (session.signal.aborted) return;
          const backend = svc.backendOf(cur);
          if (!backend.attach) return;
          const s = await backend.attach(rec.ID, { stdin: io.stdin, stdout: null, stderr: null });
          session.signal.addEventListener('abort', () => s.detach());
          await Promise.race([s.done, done]);
          s.detach();
        })(),
      );
    }
    await Promise.race([done, new Promise<void>((r) => session.signal.addEventListener('abort', () => r()))]);
    await Promise.allSettled(tasks);
    // The output task ends after the drain; the stdin task with the exit.
    signal.removeEventListener('abort', stopSession);
    session.abort();
  };

  const containers: ContainerBackend = {
    async create(r: CreateContainerRequest) {
      let rootfs: string | undefined;
      const image = r.config.Image ?? '';
      if (!r.config.Labels?.[ROOTFS_LABEL] && !(imageStore && (await imageStore.resolve(image)))) {
        // berth-only: a plain root filesystem directory named like the image (--berth-rootfs-dir).
        const dir = opts.rootfsDir ? rootfsDirOf(opts.rootfsDir, image) : null;
        if (!dir || !isDir(dir)) throw new NotFoundError(`No such image: ${image}`);
        rootfs = dir;
      }
      const res = await svc.create({
        ...(r.name ? { name: r.name } : {}),
        Config: r.config,
        HostConfig: r.hostConfig,
        NetworkingConfig: (r.networkingConfig ?? null) as never,
        ...(rootfs ? { rootfs } : {}),
      });
      return { id: res.Id, warnings: res.Warnings ?? [] };
    },
    async inspect(id) {
      const c = svc.inspect(id);
      // dockerd shows the links as "/db:/web/db", whatever form they were given in; none: the
      // key stays out (dockerd sends null, which the swagger does not allow for a list)
      const links = inspectLinks(c, svc);
      if (links) c.HostConfig.Links = links;
      else delete c.HostConfig.Links;
      return c;
    },
    list: async () => svc.list(),
    async start(id, o) {
      // API < 1.24 (only with a lowered minimum version): a HostConfig in the start body, as
      // dockerd's deprecated setHostConfig; berth applies the fields `docker update` can change.
      const hc = o.hostConfig ?? {};
      const keys = Object.keys(hc).filter((k) => (hc as Record<string, unknown>)[k] !== undefined && (hc as Record<string, unknown>)[k] !== null);
      if (keys.length > 0) {
        const unsupported = keys.filter((k) => !START_UPDATABLE.has(k));
        if (unsupported.length > 0) throw new InvalidParameterError(`host configuration at start is deprecated; berth applies only resource limits and the restart policy there, not: ${unsupported.join(', ')}`);
        await svc.update(id, hc);
      }
      await svc.start(id, { ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}), ...(o.checkpointDir ? { checkpointDir: o.checkpointDir } : {}) });
    },
    stop: (id, o) => svc.stop(id, { ...(o.timeout !== undefined ? { timeout: o.timeout } : {}), ...(o.signal ? { signal: o.signal } : {}) }),
    restart: (id, o) => svc.restart(id, { ...(o.timeout !== undefined ? { timeout: o.timeout } : {}), ...(o.signal ? { signal: o.signal } : {}) }),
    kill: (id, signal) => svc.kill(id, signal ?? 'SIGKILL'),
    wait: (id, condition, signal) => svc.wait(id, condition, { signal }),
    remove: (id, o) => (o.link ? removeLink(svc, id) : svc.remove(id, { force: o.force, volumes: o.volumes })),
    rename: (id, name) => svc.rename(id, name),
    pause: (id) => svc.pause(id),
    unpause: (id) => svc.unpause(id),
    async resize(id, size) {
      const rec = svc.get(id);
      if (!rec.State.Running) throw new ConflictError(`Container ${rec.ID} is not running`);
      const b = svc.backendOf(rec);
      if (!b.resize) throw new ConflictError(`runtime backend ${b.name} cannot resize`);
      await b.resize(rec.ID, size);
    },
    async update(id, resources) {
      const r = await svc.update(id, resources);
      return { warnings: r.Warnings ?? [] };
    },
    logs: (id, o) => logs(id, o),
    attach,
    async top(id, psArgs) {
      const rec = svc.get(id);
      return top(rec.State.Pid, rec.State.Running && !rec.State.Restarting, psArgs, rec.ID);
    },
    ...(imageService
      ? {
          async sizes(id: string) {
            const rec = svc.get(id);
            // A plain root filesystem (no image) has no container layer to measure.
            if (!rec.Image) return { SizeRw: 0, SizeRootFs: 0 };
            return imageService.rootfsSizes(rec.ID);
          },
        }
      : {}),
    async mountRootfs(id) {
      const rec = svc.get(id);
      // A rootfs the image store prepared: lease its mount (mounting it when the container
      // does not run); the store counts holders, so a start or another request racing with
      // this one keeps the mount until the last of them lets go.
      const lease = imageService ? await imageService.acquireRootfs(rec.ID) : null;
      if (lease) return lease;
      // A plain root filesystem is a directory: nothing to mount.
      if (rec.BaseFS) return { path: rec.BaseFS, release: async () => undefined };
      throw new ConflictError(`container ${rec.ID} has no root filesystem`);
    },
    async changes(id) {
      const rec = svc.get(id);
      if (!imageService || !rec.Image) throw new NotImplementedError(`container ${rec.ID} runs on a plain root filesystem: there is no image to compare with`);
      return imageService.containerChanges(rec.ID);
    },
    async prune(filters) {
      const deleted: string[] = [];
      let reclaimed = 0;
      const until = [...(filters.get('until') ?? [])][0];
      const untilMs = until ? parseUntil(until) : null;
      for (const c of svc.list()) {
        if (c.State.Running || c.State.Status === 'removing') continue;
        if (untilMs !== null && Date.parse(c.Created) >= untilMs) continue;
        if (!labelsMatch(c, filters.get('label'), true) || !labelsMatch(c, filters.get('label!'), false)) continue;
        // SpaceReclaimed: the writable layer's bytes, measured before the removal (as dockerd).
        const size = imageService && c.Image ? await imageService.rootfsSizes(c.ID).then((s) => s.SizeRw, () => 0) : 0;
        try {
          await svc.remove(c.ID, {});
          deleted.push(c.ID);
          reclaimed += size;
        } catch {
          // raced with a start or another removal: leave it
        }
      }
      return { ContainersDeleted: deleted, SpaceReclaimed: reclaimed };
    },
  };

  const exec: ExecBackend = {
    async create(container, req) {
      const r = await engine.execs.create(container, {
        Cmd: req.Cmd,
        ...(req.User ? { User: req.User } : {}),
        ...(req.Privileged !== undefined ? { Privileged: req.Privileged } : {}),
        ...(req.Tty !== undefined ? { Tty: req.Tty } : {}),
        ...(req.ConsoleSize ? { ConsoleSize: req.ConsoleSize } : {}),
        ...(req.AttachStdin !== undefined ? { AttachStdin: req.AttachStdin } : {}),
        ...(req.AttachStdout !== undefined ? { AttachStdout: req.AttachStdout } : {}),
        ...(req.AttachStderr !== undefined ? { AttachStderr: req.AttachStderr } : {}),
        ...(req.DetachKeys ? { DetachKeys: req.DetachKeys } : {}),
        ...(req.Env ? { Env: req.Env } : {}),
        ...(req.WorkingDir ? { WorkingDir: req.WorkingDir } : {}),
      });
      return { id: r.Id };
    },
    async start(execId, o, io, signal) {
      const session = await engine.execs.start(execId, { streams: o.detach ? {} : { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr } });
      if (o.detach) return;
      await Promise.race([session.exited.catch(() => undefined), new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r())))]);
    },
    resize: (execId, size) => engine.execs.resize(execId, size),
    async inspect(execId) {
      const e = engine.execs.inspect(execId);
      return {
        ID: e.ID,
        Running: e.Running,
        ExitCode: e.ExitCode,
        ProcessConfig: e.ProcessConfig,
        OpenStdin: e.OpenStdin,
        OpenStderr: e.OpenStderr,
        OpenStdout: e.OpenStdout,
        CanRemove: e.CanRemove,
        ContainerID: e.ContainerID,
        DetachKeys: e.DetachKeys,
        Pid: e.Pid,
      };
    },
  };

  let eventListeners = 0;
  const events: EventSource = {
    subscribe(sinceNano, listener) {
      const past = sinceNano === null ? [] : engine.events.history({ sinceNano: BigInt(Math.floor(sinceNano)) });
      const off = engine.events.subscribe(listener);
      eventListeners++;
      let subscribed = true;
      const unsubscribe = () => {
        if (!subscribed) return;
        subscribed = false;
        eventListeners--;
        off();
      };
      return { past, unsubscribe };
    },
    listeners: () => eventListeners,
  };

  const images: ImageLookup = {
    async count() {
      const s = imageStore as (ImageStore & { list?: () => Promise<unknown[]> | unknown[] }) | undefined;
      if (s?.list) return (await s.list()).length;
      return 0;
    },
    async resolve(ref) {
      return imageStore ? ((await imageStore.resolve(ref))?.id ?? null) : null;
    },
  };

  return { facts: () => opts.facts, containers, exec, events, images, imageService: () => imageService, engineWarnings: () => svc.unreadable.warnings() };
}

/** The directory of `image` under `rootfsDir` (`/`, `:` and `@` become `_`); null for a name that would leave it. */
export function rootfsDirOf(rootfsDir: string, image: string): string | null {
  const name = image.replace(/[/:@]/g, '_');
  if (name === '' || name === '.' || name === '..') return null;
  return path.join(rootfsDir, name);
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function parseUntil(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = /^(\d+)(s|m|h)$/.exec(v);
  if (d) return Date.now() - Number(d[1]) * { s: 1e3, m: 6e4, h: 36e5 }[d[2] as 's' | 'm' | 'h'];
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new InvalidParameterError(`invalid until filter ${v}`);
  return ms;
}

function labelsMatch(c: ContainerRecord, want: Set<string> | undefined, positive: boolean): boolean {
  if (!want || want.size === 0) return true;
  const l = c.Config.Labels ?? {};
  for (const f of want) {
    const eq = f.indexOf('=');
    const hit = eq < 0 ? f in l : l[f.slice(0, eq)] === f.slice(eq + 1);
    if (positive && !hit) return false;
    if (!positive && hit) return false;
  }
  return true;
}
