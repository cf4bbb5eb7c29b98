/**
 * The start-up sweep of what a killed load, commit or create left behind (issue 10 item 7):
 * layers no image or container uses, `overlay/<id>/` dirs without meta.json, root
 * filesystems of containers that were never saved. What is in use, or cannot be judged (an
 * unreadable meta.json), is kept.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { setFailpointsForTest } from '@berth/core';
import { sha256 } from '../src/digest.js';
import { ImageService } from '../src/service.js';
import { dataRootPerTest, makeTar } from './helpers.js';

const per = dataRootPerTest();

async function open(isContainer?: (id: string) => Promise<boolean>): Promise<ImageService> {
  const svc = per.track(new ImageService({ dataRoot: per.dataRoot(), rootfsDriver: 'copy' }));
  await svc.init(isContainer ? { isContainer } : {});
  return svc;
}

async function layer(svc: ImageService, content: string, parent: `sha256:${string}` | null = null) {
  return svc.store.layers.register(Readable.from([await makeTar([{ name: `f-${content}`, content }])]), parent);
}

async function imageOn(svc: ImageService, diffIds: string[]): Promise<`sha256:${string}`> {
  return svc.store.createImage(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } })));
}

const cid = (c: string) => c.repeat(64);

describe('start-up sweep', () => {
  it('a layer no image uses (a load or commit killed after its layer) is collected; used ones stay', async () => {
    const s1 = await open();
    const used = await layer(s1, 'used');
    const image = await imageOn(s1, [used.diffId]);
    const orphan = await layer(s1, 'orphan', used.chainId); // a commit's diff on top of the image
    const s2 = await open();
    expect((await s2.store.layers.list()).map((l) => l.chainId)).toEqual([used.chainId]);
    expect(await s2.store.layers.has(orphan.chainId)).toBe(false);
    expect((await s2.store.get(image)).topLayer).toBe(used.chainId);
  });

  it('a layer a container still uses stays after its image is gone', async () => {
    const s1 = await open();
    const l = await layer(s1, 'x');
    const image = await imageOn(s1, [l.diffId]);
    await s1.createRootfs(cid('a'), image);
    await s1.store.deleteImage(image, [l.chainId]);
    const s2 = await open(async () => true);
    expect(await s2.store.layers.has(l.chainId)).toBe(true);
  });

  it('overlay dirs of creates that never finished, or whose container was never saved, are removed', async () => {
    const s1 = await open();
    const l = await layer(s1, 'x');
    const image = await imageOn(s1, [l.diffId]);
    await s1.createRootfs(cid('a'), image); // a saved container
    await s1.createRootfs(cid('b'), image); // record never saved (killed between)
    await fsp.mkdir(path.join(s1.rootfs.dir, cid('c'), 'merged'), { recursive: true }); // killed before meta.json
    const s2 = await open(async (id) => id === cid('a'));
    expect(await fsp.readdir(s2.rootfs.dir)).toEqual([cid('a')]);
    expect(await s2.store.layers.has(l.chainId)).toBe(true);
  });

  it('an unreadable rootfs meta.json: that dir and every layer are kept, and it is named', async () => {
    const s1 = await open();
    const l = await layer(s1, 'x');
    const image = await imageOn(s1, [l.diffId]);
    await s1.createRootfs(cid('a'), image);
    await s1.store.deleteImage(image, [l.chainId]);
    await fsp.writeFile(path.join(s1.rootfs.dir, cid('a'), 'meta.json'), '{"containerId":');
    const s2 = await open(async () => true);
    expect(await fsp.readdir(s2.rootfs.dir)).toEqual([cid('a')]);
    expect(await s2.store.layers.has(l.chainId)).toBe(true);
    expect(s2.warnings()).toEqual([expect.stringContaining(path.join(s2.rootfs.dir, cid('a'), 'meta.json'))]);
  });
});

describe('a failed load, import or commit', () => {
  afterEach(() => setFailpointsForTest(undefined));

  it('removes the layers it registered at once (no restart needed)', async () => {
    const svc = await open();
    const layerTar = await makeTar([{ name: 'f', content: 'loaded' }]);
    const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] } });
    const archive = await makeTar([
      { name: 'layer.tar', content: layerTar },
      { name: 'config.json', content: config },
      { name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', RepoTags: ['x:1'], Layers: ['layer.tar'] }]) },
    ]);
    setFailpointsForTest('image.load.afterLayer=enospc');
    const err = await svc.load(Readable.from([archive])).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(await svc.store.layers.list()).toEqual([]);
    expect(await svc.store.ids()).toEqual([]);
    // and the same load works afterwards
    setFailpointsForTest(undefined);
    const [loaded] = await svc.load(Readable.from([archive]));
    expect(await svc.store.resolve('x:1')).toBe(loaded!.id);
  });

  it('commit: the diff layer goes when the image cannot be saved', async () => {
    const svc = await open();
    const l = await layer(svc, 'base');
    const image = await imageOn(svc, [l.diffId]);
    await svc.createRootfs(cid('a'), image);
    await fsp.writeFile(path.join(await svc.mountRootfs(cid('a')), 'new'), 'x');
    setFailpointsForTest('image.commit.afterLayer=error');
    await expect(svc.commit({ containerId: cid('a'), image, config: {} })).rejects.toThrow(/failpoint image.commit.afterLayer/);
    expect((await svc.store.layers.list()).map((m) => m.chainId)).toEqual([l.chainId]);
  });
});
