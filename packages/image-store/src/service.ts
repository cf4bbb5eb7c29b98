/**
 * The image service the daemon's /images/* routes call, and the core's `IImageStore`
 * (resolve). Docker's semantics and messages: list filters, inspect, history, tag, delete
 * with conflicts (dockerd daemon/images/image_delete.go), prune, import, commit, load, save,
 * pull and push with JSON progress; per-container root filesystems.
 *
 * Size: one facade over the store for every /images/* route; its next seams are the registry
 * half (pull/push/login) and the container root filesystems, to be moved out when they grow.
 */
import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  ConflictError,
  InvalidParameterError,
  NotFoundError,
  NotImplementedError,
  checkFilterNames,
  declareFailpoint,
  failpoint,
  filterValues,
  matchLabels,
  matchNoLabel,
  parseDockerTimeMs,
  shortId,
  ownerToContainer,
  type ContainerConfig,
  type DockerFilters,
  type IdMappings,
  type ImageStore as CoreImageStore,
  type ResolvedImage,
} from '@berth/core';
import { loadArchive, saveImages, type LoadedImage } from './archive.js';
import { applyChanges } from './changes.js';
import { chainIds, hexOf, type Digest } from './digest.js';
import { pullImage, pushImage, pushIntro } from './distribution.js';
import { LocalImageStore, type ImageRecord } from './images.js';
import { destroyed } from './fsutil.js';
import { imageContainerConfig } from './merge.js';
import { hostPlatform, parsePlatform, platformString } from './platform.js';
import { noProgress, type ProgressFn } from './progress.js';
import {
  familiarString,
  matchReferencePattern,
  parseNormalizedNamed,
  parseReference,
  referenceString,
  type Reference,
} from './reference.js';
import type { AuthConfig } from './registry/auth.js';
import { RegistryClient, type RegistryClientOptions } from './registry/client.js';
import type { MountLease } from './mountrefs.js';
import { RootfsManager, type RootfsDriver } from './rootfs.js';
import type { HistoryEntry, ImageConfig, ImageRuntimeConfig } from './types.js';

/** A container as the image service needs to know it (for conflicts and prune). */
export interface ContainerImageUsage {
  id: string;
  /** Image ID (sha256:…) the container was created from. */
  image: string;
  running: boolean;
}

export type ContainerLister = () => Promise<ContainerImageUsage[]> | ContainerImageUsage[];

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

export interface DeleteItem {
  Untagged?: string;
  Deleted?: string;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Crash-consistency tests (issue 10 item 7): a commit killed between its steps. */
const FP_COMMIT_AFTER_LAYER = declareFailpoint('image.commit.afterLayer', 'docker commit: the container diff is registered as a layer, the image is not saved yet');

function boolFilter(f: DockerFilters, key: string): boolean | undefined {
  const v = filterValues(f, key);
  if (v.length === 0) return undefined;
  const vals = new Set(v.map((x) => x.toLowerCase()));
  if ([...vals].some((x) => !['true', 'false', '1', '0'].includes(x))) throw new InvalidParameterError(`invalid filter '${key}=${v[0]}'`);
  return vals.has('true') || vals.has('1');
}

function createdSeconds(c: ImageConfig): number {
  const t = c.created ? Date.parse(c.created) : NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

/** Both the daemon's image service and the core's IImageStore. */
export class ImageService implements CoreImageStore {
  readonly store: LocalImageStore;
  readonly rootfs: RootfsManager;
  readonly registry: RegistryClient;
  private readonly containers: ContainerLister;

  constructor(opts: ImageServiceOptions) {
    this.store = new LocalImageStore(opts.dataRoot);
    this.rootfs = new RootfsManager(this.store, opts.dataRoot, { driver: opts.rootfsDriver ?? 'auto' });
    this.registry = new RegistryClient(opts.registry);
    this.containers = opts.containers ?? (() => []);
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
      const img = await this.store.get(id);
      return { id, config: imageContainerConfig(img.config) };
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

  private async usage(id: Digest): Promise<{ running?: ContainerImageUsage; stopped?: ContainerImageUsage }> {
    const cs = (await this.containers()).filter((c) => c.image === id);
    return { running: cs.find((c) => c.running), stopped: cs.find((c) => !c.running) };
  }

  private isSingleReference(refs: Reference[]): boolean {
    if (refs.length <= 1) return refs.length === 1;
    let single: Reference | null = null;
    const canonical = new Set<string>();
    for (const r of refs) {
      if (r.digest) canonical.add(`${r.domain}/${r.path}`);
      else if (!single) single = r;
      else return false;
    }
    single ??= refs[0];
    return canonical.size === 1 && canonical.has(`${single.domain}/${single.path}`);
  }

  private conflict(id: Digest, hard: boolean, message: string): ConflictError {
    return new ConflictError(`conflict: unable to delete ${shortId(id)} (${hard ? 'cannot be forced' : 'must be forced'}) - ${message}`);
  }

  private async checkConflict(id: Digest, mask: { children: boolean; running: boolean; refs: boolean; stopped: boolean }): Promise<ConflictError | null> {
    if (mask.children && (await this.store.children(id)).length > 0) return this.conflict(id, true, 'image has dependent child images');
    const u = await this.usage(id);
    if (mask.running && u.running) return this.conflict(id, true, `image is being used by running container ${shortId(u.running.id)}`);
    if (mask.refs && this.store.referencesOf(id).length > 0) return this.conflict(id, false, 'image is referenced in multiple repositories');
    if (mask.stopped && u.stopped) return this.conflict(id, false, `image is being used by stopped container ${shortId(u.stopped.id)}`);
    return null;
  }

  /** DELETE /images/{name}?force=&noprune= (dockerd's ImageDelete). */
  async remove(name: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteItem[]> {
    const force = !!opts.force;
    const prune = !opts.noprune;
    const id = await this.store.resolve(name);
    const records: DeleteItem[] = [];
    let refs = this.store.referencesOf(id);
    const isIdPrefix = hexOf(id).startsWith(name.replace(/^sha256:/, '')) && /^(sha256:)?[0-9a-f]+$/.test(name);
    if (!isIdPrefix) {
      if (!force && this.isSingleReference(refs)) {
        const u = await this.usage(id);
        const c = u.running ?? u.stopped;
        if (c) {
          throw new ConflictError(`conflict: unable to remove repository reference "${name}" (must force) - container ${shortId(c.id)} is using its referenced image ${shortId(id)}`);
        }
      }
      let parsed = parseReference(name);
      if (!parsed.tag && !parsed.digest) parsed = { ...parsed, tag: 'latest' };
      const removed = await this.store.removeReference(parsed);
      if (!removed) throw new NotFoundError(`No such image: ${name}`);
      records.push({ Untagged: familiarString(parsed) });
      refs = this.store.referencesOf(id);
      if (!parsed.digest) {
        const sameRepoTag = refs.some((r) => !r.digest && r.domain === parsed.domain && r.path === parsed.path);
        if (!sameRepoTag) {
          for (const r of refs.filter((x) => x.digest && x.domain === parsed.domain && x.path === parsed.path)) {
            await this.store.removeReference(r);
            records.push({ Untagged: familiarString(r) });
          }
          refs = this.store.referencesOf(id);
        }
      }
      if (refs.length > 0) return records;
      await this.deleteHelper(id, records, force, prune, true);
      return records;
    }
    if (this.isSingleReference(refs)) {
      const c = await this.checkConflict(id, { children: true, running: true, refs: false, stopped: !force });
      if (c) throw c;
      for (const r of refs) {
        await this.store.removeReference(r);
        records.push({ Untagged: familiarString(r) });
      }
    }
    await this.deleteHelper(id, records, force, prune, false);
    return records;
  }

  private async deleteHelper(id: Digest, records: DeleteItem[], force: boolean, prune: boolean, quiet: boolean): Promise<void> {
    const c = await this.checkConflict(id, { children: true, running: true, refs: !force, stopped: !force });
    if (c) {
      if (quiet) {
        const dangling = this.store.referencesOf(id).length === 0;
        const u = await this.usage(id);
        if (!dangling || u.running || u.stopped) return;
      }
      throw c;
    }
    const rec = await this.store.get(id);
    const parent = rec.meta.parent;
    for (const r of this.store.referencesOf(id)) {
      await this.store.removeReference(r);
      records.push({ Untagged: familiarString(r) });
    }
    const removedLayers = await this.store.deleteImage(id, await this.rootfs.pinnedLayers());
    records.push({ Deleted: id });
    for (const l of removedLayers) records.push({ Deleted: l });
    if (!prune || !parent || !(await this.store.exists(parent))) return;
    if (this.store.referencesOf(parent).length > 0) return;
    await this.deleteHelper(parent, records, false, true, true).catch(() => undefined);
  }

  /** POST /images/prune: dangling images (or all unused ones with dangling=false). */
  async prune(opts: { filters?: DockerFilters } = {}): Promise<{ ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number }> {
    const f: DockerFilters = opts.filters ?? new Map();
    checkFilterNames(f, ['dangling', 'label', 'label!', 'until']);
    const danglingOnly = boolFilter(f, 'dangling') ?? true;
    const until = parseDockerTimeMs(filterValues(f, 'until')[0], 'until', Date.now());
    const used = new Set((await this.containers()).map((c) => c.image));
    const deleted: DeleteItem[] = [];
    let reclaimed = 0;
    const layersBefore = new Map((await this.store.layers.list()).map((l) => [l.chainId, l.size]));
    for (const id of await this.store.ids()) {
      if (!(await this.store.exists(id))) continue;
      if (used.has(id)) continue;
      const r = await this.store.get(id).catch(() => null);
      if (!r) continue;
      const tags = this.store.referencesOf(id).filter((x) => x.tag);
      if (danglingOnly && tags.length > 0) continue;
      if (!matchLabels(f.get('label'), r.config.config?.Labels) || !matchNoLabel(f.get('label!'), r.config.config?.Labels)) continue;
      if (until !== null && !(createdSeconds(r.config) * 1000 < until)) continue;
      if ((await this.store.children(id)).length > 0) continue;
      try {
        const items = tags.length ? await this.removeAllRefs(id) : [];
        const recs: DeleteItem[] = [...items];
        await this.deleteHelper(id, recs, false, true, false);
        deleted.push(...recs);
      } catch (err) {
        if (err instanceof ConflictError) continue;
        throw err;
      }
    }
    const layersAfter = new Set((await this.store.layers.list()).map((l) => l.chainId));
    for (const [chain, size] of layersBefore) if (!layersAfter.has(chain)) reclaimed += size;
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  private async removeAllRefs(id: Digest): Promise<DeleteItem[]> {
    const out: DeleteItem[] = [];
    for (const r of this.store.referencesOf(id)) {
      await this.store.removeReference(r);
      out.push({ Untagged: familiarString(r) });
    }
    return out;
  }

  // ---- load / save / import / commit ----

  /**
   * Runs a load, import, commit or pull; when it fails, the layers it registered but no image
   * came to use are removed at once (as dockerd's layer store releases them), not at the next start.
   */
  private async collectOnFailure<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      await this.store.gcLayers(await this.rootfs.pinnedLayers()).catch(() => undefined);
      throw err;
    }
  }

  /** POST /images/load: progress gets Docker's JSON messages ("Loaded image: x"). */
  async load(src: Readable, opts: { progress?: ProgressFn; quiet?: boolean } = {}): Promise<LoadedImage[]> {
    const emit = opts.progress ?? noProgress;
    const progress: ProgressFn = opts.quiet ? (m) => (m.stream ? emit(m) : undefined) : emit;
    return this.collectOnFailure(() => loadArchive(this.store, src, { progress }));
  }

  /** GET /images/get?names= and /images/{name}/get */
  async save(names: string[]): Promise<Readable> {
    if (names.length === 0) throw new InvalidParameterError('no images specified');
    return saveImages(this.store, names);
  }

  private async newImage(config: ImageConfig, layer: Readable | null, parentImage: ImageRecord | null, opts: { parent?: Digest; afterLayer?: string } = {}): Promise<Digest> {
    const parentTop = parentImage?.topLayer ?? null;
    return this.store.withLease(async (lease) => {
      if (parentTop) lease(parentTop);
      let diffIds = parentImage ? [...parentImage.config.rootfs.diff_ids] : [];
      if (layer) {
        const meta = await this.store.layers.register(layer, parentTop, { lease });
        diffIds = [...diffIds, meta.diffId];
        if (opts.afterLayer) failpoint(opts.afterLayer);
      }
      const full: ImageConfig = { ...config, rootfs: { type: 'layers', diff_ids: diffIds } };
      return this.store.createImage(Buffer.from(JSON.stringify(full)), opts.parent ? { parent: opts.parent } : {});
    });
  }

  private async tagNew(id: Digest, repo?: string, tag?: string): Promise<void> {
    if (!repo) return;
    const ref = parseNormalizedNamed(tag ? `${repo}:${tag}` : repo);
    if (ref.digest) throw new InvalidParameterError('cannot import digest reference');
    await this.store.addReference(ref, id);
  }

  /** POST /images/create?fromSrc=- (docker import): one layer from a (compressed) tar. */
  async import(
    src: Readable,
    opts: { repo?: string; tag?: string; message?: string; changes?: string[]; platform?: string; source?: string; progress?: ProgressFn } = {},
  ): Promise<Digest> {
    if (opts.source && opts.source !== '-') throw new NotImplementedError('importing from a URL is not supported; send the archive in the request body (fromSrc=-)');
    const platform = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
    if (opts.repo) parseNormalizedNamed(opts.tag ? `${opts.repo}:${opts.tag}` : opts.repo);
    const created = new Date().toISOString();
    const runtime = applyChanges({}, opts.changes ?? []);
    const config: ImageConfig = {
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created,
      config: runtime,
      rootfs: { type: 'layers', diff_ids: [] },
      history: [{ created, comment: opts.message || `Imported from ${opts.source ?? '-'}` }],
      ...(opts.message ? { comment: opts.message } : {}),
    };
    const id = await this.collectOnFailure(() => this.newImage(config, src, null));
    await this.tagNew(id, opts.repo, opts.tag);
    opts.progress?.({ status: id });
    return id;
  }

  /**
   * POST /commit: the container's changes as a new layer on top of its image. `config` is
   * the container's Config (merged with the API's containerConfig by the caller, as dockerd
   * does); `changes` are Dockerfile instructions.
   */
  async commit(opts: {
    containerId: string;
    /** The container's image (ID or name). */
    image: string;
    config: ContainerConfig;
    repo?: string;
    tag?: string;
    comment?: string;
    author?: string;
    changes?: string[];
    /** A remapped container's ID mappings: the layer records container owners, as dockerd's. */
    idMappings?: IdMappings;
    /** The history entry's created_by (docker build: the RUN's command); default Entrypoint + Cmd. */
    createdBy?: string;
  }): Promise<Digest> {
    if (opts.repo) parseNormalizedNamed(opts.tag ? `${opts.repo}:${opts.tag}` : opts.repo);
    const parentId = await this.store.resolve(opts.image);
    const parent = await this.store.get(parentId);
    const created = new Date().toISOString();
    const c = opts.config;
    let runtime: ImageRuntimeConfig = {};
    const keys = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped', 'Healthcheck', 'OnBuild', 'Shell', 'StopTimeout'] as const;
    for (const k of keys) if (c[k] !== undefined && c[k] !== null) (runtime as Record<string, unknown>)[k] = c[k];
    runtime = applyChanges(runtime, opts.changes ?? []);
    const config: ImageConfig = {
      ...parent.config,
      created,
      config: runtime,
      container: opts.containerId,
      ...(opts.author ? { author: opts.author } : {}),
      ...(opts.comment ? { comment: opts.comment } : {}),
      history: [
        ...(parent.config.history ?? []),
        { created, created_by: opts.createdBy ?? [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])].join(' '), ...(opts.author ? { author: opts.author } : {}), ...(opts.comment ? { comment: opts.comment } : {}) },
      ],
      rootfs: { type: 'layers', diff_ids: [] },
    };
    delete (config as { container_config?: unknown }).container_config;
    const diff = await this.rootfs.diff(opts.containerId, ownerToContainer(opts.idMappings, 'error'));
    let id: Digest;
    try {
      id = await this.collectOnFailure(() => this.newImage(config, diff, parent, { parent: parentId, afterLayer: FP_COMMIT_AFTER_LAYER }));
    } finally {
      // a failed commit (a full disk) stops the walk of the container's files and closes them
      await destroyed(diff);
    }
    await this.tagNew(id, opts.repo, opts.tag);
    return id;
  }

  /**
   * docker build: a new image on `parent` (null: FROM scratch) with the runtime `config`, one
   * history entry `createdBy`, and `layer` (a tar, COPY/ADD) or none (an empty_layer step).
   */
  async buildImage(opts: { parent: Digest | null; config: ImageRuntimeConfig; createdBy: string; layer: Readable | null }): Promise<Digest> {
    const parent = opts.parent ? await this.store.get(opts.parent) : null;
    const created = new Date().toISOString();
    const host = hostPlatform();
    const config: ImageConfig = {
      ...(parent?.config ?? { architecture: host.architecture, os: host.os }),
      created,
      config: opts.config,
      history: [...(parent?.config.history ?? []), { created, created_by: opts.createdBy, ...(opts.layer ? {} : { empty_layer: true }) }],
      rootfs: { type: 'layers', diff_ids: [] },
    };
    delete (config as { container?: unknown }).container;
    delete (config as { container_config?: unknown }).container_config;
    return this.collectOnFailure(() => this.newImage(config, opts.layer, parent, opts.parent ? { parent: opts.parent } : {}));
  }

  // ---- registry ----

  /** POST /images/create?fromImage=&tag=&platform= (docker pull) with JSON progress. */
  async pull(fromImage: string, opts: { tag?: string; platform?: string; auth?: AuthConfig | null; progress?: ProgressFn; signal?: AbortSignal } = {}): Promise<Digest> {
    let ref: Reference;
    try {
      ref = parseReference(fromImage);
      if (opts.tag) {
        if (/^sha256:[0-9a-f]{64}$/.test(opts.tag)) ref = { ...ref, digest: opts.tag as Digest };
        else ref = parseReference(`${referenceString({ domain: ref.domain, path: ref.path })}:${opts.tag}`);
      }
    } catch (err) {
      throw new InvalidParameterError((err as Error).message);
    }
    if (!ref.tag && !ref.digest) ref = { ...ref, tag: 'latest' };
    const platform = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
    const { id } = await this.collectOnFailure(() => pullImage(this.store, this.registry, ref, { platform, auth: opts.auth ?? null, progress: opts.progress ?? noProgress, ...(opts.signal ? { signal: opts.signal } : {}) }));
    return id;
  }

  /** POST /images/{name}/push?tag= (docker push) with JSON progress; all tags of the repository without tag. */
  async push(name: string, opts: { tag?: string; auth?: AuthConfig | null; progress?: ProgressFn; signal?: AbortSignal } = {}): Promise<void> {
    const progress = opts.progress ?? noProgress;
    let ref: Reference;
    try {
      ref = parseReference(opts.tag ? `${name}:${opts.tag}` : name);
    } catch (err) {
      throw new InvalidParameterError((err as Error).message);
    }
    const tags: Array<Reference & { tag: string }> = ref.tag
      ? [{ domain: ref.domain, path: ref.path, tag: ref.tag }]
      : this.store
          .allReferences()
          .filter((r) => r.ref.domain === ref.domain && r.ref.path === ref.path && r.ref.tag)
          .map((r) => ({ domain: r.ref.domain, path: r.ref.path, tag: r.ref.tag! }));
    if (tags.length === 0) throw new NotFoundError(`An image does not exist locally with the tag: ${familiarString(ref)}`);
    for (const t of tags) if (!this.store.lookupReference(t)) throw new NotFoundError(`An image does not exist locally with the tag: ${familiarString(t)}`);
    progress({ status: pushIntro(ref) });
    for (const t of tags) await pushImage(this.store, this.registry, t, { auth: opts.auth ?? null, progress, ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  /** POST /auth */
  async login(auth: AuthConfig): Promise<{ Status: string; IdentityToken: string }> {
    return this.registry.login(auth);
  }

  // ---- container root filesystems ----

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

  /**
   * GET /containers/{id}/changes: what the container changed against its image
   * (Kind 0 = modified, 1 = added, 2 = deleted), parents of changes included, as dockerd lists them.
   */
  async containerChanges(containerId: string): Promise<Array<{ Path: string; Kind: 0 | 1 | 2 }>> {
    const meta = await this.rootfs.meta(containerId);
    if (!meta) throw new NotFoundError(`no root filesystem prepared for container ${containerId}`);
    const chain = meta.topLayer ? await this.store.layers.chain(meta.topLayer) : [];
    const inImage = async (rel: string): Promise<boolean> => {
      for (const layer of [...chain].reverse()) {
        if (layer.whiteouts.some((w) => rel === w || rel.startsWith(`${w}/`))) return false;
        try {
          const st = await fsp.lstat(`${this.store.layers.diffDir(layer.chainId)}/${rel}`);
          return !(st.isCharacterDevice() && st.rdev === 0);
        } catch {
          // not in this layer
        }
        if (layer.opaqueDirs.some((o) => o !== '' && rel.startsWith(`${o}/`))) return false;
      }
      return false;
    };
    const tar = (await import('tar-stream')).default;
    const ex = tar.extract();
    const names: string[] = [];
    const done = (async () => {
      for await (const e of ex) {
        names.push(e.header.name.replace(/\/$/, ''));
        e.resume();
      }
    })();
    (await this.rootfs.diff(containerId)).pipe(ex as unknown as NodeJS.WritableStream);
    await done;
    const out: Array<{ Path: string; Kind: 0 | 1 | 2 }> = [];
    for (const n of names) {
      const base = n.slice(n.lastIndexOf('/') + 1);
      const dir = n.includes('/') ? n.slice(0, n.lastIndexOf('/')) : '';
      if (base === '.wh..wh..opq') continue;
      if (base.startsWith('.wh.')) {
        out.push({ Path: `/${dir ? `${dir}/` : ''}${base.slice(4)}`, Kind: 2 });
        continue;
      }
      out.push({ Path: `/${n}`, Kind: (await inImage(n)) ? 0 : 1 });
    }
    return out.sort((a, b) => a.Path.localeCompare(b.Path));
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
