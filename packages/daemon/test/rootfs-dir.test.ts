/**
 * berth-only `--berth-rootfs-dir`: an image name the image store does not know runs on the
 * plain directory of that name; known images still come from the store.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IImageStore } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { apiRoutes, buildApp, enginePort, openInjector, rootfsDirOf, type Injector } from '../src/index.js';
import { facts } from './helpers/fake-port.js';

const IMAGE_ID = 'sha256:' + 'ef'.repeat(32);

describe('--berth-rootfs-dir beside an image store', () => {
  let t: TestEngine;
  let inj: Injector;
  let dir: string;
  let asked: string[];
  const create = (name: string, image: string) => inj.request({ method: 'POST', url: `/v1.44/containers/create?name=${name}`, body: { Image: image, Cmd: ['/bin/true'] } });

  beforeEach(async () => {
    asked = [];
    dir = mkdtempSync(path.join(os.tmpdir(), 'berth-rootfs-dir-'));
    t = await createTestEngine({
      providers: (c) => {
        c.register(IImageStore, {
          useValue: {
            async resolve(ref: string) {
              asked.push(ref);
              return ref === 'busybox' ? { id: IMAGE_ID, config: { Env: ['FROM=image'] } } : null;
            },
          },
        });
      },
    });
    inj = await openInjector(buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts(), rootfsDir: dir })) }));
  });
  afterEach(async () => {
    await inj.close();
    await t.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs an unknown name on its directory, a known image from the store, and 404s the rest', async () => {
    const app = path.join(dir, 'my_app_1.0');
    mkdirSync(app);
    const r = await create('plain', 'my/app:1.0');
    expect(r.statusCode, r.body.toString()).toBe(201);
    const rec = t.engine.containers.get(r.json().Id);
    expect(rec.Image).toBe('');
    expect(rec.BaseFS).toBe(app);
    expect(rec.Config.Image).toBe('my/app:1.0');
    expect(rec.Config.Env).toBeUndefined();

    const img = await create('fromstore', 'busybox');
    expect(img.statusCode).toBe(201);
    const irec = t.engine.containers.get(img.json().Id);
    expect(irec.Image).toBe(IMAGE_ID);
    expect(irec.BaseFS).toBeUndefined();
    expect(irec.Config.Env).toEqual(['FROM=image']);

    writeFileSync(path.join(dir, 'afile'), 'not a directory');
    for (const name of ['nothing', 'afile']) {
      const miss = await create(`miss-${name}`, name);
      expect(miss.statusCode).toBe(404);
      expect(miss.json()).toEqual({ message: `No such image: ${name}` });
    }
  });

  it('never resolves a name outside the directory', async () => {
    expect(rootfsDirOf('/srv/roots', '..')).toBeNull();
    expect(rootfsDirOf('/srv/roots', '.')).toBeNull();
    expect(rootfsDirOf('/srv/roots', '')).toBeNull();
    expect(rootfsDirOf('/srv/roots', '../etc')).toBe('/srv/roots/.._etc');
    expect(rootfsDirOf('/srv/roots', 'reg.example:5000/a/b@sha256:00')).toBe('/srv/roots/reg.example_5000_a_b_sha256_00');
    // `..` of the rootfs dir is a directory, but it is not offered as an image
    const r = await create('up', '..');
    expect(r.statusCode).toBe(404);
  });
});
