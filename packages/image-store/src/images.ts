/**
 * Image metadata and references on top of the blob and layer stores:
 * `<image>/imagedb/<id hex>.json` (per-image metadata; the config itself is the blob named
 * by the image ID) and `<image>/repositories.json` (references → image IDs, atomic writes).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidParameterError, NotFoundError, atomicWriteFile, type ContainerConfig } from '@berth/core';
import { BlobStore } from './blobs.js';
import { assertDigest, chainIds, hexOf, isDigest, type Digest } from './digest.js';
import { STORE_WRITE, readJson } from './fsutil.js';
import { LayerStore, type LayerMeta } from './layers.js';
import { imageContainerConfig } from './merge.js';
import {
  parseReference,
  referenceString,
  repositoryName,
  withDefaultTag,
  type Reference,
} from './reference.js';
import { checkImageDb, keepPreviousGeneration, loadRepositories, sweepTempFiles, type RepositoriesFile } from './recovery.js';
import { SpecialOps } from './special.js';
import type { ImageConfig } from './types.js';

export interface ImageMeta {
  id: Digest;
  /** Parent image (set by commit). */
  parent?: Digest;
  /** When this image was added to the store (RFC 3339). */
  added: string;
  lastTagTime?: string;
}

export interface ImageRecord {
  id: Digest;
  config: ImageConfig;
  meta: ImageMeta;
  /** Chain ID of the top layer, null for an image without layers. */
  topLayer: Digest | null;
  /** Sum of the image's layer sizes. */
  size: number;
}

export function validateConfig(config: unknown): ImageConfig {
  const c = config as ImageConfig;
  if (!c || typeof c !== 'object') throw new InvalidParameterError('invalid image config: not a JSON object');
  if (!c.rootfs || c.rootfs.type !== 'layers' || !Array.isArray(c.rootfs.diff_ids)) {
    throw new InvalidParameterError('invalid image config: rootfs.type must be "layers" with diff_ids');
  }
  for (const d of c.rootfs.diff_ids) assertDigest(d, 'diff_id');
  if (typeof c.os !== 'string' || typeof c.architecture !== 'string') {
    throw new InvalidParameterError('invalid image config: os and architecture are required');
  }
  return c;
}

/** The image store on disk (core's `ImageStore` is the engine's contract; ImageService implements that). */
export class LocalImageStore {
  readonly root: string;
  readonly blobs: BlobStore;
  readonly layers: LayerStore;
  private readonly dbDir: string;
  private readonly reposFile: string;
  private repos: RepositoriesFile = { Repositories: {} };
  private special: SpecialOps | undefined;
  private writeChain: Promise<void> = Promise.resolve();
  private readonly leases = new Set<Set<Digest>>();
  /**
   * Each image's parsed config and layer facts, by ID: content-addressed, they never change
   * (evicted on delete). A create resolves its image several times; without these each
   * resolve re-read and re-hashed the config and read every layer's meta (issue 18: bulk
   * creates).
   */
  private readonly facts = new Map<Digest, { config: ImageConfig; topLayer: Digest | null; size: number }>();
  /**
   * imagedb/<id>.json as last read or written (the tag time changes it): only this store
   * writes it (berthd holds the data-root), so the memory copy is the file's content. A
   * create read it five times (resolve, get, the rootfs's get…); each read was four
   * file-system round trips on the daemon's one JS thread (issue 18). An unreadable record
   * is named at start-up (recovery.ts) and when first read.
   */
  private readonly metas = new Map<Digest, ImageMeta>();
  /** Writes and deletes of imagedb records so far (a read racing one is not kept). */
  private metaWrites = 0;
  /** What the start-up checks skipped or repaired (src/recovery.ts), for the log and /info. */
  readonly warnings: string[] = [];

  constructor(dataRoot: string) {
    this.root = path.join(dataRoot, 'image');
    this.blobs = new BlobStore(this.root);
    this.layers = new LayerStore(this.root, this.blobs, () => (this.special ??= new SpecialOps()));
    this.dbDir = path.join(this.root, 'imagedb');
    this.reposFile = path.join(this.root, 'repositories.json');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dbDir, { recursive: true });
    // staging of loads interrupted by a crash
    await fsp.rm(path.join(this.root, 'tmp'), { recursive: true, force: true });
    await fsp.mkdir(path.join(this.root, 'tmp'), { recursive: true, mode: 0o700 });
    const warn = (m: string) => void this.warnings.push(m);
    await sweepTempFiles(this.root);
    await this.blobs.init();
    await this.layers.init(warn);
    await checkImageDb(this.dbDir, this.blobs, warn);
    const loaded = await loadRepositories(this.reposFile, warn);
    this.repos = loaded.repos;
    // drop references to images that are gone (crash between writes)
    let changed = loaded.changed;
    for (const [repo, refs] of Object.entries(this.repos.Repositories)) {
      for (const [ref, id] of Object.entries(refs)) {
        if (!(await this.exists(id))) {
          delete refs[ref];
          changed = true;
        }
      }
      if (Object.keys(refs).length === 0) delete this.repos.Repositories[repo];
    }
    if (changed) await this.saveRepos();
  }

  async close(): Promise<void> {
    await this.special?.close();
    this.special = undefined;
  }

  private metaPath(id: Digest): string {
    return path.join(this.dbDir, `${hexOf(id)}.json`);
  }

  /** imagedb/<id>.json (null when absent), from memory once read or written. */
  private async readMeta(id: Digest): Promise<ImageMeta | null> {
    const known = this.metas.get(id);
    if (known) return { ...known };
    const gen = this.metaWrites;
    const meta = await readJson<ImageMeta>(this.metaPath(id));
    // not when a write or delete happened meanwhile: what was read may be the older content
    if (meta && gen === this.metaWrites) this.metas.set(id, { ...meta });
    return meta;
  }

  private async writeMeta(id: Digest, meta: ImageMeta): Promise<void> {
    this.metaWrites++;
    this.metas.delete(id);
    await atomicWriteFile(this.metaPath(id), JSON.stringify(meta), STORE_WRITE);
    this.metaWrites++;
    this.metas.set(id, { ...meta });
  }

  async exists(id: Digest): Promise<boolean> {
    return isDigest(id) && (await this.readMeta(id)) !== null;
  }

  /** Stores an image config whose layers are all registered; returns the image ID. */
  async createImage(configBuf: Buffer, opts: { parent?: Digest } = {}): Promise<Digest> {
    const config = validateConfig(JSON.parse(configBuf.toString('utf8')));
    const chains = chainIds(config.rootfs.diff_ids);
    for (const c of chains) {
      if (!(await this.layers.has(c))) throw new InvalidParameterError(`image config refers to a layer that is not in the store: ${c}`);
    }
    const id = await this.blobs.putBuffer(configBuf);
    const existing = await this.readMeta(id);
    if (!existing) {
      const meta: ImageMeta = { id, added: new Date().toISOString(), ...(opts.parent ? { parent: opts.parent } : {}) };
      await this.writeMeta(id, meta);
    }
    return id;
  }

  /** The image; its config is the caller's copy. */
  async get(id: Digest): Promise<ImageRecord> {
    const { meta, facts } = await this.factsOf(id);
    return { id, config: structuredClone(facts.config), meta, topLayer: facts.topLayer, size: facts.size };
  }

  /*
   * What a container create needs of an image, without copying its whole config (history, rootfs
   * list…; issue 18: a create looked the image up twice, each time copying all of it). NotFound
   * when the image is gone.
   */

  /** The container config the image gives (the caller's copy). */
  async containerConfig(id: Digest): Promise<ContainerConfig> {
    return structuredClone(imageContainerConfig((await this.factsOf(id)).facts.config));
  }

  /** The chain ID of the image's top layer (null: no layers). */
  async topLayer(id: Digest): Promise<Digest | null> {
    return (await this.factsOf(id)).facts.topLayer;
  }

  /** The image's record and content facts (parsed once, then kept: content-addressed, they never change); never hand `facts` out uncopied. */
  private async factsOf(id: Digest): Promise<{ meta: ImageMeta; facts: { config: ImageConfig; topLayer: Digest | null; size: number } }> {
    const meta = isDigest(id) ? await this.readMeta(id) : null;
    if (!meta) throw new NotFoundError(`No such image: ${id}`);
    let facts = this.facts.get(id);
    if (!facts) {
      const config = await this.blobs.readJson<ImageConfig>(id);
      const chains = chainIds(config.rootfs.diff_ids);
      let size = 0;
      for (const c of chains) size += (await this.layers.get(c))?.size ?? 0;
      facts = { config, topLayer: chains[chains.length - 1] ?? null, size };
      this.facts.set(id, facts);
    }
    return { meta, facts };
  }

  async rawConfig(id: Digest): Promise<Buffer> {
    return this.blobs.read(id);
  }

  async layerChain(id: Digest): Promise<LayerMeta[]> {
    const { topLayer } = await this.get(id);
    return topLayer ? this.layers.chain(topLayer) : [];
  }

  async setMeta(id: Digest, patch: Partial<ImageMeta>): Promise<void> {
    const meta = await this.readMeta(id);
    if (!meta) throw new NotFoundError(`No such image: ${id}`);
    await this.writeMeta(id, { ...meta, ...patch });
  }

  async ids(): Promise<Digest[]> {
    const names = await fsp.readdir(this.dbDir);
    return names.filter((n) => /^[0-9a-f]{64}\.json$/.test(n)).map((n) => `sha256:${n.slice(0, 64)}` as Digest);
  }

  /** Children: images whose parent is `id`. */
  async children(id: Digest): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const other of await this.ids()) {
      const m = await this.readMeta(other);
      if (m?.parent === id) out.push(other);
    }
    return out;
  }

  // ---- references ----

  private async saveRepos(): Promise<void> {
    const next = this.writeChain.then(async () => {
      await keepPreviousGeneration(this.reposFile);
      await atomicWriteFile(this.reposFile, JSON.stringify(this.repos), STORE_WRITE);
    });
    this.writeChain = next.catch(() => undefined);
    await next;
  }

  /** Looks up a reference (tag or digest). */
  lookupReference(ref: Reference): Digest | null {
    const r = withDefaultTag(ref);
    return this.repos.Repositories[repositoryName(r)]?.[referenceString(r)] ?? null;
  }

  async addReference(ref: Reference, id: Digest): Promise<void> {
    if (!(await this.exists(id))) throw new NotFoundError(`No such image: ${id}`);
    const r = withDefaultTag(ref);
    const repo = repositoryName(r);
    (this.repos.Repositories[repo] ??= {})[referenceString(r)] = id;
    await this.saveRepos();
    if (r.tag) await this.setMeta(id, { lastTagTime: new Date().toISOString() });
  }

  async removeReference(ref: Reference): Promise<Digest | null> {
    const r = withDefaultTag(ref);
    const repo = repositoryName(r);
    const refs = this.repos.Repositories[repo];
    const key = referenceString(r);
    const id = refs?.[key];
    if (!refs || !id) return null;
    delete refs[key];
    if (Object.keys(refs).length === 0) delete this.repos.Repositories[repo];
    await this.saveRepos();
    return id;
  }

  referencesOf(id: Digest): Reference[] {
    const out: Reference[] = [];
    for (const refs of Object.values(this.repos.Repositories)) {
      for (const [ref, target] of Object.entries(refs)) if (target === id) out.push(parseReference(ref));
    }
    return out.sort((a, b) => referenceString(a).localeCompare(referenceString(b)));
  }

  allReferences(): Array<{ ref: Reference; id: Digest }> {
    const out: Array<{ ref: Reference; id: Digest }> = [];
    for (const refs of Object.values(this.repos.Repositories)) {
      for (const [ref, id] of Object.entries(refs)) out.push({ ref: parseReference(ref), id });
    }
    return out;
  }

  /**
   * Resolves what a client names an image by, as dockerd does: a full ID (`sha256:…`), a
   * reference (tag added when missing; `name@digest`), or a unique ID prefix.
   */
  async resolve(nameOrId: string): Promise<Digest> {
    const input = nameOrId.trim();
    if (isDigest(input)) {
      if (await this.exists(input)) return input;
      throw new NotFoundError(`No such image: ${nameOrId}`);
    }
    let ref: Reference | null = null;
    try {
      ref = parseReference(input);
    } catch {
      ref = null;
    }
    if (ref) {
      const id = this.lookupReference(ref);
      if (id && (await this.exists(id))) return id;
    }
    const prefix = input.replace(/^sha256:/, '');
    // an ID prefix, bare or as sha256:<prefix> (which also parses as the tag of a repository "sha256")
    if (/^[0-9a-f]{1,64}$/.test(prefix) && !ref?.digest && (input.startsWith('sha256:') || !ref?.tag)) {
      const matches = (await this.ids()).filter((i) => hexOf(i).startsWith(prefix));
      if (matches.length === 1) return matches[0];
    }
    throw new NotFoundError(`No such image: ${nameOrId}`);
  }

  /** Deletes the image metadata and config and every layer no longer used by an image or pinned. */
  async deleteImage(id: Digest, pinnedLayers: Iterable<Digest> = []): Promise<Digest[]> {
    for (const { ref, id: target } of this.allReferences()) if (target === id) await this.removeReference(ref);
    this.facts.delete(id);
    this.metaWrites++;
    this.metas.delete(id);
    await fsp.rm(this.metaPath(id), { force: true });
    await this.blobs.delete(id);
    return this.gcLayers(pinnedLayers);
  }

  /**
   * A lease protects layers that an operation in progress (pull, load, import, commit) has
   * registered but no image references yet from a concurrent delete or prune.
   */
  lease(): { add(chainId: Digest): void; release(): void } {
    const held = new Set<Digest>();
    this.leases.add(held);
    return {
      add: (c) => void held.add(c),
      release: () => void this.leases.delete(held),
    };
  }

  async withLease<T>(fn: (add: (chainId: Digest) => void) => Promise<T>): Promise<T> {
    const l = this.lease();
    try {
      return await fn(l.add);
    } finally {
      l.release();
    }
  }

  /** Removes layers that no image uses and no container pins; returns the removed chain IDs. */
  async gcLayers(pinned: Iterable<Digest> = []): Promise<Digest[]> {
    const keep = new Set<string>();
    for (const held of this.leases) pinned = [...pinned, ...held];
    const pin = async (chainId: Digest | null) => {
      let cur = chainId;
      while (cur && !keep.has(cur)) {
        keep.add(cur);
        cur = (await this.layers.get(cur))?.parent ?? null;
      }
    };
    for (const p of pinned) await pin(p);
    for (const img of await this.ids()) {
      try {
        const cfg = await this.blobs.readJson<ImageConfig>(img);
        const chains = chainIds(cfg.rootfs.diff_ids);
        await pin(chains[chains.length - 1] ?? null);
      } catch {
        // unreadable image: keep nothing for it
      }
    }
    const removed: Digest[] = [];
    const all = await this.layers.list();
    // remove from the top: children before parents
    const depth = new Map<string, number>();
    const d = (m: LayerMeta): number => {
      if (depth.has(m.chainId)) return depth.get(m.chainId)!;
      const parent = m.parent ? all.find((x) => x.chainId === m.parent) : undefined;
      const v = parent ? d(parent) + 1 : 0;
      depth.set(m.chainId, v);
      return v;
    };
    for (const m of all.sort((a, b) => d(b) - d(a))) {
      if (keep.has(m.chainId)) continue;
      await this.layers.remove(m.chainId);
      removed.push(m.chainId);
      if (!(await this.layers.list()).some((o) => o.diffId === m.diffId)) {
        await fsp.rm(path.join(this.root, 'distribution', `${hexOf(m.diffId)}.json`), { force: true });
      }
    }
    return removed;
  }
}
