/**
 * GET /system/df and POST /containers/prune's SpaceReclaimed over a real Engine whose image
 * store and image service are fakes: per API version the legacy fields (LayersSize, Images
 * with SharedSize/Containers, Containers with SizeRw/SizeRootFs, Volumes [], BuildCache []),
 * the 1.52 *Usage summaries with or without `verbose`, the `type` filter; validated against
 * the swagger. Prune reports the removed containers' writable-layer bytes, measured before
 * the removal.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IImageStore, NotFoundError } from '@berth/core';
import { IImageService, type ImageService } from '@berth/image-store';
import { createTestEngine, validateDefinition, validateResponse, type TestEngine } from '@berth/testing';
import { apiRoutes, buildApp, enginePort, openInjector, type Injector } from '../src/index.js';
import { facts } from './helpers/fake-port.js';

const X = 'sha256:' + 'aa'.repeat(32);
const Y = 'sha256:' + 'bb'.repeat(32);
const layer = (n: number, size: number) => ({ chainId: 'sha256:' + String(n).repeat(64), size });
const L1 = layer(1, 400);
const L2 = layer(2, 600);
const L3 = layer(3, 200);
const ORPHAN = layer(4, 50); // a layer no image uses (e.g. left by an interrupted pull)

type Body = Record<string, unknown> & {
  LayersSize?: number;
  Images?: Array<Record<string, unknown>>;
  Containers?: Array<Record<string, unknown>>;
};

describe('GET /system/df and prune SpaceReclaimed', () => {
  let t: TestEngine;
  let inj: Injector;
  let sizes: Map<string, number>;
  let ids: { a: string; b: string; p: string };

  const image = (id: string, size: number, containers: number) => ({ Id: id, ParentId: '', RepoTags: [`img-${id.slice(7, 9)}:latest`], RepoDigests: [], Created: 1_700_000_000, Size: size, SharedSize: -1, Labels: {}, Containers: containers });
  const create = async (name: string, body: Record<string, unknown> = {}): Promise<string> => {
    const r = await inj.request({ method: 'POST', url: `/v1.44/containers/create?name=${name}`, body: { Image: 'busybox', Cmd: ['/bin/true'], ...body } });
    expect(r.statusCode, r.body.toString()).toBe(201);
    return r.json().Id as string;
  };
  const df = async (query = '', version = '1.44'): Promise<Body> => {
    const r = await inj.request({ url: `/v${version}/system/df${query}` });
    expect(r.statusCode, r.body.toString()).toBe(200);
    return r.json() as Body;
  };

  beforeEach(async () => {
    sizes = new Map();
    const fakeService = {
      // the service's own list: SharedSize unknown (-1), Containers counted
      async list(opts: { containers?: boolean }) {
        return [image(X, L1.size + L2.size, opts.containers ? 2 : -1), image(Y, L1.size + L3.size, opts.containers ? 0 : -1)];
      },
      store: {
        async layerChain(id: string) {
          if (id === X) return [L1, L2];
          if (id === Y) return [L1, L3];
          throw new NotFoundError(`No such image: ${id}`);
        },
        layers: { list: async () => [L1, L2, L3, ORPHAN] },
      },
      async rootfsSizes(id: string) {
        // Gone once the container is removed, as the real store's layer is.
        if (!t.engine.containers.list().some((c) => c.ID === id)) throw new NotFoundError(`no root filesystem prepared for container ${id}`);
        const rw = sizes.get(id);
        if (rw === undefined) throw new Error(`fake: no size scripted for ${id}`);
        return { SizeRw: rw, SizeRootFs: rw + 1000 };
      },
    } as unknown as ImageService;
    t = await createTestEngine({
      providers: (c) => {
        // One object for both tokens, as the image-store plugin registers them (prune measures through IImageStore).
        c.register(IImageStore, { useValue: { resolve: async (ref: string) => (ref === 'busybox' ? { id: X, config: {} } : null), rootfsSizes: (id: string) => fakeService.rootfsSizes(id) } });
        c.register(IImageService, { useValue: fakeService });
      },
    });
    inj = await openInjector(buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts() })) }));
    ids = { a: await create('ctr-a'), b: await create('ctr-b'), p: await create('ctr-p', { Image: 'plain', Labels: { 'io.berth.rootfs': t.rootfs } }) };
    sizes.set(ids.a, 100);
    sizes.set(ids.b, 50);
    const started = await inj.request({ method: 'POST', url: `/v1.44/containers/${ids.p}/start` });
    expect(started.statusCode, started.body.toString()).toBe(204);
  });
  afterEach(async () => {
    await inj.close();
    await t.dispose();
  });

  it('API < 1.52: LayersSize, Images with SharedSize and Containers, Containers with sizes, Volumes [] and BuildCache []', async () => {
    const body = await df();
    expect(Object.keys(body).sort()).toEqual(['BuildCache', 'Containers', 'Images', 'LayersSize', 'Volumes']);
    // Every layer in the store, shared ones once, the orphan too.
    expect(body.LayersSize).toBe(400 + 600 + 200 + 50);
    expect(body.Volumes).toEqual([]);
    expect(body.BuildCache).toEqual([]);
    const images = new Map(body.Images!.map((i) => [i.Id, i]));
    expect(images.get(X)).toMatchObject({ Size: 1000, SharedSize: 400, Containers: 2 });
    expect(images.get(Y)).toMatchObject({ Size: 600, SharedSize: 400, Containers: 0 });
    for (const i of body.Images!) expect(validateDefinition('ImageSummary', i)).toBe('');
    const containers = new Map(body.Containers!.map((c) => [c.Id, c]));
    expect(containers.get(ids.a)).toMatchObject({ SizeRw: 100, SizeRootFs: 1100, State: 'created' });
    expect(containers.get(ids.b)).toMatchObject({ SizeRw: 50, SizeRootFs: 1050 });
    expect(containers.get(ids.p)).toMatchObject({ SizeRw: 0, SizeRootFs: 0, State: 'running' });
    for (const c of body.Containers!) expect(validateDefinition('ContainerSummary', c)).toBe('');
  });

  it('API 1.52: the *Usage summaries beside the legacy fields; with verbose only the summaries, with their items', async () => {
    const body = await df('', '1.52');
    expect(validateResponse('/system/df', 'get', 200, body)).toBe('');
    expect(body).toHaveProperty('LayersSize', 1250);
    expect(body.ContainerUsage).toEqual({ ActiveCount: 1, TotalCount: 3, Reclaimable: 150, TotalSize: 150 });
    // Reclaimable: Size - SharedSize of the image no container uses.
    expect(body.ImageUsage).toEqual({ ActiveCount: 1, TotalCount: 2, Reclaimable: 600 - 400, TotalSize: 1250 });
    expect(body.VolumeUsage).toEqual({ ActiveCount: 0, TotalCount: 0, Reclaimable: 0, TotalSize: 0 });
    expect(body.BuildCacheUsage).toEqual({ ActiveCount: 0, TotalCount: 0, Reclaimable: 0, TotalSize: 0 });

    const verbose = await df('?verbose=1', '1.52');
    expect(validateResponse('/system/df', 'get', 200, verbose)).toBe('');
    expect(Object.keys(verbose).sort()).toEqual(['BuildCacheUsage', 'ContainerUsage', 'ImageUsage', 'VolumeUsage']);
    expect((verbose.ContainerUsage as { Items: unknown[] }).Items).toHaveLength(3);
    expect((verbose.ImageUsage as { Items: Array<{ SharedSize: number }> }).Items.map((i) => i.SharedSize)).toEqual([400, 400]);
    expect(verbose.VolumeUsage).not.toHaveProperty('Items');
  });

  it('type selects what is computed (API >= 1.42); an unknown type is a 400; before 1.42 type is ignored', async () => {
    const only = await df('?type=container&type=volume');
    expect(Object.keys(only).sort()).toEqual(['Containers', 'Volumes']);
    const bad = await inj.request({ url: '/v1.44/system/df?type=bogus' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toBe('unknown object type: bogus');
    const old = await df('?type=volume', '1.41');
    expect(Object.keys(old).sort()).toEqual(['BuildCache', 'Containers', 'Images', 'LayersSize', 'Volumes']);
  });

  it('container prune: SpaceReclaimed is the sum of the removed writable layers, measured before removal', async () => {
    const r = await inj.request({ method: 'POST', url: '/v1.44/containers/prune' });
    expect(r.statusCode, r.body.toString()).toBe(200);
    expect(validateResponse('/containers/prune', 'post', 200, r.json())).toBe('');
    expect(new Set(r.json().ContainersDeleted)).toEqual(new Set([ids.a, ids.b]));
    expect(r.json().SpaceReclaimed).toBe(150);
    // Nothing left to prune: nothing reclaimed.
    const again = await inj.request({ method: 'POST', url: '/v1.44/containers/prune' });
    expect(again.json()).toEqual({ ContainersDeleted: null, SpaceReclaimed: 0 });
  });
});
