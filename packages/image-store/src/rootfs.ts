/**
 * Per-container root filesystems: `<data-root>/overlay/<container-id>/{upper,work,merged}`
 * with the image's layers as overlayfs lowerdirs (short `l/` links, mounted from the image
 * root so the option string stays short), or — where overlayfs is unavailable — a copy of the
 * composed layers in `merged` (the `copy` driver). `meta.json` records the image and driver;
 * its chain pins the layers against garbage collection while the container exists.
 */
import { execFile } from 'node:child_process';
import { promises as fsp, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ConflictError, InvalidParameterError, NotFoundError, SystemError, atomicWriteFile, makeDirs, readMountInfoSync, type DirSpec, type OwnerMap } from '@berth/core';
import { isDigest, type Digest } from './digest.js';
import { treeDiffTar, upperDirTar } from './difftar.js';
import { STORE_WRITE, dirSize, readJson } from './fsutil.js';
import type { LocalImageStore } from './images.js';
import type { LayerMeta } from './layers.js';
import { MountRefs, type MountLease } from './mountrefs.js';
import type { Warn } from './recovery.js';
import { MNT_DETACH, errnoName, nativeAddon as nativeMount, removeTrees } from '@berth/native';

const execFileP = promisify(execFile);

export type RootfsDriver = 'overlay' | 'copy';

export interface RootfsMeta {
  containerId: string;
  imageId: Digest;
  /** Chain ID of the image's top layer (pins the chain). */
  topLayer: Digest | null;
  driver: RootfsDriver;
  readonly: boolean;
}

const CONTAINER_ID_RE = /^[0-9a-f]{64}$|^[0-9a-zA-Z][0-9a-zA-Z_.-]{0,127}$/;

/** This process's mount points (none when /proc is not readable). */
export function mountPoints(): Set<string> {
  try {
    return new Set(readMountInfoSync().map((m) => m.mountPoint));
  } catch {
    return new Set();
  }
}

export function overlaySupported(): boolean {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  try {
    return /\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

export interface RootfsManagerOptions {
  /** 'auto' (default): overlay when root and the kernel has overlayfs, else copy. */
  driver?: RootfsDriver | 'auto';
  /** Mount with the syscalls through @berth/native when its addon is built (default true). */
  nativeMount?: boolean;
}

/** A create() of a container that has its layer: that layer for the same image, else Conflict. */
function ownLayer(id: string, existing: RootfsMeta, imageId: Digest): RootfsMeta {
  if (existing.imageId !== imageId) throw new ConflictError(`container ${id} already has a root filesystem for image ${existing.imageId}`);
  return existing;
}

export class RootfsManager {
  readonly dir: string;
  readonly driver: RootfsDriver;
  /** Holders of each container's mount: the engine (start to release) and requests' leases. */
  readonly mounts: MountRefs;
  /**
   * meta.json of the layers made or read in this process: written once at create, never changed
   * after, dropped when the layer goes. A start reads it twice (the plugin's check, the mount);
   * a daemon restarted after a power cut that lost it reads the disk again (and re-creates it).
   */
  private readonly metas = new Map<string, RootfsMeta>();

  constructor(
    private readonly store: LocalImageStore,
    dataRoot: string,
    private readonly opts: RootfsManagerOptions = {},
  ) {
    this.dir = path.join(dataRoot, 'overlay');
    const want = opts.driver ?? 'auto';
    this.driver = want === 'auto' ? (overlaySupported() ? 'overlay' : 'copy') : want;
    this.mounts = new MountRefs({ isMounted: (id) => this.isMounted(id), mount: (id) => this.mountNow(id), unmount: (id) => this.unmountNow(id) });
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o710 });
  }

  private cdir(id: string): string {
    if (!CONTAINER_ID_RE.test(id)) throw new InvalidParameterError(`invalid container id: ${JSON.stringify(id)}`);
    return path.join(this.dir, id);
  }

  mergedPath(id: string): string {
    return path.join(this.cdir(id), 'merged');
  }

  async meta(id: string): Promise<RootfsMeta | null> {
    const known = this.metas.get(id);
    if (known) return known;
    const read = await readJson<RootfsMeta>(path.join(this.cdir(id), 'meta.json'));
    if (read) this.metas.set(id, read);
    return read;
  }

  /**
   * Prepares the container's layer (no mount yet). Idempotent for the same image. A create's
   * usual case — nothing there yet — is one call of core's atomic writer: the layer's
   * directories and meta.json, one thread-pool job where the native addon is loaded (issue 18
   * counts a create's file-system round trips); only when the directory is in the way is
   * meta.json read (the same container again, or another image's: Conflict) or a crashed
   * create's leftovers cleared.
   */
  create(id: string, imageRef: string, opts: { readonly?: boolean } = {}): Promise<RootfsMeta> {
    return this.prepare(id, imageRef, opts, true);
  }

  /** create(); `clearLeftovers`: a directory in the way without a meta.json may be cleared (once). */
  private async prepare(id: string, imageRef: string, opts: { readonly?: boolean }, clearLeftovers: boolean): Promise<RootfsMeta> {
    const d = this.cdir(id);
    // an ID (what a create passes) needs no resolving: get() says when it is gone
    const imageId = isDigest(imageRef) ? imageRef : await this.store.resolve(imageRef);
    let topLayer: Digest | null;
    let chain: LayerMeta[];
    try {
      topLayer = await this.store.topLayer(imageId);
      chain = topLayer ? await this.store.layers.chain(topLayer) : [];
    } catch (err) {
      // no such image: a layer already there still answers for itself (its own image, or a Conflict)
      const existing = await this.meta(id);
      if (existing) return ownLayer(id, existing, imageId);
      throw err;
    }
    const driver: RootfsDriver = this.driver === 'overlay' && chain.every((l) => l.overlayWhiteouts) ? 'overlay' : 'copy';
    const merged = path.join(d, 'merged');
    const dirs: DirSpec[] = [
      { path: d, mode: 0o755 },
      { path: merged, mode: 0o755 },
      ...(driver === 'overlay' ? [{ path: path.join(d, 'upper'), mode: 0o755 }, { path: path.join(d, 'work'), mode: 0o700 }] : []),
    ];
    const meta: RootfsMeta = { containerId: id, imageId, topLayer, driver, readonly: !!opts.readonly };
    // The file is fsync'd (whole after a power cut), its directory entry not: like the
    // container's record (core store.ts), a create of the last seconds may vanish on a power
    // cut. A meta.json lost so makes an orphan dir the start-up sweep removes, and a start
    // re-creates the (still empty) layer; docs/benchmarks.md "Durability of a create".
    const writeMeta = (with_: DirSpec[]) =>
      atomicWriteFile(path.join(d, 'meta.json'), JSON.stringify(meta), { ...STORE_WRITE, syncDir: false, mkdir: false, dirs: with_ });
    try {
      if (driver === 'overlay') {
        await writeMeta(dirs);
      } else {
        await makeDirs(dirs);
        await this.materialize(chain, merged);
        await writeMeta([]);
      }
      this.metas.set(id, meta);
      return meta;
    } catch (err) {
      this.metas.delete(id);
      const e = err as NodeJS.ErrnoException;
      // the container's own directory was not made: something is in the way, or it cannot be made
      if (e.path === d) {
        if (e.code === 'EEXIST') return this.createOver(id, imageId, opts, clearLeftovers, err);
        throw err;
      }
      await removeTrees(nativeMount(), [d]);
      throw err;
    }
  }

  /** create() where the container's directory is already there: its own layer, a Conflict, or a crashed create's leftovers (cleared, then created). */
  private async createOver(id: string, imageId: Digest, opts: { readonly?: boolean }, clearLeftovers: boolean, inTheWay: unknown): Promise<RootfsMeta> {
    const existing = await this.meta(id);
    if (existing) return ownLayer(id, existing, imageId);
    if (!clearLeftovers) throw inTheWay;
    this.metas.delete(id);
    await removeTrees(nativeMount(), [this.cdir(id)]);
    return this.prepare(id, imageId, opts, false);
  }

  /** Copies the layers bottom to top into `dest`, applying opaque dirs and whiteouts. */
  private async materialize(chain: LayerMeta[], dest: string): Promise<void> {
    for (const layer of chain) {
      for (const o of layer.opaqueDirs) {
        const target = path.join(dest, o);
        const entries = await fsp.readdir(target).catch(() => [] as string[]);
        for (const e of entries) await fsp.rm(path.join(target, e), { recursive: true, force: true });
      }
      for (const w of layer.whiteouts) await fsp.rm(path.join(dest, w), { recursive: true, force: true });
      await execFileP('cp', ['-a', '--no-target-directory', `${this.store.layers.diffDir(layer.chainId)}/.`, dest]).catch(async () =>
        execFileP('cp', ['-a', `${this.store.layers.diffDir(layer.chainId)}/.`, `${dest}/`]),
      );
      // overlay-style whiteout devices copied along are not files of the container
      if (layer.overlayWhiteouts) for (const w of layer.whiteouts) await fsp.rm(path.join(dest, w), { recursive: true, force: true });
    }
  }

  /**
   * Whether the rootfs is mounted: an overlay mounted on `merged` has a device of its own, not
   * its parent's (two stats, whatever the number of mounts on the host; the mount table is not
   * read). The copy driver's `merged` is never a mount.
   */
  isMounted(id: string): boolean {
    const merged = this.mergedPath(id);
    try {
      return statSync(merged).dev !== statSync(path.dirname(merged)).dev;
    } catch {
      return false;
    }
  }

  /** The engine's mount (start): mounts (overlay) and returns the rootfs path. Mounting a mounted rootfs is a no-op. */
  mount(id: string): Promise<string> {
    return this.mounts.engineMount(id);
  }

  /** The engine's unmount (failed start, exit): unmounts unless a request's lease still holds the mount. */
  unmount(id: string): Promise<void> {
    return this.mounts.engineUnmount(id);
  }

  /**
   * A lease on the mounted rootfs for one request (docker cp / export of a container that
   * may not run); the last holder's release unmounts. NotFound when no rootfs was prepared.
   */
  acquire(id: string): Promise<MountLease> {
    return this.mounts.acquire(id);
  }

  private async mountNow(id: string): Promise<string> {
    const meta = await this.meta(id);
    if (!meta) throw new NotFoundError(`no root filesystem prepared for container ${id}`);
    const merged = this.mergedPath(id);
    if (meta.driver === 'copy') return merged;
    if (this.isMounted(id)) return merged;
    const chain = meta.topLayer ? await this.store.layers.chain(meta.topLayer) : [];
    const d = this.cdir(id);
    // an image without layers still needs a lowerdir: an empty one
    let lowers: string[];
    if (chain.length === 0) {
      await fsp.mkdir(path.join(d, 'empty'), { recursive: true });
      lowers = [path.join(d, 'empty')];
    } else {
      lowers = chain.map((l) => `l/${l.link}`).reverse();
    }
    const rest = `upperdir=${path.join(d, 'upper')},workdir=${path.join(d, 'work')}`;
    const opts = `lowerdir=${lowers.join(':')},${rest}`;
    if (opts.length > 4000) throw new SystemError(`too many layers for one overlay mount (${chain.length})`);
    // The syscall takes absolute lowerdirs (the process's cwd is not the image root); when
    // they do not fit in one page, the mount binary runs in the image root with short ones.
    const native = this.opts.nativeMount === false ? null : nativeMount();
    const absolute = native ? `lowerdir=${lowers.map((l) => path.resolve(this.store.root, l)).join(':')},${rest}` : '';
    try {
      if (native && absolute.length <= 4000) await native.mount('overlay', merged, 'overlay', 0, absolute);
      else await execFileP('mount', ['-t', 'overlay', 'overlay', '-o', opts, merged], { cwd: this.store.root });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new SystemError(`mounting the root filesystem of ${id} failed: ${(e.stderr || e.message).trim()}`, { cause: err });
    }
    return merged;
  }

  /** Unmounts the rootfs (idempotent; a busy mount is detached lazily). */
  private async unmountNow(id: string): Promise<void> {
    const merged = this.mergedPath(id);
    const native = this.opts.nativeMount === false ? null : nativeMount();
    if (native) {
      // No read of the mount table first: umount2 says EINVAL when nothing is mounted there.
      try {
        await native.umount2(merged, 0);
      } catch (err) {
        const code = errnoName(err);
        if (code === 'EINVAL' || code === 'ENOENT') return;
        try {
          await native.umount2(merged, MNT_DETACH);
        } catch {
          throw new SystemError(`unmounting the root filesystem of ${id} failed: ${(err as Error).message}`, { cause: err });
        }
      }
      return;
    }
    if (!mountPoints().has(merged)) return;
    try {
      await execFileP('umount', [merged]);
    } catch (err) {
      try {
        await execFileP('umount', ['-l', merged]);
      } catch {
        const e = err as { stderr?: string; message: string };
        throw new SystemError(`unmounting the root filesystem of ${id} failed: ${(e.stderr || e.message).trim()}`, { cause: err });
      }
    }
  }

  /**
   * Unmounts and deletes everything of the container. Idempotent. The deletion is one
   * thread-pool job where the native addon is loaded, and refuses (EBUSY) to go into anything
   * still mounted below; Node's fs.rm without the addon.
   */
  async remove(id: string): Promise<void> {
    await this.mounts.forget(id);
    this.metas.delete(id);
    await removeTrees(nativeMount(), [this.cdir(id)]);
  }

  /** SizeRw (bytes the container changed) and SizeRootFs (SizeRw plus the image's layers). */
  async sizes(id: string): Promise<{ SizeRw: number; SizeRootFs: number }> {
    const meta = await this.meta(id);
    if (!meta) throw new NotFoundError(`no root filesystem prepared for container ${id}`);
    const img = await this.store.get(meta.imageId).catch(() => null);
    const imageSize = img?.size ?? 0;
    if (meta.driver === 'overlay') {
      const rw = await dirSize(path.join(this.cdir(id), 'upper'));
      return { SizeRw: rw, SizeRootFs: rw + imageSize };
    }
    const total = await dirSize(this.mergedPath(id));
    return { SizeRw: Math.max(0, total - imageSize), SizeRootFs: total };
  }

  /**
   * Start-up sweep (issue 10 item 7): removes `overlay/<id>/` dirs a crash left behind — a
   * create killed before its meta.json landed, or (with `isContainer`) a complete one whose
   * container record was never saved. Returns the layers the remaining ones pin, or null when
   * a meta.json is unreadable (then no layer may be collected: they might be that one's).
   * A dir with anything mounted under it is never removed, only named.
   */
  async sweep(opts: { warn: Warn; isContainer?: (id: string) => Promise<boolean> }): Promise<Digest[] | null> {
    const pins: Digest[] = [];
    let complete = true;
    const mounted = [...mountPoints()];
    for (const ent of await fsp.readdir(this.dir, { withFileTypes: true }).catch(() => [])) {
      if (!ent.isDirectory()) continue;
      const d = path.join(this.dir, ent.name);
      let meta: RootfsMeta | null;
      try {
        meta = await readJson<RootfsMeta>(path.join(d, 'meta.json'));
      } catch (err) {
        complete = false;
        opts.warn(`image store: ${path.join(d, 'meta.json')} is unreadable (${(err as Error).message}); the container's root filesystem and the image layers are kept`);
        continue;
      }
      const orphan = !meta || (opts.isContainer !== undefined && /^[0-9a-f]{64}$/.test(ent.name) && !(await opts.isContainer(ent.name)));
      if (!orphan) {
        if (meta?.topLayer) pins.push(meta.topLayer);
        continue;
      }
      if (mounted.some((m) => m === d || m.startsWith(`${d}/`))) {
        if (meta?.topLayer) pins.push(meta.topLayer);
        opts.warn(`image store: ${d} belongs to no container but has a mount under it; kept`);
        continue;
      }
      await removeTrees(nativeMount(), [d]);
    }
    return complete ? pins : null;
  }

  /** Layers pinned by containers' root filesystems (for image/layer GC). */
  async pinnedLayers(): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const name of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      // an unreadable meta.json fails the caller (a delete, a collection) rather than let it
      // remove layers that container may be using
      let m: RootfsMeta | null;
      try {
        m = await readJson<RootfsMeta>(path.join(this.dir, name, 'meta.json'));
      } catch (err) {
        throw new SystemError(`cannot tell which layers container ${name} uses: ${path.join(this.dir, name, 'meta.json')} is unreadable`, { cause: err });
      }
      if (m?.topLayer) out.push(m.topLayer);
    }
    return out;
  }

  /** The container's changes as an OCI layer tar (for commit); `owner` translates a remapped container's host owners. */
  async diff(id: string, owner?: OwnerMap): Promise<Readable> {
    const meta = await this.meta(id);
    if (!meta) throw new NotFoundError(`no root filesystem prepared for container ${id}`);
    if (meta.driver === 'overlay') return upperDirTar(path.join(this.cdir(id), 'upper'), owner);
    const base = path.join(this.cdir(id), 'base');
    await fsp.rm(base, { recursive: true, force: true });
    await fsp.mkdir(base);
    const chain = meta.topLayer ? await this.store.layers.chain(meta.topLayer) : [];
    await this.materialize(chain, base);
    const stream = treeDiffTar(this.mergedPath(id), base, owner);
    const cleanup = () => void fsp.rm(base, { recursive: true, force: true });
    stream.once('end', cleanup);
    stream.once('error', cleanup);
    stream.once('close', cleanup);
    return stream;
  }
}
