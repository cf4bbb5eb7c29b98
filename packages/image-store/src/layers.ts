/**
 * Layer store: `<image>/layers/<chainid hex>/{diff/, meta.json}` plus `<image>/l/<short>`
 * symlinks to each diff (short overlay lowerdir strings, as overlay2 does). A layer appears
 * atomically: it is unpacked in a temp dir and renamed into place with its meta.json, so a
 * crash never leaves a half layer behind. The uncompressed tar is kept as a blob named by the
 * DiffID, so `docker save` and push reproduce the exact bytes (and thus the image ID).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { NotFoundError, atomicWriteFile } from '@berth/core';
import type { BlobStore } from './blobs.js';
import { DigestMismatchError } from './blobs.js';
import { hexOf, sha256, type Digest } from './digest.js';
import { STORE_WRITE, destroyed, readJson, randomId } from './fsutil.js';
import type { Compression } from './compression.js';
import { unpackLayer, type UnpackOptions } from './unpack.js';
import type { SpecialOps } from './special.js';
import { quarantineLayer, type Warn } from './recovery.js';

export interface LayerMeta {
  chainId: Digest;
  diffId: Digest;
  parent: Digest | null;
  /** Sum of file sizes in this layer. */
  size: number;
  /** Uncompressed tar size. */
  tarSize: number;
  /** Short id of the `l/` link to the diff dir. */
  link: string;
  whiteouts: string[];
  opaqueDirs: string[];
  /** Whether the diff dir holds overlayfs whiteouts (device 0:0 / opaque xattr). */
  overlayWhiteouts: boolean;
  compression?: Compression;
}

export function chainIdOf(parent: Digest | null, diffId: Digest): Digest {
  return parent ? sha256(`${parent} ${diffId}`) : diffId;
}

export class LayerStore {
  readonly dir: string;
  readonly linkDir: string;
  private readonly inflight = new Map<string, Promise<LayerMeta>>();
  /** meta.json of the layers read so far: written once when a layer lands, never changed (evicted on remove). */
  private readonly metas = new Map<Digest, LayerMeta>();

  constructor(
    readonly root: string,
    private readonly blobs: BlobStore,
    private readonly special: () => SpecialOps | undefined = () => undefined,
  ) {
    this.dir = path.join(root, 'layers');
    this.linkDir = path.join(root, 'l');
  }

  /** Removes what a crash left half-done; `warn` hears of layers whose meta.json is unreadable (moved aside). */
  async init(warn: Warn = () => undefined): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.mkdir(this.linkDir, { recursive: true });
    for (const name of await fsp.readdir(this.dir)) {
      const full = path.join(this.dir, name);
      if (name.startsWith('corrupt-')) continue;
      if (name.startsWith('tmp-')) {
        await fsp.rm(full, { recursive: true, force: true });
        continue;
      }
      let meta: unknown;
      try {
        meta = await readJson(path.join(full, 'meta.json'));
      } catch (err) {
        await quarantineLayer(full, err, warn);
        continue;
      }
      if (!meta) await fsp.rm(full, { recursive: true, force: true });
    }
  }

  layerDir(chainId: Digest): string {
    return path.join(this.dir, hexOf(chainId));
  }

  diffDir(chainId: Digest): string {
    return path.join(this.layerDir(chainId), 'diff');
  }

  /** The layer's meta (the caller's copy), null when absent. */
  async get(chainId: Digest): Promise<LayerMeta | null> {
    let m = this.metas.get(chainId) ?? null;
    if (!m) {
      m = await readJson<LayerMeta>(path.join(this.layerDir(chainId), 'meta.json'));
      if (m) this.metas.set(chainId, m);
    }
    return m && structuredClone(m);
  }

  async mustGet(chainId: Digest): Promise<LayerMeta> {
    const m = await this.get(chainId);
    if (!m) throw new NotFoundError(`layer does not exist: ${chainId}`);
    return m;
  }

  async has(chainId: Digest): Promise<boolean> {
    return (await this.get(chainId)) !== null;
  }

  /**
   * Unpacks `src` (tar, gzip or zstd) on top of `parent`. With `expectedDiffId`, a layer whose
   * uncompressed content hashes differently is refused and nothing is kept. A layer that is
   * already present (same chain ID) is not unpacked again.
   */
  async register(
    src: Readable | (() => Readable | Promise<Readable>),
    parent: Digest | null,
    opts: { expectedDiffId?: Digest; onBytes?: (n: number) => void; unpack?: UnpackOptions; lease?: (chainId: Digest) => void } = {},
  ): Promise<LayerMeta> {
    const meta = await this.registerInner(src, parent, opts);
    opts.lease?.(meta.chainId);
    return meta;
  }

  private async registerInner(
    src: Readable | (() => Readable | Promise<Readable>),
    parent: Digest | null,
    opts: { expectedDiffId?: Digest; onBytes?: (n: number) => void; unpack?: UnpackOptions },
  ): Promise<LayerMeta> {
    if (parent) await this.mustGet(parent);
    if (opts.expectedDiffId) {
      const chainId = chainIdOf(parent, opts.expectedDiffId);
      const existing = await this.get(chainId);
      if (existing) {
        if (typeof src !== 'function') src.destroy();
        return existing;
      }
      const running = this.inflight.get(chainId);
      if (running) return running;
      const p = this.doRegister(src, parent, opts).finally(() => this.inflight.delete(chainId));
      this.inflight.set(chainId, p);
      return p;
    }
    return this.doRegister(src, parent, opts);
  }

  private async doRegister(
    srcOrFn: Readable | (() => Readable | Promise<Readable>),
    parent: Digest | null,
    opts: { expectedDiffId?: Digest; onBytes?: (n: number) => void; unpack?: UnpackOptions },
  ): Promise<LayerMeta> {
    const tmp = path.join(this.dir, `tmp-${randomId()}`);
    const diff = path.join(tmp, 'diff');
    const tarTmp = this.blobs.tempPath();
    // a source the store opens (a file) is the store's to close on every path; a stream it
    // is handed (a request body, a commit's diff) is its owner's
    let opened: Readable | null = null;
    try {
      await fsp.mkdir(diff, { recursive: true, mode: 0o700 });
      const src = typeof srcOrFn === 'function' ? (opened = await srcOrFn()) : srcOrFn;
      const special = this.special();
      const r = await unpackLayer(src, diff, {
        ...opts.unpack,
        tarCopy: tarTmp,
        ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
        ...(special ? { special } : {}),
      });
      if (opts.expectedDiffId && r.diffId !== opts.expectedDiffId) throw new DigestMismatchError(opts.expectedDiffId, r.diffId);
      const chainId = chainIdOf(parent, r.diffId);
      const existing = await this.get(chainId);
      if (existing) return existing;
      if (await this.blobs.has(r.diffId)) await fsp.rm(tarTmp, { force: true });
      else await this.blobs.adopt(tarTmp, r.diffId);
      const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
      const meta: LayerMeta = {
        chainId,
        diffId: r.diffId,
        parent,
        size: r.size,
        tarSize: r.tarSize,
        link: randomId(10).toUpperCase().slice(0, 20),
        whiteouts: r.whiteouts,
        opaqueDirs: r.opaqueDirs,
        overlayWhiteouts: opts.unpack?.overlayWhiteouts ?? isRoot,
        compression: r.compression,
      };
      await atomicWriteFile(path.join(tmp, 'meta.json'), JSON.stringify(meta), STORE_WRITE);
      const final = this.layerDir(chainId);
      await fsp.rename(tmp, final);
      await fsp.rm(path.join(this.linkDir, meta.link), { force: true });
      await fsp.symlink(path.join('..', 'layers', hexOf(chainId), 'diff'), path.join(this.linkDir, meta.link));
      return meta;
    } finally {
      await destroyed(opened);
      await fsp.rm(tmp, { recursive: true, force: true });
      await fsp.rm(tarTmp, { force: true });
    }
  }

  /** Layers from the bottom to `chainId`. */
  async chain(chainId: Digest): Promise<LayerMeta[]> {
    const out: LayerMeta[] = [];
    let cur: Digest | null = chainId;
    while (cur) {
      const m = await this.mustGet(cur);
      out.unshift(m);
      cur = m.parent;
    }
    return out;
  }

  async list(): Promise<LayerMeta[]> {
    const out: LayerMeta[] = [];
    for (const name of await fsp.readdir(this.dir)) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const m = await readJson<LayerMeta>(path.join(this.dir, name, 'meta.json'));
      if (m) out.push(m);
    }
    return out;
  }

  /** Removes a layer (the caller ensures no image or container uses it); its tar blob too unless shared. */
  async remove(chainId: Digest): Promise<void> {
    const m = await this.get(chainId);
    if (!m) return;
    this.metas.delete(chainId);
    await fsp.rm(path.join(this.linkDir, m.link), { force: true });
    const dir = this.layerDir(chainId);
    const trash = path.join(this.dir, `tmp-${randomId()}`);
    await fsp.rename(dir, trash);
    await fsp.rm(trash, { recursive: true, force: true });
    const others = (await this.list()).some((o) => o.diffId === m.diffId);
    if (!others) await this.blobs.delete(m.diffId);
  }

  /** The layer's uncompressed tar (exact bytes of what was unpacked), verified against its DiffID. */
  tarStream(meta: LayerMeta): Readable {
    return this.blobs.createVerifiedReadStream(meta.diffId);
  }
}
