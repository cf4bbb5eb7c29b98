/**
 * The chown fallback's ownership shift on a real directory (needs root for chown; skipped
 * otherwise): files move from their IDs to the same container IDs under the mapping,
 * setuid/setgid bits survive, symlinks are changed themselves, hard links once, a second run
 * with the same mapping changes nothing, and identity maps shift everything back. The
 * strategy refuses a plain (non-overlay) directory for a mapped container.
 */
import { chmod, chown, link, lstat, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { IDENTITY, chownStrategy, shiftOwnership, type IdMaps } from '../src/index.js';

const skip = process.getuid?.() !== 0 ? 'needs root (chown to other users)' : false;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'userns-own-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MAPS: IdMaps = {
  uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
  gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }],
};

describe.skipIf(skip)(`rootfs ownership shift${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('shifts to the mapping, keeps setuid bits, changes symlinks and hard links, and shifts back', async () => {
    const root = join(dir, 'root');
    await mkdir(join(root, 'home', 'u'), { recursive: true });
    await writeFile(join(root, 'su'), 'x');
    await chmod(join(root, 'su'), 0o4755);
    await chown(join(root, 'home', 'u'), 1000, 1000);
    await writeFile(join(root, 'a'), 'a');
    await link(join(root, 'a'), join(root, 'b'));
    await symlink('a', join(root, 'ln'));
    const marker = join(dir, 'marker.json');

    expect(await shiftOwnership(root, MAPS, marker)).toBe(6); // root, home, u, su, a(=b), ln
    expect(await stat(join(root, 'su'))).toMatchObject({ uid: 100000, gid: 200000 });
    expect((await stat(join(root, 'su'))).mode & 0o7777).toBe(0o4755);
    expect(await stat(join(root, 'home', 'u'))).toMatchObject({ uid: 101000, gid: 201000 });
    expect(await stat(join(root, 'b'))).toMatchObject({ uid: 100000 });
    expect(await lstat(join(root, 'ln'))).toMatchObject({ uid: 100000, gid: 200000 });

    expect(await shiftOwnership(root, MAPS, marker)).toBe(0);

    expect(await shiftOwnership(root, IDENTITY, marker)).toBe(6);
    expect(await stat(join(root, 'home', 'u'))).toMatchObject({ uid: 1000, gid: 1000 });
    expect(await stat(join(root, 'su'))).toMatchObject({ uid: 0, gid: 0 });
    expect((await stat(join(root, 'su'))).mode & 0o7777).toBe(0o4755);
  });

  it('the chown strategy refuses a plain directory for a mapped container and leaves it alone', async () => {
    await writeFile(join(dir, 'f'), '');
    const err = await chownStrategy().prepare(dir, MAPS, dir).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((await stat(join(dir, 'f'))).uid).toBe(0);
    await chownStrategy().prepare(dir, IDENTITY, dir);
  });
});
