/**
 * The volume service (moby volume/service): names, metadata and drivers. A volume's record is
 * `<data-root>/volumes/<name>/volume.json` (the local driver keeps its data beside it, in
 * `_data`). Who uses a volume is read from the container records (their `Mounts`), never kept
 * in a second ledger: the records are saved before anything runs, so "in use" survives a
 * daemon SIGKILL. Calls for one name run one after another (KeyedLock). Beside the records,
 * the mounts this daemon made and has not released yet (a start's, from its `beforeMount` on,
 * before its record says running; a docker cp request's, `leaseMounts`) are counted in memory,
 * as dockerd's local driver counts them: the last release unmounts.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ConflictError,
  InvalidParameterError,
  KeyedLock,
  NotFoundError,
  atomicWriteFile,
  errorMessage,
  filterValues,
  matchLabels,
  matchNoLabel,
  verifyVolumeName,
  type ContainerLookup,
  type DockerFilters,
  type EventBus,
  type Logger,
  type MountPoint,
} from '@berth/core';
import { LocalDriver } from './local.js';
import { RemoteDriver, findPluginSocket } from './remote.js';
import { ANONYMOUS_LABEL, type VolumeDriver, type VolumeInfo, type VolumeMeta } from './types.js';

const META_FILE = 'volume.json';

export interface VolumeServiceOptions {
  /** `<data-root>/volumes`. */
  root: string;
  /** Where volume plugins are looked for (sockets and spec files). */
  pluginDirs: readonly string[];
  /** The engine's containers (ready once the engine has started). */
  containers: () => ContainerLookup;
  logger: Logger;
  /** Where `volume` events go (dockerd's create, mount, unmount, destroy; the actor is the volume's name). */
  events?: Pick<EventBus, 'publish'>;
}

export interface CreateVolumeRequest {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

/** A container's volumes mounted for one request (`VolumeService.leaseMounts`). */
export interface VolumeLease {
  /** Host path of each mounted volume, by its destination in the container (as in `Mounts`). */
  readonly sources: ReadonlyMap<string, string>;
  /** Unmount them through their drivers (once; later calls do nothing). */
  release(): Promise<void>;
}

/** dockerd's CreatedAt: RFC 3339 with seconds. */
const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d+Z$/, 'Z');

function checkStringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new InvalidParameterError(`invalid JSON: ${what} must be a map of strings`);
  }
  return { ...(v as Record<string, string>) };
}

/** Bytes under `p` (files and links, not following links); -1 when it cannot be read. */
async function diskUsage(p: string): Promise<number> {
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      const st = await lstat(full);
      if (e.isDirectory()) await walk(full);
      else total += st.size;
    }
  };
  try {
    await walk(p);
    return total;
  } catch {
    return -1;
  }
}

export class VolumeService {
  readonly local: LocalDriver;
  private readonly metas = new Map<string, VolumeMeta>();
  private readonly remotes = new Map<string, RemoteDriver>();
  private readonly lock = new KeyedLock();
  /** Volume name → the driver mount IDs (a container's, a request's) mounted and not released yet. */
  private readonly active = new Map<string, Set<string>>();
  private loaded: Promise<void> | undefined;

  constructor(private readonly o: VolumeServiceOptions) {
    this.local = new LocalDriver({
      root: o.root,
      options: (name) => this.metas.get(name)?.Options ?? {},
      inUse: (name, except) => [...(this.active.get(name) ?? [])].some((id) => id !== except) || this.users(name, { running: true }).some((id) => id !== except),
    });
  }

  /** Read the records once (lazily: the first call of any method). */
  private load(): Promise<void> {
    this.loaded ??= (async () => {
      await mkdir(this.o.root, { recursive: true, mode: 0o701 });
      for (const name of await readdir(this.o.root)) {
        const raw = await readFile(join(this.o.root, name, META_FILE), 'utf8').catch(() => null);
        if (raw === null) continue;
        try {
          this.metas.set(name, JSON.parse(raw) as VolumeMeta);
        } catch (err) {
          this.o.logger.warn('unreadable volume record skipped', { volume: name, error: errorMessage(err) });
        }
      }
    })();
    return this.loaded;
  }

  /** The driver called `name`: `local`, or a volume plugin found in the plugin dirs (404 when none). */
  async driver(name: string): Promise<VolumeDriver> {
    if (name === '' || name === 'local') return this.local;
    let d = this.remotes.get(name);
    if (!d) {
      const socket = await findPluginSocket(name, this.o.pluginDirs);
      if (!socket) throw new NotFoundError(`error looking up volume plugin ${name}: plugin "${name}" not found`);
      d = new RemoteDriver(name, socket);
      await d.activate();
      this.remotes.set(name, d);
    }
    return d;
  }

  /** IDs of the containers whose Mounts use the volume (`running`: only those running or paused). */
  users(name: string, opts: { running?: boolean } = {}): string[] {
    return this.o
      .containers()
      .list()
      .filter((c) => (!opts.running || c.State.Running || c.State.Paused) && c.Mounts.some((m) => m.Type === 'volume' && m.Name === name))
      .map((c) => c.ID);
  }

  /** The record of a volume; NotFoundError `get NAME: no such volume` (dockerd's text). */
  async meta(name: string): Promise<VolumeMeta> {
    await this.load();
    const m = this.metas.get(name);
    if (!m) throw new NotFoundError(`get ${name}: no such volume`);
    return m;
  }

  async exists(name: string): Promise<boolean> {
    await this.load();
    return this.metas.has(name);
  }

  /**
   * POST /volumes/create: an existing name is returned as it is (dockerd), unless another
   * driver is asked for (409); no name → a random 64-hex one.
   */
  async create(req: CreateVolumeRequest): Promise<VolumeInfo> {
    await this.load();
    if (req.Name !== undefined && req.Name !== null && typeof req.Name !== 'string') throw new InvalidParameterError('invalid JSON: Name must be a string');
    if (req.Driver !== undefined && req.Driver !== null && typeof req.Driver !== 'string') throw new InvalidParameterError('invalid JSON: Driver must be a string');
    const name = req.Name || randomBytes(32).toString('hex');
    verifyVolumeName(name);
    const driverName = req.Driver || 'local';
    const opts = checkStringMap(req.DriverOpts, 'DriverOpts');
    const labels = checkStringMap(req.Labels, 'Labels');
    return this.lock.run(name, async () => {
      const have = this.metas.get(name);
      if (have) {
        if (req.Driver && have.Driver !== driverName) {
          throw new ConflictError(`volume name "${name}" already exists, but with driver "${have.Driver}" instead of "${driverName}"`);
        }
        return this.info(have);
      }
      const driver = await this.driver(driverName);
      await driver.create(name, opts);
      const meta: VolumeMeta = { Name: name, Driver: driver.name, Labels: labels, Options: opts, CreatedAt: rfc3339(new Date()) };
      try {
        await mkdir(join(this.o.root, name), { recursive: true, mode: 0o701 });
        await atomicWriteFile(join(this.o.root, name, META_FILE), JSON.stringify(meta));
      } catch (err) {
        await driver.remove(name).catch(() => {});
        throw err;
      }
      this.metas.set(name, meta);
      this.o.events?.publish('volume', 'create', name, { driver: meta.Driver });
      return this.info(meta);
    });
  }

  /** An anonymous volume (a container's `-v /path` or image VOLUME): a random name and dockerd's anonymous label. */
  createAnonymous(driver: string, opts: Record<string, string> = {}, labels: Record<string, string> = {}): Promise<VolumeInfo> {
    return this.create({ Driver: driver, DriverOpts: opts, Labels: { ...labels, [ANONYMOUS_LABEL]: '' } });
  }

  /** GET /volumes/{name}. */
  async inspect(name: string, usage = false): Promise<VolumeInfo> {
    return this.info(await this.meta(name), usage);
  }

  private async info(m: VolumeMeta, usage = false): Promise<VolumeInfo> {
    let mountpoint = '';
    let scope: 'local' | 'global' = 'local';
    let status: Record<string, unknown> | undefined;
    try {
      const d = await this.driver(m.Driver);
      mountpoint = await d.path(m.Name);
      scope = (await d.capabilities()).scope;
      if (d !== this.local) status = (await d.get(m.Name))?.status;
    } catch (err) {
      this.o.logger.warn('volume driver did not answer for inspect', { volume: m.Name, driver: m.Driver, error: errorMessage(err) });
    }
    const out: VolumeInfo = { CreatedAt: m.CreatedAt, Driver: m.Driver, Labels: { ...m.Labels }, Mountpoint: mountpoint, Name: m.Name, Options: { ...m.Options }, Scope: scope };
    if (status) out.Status = status;
    if (usage) {
      out.UsageData = { Size: m.Driver === 'local' && !m.Options.type ? await diskUsage(mountpoint) : -1, RefCount: this.users(m.Name).length };
    }
    return out;
  }

  /** GET /volumes: filters dangling, name, label, label!, driver. */
  async list(filters?: DockerFilters): Promise<{ Volumes: VolumeInfo[]; Warnings: string[] | null }> {
    await this.load();
    const out: VolumeInfo[] = [];
    for (const m of [...this.metas.values()].sort((a, b) => a.Name.localeCompare(b.Name))) {
      if (!this.matches(m, filters)) continue;
      out.push(await this.info(m));
    }
    return { Volumes: out, Warnings: null };
  }

  private matches(m: VolumeMeta, f: DockerFilters | undefined): boolean {
    if (!f) return true;
    const dangling = filterValues(f, 'dangling');
    if (dangling.length) {
      const want = dangling.map((v) => {
        if (['true', '1'].includes(v)) return true;
        if (['false', '0'].includes(v)) return false;
        throw new InvalidParameterError(`invalid filter 'dangling=${v}'`);
      });
      if (!want.includes(this.users(m.Name).length === 0)) return false;
    }
    const names = filterValues(f, 'name');
    if (names.length && !names.some((n) => m.Name.includes(n))) return false;
    const drivers = filterValues(f, 'driver');
    if (drivers.length && !drivers.includes(m.Driver)) return false;
    if (!matchLabels(f.get('label'), m.Labels)) return false;
    if (!matchNoLabel(f.get('label!'), m.Labels)) return false;
    return true;
  }

  /**
   * DELETE /volumes/{name}: in use → 409 naming the containers (force does not override
   * that, as in dockerd); `force` ignores a missing volume and a driver that fails to remove
   * it (the record goes anyway).
   */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.load();
    await this.lock.run(name, async () => {
      const m = this.metas.get(name);
      if (!m) {
        if (opts.force) return;
        throw new NotFoundError(`get ${name}: no such volume`);
      }
      const users = this.users(name);
      if (users.length) throw new ConflictError(`remove ${name}: volume is in use - [${users.join(', ')}]`);
      try {
        await (await this.driver(m.Driver)).remove(name);
      } catch (err) {
        if (!opts.force) throw err;
        this.o.logger.warn('volume driver failed to remove a volume; its record is removed (force)', { volume: name, error: errorMessage(err) });
      }
      this.metas.delete(name);
      await rm(join(this.o.root, name), { recursive: true, force: true });
      this.o.events?.publish('volume', 'destroy', name, { driver: m.Driver });
    });
  }

  /**
   * POST /volumes/prune: unused volumes — anonymous ones only unless `all` (dockerd ≥ API
   * 1.42; `all=true` filter) — matching the label filters.
   */
  async prune(filters: DockerFilters | undefined, all: boolean): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    await this.load();
    const deleted: string[] = [];
    let space = 0;
    for (const m of [...this.metas.values()]) {
      if (!all && !(ANONYMOUS_LABEL in m.Labels)) continue;
      if (!matchLabels(filters?.get('label'), m.Labels) || !matchNoLabel(filters?.get('label!'), m.Labels)) continue;
      if (this.users(m.Name).length) continue;
      const size = m.Driver === 'local' && !m.Options.type ? await diskUsage(this.local.dataPath(m.Name)) : 0;
      try {
        await this.remove(m.Name);
      } catch (err) {
        this.o.logger.warn('prune could not remove a volume', { volume: m.Name, error: errorMessage(err) });
        continue;
      }
      deleted.push(m.Name);
      if (size > 0) space += size;
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: space };
  }

  /** /system/df: every volume with UsageData. */
  async usage(): Promise<VolumeInfo[]> {
    await this.load();
    const out: VolumeInfo[] = [];
    for (const m of this.metas.values()) out.push(await this.info(m, true));
    return out;
  }

  /**
   * Mount a volume for a container; returns the host path to bind. `driverId` is the ID the
   * driver counts the mount under (the container's for its start, a lease's for a request).
   * `mount` event attributes as dockerd's.
   */
  async mount(name: string, containerId: string, at: { destination: string; rw: boolean }, driverId = containerId): Promise<string> {
    const m = await this.meta(name);
    // counted before the driver mounts: a release meanwhile must not unmount what this one is about to use
    const ids = this.active.get(name) ?? new Set<string>();
    this.active.set(name, ids.add(driverId));
    let p: string;
    try {
      p = await (await this.driver(m.Driver)).mount(name, driverId);
    } catch (err) {
      this.deactivate(name, driverId);
      throw err;
    }
    this.o.events?.publish('volume', 'mount', name, { container: containerId, destination: at.destination, driver: m.Driver, propagation: '', 'read/write': String(at.rw) });
    return p;
  }

  async unmount(name: string, containerId: string, driverId = containerId): Promise<void> {
    const m = await this.meta(name);
    this.deactivate(name, driverId);
    await (await this.driver(m.Driver)).unmount(name, driverId);
    this.o.events?.publish('volume', 'unmount', name, { container: containerId, driver: m.Driver });
  }

  /**
   * The container's volumes mounted through their drivers for one request on its files, as
   * dockerd's openContainerFS does for docker cp (setupMounts … UnmountVolumes): a tmpfs or
   * bind-device local volume, or a plugin's, is then reached where it really is, not at the
   * empty `_data` (or no path) it has unmounted. Each lease mounts under an ID of its own, so
   * a driver counts it apart from the container's start and the last holder unmounts; a mount
   * that fails releases the ones made before it.
   */
  async leaseMounts(container: { readonly ID: string; readonly Mounts: readonly Readonly<MountPoint>[] }): Promise<VolumeLease> {
    const leaseId = randomBytes(32).toString('hex');
    const held: Array<Readonly<MountPoint> & { Name: string }> = [];
    const sources = new Map<string, string>();
    let released: Promise<void> | undefined;
    const release = () =>
      (released ??= (async () => {
        for (const mp of held.reverse()) {
          await this.unmount(mp.Name, container.ID, leaseId).catch((err: unknown) => {
            this.o.logger.warn('volume unmount after a request failed', { container: container.ID, volume: mp.Name, error: errorMessage(err) });
          });
        }
      })());
    try {
      for (const mp of container.Mounts) {
        if (mp.Type !== 'volume' || !mp.Name) continue;
        sources.set(mp.Destination, await this.mount(mp.Name, container.ID, { destination: mp.Destination, rw: mp.RW }, leaseId));
        held.push({ ...mp, Name: mp.Name });
      }
    } catch (err) {
      await release();
      throw err;
    }
    return { sources, release };
  }

  private deactivate(name: string, driverId: string): void {
    const ids = this.active.get(name);
    ids?.delete(driverId);
    if (ids?.size === 0) this.active.delete(name);
  }

  /** Where a volume's data shows on the host (inspect's Mounts[].Source). */
  async pathOf(name: string): Promise<string> {
    const m = await this.meta(name);
    return (await this.driver(m.Driver)).path(name);
  }
}
