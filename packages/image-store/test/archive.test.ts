import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import tar from 'tar-stream';
import { loadArchive, saveImages } from '../src/archive.js';
import { sha256 } from '../src/digest.js';
import { LocalImageStore } from '../src/images.js';
import { parseReference } from '../src/reference.js';
import type { JSONMessage } from '../src/progress.js';
import { buildTestImage, gzip, makeTar, storePerTest, streamOf } from './helpers.js';
import { ociSchemaErrors } from '@berth/testing';

let img: Awaited<ReturnType<typeof buildTestImage>>;
let base: string;
let store: LocalImageStore;

beforeAll(async () => {
  img = await buildTestImage();
}, 120_000);
storePerTest((s) => ({ base, store } = s));

function hostArch(): string {
  return ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function tarEntries(buf: Buffer): Promise<Map<string, Buffer>> {
  const ex = tar.extract();
  const out = new Map<string, Buffer>();
  const done = (async () => {
    for await (const e of ex) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.set(e.header.name, Buffer.concat(chunks));
    }
  })();
  Readable.from([buf]).pipe(ex as unknown as NodeJS.WritableStream);
  await done;
  return out;
}

describe('docker load / docker save', () => {
  it('loads the docker-save tarball of the test image with its tag and ID', async () => {
    const msgs: JSONMessage[] = [];
    const loaded = await loadArchive(store, createReadStream(img.saveTar), { progress: (m) => msgs.push(m) });
    expect(loaded).toHaveLength(1);
    expect(loaded[0].id).toBe(img.id);
    expect(await store.resolve('berth-test/busybox')).toBe(img.id);
    expect(await store.resolve('docker.io/berth-test/busybox:latest')).toBe(img.id);
    expect(await store.resolve(img.id.slice(7, 19))).toBe(img.id);
    expect(msgs.some((m) => m.stream === 'Loaded image: berth-test/busybox:latest\n')).toBe(true);
    expect(msgs.some((m) => m.status === 'Loading layer' && m.progressDetail?.total)).toBe(true);
    const [layer] = await store.layerChain(img.id);
    const diff = store.layers.diffDir(layer.chainId);
    expect((await fsp.stat(path.join(diff, 'bin/busybox'))).mode & 0o777).toBe(0o755);
    expect(await fsp.readlink(path.join(diff, 'bin/sh'))).toBe('/bin/busybox');
    expect(await fsp.readFile(path.join(diff, 'etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
  });

  it('loads the OCI image layout (gzip layer) to the same image ID; the layer is unpacked once', async () => {
    await loadArchive(store, createReadStream(img.saveTar));
    const layersBefore = await store.layers.list();
    const loaded = await loadArchive(store, createReadStream(img.ociTar));
    expect(loaded[0].id).toBe(img.id);
    expect(loaded[0].tags.map((t) => t.path)).toEqual(['berth-test/busybox']);
    expect(await store.layers.list()).toEqual(layersBefore);
  });

  it('loads a gzip-compressed docker-save tarball (docker load accepts compressed archives)', async () => {
    const gz = gzip(await fsp.readFile(img.saveTar));
    const loaded = await loadArchive(store, streamOf(gz));
    expect(loaded[0].id).toBe(img.id);
  });

  it('an OCI layout whose index points at a nested multi-platform index: the host platform is loaded', async () => {
    const index = JSON.parse(await fsp.readFile(path.join(img.ociDir, 'index.json'), 'utf8'));
    const desc = index.manifests[0];
    const other = { mediaType: desc.mediaType, digest: sha256('not loaded'), size: 10, platform: { os: 'linux', architecture: 's390x' } };
    const nested = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [other, { ...desc, annotations: undefined, platform: { os: 'linux', architecture: hostArch() } }] }));
    const entries = [
      { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
      { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha256(nested), size: nested.length, annotations: desc.annotations }] }) },
      { name: `blobs/sha256/${sha256(nested).slice(7)}`, content: nested },
    ];
    for (const f of await fsp.readdir(path.join(img.ociDir, 'blobs/sha256'))) entries.push({ name: `blobs/sha256/${f}`, content: await fsp.readFile(path.join(img.ociDir, 'blobs/sha256', f)) as unknown as string });
    const loaded = await loadArchive(store, streamOf(await makeTar(entries)));
    expect(loaded[0].id).toBe(img.id);
    expect(loaded[0].tags.map((t) => t.path)).toEqual(['berth-test/busybox']);
  });

  it('save | load keeps the image ID, and the saved archive is a valid OCI layout', async () => {
    await loadArchive(store, createReadStream(img.saveTar));
    const saved = await readAll(await saveImages(store, ['berth-test/busybox']));
    const entries = await tarEntries(saved);
    const manifest = JSON.parse(entries.get('manifest.json')!.toString()) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    expect(manifest).toEqual([{ Config: `blobs/sha256/${img.id.slice(7)}`, RepoTags: ['berth-test/busybox:latest'], Layers: [`blobs/sha256/${img.diffId.slice(7)}`] }]);
    const index = JSON.parse(entries.get('index.json')!.toString());
    expect(ociSchemaErrors('oci-image-spec/image-index-schema.json', index)).toBe('');
    expect(ociSchemaErrors('oci-image-spec/image-layout-schema.json', JSON.parse(entries.get('oci-layout')!.toString()))).toBe('');
    const mDigest = index.manifests[0].digest as string;
    const mBuf = entries.get(`blobs/sha256/${mDigest.slice(7)}`)!;
    expect(sha256(mBuf)).toBe(mDigest);
    expect(ociSchemaErrors('oci-image-spec/image-manifest-schema.json', JSON.parse(mBuf.toString()))).toBe('');
    expect(ociSchemaErrors('oci-image-spec/config-schema.json', JSON.parse(entries.get(`blobs/sha256/${img.id.slice(7)}`)!.toString()))).toBe('');

    const other = new LocalImageStore(path.join(base, 'data2'));
    await other.init();
    try {
      const loaded = await loadArchive(other, Readable.from([saved]));
      expect(loaded[0].id).toBe(img.id);
      expect(await other.resolve('berth-test/busybox:latest')).toBe(img.id);
    } finally {
      await other.close();
    }
  });

  it('saving by ID exports no tags; unknown names are 404 "No such image"', async () => {
    await loadArchive(store, createReadStream(img.saveTar));
    const entries = await tarEntries(await readAll(await saveImages(store, [img.id])));
    expect(JSON.parse(entries.get('manifest.json')!.toString())[0].RepoTags).toBeNull();
    const err = await saveImages(store, ['nope:1']).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('NotFound');
    expect((err as Error).message).toBe('No such image: nope:1');
  });

  it('a retag on load tells the client the old image lost its name', async () => {
    const t = await makeTar([{ name: 'x', content: 'x' }]);
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(t)] } }));
    const archive = await makeTar([
      { name: 'layer.tar', content: t },
      { name: 'config.json', content: cfg },
      { name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', RepoTags: ['berth-test/busybox:latest'], Layers: ['layer.tar'] }]) },
    ]);
    await loadArchive(store, createReadStream(img.saveTar));
    const msgs: JSONMessage[] = [];
    await loadArchive(store, streamOf(archive), { progress: (m) => msgs.push(m) });
    expect(msgs.map((m) => m.stream).join('')).toContain(`The image berth-test/busybox:latest already exists, renaming the old one with ID ${img.id} to empty string`);
    expect(store.referencesOf(img.id)).toEqual([]);
    expect(store.lookupReference(parseReference('berth-test/busybox'))).toBe(sha256(cfg));
  });
});

describe('malicious archives', () => {
  async function expectStoreEmpty() {
    expect(await store.ids()).toEqual([]);
    expect(await store.layers.list()).toEqual([]);
    expect(await fsp.readdir(path.join(store.root, 'tmp'))).toEqual([]);
  }

  it('a manifest that points at a missing blob is refused and nothing is kept', async () => {
    const t = await makeTar([{ name: 'x', content: 'x' }]);
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(t)] } }));
    const archive = await makeTar([
      { name: 'config.json', content: cfg },
      { name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', RepoTags: ['x:1'], Layers: ['missing/layer.tar'] }]) },
    ]);
    const err = await loadArchive(store, streamOf(archive)).catch((e: unknown) => e);
    expect((err as Error).message).toBe('invalid archive: layer missing/layer.tar is missing from the archive');
    expect(errorKind(err)).toBe('InvalidParameter');
    await expectStoreEmpty();
  });

  it('an OCI index that points at a missing manifest blob is refused', async () => {
    const archive = await makeTar([
      { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
      { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('nothing'), size: 7 }] }) },
    ]);
    const err = await loadArchive(store, streamOf(archive)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/manifest blob sha256:[0-9a-f]{64} is missing from the archive/);
    await expectStoreEmpty();
  });

  it('a layer whose content does not match the config DiffID is refused', async () => {
    const t = await makeTar([{ name: 'x', content: 'x' }]);
    const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256('other')] } });
    const archive = await makeTar([
      { name: 'layer.tar', content: t },
      { name: 'config.json', content: cfg },
      { name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', RepoTags: ['x:1'], Layers: ['layer.tar'] }]) },
    ]);
    const err = await loadArchive(store, streamOf(archive)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/digest mismatch/);
    await expectStoreEmpty();
  });

  it('manifest paths that escape the archive are refused', async () => {
    const archive = await makeTar([
      { name: 'manifest.json', content: JSON.stringify([{ Config: '../../etc/passwd', RepoTags: [], Layers: [] }]) },
    ]);
    const err = await loadArchive(store, streamOf(archive)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/invalid archive: .*traversal/);
    await expectStoreEmpty();
  });

  it('an OCI layer blob with a wrong digest is refused', async () => {
    const t = await makeTar([{ name: 'x', content: 'x' }]);
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(t)] } }));
    const badDigest = sha256('not the layer');
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cfg), size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: badDigest, size: t.length }] }));
    const archive = await makeTar([
      { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
      { name: `blobs/sha256/${badDigest.slice(7)}`, content: t },
      { name: `blobs/sha256/${sha256(cfg).slice(7)}`, content: cfg },
      { name: `blobs/sha256/${sha256(manifest).slice(7)}`, content: manifest },
      { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }] }) },
    ]);
    const err = await loadArchive(store, streamOf(archive)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/digest mismatch/);
    await expectStoreEmpty();
  });
});
