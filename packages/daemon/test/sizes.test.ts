/**
 * SizeRw / SizeRootFs (GET /containers/json?size=1, GET /containers/{id}/json?size=1) over a
 * real Engine whose image store and image service are fakes: the numbers come from
 * IImageService.rootfsSizes, the fields are absent without `size`, as dockerd.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IImageStore, NotFoundError, SystemError } from '@berth/core';
import { IImageService, type ImageService } from '@berth/image-store';
import { createTestEngine, validateResponse, type TestEngine } from '@berth/testing';
import { apiRoutes, buildApp, enginePort, openInjector, type Injector } from '../src/index.js';
import { facts } from './helpers/fake-port.js';

const IMAGE_ID = 'sha256:' + 'cd'.repeat(32);

describe('container sizes from the image service', () => {
  let t: TestEngine;
  let inj: Injector;
  let asked: string[];
  let sizes: Map<string, { SizeRw: number; SizeRootFs: number } | Error>;

  const create = async (name: string, body: Record<string, unknown> = {}): Promise<string> => {
    const r = await inj.request({ method: 'POST', url: `/v1.44/containers/create?name=${name}`, body: { Image: 'busybox', Cmd: ['/bin/true'], ...body } });
    expect(r.statusCode, r.body.toString()).toBe(201);
    return r.json().Id as string;
  };

  beforeEach(async () => {
    asked = [];
    sizes = new Map();
    const fakeService = {
      async rootfsSizes(id: string) {
        asked.push(id);
        const s = sizes.get(id);
        if (!s) throw new Error(`fake: no sizes scripted for ${id}`);
        if (s instanceof Error) throw s;
        return s;
      },
    } as unknown as ImageService;
    t = await createTestEngine({
      providers: (c) => {
        c.register(IImageStore, { useValue: { resolve: async (ref: string) => (ref === 'busybox' ? { id: IMAGE_ID, config: {} } : null) } });
        c.register(IImageService, { useValue: fakeService });
      },
    });
    inj = await openInjector(buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts() })) }));
  });
  afterEach(async () => {
    await inj.close();
    await t.dispose();
  });

  it('list: absent without size, the image service numbers with size=1 (ContainerSummary)', async () => {
    const a = await create('ctr-a');
    const b = await create('ctr-b');
    sizes.set(a, { SizeRw: 5, SizeRootFs: 1_200_005 });
    sizes.set(b, { SizeRw: 0, SizeRootFs: 1_200_000 });

    const plain = await inj.request({ url: '/v1.44/containers/json?all=1' });
    expect(plain.statusCode).toBe(200);
    for (const s of plain.json() as Array<Record<string, unknown>>) {
      expect(s).not.toHaveProperty('SizeRw');
      expect(s).not.toHaveProperty('SizeRootFs');
    }
    expect(asked).toEqual([]);

    const sized = await inj.request({ url: '/v1.44/containers/json?all=1&size=1' });
    expect(sized.statusCode).toBe(200);
    expect(validateResponse('/containers/json', 'get', 200, sized.json())).toBe('');
    const byId = new Map((sized.json() as Array<{ Id: string; SizeRw: number; SizeRootFs: number }>).map((s) => [s.Id, s]));
    expect(byId.get(a)).toMatchObject({ SizeRw: 5, SizeRootFs: 1_200_005 });
    expect(byId.get(b)).toMatchObject({ SizeRw: 0, SizeRootFs: 1_200_000 });
    expect(asked.sort()).toEqual([a, b].sort());
  });

  it('inspect: absent without size, present with size=1 (ContainerInspectResponse)', async () => {
    const a = await create('ctr-a');
    sizes.set(a, { SizeRw: 4096, SizeRootFs: 4096 + 777 });
    const plain = await inj.request({ url: `/v1.44/containers/${a}/json` });
    expect(plain.statusCode).toBe(200);
    expect(plain.json()).not.toHaveProperty('SizeRw');
    expect(plain.json()).not.toHaveProperty('SizeRootFs');
    const sized = await inj.request({ url: '/v1.44/containers/ctr-a/json?size=1' });
    expect(sized.statusCode).toBe(200);
    expect(validateResponse('/containers/{id}/json', 'get', 200, sized.json())).toBe('');
    expect(sized.json()).toMatchObject({ Id: a, SizeRw: 4096, SizeRootFs: 4873 });
  });

  it('a failing measurement is an error, not a zero', async () => {
    const a = await create('ctr-a');
    sizes.set(a, new SystemError('du: disk on fire'));
    const r = await inj.request({ url: `/v1.44/containers/${a}/json?size=1` });
    expect(r.statusCode).toBe(500);
    expect(r.json().message).toContain('disk on fire');
    const l = await inj.request({ url: '/v1.44/containers/json?all=1&size=1' });
    expect(l.statusCode).toBe(500);
  });

  it('list: a container removed while being measured drops out; a missing layer of a live one is an error', async () => {
    const a = await create('ctr-a');
    const b = await create('ctr-b');
    sizes.set(a, { SizeRw: 1, SizeRootFs: 2 });
    const gone = async () => {
      await t.engine.containers.remove(b, { force: true });
      throw new NotFoundError(`no root filesystem prepared for container ${b}`);
    };
    const svc = t.engine.container.resolve(IImageService) as unknown as { rootfsSizes(id: string): Promise<unknown> };
    const orig = svc.rootfsSizes.bind(svc);
    svc.rootfsSizes = (id) => (id === b ? gone() : orig(id));
    const l = await inj.request({ url: '/v1.44/containers/json?all=1&size=1' });
    expect(l.statusCode).toBe(200);
    expect((l.json() as Array<{ Id: string }>).map((s) => s.Id)).toEqual([a]);
    sizes.set(a, new NotFoundError(`no root filesystem prepared for container ${a}`));
    const again = await inj.request({ url: '/v1.44/containers/json?all=1&size=1' });
    expect(again.statusCode).toBe(500);
    expect(again.json().message).toContain(`no root filesystem prepared for container ${a}`);
  });

  it('a container on a plain rootfs has no layer: zero, without asking the image service', async () => {
    const p = await create('ctr-p', { Image: 'not-in-store', Labels: { 'io.berth.rootfs': t.rootfs } });
    const r = await inj.request({ url: `/v1.44/containers/${p}/json?size=1` });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ SizeRw: 0, SizeRootFs: 0 });
    expect(asked).toEqual([]);
  });
});

describe('container sizes without an image service', () => {
  it('leaves the fields out even with size=1', async () => {
    const t = await createTestEngine();
    const inj = await openInjector(buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts() })) }));
    try {
      const r = await inj.request({ method: 'POST', url: '/v1.44/containers/create?name=ctr-x', body: { Image: 'plain', Cmd: ['/bin/true'], Labels: { 'io.berth.rootfs': t.rootfs } } });
      expect(r.statusCode).toBe(201);
      const i = await inj.request({ url: '/v1.44/containers/ctr-x/json?size=1' });
      expect(i.statusCode).toBe(200);
      expect(i.json()).not.toHaveProperty('SizeRw');
      const l = await inj.request({ url: '/v1.44/containers/json?all=1&size=1' });
      expect(l.json()[0]).not.toHaveProperty('SizeRootFs');
    } finally {
      await inj.close();
      await t.dispose();
    }
  });
});
