/**
 * The image service the daemon's /images/* routes call, and the core's `IImageStore`
 * (resolve): the one entry to the image store. Docker's semantics and messages: list filters,
 * inspect, history, tag here; the rest delegated along the service's seams, each its own
 * package-internal module —
 *  - service-delete.ts: delete with conflicts (dockerd daemon/images/image_delete.go), prune;
 *  - service-writers.ts: the layer writers (load, save, import, commit, buildImage);
 *  - service-registry.ts: the registry half (pull, push, login) with JSON progress;
 *  - service-rootfs.ts: container changes; the per-container root filesystems are
 *    RootfsManager's (rootfs.ts), delegated to one call each below.
 */
import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  InvalidParameterError,
  NotFoundError,
  checkFilterNames,
  filterValues,
  matchLabels,
  parseDockerTimeMs,
  type ContainerConfig,
  type DockerFilters,
  type ImageStore as CoreImageStore,
  type ResolvedImage,
} from '@berth/core';
import type { LoadedImage } from './archive.js';
import { chainIds, type Digest } from './digest.js';
import { LocalImageStore, type ImageRecord } from './images.js';
import { imageContainerConfig } from './merge.js';
import { hostPlatform, platformString } from './platform.js';
import type { ProgressFn } from './progress.js';
import { familiarString, matchReferencePattern, parseReference, type Reference } from './reference.js';
import type { AuthConfig } from './registry/auth.js';
import { RegistryClient, type RegistryClientOptions } from './registry/client.js';
import type { MountLease } from './mountrefs.js';
import { RootfsManager, type RootfsDriver } from './rootfs.js';
import { ImageDeleter, type ContainerLister, type DeleteItem } from './service-delete.js';
import { boolFilter, createdSeconds } from './service-filters.js';
import { ImageRegistryOps } from './service-registry.js';
import { containerChanges } from './service-rootfs.js';
import { ImageWriters } from './service-writers.js';
import type { HistoryEntry } from './types.js';

export type { ContainerImageUsage, ContainerLister, DeleteItem } from './service-delete.js';

export interface ImageServiceOptions {
  dataRoot: string;
  /** Lists the engine's containers; without it no image counts as in use. */
  containers?: ContainerLister;
  rootfsDriver?: RootfsDriver | 'auto';
  registry?: RegistryClientOptions;
}

export interface ImageSummary {
  Id: string;
  ParentId: string;
  RepoTags: string[];
  RepoDigests: string[];
  Created: number;
  Size: number;
  SharedSize: number;
  Labels: Record<string, string>;
  Containers: number;
}

export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  Author: string;
  Config: ContainerConfig;
  Architecture: string;
  Variant?: string;
  Os: string;
  OsVersion?: string;
  Size: number;
  GraphDriver: { Name: string; Data: Record<string, string> | null };
  RootFS: { Type: string; Layers: string[] };
  Metadata: { LastTagTime: string };
}

export interface HistoryItem {
  Id: string;
  Created: number;
  CreatedBy: string;
  Tags: string[] | null;
  Size: number;
  Comment: string;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Both the daemon's image service and the core's IImageStore. */
export class ImageService implements CoreImageStore {
  readonly store: LocalImageStore;
  readonly rootfs: RootfsManager;
  readonly registry: RegistryClient;
  private readonly containers: ContainerLister;
  private readonly deleter: ImageDeleter;
  private readonly writers: ImageWriters;
  private readonly registryOps: ImageRegistryOps;

  constructor(opts: ImageServiceOptions) {
    this.store = new LocalImageStore(opts.dataRoot);
    this.rootfs = new RootfsManager(this.store, opts.dataRoot, { driver: opts.rootfsDriver ?? 'auto' });
    this.registry = new RegistryClient(opts.registry);
    this.containers = opts.containers ?? (() => []);
    this.deleter = new ImageDeleter(this.store, this.rootfs, this.containers);
    this.writers = new ImageWriters(this.store, this.rootfs);
    this.registryOps = new ImageRegistryOps(this.store, this.rootfs, this.registry);
  }


  /**
   * Opens the store, repairing what a crash or a corrupt file left (src/recovery.ts) and
   * sweeping what a killed load, commit or create left: root filesystems of creates that
   * never finished (with `isContainer`: also those of containers that were never saved) and
   * layers no image or container uses.
   */
  async init(opts: { isContainer?: (id: string) => Promise<boolean> } = {}): Promise<void> {
    await this.store.init();
    await this.rootfs.init();
    await fsp.mkdir(`${this.store.root}/tmp`, { recursive: true });
    const pins = await this.rootfs.sweep({ warn: (m) => void this.store.warnings.push(m), ...opts });
    if (pins) await this.store.gcLayers(pins);
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /** What the start-up checks skipped or repaired (corrupt files, src/recovery.ts), for the log and /info's Warnings. */
  warnings(): string[] {
    return [...this.store.warnings];
  }

  // ---- core contract ----

  async resolve(ref: string): Promise<ResolvedImage | null> {
    try {
      const id = await this.store.resolve(ref);
      return { id, config: await this.store.containerConfig(id) };
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof InvalidParameterError) return null;
      throw err;
    }
  }

  /** Resolves a name to an image ID; NotFound "No such image: x". */
  async imageId(name: string): Promise<Digest> {
    return this.store.resolve(name);
  }

  async getImage(name: string): Promise<ImageRecord> {
    return this.store.get(await this.store.resolve(name));
  }

  // ---- list / inspect / history ----

  private repoTags(id: Digest): string[] {
    return this.store.referencesOf(id).filter((r) => r.tag).map((r) => familiarString(r));
  }

  private repoDigests(id: Digest): string[] {
    return this.store
      .referencesOf(id)
      .filter((r) => r.digest)
      .map((r) => familiarString({ domain: r.domain, path: r.path, digest: r.digest! }));
  }

  async list(opts: { all?: boolean; filters?: DockerFilters; sharedSize?: boolean; containers?: boolean } = {}): Promise<ImageSummary[]> {
    const f: DockerFilters = opts.filters ?? new Map();
    checkFilterNames(f, ['dangling', 'label', 'reference', 'before', 'since', 'until']);
    const dangling = boolFilter(f, 'dangling');
    const [beforeRef] = filterValues(f, 'before');
    const [sinceRef] = filterValues(f, 'since');
    const before = beforeRef ? await this.store.get(await this.store.resolve(beforeRef)) : null;
    const since = sinceRef ? await this.store.get(await this.store.resolve(sinceRef)) : null;
    const until = parseDockerTimeMs(filterValues(f, 'until')[0], 'until', Date.now());
    const reference = filterValues(f, 'reference');
    const usage = opts.containers ? await this.containers() : [];
    const ids = await this.store.ids();
    const parents = new Set<string>();
    const records: ImageRecord[] = [];
    for (const id of ids) {
      try {
        const r = await this.store.get(id);
        records.push(r);
        if (r.meta.parent) parents.add(r.meta.parent);
      } catch {
        // half-deleted image: skip
      }
    }
    const out: ImageSummary[] = [];
    for (const r of records) {
      const refs = this.store.referencesOf(r.id);
      const tags = refs.filter((x) => x.tag);
      const created = createdSeconds(r.config);
      if (dangling === true && tags.length > 0) continue;
      if (dangling === false && tags.length === 0) continue;
      // intermediate images (no tags, with children) are hidden unless all
      if (!opts.all && tags.length === 0 && parents.has(r.id) && dangling === undefined) continue;
      if (!matchLabels(f.get('label'), r.config.config?.Labels)) continue;
      if (reference.length && !refs.some((ref) => reference.some((p) => matchReferencePattern(ref, p)))) continue;
      if (before && !(created < createdSeconds(before.config))) continue;
      if (since && !(created > createdSeconds(since.config))) continue;
      if (until !== null && !(created * 1000 < until)) continue;
      let repoTags = tags.map((t) => familiarString(t));
      if (reference.length) repoTags = tags.filter((t) => reference.some((p) => matchReferencePattern(t, p))).map((t) => familiarString(t));
      out.push({
        Id: r.id,
        ParentId: r.meta.parent ?? '',
        RepoTags: repoTags,
        RepoDigests: this.repoDigests(r.id),
        Created: created,
        Size: r.size,
        SharedSize: -1,
        Labels: r.config.config?.Labels ?? {},
        Containers: opts.containers ? usage.filter((c) => c.image === r.id).length : -1,
      });
    }
    return out.sort((a, b) => b.Created - a.Created || a.Id.localeCompare(b.Id));
  }

  async inspect(name: string): Promise<ImageInspect> {
    const r = await this.getImage(name);
    const chain = r.topLayer ? await this.store.layers.chain(r.topLayer) : [];
    const top = chain[chain.length - 1];
    return {
      Id: r.id,
      RepoTags: this.repoTags(r.id),
      RepoDigests: this.repoDigests(r.id),
      Parent: r.meta.parent ?? '',
      Comment: r.config.comment ?? '',
      Created: r.config.created ?? ZERO_TIME,
      Author: r.config.author ?? '',
      Config: imageContainerConfig(r.config),
      Architecture: r.config.architecture,
      ...(r.config.variant ? { Variant: r.config.variant } : {}),
      Os: r.config.os,
      ...(r.config['os.version'] ? { OsVersion: r.config['os.version'] } : {}),
      Size: r.size,
      GraphDriver: {
        Name: this.rootfs.driver === 'overlay' ? 'overlay2' : 'vfs',
        Data: top
          ? {
              ...(chain.length > 1 ? { LowerDir: chain.slice(0, -1).reverse().map((l) => this.store.layers.diffDir(l.chainId)).join(':') } : {}),
              UpperDir: this.store.layers.diffDir(top.chainId),
              MergedDir: `${this.store.layers.layerDir(top.chainId)}/merged`,
              WorkDir: `${this.store.layers.layerDir(top.chainId)}/work`,
            }
          : null,
      },
      RootFS: { Type: 'layers', Layers: [...r.config.rootfs.diff_ids] },
      Metadata: { LastTagTime: r.meta.lastTagTime ?? ZERO_TIME },
    };
  }

  async history(name: string): Promise<HistoryItem[]> {
    const r = await this.getImage(name);
    const chain = r.topLayer ? await this.store.layers.chain(r.topLayer) : [];
    const hist: HistoryEntry[] = r.config.history?.length
      ? r.config.history
      : r.config.rootfs.diff_ids.map(() => ({ created: r.config.created }));
    let layerIdx = 0;
    const items: HistoryItem[] = hist.map((h) => {
      let size = 0;
      if (!h.empty_layer) {
        size = chain[layerIdx]?.size ?? 0;
        layerIdx++;
      }
      return {
        Id: '<missing>',
        Created: h.created ? Math.floor(Date.parse(h.created) / 1000) || 0 : 0,
        CreatedBy: h.created_by ?? '',
        Tags: null,
        Size: size,
        Comment: h.comment ?? '',
      };
    });
    items.reverse();
    // the top entry is the image itself; parents known to the store are named too
    let cur: Digest | undefined = r.id;
    let i = 0;
    while (cur && i < items.length) {
      items[i].Id = cur;
      const tags = this.repoTags(cur);
      items[i].Tags = tags.length ? tags : null;
      const meta: ImageRecord | null = await this.store.get(cur).catch(() => null);
      const parent: Digest | undefined = meta?.meta.parent;
      if (!parent) break;
      const pr: ImageRecord | null = await this.store.get(parent).catch(() => null);
      if (!pr) break;
      i = items.length - (pr.config.history?.length ?? pr.config.rootfs.diff_ids.length);
      if (i <= 0 || i >= items.length) break;
      cur = parent;
    }
    return items;
  }

  // ---- tag / delete / prune ----

  /** POST /images/{name}/tag?repo=&tag= */
  async tag(source: string, repo: string, tag?: string): Promise<void> {
    const id = await this.store.resolve(source);
    if (!repo) throw new InvalidParameterError('repository name must have at least one component');
    let ref: Reference;
    try {
      ref = parseReference(tag ? `${repo}:${tag}` : repo);
    } catch (err) {
      throw new InvalidParameterError((err as Error).message);
    }
    if (ref.digest) throw new InvalidParameterError('refusing to create a tag with a digest reference');
    await this.store.addReference(ref.tag ? ref : { ...ref, tag: 'latest' }, id);
  }

  /** DELETE /images/{name}?force=&noprune= (dockerd's ImageDelete). */
  remove(name: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteItem[]> {
    return this.deleter.remove(name, opts);
  }

  /** POST /images/prune: dangling images (or all unused ones with dangling=false). */
  prune(opts: { filters?: DockerFilters } = {}): Promise<{ ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number }> {
    return this.deleter.prune(opts);
  }

  // ---- the layer writers (service-writers.ts) ----

  /** POST /images/load: progress gets Docker's JSON messages ("Loaded image: x"). */
  load(src: Readable, opts: { progress?: ProgressFn; quiet?: boolean } = {}): Promise<LoadedImage[]> {
    return this.writers.load(src, opts);
  }

  /** GET /images/get?names= and /images/{name}/get */
  save(names: string[]): Promise<Readable> {
    return this.writers.save(names);
  }

  /** POST /images/create?fromSrc=- (docker import): one layer from a (compressed) tar. */
  import(src: Readable, opts: Parameters<ImageWriters['import']>[1] = {}): Promise<Digest> {
    return this.writers.import(src, opts);
  }

  /** POST /commit: the container's changes as a new layer on top of its image (options: ImageWriters.commit). */
  commit(opts: Parameters<ImageWriters['commit']>[0]): Promise<Digest> {
    return this.writers.commit(opts);
  }

  /** docker build: a new image on `parent` with one history entry and a layer or none (ImageWriters.buildImage). */
  buildImage(opts: Parameters<ImageWriters['buildImage']>[0]): Promise<Digest> {
    return this.writers.buildImage(opts);
  }

  // ---- the registry half (service-registry.ts) ----

  /** POST /images/create?fromImage=&tag=&platform= (docker pull) with JSON progress. */
  pull(fromImage: string, opts: Parameters<ImageRegistryOps['pull']>[1] = {}): Promise<Digest> {
    return this.registryOps.pull(fromImage, opts);
  }

  /** POST /images/{name}/push?tag= (docker push) with JSON progress; all tags of the repository without tag. */
  push(name: string, opts: Parameters<ImageRegistryOps['push']>[1] = {}): Promise<void> {
    return this.registryOps.push(name, opts);
  }

  /** POST /auth */
  login(auth: AuthConfig): Promise<{ Status: string; IdentityToken: string }> {
    return this.registryOps.login(auth);
  }

  // ---- container root filesystems (rootfs.ts, service-rootfs.ts) ----

  createRootfs(containerId: string, image: string, opts: { readonly?: boolean } = {}) {
    return this.rootfs.create(containerId, image, opts);
  }
  mountRootfs(containerId: string): Promise<string> {
    return this.rootfs.mount(containerId);
  }
  unmountRootfs(containerId: string): Promise<void> {
    return this.rootfs.unmount(containerId);
  }
  /**
   * A lease on the container's mounted root filesystem for the duration of one request
   * (archive, export); null for a container whose rootfs the store does not own (plain rootfs).
   */
  async acquireRootfs(containerId: string): Promise<MountLease | null> {
    if (!(await this.rootfs.meta(containerId))) return null;
    return this.rootfs.acquire(containerId);
  }
  removeRootfs(containerId: string): Promise<void> {
    return this.rootfs.remove(containerId);
  }
  rootfsSizes(containerId: string) {
    return this.rootfs.sizes(containerId);
  }

  /** GET /containers/{id}/changes (service-rootfs.ts). */
  containerChanges(containerId: string): Promise<Array<{ Path: string; Kind: 0 | 1 | 2 }>> {
    return containerChanges(this.store, this.rootfs, containerId);
  }

  /** Host platform string (for /info-like answers). */
  platform(): string {
    return platformString(hostPlatform());
  }

  /** Image IDs by chain (for tests and diagnostics). */
  async chainIdsOf(name: string): Promise<Digest[]> {
    const r = await this.getImage(name);
    return chainIds(r.config.rootfs.diff_ids);
  }
}
