/**
 * `docker pull` and `docker push` over the registry client, with Docker's progress messages.
 * Pull: platform selection in indexes, parallel layer downloads (digest-verified, into temp
 * blobs), then unpacking in order; layers already present are not downloaded. Push: layers
 * are gzip-compressed from their exact tar; a layer the registry already has is skipped, one
 * known in another repository of the same registry is mounted; `<repo>@<digest>` is recorded.
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { InvalidParameterError, NotFoundError, atomicWriteFile, shortId } from '@berth/core';
import { DigestMismatchError } from './blobs.js';
import { hexOf, sha256, type Digest } from './digest.js';
import { STORE_WRITE, readJson } from './fsutil.js';
import { validateConfig, type LocalImageStore } from './images.js';
import { chainIdOf } from './layers.js';
import { hostPlatform, platformString, selectManifest } from './platform.js';
import { byteProgress, noProgress, type ProgressFn } from './progress.js';
import { familiarName, familiarString, repositoryName, type Reference } from './reference.js';
import type { AuthConfig } from './registry/auth.js';
import type { RegistryClient } from './registry/client.js';
import { INDEX_TYPES, MediaType, type ImageIndex, type ImageManifest, type Platform } from './types.js';
import { verifier } from './verify.js';

/** What we know about a layer's compressed form in registries (diffID → blobs). */
interface DistributionMeta {
  diffId: Digest;
  blobs: Array<{ digest: Digest; size: number; mediaType: string; domain: string; path: string }>;
}

const LAYER_TYPES = new Set<string>([MediaType.DockerLayer, MediaType.OciLayer, MediaType.OciLayerGzip, MediaType.OciLayerZstd, MediaType.DockerLayerForeign, MediaType.OciLayerNondistGzip, 'application/vnd.oci.image.layer.nondistributable.v1.tar', 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd']);

function distPath(store: LocalImageStore, diffId: Digest): string {
  return path.join(store.root, 'distribution', `${hexOf(diffId)}.json`);
}

async function recordBlob(store: LocalImageStore, diffId: Digest, blob: DistributionMeta['blobs'][number]): Promise<void> {
  const file = distPath(store, diffId);
  const meta = (await readJson<DistributionMeta>(file)) ?? { diffId, blobs: [] };
  meta.blobs = [blob, ...meta.blobs.filter((b) => !(b.digest === blob.digest && b.domain === blob.domain && b.path === blob.path))].slice(0, 20);
  await atomicWriteFile(file, JSON.stringify(meta), STORE_WRITE);
}

async function limit<T>(n: number, items: T[], fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed) throw failed;
}

export interface PullOptions {
  platform?: Platform;
  auth?: AuthConfig | null;
  progress?: ProgressFn;
  /** Parallel layer downloads (dockerd's max-concurrent-downloads default: 3). */
  concurrency?: number;
  /**
   * Cancels the pull (the client went away: dockerd cancels its request's context): the
   * downloads are cut off, no further layer is unpacked, no image is created.
   */
  signal?: AbortSignal;
}

/** The error of a pull or push whose client went away (code ABORT_ERR, as Node's AbortError). */
function cancelled(what: string): Error {
  return Object.assign(new Error(`${what} cancelled: the client went away`), { name: 'AbortError', code: 'ABORT_ERR' });
}

function checkCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw cancelled(what);
}

export async function pullImage(store: LocalImageStore, client: RegistryClient, ref: Reference, opts: PullOptions = {}): Promise<{ id: Digest; manifestDigest: Digest }> {
  const progress = opts.progress ?? noProgress;
  const platform = opts.platform ?? hostPlatform();
  const repo = client.repository(ref, opts.auth ?? null, ['pull']);
  const reference = ref.digest ?? ref.tag ?? 'latest';
  progress({ status: `Pulling from ${familiarName(ref)}`, id: ref.digest ? ref.digest : reference });
  checkCancelled(opts.signal, 'pull');

  let top = await repo.getManifest(reference);
  const manifestDigestForRef = top.digest;
  for (let depth = 0; INDEX_TYPES.includes(top.mediaType) && depth < 4; depth++) {
    const index = JSON.parse(top.body.toString('utf8')) as ImageIndex;
    const picked = selectManifest(index.manifests ?? [], platform);
    if (!picked) throw new NotFoundError(`no matching manifest for ${platformString(platform)} in the manifest list entries`);
    top = await repo.getManifest(picked.digest);
  }
  const manifest = JSON.parse(top.body.toString('utf8')) as ImageManifest;
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new InvalidParameterError(`manifest ${top.digest} has no config or layers`);

  const cfgRes = await repo.getBlob(manifest.config.digest);
  const chunks: Buffer[] = [];
  const verified = cfgRes.stream.pipe(verifier(manifest.config.digest, manifest.config.size));
  cfgRes.stream.on('error', (err) => verified.destroy(err));
  for await (const c of verified) chunks.push(c as Buffer);
  const configBuf = Buffer.concat(chunks);
  const config = validateConfig(JSON.parse(configBuf.toString('utf8')));
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new InvalidParameterError(`manifest ${top.digest} has ${manifest.layers.length} layers but its config has ${config.rootfs.diff_ids.length} diff_ids`);
  }
  for (const l of manifest.layers) if (!LAYER_TYPES.has(l.mediaType)) throw new InvalidParameterError(`unsupported layer media type ${l.mediaType}`);
  checkCancelled(opts.signal, 'pull');

  return store.withLease(async (lease) => {
  // which layers are missing
  const chains: Digest[] = [];
  let parent: Digest | null = null;
  for (const d of config.rootfs.diff_ids) {
    parent = chainIdOf(parent, d);
    chains.push(parent);
    lease(parent);
  }
  const missing: number[] = [];
  for (let i = 0; i < chains.length; i++) {
    const id = shortId(manifest.layers[i].digest);
    if (await store.layers.has(chains[i])) progress({ status: 'Already exists', id });
    else {
      progress({ status: 'Pulling fs layer', id });
      missing.push(i);
    }
  }

  // download in parallel into temp files, verified against the manifest's digests
  const files = new Map<number, string>();
  const downloaded = new Map<number, () => void>();
  const ready = new Map<number, Promise<void>>(
    missing.map((i) => [
      i,
      new Promise<void>((resolve) => {
        downloaded.set(i, resolve);
      }),
    ]),
  );
  // downloads still running when the pull fails (a full disk while unpacking) are cut off
  // before their temp files are removed, so that no fd holds a deleted file
  const active = new Set<Readable>();
  let stopped: Error | null = null;
  let downloadAll: Promise<void> = Promise.resolve();
  const onAbort = () => {
    stopped ??= cancelled('pull');
    for (const s of active) s.destroy(stopped);
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    downloadAll = limit(opts.concurrency ?? 3, missing, async (i) => {
      if (stopped) throw stopped;
      const desc = manifest.layers[i];
      const id = shortId(desc.digest);
      const tmp = store.blobs.tempPath();
      files.set(i, tmp);
      const { stream } = await repo.getBlob(desc.digest);
      active.add(stream);
      if (stopped) stream.destroy(stopped);
      const onBytes = byteProgress(progress, id, 'Downloading', desc.size);
      try {
        await pipeline(stream, verifier(desc.digest, desc.size, onBytes), createWriteStream(tmp));
      } finally {
        active.delete(stream);
      }
      progress({ status: 'Verifying Checksum', id });
      progress({ status: 'Download complete', id });
      downloaded.get(i)!();
    });
    let downloadError: unknown = null;
    downloadAll.catch((err: unknown) => {
      downloadError = err;
      for (const r of downloaded.values()) r();
    });
    // unpack in order as soon as each layer (and its parents) are there
    for (let i = 0; i < chains.length; i++) {
      if (!ready.has(i)) continue;
      await ready.get(i);
      if (downloadError) throw downloadError;
      checkCancelled(opts.signal, 'pull');
      const desc = manifest.layers[i];
      const id = shortId(desc.digest);
      const onBytes = byteProgress(progress, id, 'Extracting', desc.size);
      const parentChain = i === 0 ? null : chains[i - 1];
      const file = files.get(i)!;
      let compressedRead = 0;
      const counter = new Transform({
        transform(c: Buffer, _e, cb) {
          compressedRead += c.length;
          onBytes(c.length);
          cb(null, c);
        },
      });
      await store.layers.register(
        () => {
          const rs = createReadStream(file);
          rs.on('error', (err) => counter.destroy(err));
          counter.on('close', () => rs.destroy());
          return rs.pipe(counter);
        },
        parentChain,
        { expectedDiffId: config.rootfs.diff_ids[i] },
      );
      void compressedRead;
      await fsp.rm(file, { force: true });
      await recordBlob(store, config.rootfs.diff_ids[i], { digest: desc.digest, size: desc.size, mediaType: desc.mediaType, domain: ref.domain, path: ref.path });
      progress({ status: 'Pull complete', id });
    }
    await downloadAll;
  } catch (err) {
    stopped ??= err as Error;
    for (const s of active) s.destroy(stopped);
    await downloadAll.catch(() => undefined);
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    for (const f of files.values()) await fsp.rm(f, { force: true });
  }
  checkCancelled(opts.signal, 'pull');

  const existed = ref.tag ? store.lookupReference(ref) : null;
  const id = await store.createImage(configBuf);
  if (ref.tag) await store.addReference({ domain: ref.domain, path: ref.path, tag: ref.tag }, id);
  await store.addReference({ domain: ref.domain, path: ref.path, digest: manifestDigestForRef }, id);
  progress({ status: `Digest: ${manifestDigestForRef}` });
  const name = familiarString(ref.tag ? { domain: ref.domain, path: ref.path, tag: ref.tag } : ref);
  progress({ status: existed === id ? `Status: Image is up to date for ${name}` : `Status: Downloaded newer image for ${name}` });
  return { id, manifestDigest: manifestDigestForRef };
  });
}

export interface PushOptions {
  auth?: AuthConfig | null;
  progress?: ProgressFn;
  /** Cancels the push between two uploads (the client went away); the tag is not pushed. */
  signal?: AbortSignal;
}

/** gzip-compresses a layer's exact tar into a temp file; returns its digest and size. */
async function compressLayer(store: LocalImageStore, diffId: Digest): Promise<{ file: string; digest: Digest; size: number }> {
  const file = store.blobs.tempPath();
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(c: Buffer, _e, cb) {
      hash.update(c);
      size += c.length;
      cb(null, c);
    },
  });
  await pipeline(store.blobs.createVerifiedReadStream(diffId), zlib.createGzip({ level: 6 }), tap, createWriteStream(file));
  return { file, digest: `sha256:${hash.digest('hex')}`, size };
}

/** Pushes one tag of an image; returns the manifest digest. */
export async function pushImage(store: LocalImageStore, client: RegistryClient, ref: Reference & { tag: string }, opts: PushOptions = {}): Promise<{ digest: Digest; size: number }> {
  const progress = opts.progress ?? noProgress;
  const id = store.lookupReference(ref);
  if (!id) throw new NotFoundError(`tag does not exist: ${familiarString(ref)}`);
  const repo = client.repository(ref, opts.auth ?? null, ['pull', 'push']);
  const chain = await store.layerChain(id);
  const layers: ImageManifest['layers'] = [];
  for (const l of chain) progress({ status: 'Preparing', id: shortId(l.diffId) });
  for (const l of chain) {
    checkCancelled(opts.signal, 'push');
    // only gzip blobs are reused: the manifest we push is Docker schema 2 (gzip layers)
    const known =
      (await readJson<DistributionMeta>(distPath(store, l.diffId)))?.blobs.filter(
        (b) => b.domain === ref.domain && (b.mediaType === MediaType.DockerLayer || b.mediaType === MediaType.OciLayerGzip),
      ) ?? [];
    let done = false;
    // 1. the registry already has it in this repository
    for (const b of known) {
      if ((await repo.headBlob(b.digest)) !== null) {
        progress({ status: 'Layer already exists', id: shortId(b.digest) });
        layers.push({ mediaType: MediaType.DockerLayer, digest: b.digest, size: b.size });
        done = true;
        break;
      }
    }
    // 2. mount from another repository of the same registry
    if (!done) {
      for (const b of known.filter((k) => k.path !== ref.path)) {
        if (await repo.mountBlob(b.digest, b.path)) {
          progress({ status: `Mounted from ${familiarName({ domain: b.domain, path: b.path })}`, id: shortId(b.digest) });
          layers.push({ mediaType: MediaType.DockerLayer, digest: b.digest, size: b.size });
          await recordBlob(store, l.diffId, { ...b, path: ref.path });
          done = true;
          break;
        }
      }
    }
    // 3. compress and upload
    if (!done) {
      const c = await compressLayer(store, l.diffId);
      try {
        const sid = shortId(c.digest);
        if ((await repo.headBlob(c.digest)) !== null) {
          progress({ status: 'Layer already exists', id: sid });
        } else {
          await repo.uploadBlob(c.digest, c.file, c.size, byteProgress(progress, sid, 'Pushing', c.size));
          progress({ status: 'Pushed', id: sid });
        }
        layers.push({ mediaType: MediaType.DockerLayer, digest: c.digest, size: c.size });
        await recordBlob(store, l.diffId, { digest: c.digest, size: c.size, mediaType: MediaType.DockerLayer, domain: ref.domain, path: ref.path });
      } finally {
        await fsp.rm(c.file, { force: true });
      }
    }
  }
  checkCancelled(opts.signal, 'push');
  const configBuf = await store.rawConfig(id);
  if ((await repo.headBlob(id)) === null) await repo.uploadBuffer(id, configBuf);
  checkCancelled(opts.signal, 'push');
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.DockerManifest,
    config: { mediaType: MediaType.DockerConfig, size: configBuf.length, digest: id },
    layers,
  };
  const body = Buffer.from(JSON.stringify(manifest, null, 3));
  const digest = await repo.putManifest(ref.tag, body, MediaType.DockerManifest);
  if (digest !== sha256(body)) throw new DigestMismatchError(sha256(body), digest);
  await store.addReference({ domain: ref.domain, path: ref.path, digest }, id);
  progress({ status: `${ref.tag}: digest: ${digest} size: ${body.length}` });
  progress({ progressDetail: {}, aux: { Tag: ref.tag, Digest: digest, Size: body.length } });
  return { digest, size: body.length };
}

export function pushIntro(ref: Reference): string {
  return `The push refers to repository [${repositoryName(ref)}]`;
}
