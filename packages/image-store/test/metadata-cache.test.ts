/**
 * The image store keeps its metadata in memory once read — an image's parsed config and its
 * layers' metas (content-addressed), and imagedb/<id>.json (tag time; only the store writes
 * it, and its writes update the memory copy): a container create resolves its image several
 * times, and each resolve used to re-read and re-hash the config, read every layer's meta and
 * the imagedb record (issue 18, bulk creates). These tests count the reads and check that
 * what the cache hands out stays right: copies, updates, deletes.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { errorKind } from '@berth/core';
import { LocalImageStore } from '../src/images.js';
import { parseReference } from '../src/reference.js';
import { makeTar, storePerTest, streamOf } from './helpers.js';

let base: string;
let store: LocalImageStore;
storePerTest((s) => ({ base, store } = s));
afterEach(() => {
  vi.restoreAllMocks();
});

async function twoLayerImage(): Promise<`sha256:${string}`> {
  const l1 = await store.layers.register(streamOf(await makeTar([{ name: 'a', content: 'a' }])), null);
  const l2 = await store.layers.register(streamOf(await makeTar([{ name: 'b', content: 'b' }])), l1.chainId);
  const cfg = { architecture: 'amd64', os: 'linux', config: { Env: ['A=1'] }, rootfs: { type: 'layers', diff_ids: [l1.diffId, l2.diffId] } };
  const id = await store.createImage(Buffer.from(JSON.stringify(cfg)));
  await store.addReference(parseReference('cached:1'), id);
  return id;
}

describe('image metadata kept in memory', () => {
  it('resolving and reading an image 20 times reads its config and layer metas from disk once', async () => {
    await twoLayerImage();
    const fresh = new LocalImageStore(path.join(base, 'data'));
    await fresh.init();
    const reads = vi.spyOn(fsp, 'readFile');
    try {
      for (let i = 0; i < 20; i++) {
        const resolved = await fresh.resolve('cached:1');
        const img = await fresh.get(resolved);
        expect(img.config.config?.Env).toEqual(['A=1']);
        expect((await fresh.layers.chain(img.topLayer!)).length).toBe(2);
      }
      // the config blob and the two layer metas, once each (100 before: 2 per get, 2 per chain, every time)
      const imagedb = (file: unknown) => String(file).includes(`${path.sep}imagedb${path.sep}`);
      expect(reads.mock.calls.filter(([file]) => !imagedb(file)).length).toBe(3);
      // and the imagedb record not at all: init read it (40 before: once in resolve, once in get, every time)
      expect(reads.mock.calls.filter(([file]) => imagedb(file)).length).toBe(0);
    } finally {
      await fresh.close();
    }
  });

  it('hands out copies: changing what get() returned changes nothing in the store', async () => {
    const id = await twoLayerImage();
    const first = await store.get(id);
    first.config.config!.Env!.push('B=2');
    first.meta.lastTagTime = 'evil';
    expect((await store.get(id)).meta.lastTagTime).not.toBe('evil');
    const layer = (await store.layers.get(first.topLayer!))!;
    layer.whiteouts.push('evil');
    const again = await store.get(id);
    expect(again.config.config?.Env).toEqual(['A=1']);
    expect((await store.layers.get(first.topLayer!))!.whiteouts).toEqual([]);
  });

  it('sees tag-time updates and deletes (image and layers gone, then loadable again)', async () => {
    const id = await twoLayerImage();
    const top = (await store.get(id)).topLayer!;
    const before = (await store.get(id)).meta.lastTagTime;
    await new Promise((r) => setTimeout(r, 5));
    await store.addReference(parseReference('cached:2'), id);
    expect((await store.get(id)).meta.lastTagTime).not.toBe(before);
    await store.deleteImage(id);
    expect(await store.exists(id)).toBe(false);
    expect(errorKind(await store.get(id).catch((e: unknown) => e))).toBe('NotFound');
    expect(await store.layers.get(top)).toBeNull();
    expect(await twoLayerImage()).toBe(id);
    expect((await store.get(id)).config.config?.Env).toEqual(['A=1']);
  });

  it("a create's lookups copy only what it takes: the container config (a copy), the top layer; never the whole image config", async () => {
    const id = await twoLayerImage();
    const whole = (await store.get(id)).config;
    const clones = vi.spyOn(globalThis, 'structuredClone');
    const config = await store.containerConfig(id);
    const top = await store.topLayer(id);
    // before: get() twice per create (the engine's resolve, the rootfs), each copying the whole config
    expect(clones.mock.calls.map(([v]) => Object.keys(v as object).sort())).toEqual([['Env']]);
    expect([config, top]).toEqual([{ Env: ['A=1'] }, (await store.get(id)).topLayer]);
    config.Env!.push('B=2');
    expect(await store.containerConfig(id)).toEqual({ Env: ['A=1'] });
    expect(whole.rootfs.diff_ids).toHaveLength(2);
    await store.deleteImage(id);
    expect(errorKind(await store.topLayer(id).catch((e: unknown) => e))).toBe('NotFound');
  });
});
