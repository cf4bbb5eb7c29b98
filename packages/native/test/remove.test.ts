/**
 * removeTrees (native/remove.c via src/remove.ts): `rm -rf` of a removal's paths as one
 * thread-pool job — files, directories, symlinks (unlinked, never followed), a missing path, a
 * tree deeper than the fds it holds and longer than PATH_MAX; and (root) that it never
 * descends into a mount point: a mount inside a tree, or a path that is one, is left intact and
 * the job fails with EBUSY naming it, after removing the rest. The fallback without the addon
 * is Node's fs.rm.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MNT_DETACH, nativeAddon, nativeAddonStatus, removeTrees } from '../src/index.js';

const addon = nativeAddon();
const skip = addon ? null : `native addon not loaded: ${nativeAddonStatus().fallback}`;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const mountSkip = skip ?? (isRoot ? null : 'bind mounts need root');
const MS_BIND = 4096;

let dir: string;
let outside: string;
/** The mounts a test made: undone before its directories are removed (fs.rm would go into them). */
const mounted: string[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-native-rm-'));
  outside = await mkdtemp(path.join(tmpdir(), 'berth-native-rm-outside-'));
  await writeFile(path.join(outside, 'keep'), 'kept');
});
afterEach(async () => {
  for (const m of mounted.splice(0).reverse()) await addon!.umount2(m, MNT_DETACH);
  await rm(dir, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

/** A tree of files, empty and full directories, a fifo and symlinks that point out of it. */
async function tree(top: string): Promise<void> {
  await mkdir(path.join(top, 'a/b/c'), { recursive: true });
  await mkdir(path.join(top, 'empty'));
  await writeFile(path.join(top, 'f'), 'x');
  await writeFile(path.join(top, 'a/b/c/g'), 'y');
  await writeFile(path.join(top, 'a/.hidden'), 'z');
  await symlink(outside, path.join(top, 'a/link-to-dir'));
  await symlink(path.join(outside, 'keep'), path.join(top, 'link-to-file'));
  await symlink('/nonexistent', path.join(top, 'a/b/dangling'));
  execFileSync('mkfifo', [path.join(top, 'a/fifo')]);
}

/** `n` nested directories named `name` below `top`, a file in the deepest, made from a child that chdirs (no path gets long). */
function deepTree(top: string, n: number, name: string): void {
  const script = `const fs=require('fs');process.chdir(${JSON.stringify(top)});for(let i=0;i<${n};i++){fs.mkdirSync(${JSON.stringify(name)});process.chdir(${JSON.stringify(name)});}fs.writeFileSync('leaf','x');`;
  execFileSync(process.execPath, ['-e', script]);
}

const outsideIntact = async () => expect(await readFile(path.join(outside, 'keep'), 'utf8')).toBe('kept');

describe.skipIf(skip !== null)(`removeTrees: rm -rf in one job${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('removes trees, a file, a symlink and a missing path in one call, never following a symlink', async () => {
    const t1 = path.join(dir, 't1');
    const t2 = path.join(dir, 't2');
    await tree(t1);
    await tree(t2);
    await writeFile(path.join(dir, 'file'), 'x');
    await symlink(outside, path.join(dir, 'top-link'));
    await removeTrees(addon, [t1, path.join(dir, 'file'), path.join(dir, 'missing'), path.join(dir, 'top-link'), t2, path.join(dir, 'missing/below')]);
    expect(await readdir(dir)).toEqual([]);
    await outsideIntact();
  });

  it('removes a tree deeper than the directory fds it holds (600 levels) and one longer than PATH_MAX (2,100 levels of "dd")', async () => {
    const shallow = path.join(dir, 'shallow');
    await mkdir(path.join(shallow, ...Array<string>(600).fill('d')), { recursive: true });
    await writeFile(path.join(shallow, ...Array<string>(300).fill('d'), 'mid'), 'x');
    await symlink(outside, path.join(shallow, ...Array<string>(599).fill('d'), 'out'));
    const long = path.join(dir, 'long');
    await mkdir(long);
    deepTree(long, 2100, 'dd');
    await removeTrees(addon, [shallow, long]);
    expect(await readdir(dir)).toEqual([]);
    await outsideIntact();
  });

  it('checks its arguments: an array of absolute paths', () => {
    const call = addon!.removeTrees as unknown as (...a: unknown[]) => unknown;
    expect(() => call()).toThrow(TypeError);
    expect(() => call('/x')).toThrow(TypeError);
    expect(() => call(['relative'])).toThrow(TypeError);
    expect(() => call([42])).toThrow(TypeError);
    expect(() => call(['/x\0y'])).toThrow(TypeError);
  });
});

describe('removeTrees without the addon: Node fs.rm of each path', () => {
  it('removes trees and files, a missing path is fine', async () => {
    await tree(path.join(dir, 't'));
    await writeFile(path.join(dir, 'file'), 'x');
    await removeTrees(null, [path.join(dir, 't'), path.join(dir, 'file'), path.join(dir, 'missing')]);
    expect(await readdir(dir)).toEqual([]);
    await outsideIntact();
  });
});

describe.skipIf(mountSkip !== null)(`removeTrees never descends into a mount point (root)${mountSkip ? ` (skipped: ${mountSkip})` : ''}`, () => {
  const bind = async (target: string) => {
    await addon!.mount(outside, target, null, MS_BIND, null);
    mounted.push(target);
  };
  const busy = (at: string) => ({ code: 'EBUSY', errno: -16, syscall: 'rmdir', path: at });

  it('a bind mount inside a tree (the same filesystem: only the mount root attribute tells): EBUSY naming it, the rest removed, the mount intact', async () => {
    const top = path.join(dir, 'bundle');
    await tree(top);
    const at = path.join(top, 'a/b/rootfs');
    await mkdir(at);
    await bind(at);
    const other = path.join(dir, 'other');
    await tree(other);
    const err = await removeTrees(addon, [top, other]).catch((e: unknown) => e);
    expect(err).toMatchObject(busy(at));
    expect((err as Error).message).toBe(`EBUSY: resource busy or locked, rmdir '${at}'`);
    await outsideIntact();
    expect(await readdir(at)).toEqual(['keep']);
    // what was not above the mount is gone, so is every other path of the call
    expect(await readdir(top)).toEqual(['a']);
    expect(await readdir(path.join(top, 'a'))).toEqual(['b']);
    expect(await readdir(path.join(top, 'a/b'))).toEqual(['rootfs']);
    expect(existsSync(other)).toBe(false);
    await addon!.umount2(mounted.pop()!, 0);
    await removeTrees(addon, [top]);
    expect(existsSync(top)).toBe(false);
  });

  it('a tmpfs mounted inside (another device) and an empty mount point: both EBUSY, both intact', async () => {
    const top = path.join(dir, 'upper');
    await mkdir(path.join(top, 'x'), { recursive: true });
    await mkdir(path.join(top, 'y'));
    await addon!.mount('tmpfs', path.join(top, 'x'), 'tmpfs', 0, 'size=1m');
    mounted.push(path.join(top, 'x'));
    await writeFile(path.join(top, 'x/in-tmpfs'), 'z');
    await mkdir(path.join(dir, 'empty'));
    await bind(path.join(top, 'y'));
    await rm(path.join(outside, 'keep'));
    const err = await removeTrees(addon, [top]).catch((e: unknown) => e);
    expect(['x', 'y'].map((n) => path.join(top, n))).toContain((err as { path: string }).path);
    expect(err).toMatchObject({ code: 'EBUSY', syscall: 'rmdir' });
    expect(await readFile(path.join(top, 'x/in-tmpfs'), 'utf8')).toBe('z');
    expect((await readdir(top)).sort()).toEqual(['x', 'y']);
  });

  it('a path that is itself a mount root is refused, its content intact', async () => {
    const top = path.join(dir, 'mnt');
    await mkdir(top);
    await bind(top);
    const err = await removeTrees(addon, [top]).catch((e: unknown) => e);
    expect(err).toMatchObject(busy(top));
    await outsideIntact();
    expect(await readdir(top)).toEqual(['keep']);
    expect(lstatSync(top).isDirectory()).toBe(true);
  });
});
