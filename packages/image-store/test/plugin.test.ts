import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IImageStore, errorKind, shortId } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { IImageService, imageStorePlugin } from '../src/plugin.js';
import { mountPoints } from '../src/rootfs.js';
import type { ImageService } from '../src/service.js';
import { buildTestImage, overlaySkipReason } from './helpers.js';

let img: Awaited<ReturnType<typeof buildTestImage>>;
beforeAll(async () => {
  img = await buildTestImage();
}, 120_000);

for (const driver of ['copy', 'overlay'] as const) {
  const skip = driver === 'overlay' ? overlaySkipReason() : null;
  describe.skipIf(skip !== null)(`image-store plugin (${driver})${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let t: TestEngine;
    let svc: ImageService;
    beforeEach(async () => {
      t = await createTestEngine({ plugins: [imageStorePlugin({ config: { driver } })], specDefaults: true });
      svc = t.engine.container.resolve(IImageService);
      await svc.load(createReadStream(img.saveTar));
    });
    afterEach(async () => {
      try {
        for (const m of mountPoints()) if (m.startsWith(t.dir)) await import('node:child_process').then(({ execFileSync }) => execFileSync('umount', ['-l', m]));
      } finally {
        await t.dispose();
      }
    });

    it('provides IImageStore; create fills the config from the image; start mounts, exit unmounts, remove deletes', async () => {
      expect(t.engine.container.resolve(IImageStore)).toBe(svc);
      expect(t.engine.plugins.find((p) => p.name === 'image-store')?.status).toBe('loaded');
      const { Id } = await t.engine.containers.create({ Config: { Image: 'berth-test/busybox', Cmd: ['echo', 'hi'] } });
      const rec = await t.engine.containers.inspect(Id);
      expect(rec.Image).toBe(img.id);
      expect(rec.Config.Env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
      expect((await svc.rootfs.meta(Id))?.driver).toBe(driver);

      // in use by a (created) container: docker's conflict
      const conflict = await svc.remove(img.id).catch((e: unknown) => e as Error);
      expect((conflict as Error).message).toBe(`conflict: unable to delete ${shortId(img.id)} (must be forced) - image is being used by stopped container ${shortId(Id)}`);
      expect(errorKind(conflict)).toBe('Conflict');

      await t.engine.containers.start(Id);
      const merged = svc.rootfs.mergedPath(Id);
      const spec = t.fake.containers.get(Id)!.spec;
      expect(spec.root?.path).toBe(merged);
      expect(await fsp.readlink(path.join(merged, 'bin/sh'))).toBe('/bin/busybox');
      if (driver === 'overlay') expect(mountPoints().has(merged)).toBe(true);
      const running = await svc.remove(img.id, { force: true }).catch((e: unknown) => e as Error);
      expect((running as Error).message).toBe(`conflict: unable to delete ${shortId(img.id)} (cannot be forced) - image is being used by running container ${shortId(Id)}`);
      await fsp.writeFile(path.join(merged, 'tmp/x'), '12345');
      expect((await svc.rootfsSizes(Id)).SizeRw).toBe(5);

      await t.engine.containers.stop(Id, { timeout: 1 });
      await t.engine.containers.wait(Id);
      await t.engine.containers.idle();
      expect(mountPoints().has(merged)).toBe(false);
      await t.engine.containers.remove(Id);
      expect(await svc.rootfs.meta(Id)).toBeNull();
      expect(await fsp.readdir(svc.rootfs.dir)).toEqual([]);
      // no container uses it any more
      expect((await svc.remove('berth-test/busybox')).some((r) => r.Deleted === img.id)).toBe(true);
    });

    it('ReadonlyRootfs reaches the spec; an unknown image is 404 at create', async () => {
      const { Id } = await t.engine.containers.create({ Config: { Image: 'berth-test/busybox' }, HostConfig: { ReadonlyRootfs: true } });
      await t.engine.containers.start(Id);
      expect(t.fake.containers.get(Id)!.spec.root).toEqual({ path: svc.rootfs.mergedPath(Id), readonly: true });
      await t.engine.containers.remove(Id, { force: true });
      expect(mountPoints().has(svc.rootfs.mergedPath(Id))).toBe(false);
      expect(await svc.rootfs.meta(Id)).toBeNull();
      const err = await t.engine.containers.create({ Config: { Image: 'nope:1' } }).catch((e: unknown) => e as Error);
      expect((err as Error).message).toBe('No such image: nope:1');
    });

    it('after a daemon restart, a created (never started) container still holds its image', async () => {
      const { Id } = await t.engine.containers.create({ Config: { Image: 'berth-test/busybox' } });
      await t.restart();
      const again = t.engine.container.resolve(IImageService);
      expect(again).not.toBe(svc);
      const err = await again.remove(img.id).catch((e: unknown) => e as Error);
      expect((err as Error).message).toBe(`conflict: unable to delete ${shortId(img.id)} (must be forced) - image is being used by stopped container ${shortId(Id)}`);
      await t.engine.containers.start(Id);
      expect(await fsp.readlink(path.join(again.rootfs.mergedPath(Id), 'bin/sh'))).toBe('/bin/busybox');
      await t.engine.containers.remove(Id, { force: true });
      expect((await again.remove('berth-test/busybox')).some((r) => r.Deleted === img.id)).toBe(true);
    });

    it('a failed start unmounts (rollback)', async () => {
      const { Id } = await t.engine.containers.create({ Config: { Image: 'berth-test/busybox' } });
      t.fake.fail('create', 'boom');
      await expect(t.engine.containers.start(Id)).rejects.toThrow();
      expect(mountPoints().has(svc.rootfs.mergedPath(Id))).toBe(false);
      await t.engine.containers.remove(Id, { force: true });
    });

    it('a failed start unmounts the root filesystem once (one undo: the unmount hook)', async () => {
      const { Id } = await t.engine.containers.create({ Config: { Image: 'berth-test/busybox' } });
      const unmounts: string[] = [];
      const unmount = svc.unmountRootfs.bind(svc);
      svc.unmountRootfs = (id) => {
        unmounts.push(id);
        return unmount(id);
      };
      t.fake.fail('create', 'boom');
      await expect(t.engine.containers.start(Id)).rejects.toThrow('boom');
      expect(unmounts).toEqual([Id]);
      await t.engine.containers.remove(Id, { force: true });
      // nothing was set up any more, so the removal has nothing to unmount either
      expect(unmounts).toEqual([Id]);
    });
  });
}

describe('image-store plugin: one plugin value in two engines', () => {
  it('each engine gets its own image service; closing one leaves the other working', async () => {
    const shared = imageStorePlugin({ config: { driver: 'copy' } });
    const t1 = await createTestEngine({ plugins: [shared], specDefaults: true });
    const t2 = await createTestEngine({ plugins: [shared], specDefaults: true });
    try {
      const [s1, s2] = [t1, t2].map((t) => t.engine.container.resolve(IImageService));
      expect(s1).not.toBe(s2);
      for (const s of [s1!, s2!]) await s.load(createReadStream(img.saveTar));
      // a create in the first engine makes its layer in the first engine's store
      const { Id } = await t1.engine.containers.create({ Config: { Image: 'berth-test/busybox', Cmd: ['true'] } });
      expect(await s1!.rootfs.meta(Id)).not.toBeNull();
      expect(await s2!.rootfs.meta(Id)).toBeNull();
      await t1.dispose();
      const other = await t2.engine.containers.create({ Config: { Image: 'berth-test/busybox', Cmd: ['true'] } });
      await t2.engine.containers.start(other.Id);
      expect(t2.fake.containers.get(other.Id)!.spec.root?.path).toBe(s2!.rootfs.mergedPath(other.Id));
    } finally {
      await t1.dispose();
      await t2.dispose();
    }
  });
});
