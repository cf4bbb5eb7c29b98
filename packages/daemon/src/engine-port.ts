/**
 * The daemon's port implemented over @berth/core's Engine: a thin mapper from the routes'
 * calls to the engine's services (containers, execs, logs, attach, prune, events) and the
 * image store when a plugin registers one. What a container does lives in the engine.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import {
  ConflictError,
  IImageStore,
  InvalidParameterError,
  NotFoundError,
  NotImplementedError,
  inspectLinks,
  removeLink,
  type Engine,
  type ImageStore,
  type InjectionToken,
} from '@berth/core';
import type { CheckpointPort, ContainerPort, CreateContainerRequest, EnginePort, DaemonFacts, EventSource, ExecPort, ImageLookup, NetworkPort, VolumePort } from './port.js';
import type { NetworkService } from '@berth/plugin-network-cni';
import type { VolumeService } from '@berth/plugin-volumes';
import { top } from './top.js';
import { IImageService, type ImageService } from '@berth/image-store';

export interface EnginePortOptions {
  facts: DaemonFacts;
  /** berth-only: subdirectories of this directory are root filesystems usable by image name. */
  rootfsDir?: string;
}

const ROOTFS_LABEL = 'io.berth.rootfs';

const START_UPDATABLE = new Set(['CpuShares', 'Memory', 'CpuPeriod', 'CpuQuota', 'CpuRealtimePeriod', 'CpuRealtimeRuntime', 'CpusetCpus', 'CpusetMems', 'MemoryReservation', 'MemorySwap', 'KernelMemoryTCP', 'BlkioWeight', 'PidsLimit', 'NanoCpus', 'RestartPolicy']);

export function enginePort(engine: Engine, opts: EnginePortOptions): EnginePort {
  const svc = engine.containers;
  const imageStore: ImageStore | undefined = engine.container.isRegistered(IImageStore, true) ? engine.container.resolve(IImageStore) : undefined;
  const imageService: ImageService | undefined = engine.container.isRegistered(IImageService, true) ? engine.container.resolve(IImageService) : undefined;

  const containers: ContainerPort = {
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
    list: async (keep, view) => svc.list(keep, view),
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
    resize: (id, size) => engine.attach.resize(id, size),
    async update(id, resources) {
      const r = await svc.update(id, resources);
      return { warnings: r.Warnings ?? [] };
    },
    logs: (id, o) => engine.logs.read(id, o),
    attach: (id, o, io, signal) => engine.attach.attach(id, o, io, signal),
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
    async mountRootfs(id, o = {}) {
      const rec = svc.get(id);
      // A rootfs the image store prepared: lease its mount (mounting it when the container
      // does not run); the store counts holders, so a start or another request racing with
      // this one keeps the mount until the last of them lets go.
      let root = imageService ? await imageService.acquireRootfs(rec.ID) : null;
      // A plain root filesystem is a directory: nothing to mount.
      if (!root && rec.BaseFS) root = { path: rec.BaseFS, release: async () => undefined };
      if (!root) throw new ConflictError(`container ${rec.ID} has no root filesystem`);
      const vs = o.volumes ? volumePort(engine) : undefined;
      if (!vs) return root;
      // then its volumes, through their drivers; given back before the rootfs (dockerd's order)
      const rootLease = root;
      const vl = await vs.leaseMounts(rec).catch(async (err: unknown) => {
        await rootLease.release().catch(() => undefined);
        throw err;
      });
      return {
        path: rootLease.path,
        volumes: vl.sources,
        release: async () => {
          try {
            await vl.release();
          } finally {
            await rootLease.release();
          }
        },
      };
    },
    async changes(id) {
      const rec = svc.get(id);
      if (!imageService || !rec.Image) throw new NotImplementedError(`container ${rec.ID} runs on a plain root filesystem: there is no image to compare with`);
      return imageService.containerChanges(rec.ID);
    },
    prune: (filters) => engine.pruneContainers(filters),
    explain: (id) => engine.explain(id),
  };

  const exec: ExecPort = {
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
      const past = sinceNano === null ? [] : engine.events.history({ sinceNano });
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

  // Only a build whose plugins store checkpoints has the checkpoint API (core checkpoint.ts).
  const cps = engine.checkpoints;
  const checkpoints: CheckpointPort | undefined = cps.available
    ? { create: (id, o) => cps.create(id, o), list: (id, dir) => cps.list(id, dir), remove: (id, name, dir) => cps.remove(id, name, dir) }
    : undefined;

  const networks = networkPort(engine);
  const volumes = volumePort(engine);
  return {
    facts: () => opts.facts, containers, exec, events, images, imageService: () => imageService, engineWarnings: () => svc.unreadable.warnings(),
    ...(checkpoints ? { checkpoints } : {}), ...(networks ? { networks } : {}), ...(volumes ? { volumes } : {}),
  };
}

/** The volumes plugin's service, found by its DI key (a type-only import: a build without the plugin has no /volumes routes). */
const VOLUME_SERVICE: InjectionToken<VolumeService> = Symbol.for('io.berth.volumes.v1');

function volumePort(engine: Engine): VolumePort | undefined {
  return engine.container.isRegistered(VOLUME_SERVICE, true) ? engine.container.resolve(VOLUME_SERVICE) : undefined;
}

/**
 * The network-cni plugin's service, found by its DI key (a type-only import: a build without
 * the plugin has no /networks routes). Connect and disconnect change the container's record
 * (NetworkSettings.Networks) under its lock, attaching or detaching a running container at
 * once, as dockerd (the service's connect/disconnect).
 */
const NETWORK_SERVICE: InjectionToken<NetworkService> = Symbol.for('io.berth.networks.v1');

function networkPort(engine: Engine): NetworkPort | undefined {
  if (!engine.container.isRegistered(NETWORK_SERVICE, true)) return undefined;
  const nets = engine.container.resolve(NETWORK_SERVICE);
  const svc = engine.containers;
  return {
    create: (req) => nets.create(req),
    list: (f) => nets.list(f),
    inspect: (ref) => nets.inspect(ref),
    remove: (ref) => nets.remove(ref),
    prune: (f) => nets.prune(f),
    // under the container's lock, as start and stop: a connect never races a stop's release
    connect: (ref, container, endpoint) =>
      svc.withRecordLocked(container, async (rec) => {
        await nets.connect(rec, ref, endpoint);
        await svc.save(rec);
      }),
    disconnect: (ref, container, force) =>
      svc.withRecordLocked(container, async (rec) => {
        if (await nets.disconnect(rec, ref, force)) await svc.save(rec);
      }),
  };
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
