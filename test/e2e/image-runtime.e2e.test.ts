/**
 * Image root filesystems with the real runtime: an Engine with the OCI backend (runc +
 * conmon) and the image-store plugin runs containers of berth-test/busybox on overlayfs;
 * writes land in the container layer (SizeRw), ReadonlyRootfs is enforced by the kernel,
 * committed changes show up in a new container, and nothing stays mounted afterwards.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, MemoryLogger, readLogs } from '@berth/core';
import { IImageService, imageStorePlugin, mountPoints, type ImageService } from '@berth/image-store';
import { ociRuntimePlugin } from '@berth/runtime-oci';
import { REPO, forceCleanup, runtimeSkipReason } from './runtime-helpers.js';

const skip = runtimeSkipReason();

describe.skipIf(skip !== null)(`image root filesystems with runc${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tmp = '';
  let engine: Engine;
  let images: ImageService;
  const ids: string[] = [];

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-img-rt-'));
    execFileSync('bash', [path.join(REPO, 'scripts/build-test-image.sh'), path.join(tmp, 'image')], { stdio: 'pipe' });
    engine = await Engine.create({
      dataRoot: path.join(tmp, 'data'),
      execRoot: path.join(tmp, 'exec'),
      plugins: [ociRuntimePlugin({ runtimes: { runc: { path: 'runc' } } }), imageStorePlugin()],
      logger: new MemoryLogger(),
    });
    images = engine.container.resolve(IImageService);
    await images.load(fs.createReadStream(path.join(tmp, 'image/busybox.tar')));
  }, 120_000);

  afterAll(async () => {
    try {
      for (const id of ids) await engine?.containers.remove(id, { force: true }).catch(() => undefined);
      await engine?.close();
    } finally {
      forceCleanup(path.join(tmp, 'exec/oci/state/runc'), ids, []);
      for (const m of mountPoints()) if (tmp && m.startsWith(tmp)) execFileSync('umount', ['-l', m]);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);

  async function run(cmd: string[], hostConfig: Record<string, unknown> = {}): Promise<{ id: string; code: number; out: string }> {
    const { Id } = await engine.containers.create({ Config: { Image: 'berth-test/busybox', Cmd: cmd }, HostConfig: { NetworkMode: 'none', ...hostConfig } });
    ids.push(Id);
    await engine.containers.start(Id);
    const r = await engine.containers.wait(Id);
    // wait answers as soon as the exit is recorded; the release (unmount) follows it
    await engine.containers.idle();
    const rec = await engine.containers.inspect(Id);
    let out = '';
    for await (const m of readLogs(rec.LogPath)) out += m.line.toString();
    return { id: Id, code: r.StatusCode, out };
  }

  it('runs on the overlay rootfs; writes go to the container layer; unmounted after the exit', async () => {
    const { id, code, out } = await run(['sh', '-c', 'echo hi; echo data > /tmp/f; head -1 /etc/passwd']);
    expect(code).toBe(0);
    expect(out).toBe('hi\nroot:x:0:0:root:/root:/bin/sh\n');
    expect(images.rootfs.isMounted(id)).toBe(false);
    expect((await images.rootfsSizes(id)).SizeRw).toBe(5);
    expect(await images.containerChanges(id)).toEqual(expect.arrayContaining([{ Path: '/tmp/f', Kind: 1 }]));
    // the image's layer is untouched
    const [layer] = await images.store.layerChain(await images.imageId('berth-test/busybox'));
    expect(fs.existsSync(path.join(images.store.layers.diffDir(layer.chainId), 'tmp/f'))).toBe(false);
    await engine.containers.remove(id);
    expect(fs.existsSync(path.join(images.rootfs.dir, id))).toBe(false);
  });

  it('ReadonlyRootfs: writes fail with EROFS', async () => {
    const { code, out } = await run(['sh', '-c', 'touch /x 2>&1; echo rc=$?'], { ReadonlyRootfs: true });
    expect(code).toBe(0);
    expect(out).toMatch(/Read-only file system\nrc=1\n$/);
  });

  it('commit: a new container of the committed image sees the change', async () => {
    const first = await run(['sh', '-c', 'echo committed > /marker']);
    const rec = await engine.containers.inspect(first.id);
    await images.commit({ containerId: first.id, image: rec.Image, config: { ...rec.Config, Cmd: ['cat', '/marker'] }, repo: 'committed', tag: 'v1' });
    const { Id } = await engine.containers.create({ Config: { Image: 'committed:v1' }, HostConfig: { NetworkMode: 'none' } });
    ids.push(Id);
    await engine.containers.start(Id);
    expect((await engine.containers.wait(Id)).StatusCode).toBe(0);
    await engine.containers.idle();
    let out = '';
    for await (const m of readLogs((await engine.containers.inspect(Id)).LogPath)) out += m.line.toString();
    expect(out).toBe('committed\n');
    expect([...mountPoints()].filter((m) => m.startsWith(tmp))).toEqual([]);
  });
});
