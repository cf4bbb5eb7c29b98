/**
 * The idmapped-layer strategy on real mounts (root, the native addon and a kernel with
 * idmapped overlay layers; skipped with the reason otherwise): a user namespace made for a
 * mapping, an idmapped bind mount through the addon, the start-up probe, and prepare/release
 * on a real overlay — the image's files appear owned by the mapped root without being copied
 * up, the upper layer's root belongs to it, release leaves no mount behind, and the identity
 * shifts the upper back.
 */
import { closeSync, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mountPointsUnder, readMountInfo } from '@berth/core';
import { MNT_DETACH, nativeAddon } from '@berth/native';
import { IDENTITY, LAYERS_DIR, openUserNamespace, probeIdmap, type IdMaps } from '../src/index.js';

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (mounts, user namespace maps)';
  if (!nativeAddon()?.idmapBind) return 'the native addon is not built';
  if (!/\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'))) return 'no overlayfs';
  return false;
}
const skip = skipReason();

const MAPS: IdMaps = { uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }] };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'userns-idmap-'));
});
afterEach(async () => {
  const n = nativeAddon();
  if (n) for (const mp of mountPointsUnder(dir, await readMountInfo()).reverse()) await n.umount2(mp, MNT_DETACH).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(skip)(`idmapped layers${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('a user namespace with the maps; an idmapped bind mount shows root’s files as the mapped root’s', async () => {
    const fd = await openUserNamespace(MAPS);
    try {
      await mkdir(join(dir, 'src'));
      await mkdir(join(dir, 'dst'));
      await writeFile(join(dir, 'src', 'f'), 'x');
      nativeAddon()!.idmapBind(join(dir, 'src'), join(dir, 'dst'), fd);
      expect(await stat(join(dir, 'dst', 'f'))).toMatchObject({ uid: 100000, gid: 200000 });
      expect(await stat(join(dir, 'src', 'f'))).toMatchObject({ uid: 0, gid: 0 });
    } finally {
      closeSync(fd);
    }
  });

  it('probe → idmap; prepare remounts the overlay over idmapped lowers (no copy-up), release unmounts them', async () => {
    const probed = await probeIdmap(join(dir, 'probe'));
    if (!('strategy' in probed)) throw new Error(probed.reason);
    expect(existsSync(join(dir, 'probe'))).toBe(false);
    const { strategy, close } = probed;
    try {
      for (const d of ['lower/bin', 'upper', 'work', 'merged', 'ctr']) await mkdir(join(dir, d), { recursive: true });
      await writeFile(join(dir, 'lower/bin/sh'), 'sh');
      const merged = join(dir, 'merged');
      await nativeAddon()!.mount('overlay', merged, 'overlay', 0, `lowerdir=${join(dir, 'lower')},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`);

      await strategy.prepare(merged, MAPS, join(dir, 'ctr'));
      expect(await stat(join(merged, 'bin/sh'))).toMatchObject({ uid: 100000, gid: 200000 });
      expect(await stat(join(dir, 'upper'))).toMatchObject({ uid: 100000, gid: 200000 });
      expect(await readdir(join(dir, 'upper'))).toEqual([]); // nothing copied up
      expect(await stat(join(dir, 'lower/bin/sh'))).toMatchObject({ uid: 0 });
      // a second prepare on the still-mounted rootfs changes nothing
      await strategy.prepare(merged, MAPS, join(dir, 'ctr'));

      await nativeAddon()!.umount2(merged, 0);
      await strategy.release!(join(dir, 'ctr'));
      expect(mountPointsUnder(join(dir, 'ctr'), await readMountInfo())).toEqual([]);
      expect(existsSync(join(dir, 'ctr', LAYERS_DIR))).toBe(false);

      // --userns=host later: the upper goes back to the host's IDs, no idmapped layers
      await nativeAddon()!.mount('overlay', merged, 'overlay', 0, `lowerdir=${join(dir, 'lower')},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`);
      await strategy.prepare(merged, IDENTITY, join(dir, 'ctr'));
      expect(await stat(join(dir, 'upper'))).toMatchObject({ uid: 0, gid: 0 });
      expect(await stat(join(merged, 'bin/sh'))).toMatchObject({ uid: 0 });
    } finally {
      close();
    }
  });
});
