import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { DigestMismatchError } from '../src/blobs.js';
import { sha256 } from '../src/digest.js';
import { LocalImageStore } from '../src/images.js';
import { parseReference } from '../src/reference.js';
import { makeTar, storePerTest, streamOf } from './helpers.js';

let base: string;
let store: LocalImageStore;
storePerTest((s) => ({ base, store } = s));

async function oneLayerImage(content = 'x'): Promise<{ id: `sha256:${string}`; chain: `sha256:${string}` }> {
  const t = await makeTar([{ name: 'f', content }]);
  const meta = await store.layers.register(streamOf(t), null);
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [meta.diffId] } }));
  return { id: await store.createImage(cfg), chain: meta.chainId };
}

describe('blob store', () => {
  it('verifies on write (expected digest and size) and on read (corruption on disk)', async () => {
    const data = Buffer.from('hello');
    await expect(store.blobs.putBuffer(data, sha256('other'))).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(store.blobs.putStream(Readable.from([data]), { expected: sha256(data), expectedSize: 4 })).rejects.toThrow(/size mismatch/);
    expect(await store.blobs.list()).toEqual([]);
    const { digest } = await store.blobs.putStream(Readable.from([data]), { expected: sha256(data), expectedSize: 5 });
    expect(await store.blobs.read(digest)).toEqual(data);
    await fsp.writeFile(store.blobs.path(digest), 'jello');
    const err = await store.blobs.read(digest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(errorKind(err)).toBe('InvalidParameter');
    const chunks: Buffer[] = [];
    await expect(
      (async () => {
        for await (const c of store.blobs.createVerifiedReadStream(digest)) chunks.push(c as Buffer);
      })(),
    ).rejects.toThrow(/digest mismatch/);
    expect(errorKind(await store.blobs.read(sha256('absent')).catch((e: unknown) => e))).toBe('NotFound');
  });
});

describe('image store', () => {
  it('references survive a restart (repositories.json) and dangling references are dropped', async () => {
    const { id } = await oneLayerImage();
    await store.addReference(parseReference('a/b:1'), id);
    const raw = JSON.parse(await fsp.readFile(path.join(store.root, 'repositories.json'), 'utf8'));
    expect(raw).toEqual({ Repositories: { 'docker.io/a/b': { 'docker.io/a/b:1': id } } });
    const again = new LocalImageStore(path.join(base, 'data'));
    await again.init();
    expect(await again.resolve('a/b:1')).toBe(id);
    // an image whose metadata vanished (crash between writes): its reference goes at start-up
    await fsp.rm(path.join(again.root, 'imagedb', `${id.slice(7)}.json`));
    const third = new LocalImageStore(path.join(base, 'data'));
    await third.init();
    expect(third.allReferences()).toEqual([]);
    await again.close();
    await third.close();
  });

  it('leftovers of a crash (half-unpacked layers, temp blobs) are removed at start-up', async () => {
    await fsp.mkdir(path.join(store.layers.dir, 'tmp-deadbeef', 'diff'), { recursive: true });
    await fsp.mkdir(path.join(store.layers.dir, 'a'.repeat(64), 'diff'), { recursive: true }); // no meta.json
    await fsp.writeFile(path.join(store.root, 'blobs', 'tmp', 'partial'), 'x');
    const again = new LocalImageStore(path.join(base, 'data'));
    await again.init();
    expect(await fsp.readdir(again.layers.dir)).toEqual([]);
    expect(await fsp.readdir(path.join(again.root, 'blobs', 'tmp'))).toEqual([]);
    await again.close();
  });

  it('resolves IDs, prefixes and references; a config naming missing layers is refused', async () => {
    const { id } = await oneLayerImage();
    expect(await store.resolve(id)).toBe(id);
    expect(await store.resolve(id.slice(7, 15))).toBe(id);
    expect(await store.resolve(`sha256:${id.slice(7, 15)}`)).toBe(id);
    await expect(store.resolve('nope')).rejects.toThrow('No such image: nope');
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256('missing')] } }));
    await expect(store.createImage(cfg)).rejects.toThrow(/refers to a layer that is not in the store/);
  });

  it('a lease keeps freshly registered layers from garbage collection until released', async () => {
    const l = store.lease();
    const t = await makeTar([{ name: 'leased', content: 'l' }]);
    const meta = await store.layers.register(streamOf(t), null, { lease: l.add });
    expect(await store.gcLayers()).toEqual([]);
    expect(await store.layers.has(meta.chainId)).toBe(true);
    l.release();
    expect(await store.gcLayers()).toEqual([meta.chainId]);
    expect(await store.blobs.list()).toEqual([]);
  });

  it('a layer is unpacked once: a second register with the known DiffID does not read its stream', async () => {
    const t = await makeTar([{ name: 'once', content: 'o' }]);
    const first = await store.layers.register(streamOf(t), null);
    let opened = 0;
    const second = await store.layers.register(() => {
      opened++;
      return streamOf(t);
    }, null, { expectedDiffId: first.diffId });
    expect(second).toEqual(first);
    expect(opened).toBe(0);
  });
});
