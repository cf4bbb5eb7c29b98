/**
 * ImageService's layer writers: `docker load`/`save`, `import`, `commit` and docker build's
 * `buildImage` — each a new image (and at most one new layer) in the store, the layers of a
 * failed one removed at once. Package-internal: ImageService is the one entry (src/service.ts).
 */
import type { Readable } from 'node:stream';
import {
  InvalidParameterError,
  NotImplementedError,
  declareFailpoint,
  failpoint,
  ownerToContainer,
  type ContainerConfig,
  type IdMappings,
} from '@berth/core';
import { loadArchive, saveImages, type LoadedImage } from './archive.js';
import { applyChanges } from './changes.js';
import type { Digest } from './digest.js';
import { destroyed } from './fsutil.js';
import type { ImageRecord, LocalImageStore } from './images.js';
import { hostPlatform, parsePlatform } from './platform.js';
import { noProgress, type ProgressFn } from './progress.js';
import { parseNormalizedNamed } from './reference.js';
import type { RootfsManager } from './rootfs.js';
import type { ImageConfig, ImageRuntimeConfig } from './types.js';

/** Crash-consistency tests (issue 10 item 7): a commit killed between its steps. */
const FP_COMMIT_AFTER_LAYER = declareFailpoint('image.commit.afterLayer', 'docker commit: the container diff is registered as a layer, the image is not saved yet');

/**
 * Runs a load, import, commit or pull; when it fails, the layers it registered but no image
 * came to use are removed at once (as dockerd's layer store releases them), not at the next start.
 */
export async function collectOnFailure<T>(store: LocalImageStore, rootfs: RootfsManager, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    await store.gcLayers(await rootfs.pinnedLayers()).catch(() => undefined);
    throw err;
  }
}

export class ImageWriters {
  constructor(
    private readonly store: LocalImageStore,
    private readonly rootfs: RootfsManager,
  ) {}

  /**
   * Runs a load, import, commit or pull; when it fails, the layers it registered but no image
   * came to use are removed at once (as dockerd's layer store releases them), not at the next start.
   */
  /** POST /images/load: progress gets Docker's JSON messages ("Loaded image: x"). */
  async load(src: Readable, opts: { progress?: ProgressFn; quiet?: boolean } = {}): Promise<LoadedImage[]> {
    const emit = opts.progress ?? noProgress;
    const progress: ProgressFn = opts.quiet ? (m) => (m.stream ? emit(m) : undefined) : emit;
    return collectOnFailure(this.store, this.rootfs, () => loadArchive(this.store, src, { progress }));
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
    const id = await collectOnFailure(this.store, this.rootfs, () => this.newImage(config, src, null));
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
      id = await collectOnFailure(this.store, this.rootfs, () => this.newImage(config, diff, parent, { parent: parentId, afterLayer: FP_COMMIT_AFTER_LAYER }));
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
    return collectOnFailure(this.store, this.rootfs, () => this.newImage(config, opts.layer, parent, opts.parent ? { parent: opts.parent } : {}));
  }
}
