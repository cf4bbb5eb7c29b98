/**
 * `docker load` and `docker save`: docker-save tarballs (legacy `<id>/layer.tar` and the
 * Docker ≥ 25 layout with manifest.json next to an OCI layout) and plain OCI image layouts
 * in, docker-save tarballs (which are also OCI layouts) out. The image ID survives a
 * save | load round trip because layers are saved byte for byte as they were loaded.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { InvalidParameterError, NotFoundError, declareFailpoint, failpoint, shortId } from '@berth/core';
import { assertDigest, hexOf, sha256, type Digest } from './digest.js';
import { randomId } from './fsutil.js';
import type { LocalImageStore } from './images.js';
import { validateConfig } from './images.js';
import { chainIdOf } from './layers.js';
import { selectManifest, hostPlatform } from './platform.js';
import { byteProgress, noProgress, type ProgressFn } from './progress.js';
import { familiarName, familiarString, parseNormalizedNamed, parseReference, referenceString, type Reference } from './reference.js';
import { INDEX_TYPES, MediaType, type DockerSaveManifestEntry, type ImageConfig, type ImageIndex, type ImageManifest } from './types.js';
import { entryComponents, unpackLayer } from './unpack.js';
import { verifier } from './verify.js';

/** Crash-consistency tests (issue 10 item 7): a load killed between its steps. */
const FP_LOAD_AFTER_LAYER = declareFailpoint('image.load.afterLayer', 'docker load: a layer is unpacked and registered, the image config and its tags are not saved yet');
const FP_LOAD_AFTER_IMAGE = declareFailpoint('image.load.afterImage', 'docker load: the image is saved, its tags (repositories.json) are not');

export interface LoadedImage {
  id: Digest;
  tags: Reference[];
}

/** Resolves a path named inside an extracted archive; refuses escapes and missing files. */
async function archiveFile(root: string, rel: string, what: string, label = `${what} ${rel}`): Promise<string> {
  let comps: string[];
  try {
    comps = entryComponents(rel, `${what} path`);
  } catch (err) {
    throw new InvalidParameterError(`invalid archive: ${(err as Error).message}`);
  }
  const full = path.join(root, ...comps);
  let real: string;
  try {
    real = await fsp.realpath(full);
  } catch {
    throw new InvalidParameterError(`invalid archive: ${label} is missing from the archive`);
  }
  const realRoot = await fsp.realpath(root);
  if (!real.startsWith(`${realRoot}/`)) throw new InvalidParameterError(`invalid archive: ${label} points outside the archive`);
  const st = await fsp.stat(real);
  if (!st.isFile()) throw new InvalidParameterError(`invalid archive: ${label} is not a regular file`);
  return real;
}

async function readJsonFile<T>(file: string, what: string): Promise<T> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch (err) {
    throw new InvalidParameterError(`invalid archive: ${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Adds a tag, telling the client when it moves from another image (as dockerd does). */
async function tagLoaded(store: LocalImageStore, ref: Reference, id: Digest, progress: ProgressFn): Promise<void> {
  const old = store.lookupReference(ref);
  if (old && old !== id) {
    progress({ stream: `The image ${familiarString(ref)} already exists, renaming the old one with ID ${old} to empty string\n` });
  }
  await store.addReference(ref, id);
}

async function loadLayers(
  store: LocalImageStore,
  config: ImageConfig,
  layerFiles: Array<{ open: () => Readable; size: number }>,
  progress: ProgressFn,
  lease: (chainId: Digest) => void,
): Promise<void> {
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== layerFiles.length) {
    throw new InvalidParameterError(`invalid manifest, layers length mismatch: expected ${diffIds.length}, got ${layerFiles.length}`);
  }
  let parent: Digest | null = null;
  for (let i = 0; i < diffIds.length; i++) {
    const chainId = chainIdOf(parent, diffIds[i]);
    lease(chainId);
    const id = shortId(diffIds[i]);
    if (!(await store.layers.has(chainId))) {
      const onBytes = byteProgress(progress, id, 'Loading layer', layerFiles[i].size);
      await store.layers.register(layerFiles[i].open, parent, { expectedDiffId: diffIds[i], onBytes });
      failpoint(FP_LOAD_AFTER_LAYER);
    }
    parent = chainId;
  }
}

async function loadDockerSave(store: LocalImageStore, root: string, progress: ProgressFn, lease: (c: Digest) => void): Promise<LoadedImage[]> {
  const manifest = await readJsonFile<DockerSaveManifestEntry[]>(await archiveFile(root, 'manifest.json', 'manifest'), 'manifest.json');
  if (!Array.isArray(manifest)) throw new InvalidParameterError('invalid archive: manifest.json is not a list');
  const out: LoadedImage[] = [];
  for (const entry of manifest) {
    if (typeof entry?.Config !== 'string' || !Array.isArray(entry.Layers)) throw new InvalidParameterError('invalid archive: manifest entry without Config or Layers');
    const configFile = await archiveFile(root, entry.Config, 'config');
    const configBuf = await fsp.readFile(configFile);
    const config = validateConfig(JSON.parse(configBuf.toString('utf8')));
    const layerFiles = [];
    for (const l of entry.Layers) {
      const f = await archiveFile(root, l, 'layer');
      layerFiles.push({ open: () => createReadStream(f), size: (await fsp.stat(f)).size });
    }
    await loadLayers(store, config, layerFiles, progress, lease);
    const id = await store.createImage(configBuf);
    failpoint(FP_LOAD_AFTER_IMAGE);
    const tags: Reference[] = [];
    for (const t of entry.RepoTags ?? []) {
      const ref = parseNormalizedNamed(t);
      await tagLoaded(store, ref, id, progress);
      tags.push(ref);
      progress({ stream: `Loaded image: ${familiarString(ref)}\n` });
    }
    if (tags.length === 0) progress({ stream: `Loaded image ID: ${id}\n` });
    out.push({ id, tags });
  }
  return out;
}

async function ociBlob(root: string, digest: unknown, what: string): Promise<string> {
  const d = assertDigest(digest, `${what} digest`);
  return archiveFile(root, `blobs/sha256/${hexOf(d)}`, what, `${what} blob ${d}`);
}

async function readVerified(root: string, digest: Digest, what: string): Promise<Buffer> {
  const buf = await fsp.readFile(await ociBlob(root, digest, what));
  const actual = sha256(buf);
  if (actual !== digest) throw new InvalidParameterError(`invalid archive: ${what} blob ${digest} has digest ${actual}`);
  return buf;
}

async function loadOciLayout(store: LocalImageStore, root: string, progress: ProgressFn, lease: (c: Digest) => void): Promise<LoadedImage[]> {
  const index = await readJsonFile<ImageIndex>(await archiveFile(root, 'index.json', 'index'), 'index.json');
  if (!Array.isArray(index.manifests)) throw new InvalidParameterError('invalid archive: index.json has no manifests');
  const out: LoadedImage[] = [];
  for (const top of index.manifests) {
    let desc = top;
    // nested indexes: pick the host platform
    for (let depth = 0; INDEX_TYPES.includes(desc.mediaType) && depth < 4; depth++) {
      const nested = JSON.parse((await readVerified(root, desc.digest, 'index')).toString('utf8')) as ImageIndex;
      const picked = selectManifest(nested.manifests, hostPlatform());
      if (!picked) throw new NotFoundError(`no matching manifest for ${hostPlatform().os}/${hostPlatform().architecture} in the manifest list entries`);
      desc = picked;
    }
    const manifest = JSON.parse((await readVerified(root, desc.digest, 'manifest')).toString('utf8')) as ImageManifest;
    if (!manifest.config || !Array.isArray(manifest.layers)) throw new InvalidParameterError(`invalid archive: manifest ${desc.digest} has no config or layers`);
    const configBuf = await readVerified(root, manifest.config.digest, 'config');
    const config = validateConfig(JSON.parse(configBuf.toString('utf8')));
    const layerFiles = [];
    for (const l of manifest.layers) {
      const f = await ociBlob(root, l.digest, 'layer');
      const size = (await fsp.stat(f)).size;
      // a local file: verify the whole blob before unpacking it
      await pipeline(createReadStream(f), verifier(l.digest, l.size), new Writable({ write: (_c, _e, cb) => cb() }));
      layerFiles.push({ open: () => createReadStream(f), size });
    }
    await loadLayers(store, config, layerFiles, progress, lease);
    const id = await store.createImage(configBuf);
    const tags: Reference[] = [];
    const name = top.annotations?.['io.containerd.image.name'] ?? top.annotations?.['org.opencontainers.image.ref.name'];
    let ref: Reference | null = null;
    if (name && (name.includes('/') || name.includes(':') || name.includes('@'))) {
      try {
        ref = parseNormalizedNamed(name);
      } catch {
        ref = null;
      }
    }
    if (ref && !ref.digest) {
      await tagLoaded(store, ref, id, progress);
      tags.push(ref);
      progress({ stream: `Loaded image: ${familiarString(ref)}\n` });
    } else {
      progress({ stream: `Loaded image ID: ${id}\n` });
    }
    out.push({ id, tags });
  }
  return out;
}

/** Loads a docker-save tarball or an OCI image layout tarball (plain or compressed). */
export async function loadArchive(store: LocalImageStore, src: Readable, opts: { progress?: ProgressFn } = {}): Promise<LoadedImage[]> {
  const progress = opts.progress ?? noProgress;
  const tmp = path.join(store.root, 'tmp', `load-${randomId()}`);
  await fsp.mkdir(tmp, { recursive: true, mode: 0o700 });
  try {
    await unpackLayer(src, tmp, { devices: false, chown: false, xattrs: false, overlayWhiteouts: false });
    const has = async (p: string) => fsp.lstat(path.join(tmp, p)).then(() => true, () => false);
    if (await has('manifest.json')) return await store.withLease((lease) => loadDockerSave(store, tmp, progress, lease));
    if (await has('index.json')) return await store.withLease((lease) => loadOciLayout(store, tmp, progress, lease));
    throw new InvalidParameterError('invalid archive: neither manifest.json (docker save) nor index.json (OCI layout) found');
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- save

interface SaveItem {
  id: Digest;
  refs: Reference[];
}

/** Which images and tags `docker save NAME…` exports: a tag, all tags of a repository, or an ID. */
export async function resolveSaveItems(store: LocalImageStore, names: string[]): Promise<SaveItem[]> {
  const byId = new Map<Digest, SaveItem>();
  const add = (id: Digest, ref?: Reference) => {
    const item = byId.get(id) ?? { id, refs: [] };
    if (ref && !item.refs.some((r) => referenceString(r) === referenceString(ref))) item.refs.push(ref);
    byId.set(id, item);
  };
  for (const name of names) {
    let ref: Reference | null = null;
    try {
      ref = parseReference(name);
    } catch {
      ref = null;
    }
    if (ref && !ref.tag && !ref.digest) {
      const all = store.allReferences().filter((r) => r.ref.domain === ref!.domain && r.ref.path === ref!.path && r.ref.tag);
      if (all.length) {
        for (const r of all) add(r.id, r.ref);
        continue;
      }
    }
    const id = await store.resolve(name);
    if (ref && ref.tag && store.lookupReference(ref) === id) add(id, ref);
    else add(id);
  }
  return [...byId.values()];
}

/** Deterministic OCI manifest for a stored image (uncompressed layers). */
export async function ociManifestFor(store: LocalImageStore, id: Digest): Promise<Buffer> {
  const chain = await store.layerChain(id);
  const configSize = (await store.rawConfig(id)).length;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: id, size: configSize },
    layers: await Promise.all(
      chain.map(async (l) => ({ mediaType: MediaType.OciLayer, digest: l.diffId, size: await store.blobs.size(l.diffId) })),
    ),
  };
  return Buffer.from(JSON.stringify(manifest));
}

/** A docker-save tarball (manifest.json + repositories + OCI layout) of the named images. */
export async function saveImages(store: LocalImageStore, names: string[]): Promise<Readable> {
  const items = await resolveSaveItems(store, names);
  const pack = tar.pack();
  const out = new PassThrough();
  (pack as unknown as Readable).pipe(out);
  // a client that goes away: the walk ends (and streamx's "Writable stream closed" is handled)
  out.on('close', () => pack.destroy());
  (pack as unknown as Readable).on('error', (err: Error) => out.destroy(err));
  const mtime = new Date(0);
  const addBuf = (name: string, data: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, size: data.length, mode: 0o644, mtime }, data, (err) => (err ? reject(err) : resolve())));
  const addDir = (name: string) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, type: 'directory', mode: 0o755, mtime }, (err) => (err ? reject(err) : resolve())));
  const addFile = async (name: string, file: string, digest: Digest) => {
    const size = (await fsp.stat(file)).size;
    await new Promise<void>((resolve, reject) => {
      const sink = pack.entry({ name, size, mode: 0o644, mtime }, (err) => (err ? reject(err) : resolve()));
      const src = createReadStream(file);
      const rs = verifier(digest, size);
      src.on('error', (err) => rs.destroy(err));
      // a client that goes away mid-save: the blob's fd is closed with the entry
      sink.on('error', reject);
      sink.on('close', () => src.destroy());
      src.pipe(rs);
      rs.on('error', (err) => {
        sink.destroy(err);
        reject(err);
      });
      rs.pipe(sink as unknown as NodeJS.WritableStream);
    });
  };
  void (async () => {
    const written = new Set<string>();
    const manifestJson: DockerSaveManifestEntry[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
    await addDir('blobs/');
    await addDir('blobs/sha256/');
    for (const item of items) {
      const chain = await store.layerChain(item.id);
      for (const l of chain) {
        if (written.has(l.diffId)) continue;
        written.add(l.diffId);
        await addFile(`blobs/sha256/${hexOf(l.diffId)}`, store.blobs.path(l.diffId), l.diffId);
      }
      if (!written.has(item.id)) {
        written.add(item.id);
        await addBuf(`blobs/sha256/${hexOf(item.id)}`, await store.rawConfig(item.id));
      }
      const manifest = await ociManifestFor(store, item.id);
      const mDigest = sha256(manifest);
      if (!written.has(mDigest)) {
        written.add(mDigest);
        await addBuf(`blobs/sha256/${hexOf(mDigest)}`, manifest);
      }
      const tagged = item.refs.filter((r) => r.tag);
      if (tagged.length === 0) index.manifests.push({ mediaType: MediaType.OciManifest, digest: mDigest, size: manifest.length });
      for (const r of tagged) {
        index.manifests.push({
          mediaType: MediaType.OciManifest,
          digest: mDigest,
          size: manifest.length,
          annotations: { 'io.containerd.image.name': referenceString(r), 'org.opencontainers.image.ref.name': r.tag! },
        });
        const top = chain[chain.length - 1];
        if (top) (repositories[familiarName(r)] ??= {})[r.tag!] = hexOf(top.diffId);
      }
      manifestJson.push({
        Config: `blobs/sha256/${hexOf(item.id)}`,
        RepoTags: tagged.length ? tagged.map((r) => familiarString(r)) : null,
        Layers: chain.map((l) => `blobs/sha256/${hexOf(l.diffId)}`),
      });
    }
    await addBuf('index.json', Buffer.from(`${JSON.stringify(index)}\n`));
    await addBuf('manifest.json', Buffer.from(`${JSON.stringify(manifestJson)}\n`));
    await addBuf('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    if (Object.keys(repositories).length) await addBuf('repositories', Buffer.from(`${JSON.stringify(repositories)}\n`));
    pack.finalize();
  })().catch((err: unknown) => {
    out.destroy(err as Error);
    pack.destroy(err as Error);
  });
  return out;
}
