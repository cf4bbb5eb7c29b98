/**
 * The addon's mount(2)/umount2(2) (native/berth.c): built by the package build where a C compiler and Node's
 * headers exist (they do on the machines the README sets up), real mount(2)/umount2(2) as
 * root, errors with errno, argument checks.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { MNT_DETACH, errnoName, nativeAddon as nativeMount } from '../src/index.js';
import { noAddon } from './build-skip.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const tempDir = (prefix: string) => mkdtemp(path.join(tmpdir(), prefix));
async function mountPoints(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const f = line.split(' ');
    if (f.length > 4) out.add(f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}


describe.skipIf(noAddon !== null)(`native addon (Node headers present, so the build made it)${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
  it('is built and loads', () => {
    const n = nativeMount();
    expect(n).not.toBeNull();
    expect(typeof n!.mount).toBe('function');
    expect(typeof n!.umount2).toBe('function');
    expect(typeof n!.run).toBe('function');
    expect(typeof n!.spawnMonitor).toBe('function');
  });

  it('checks its arguments', () => {
    const n = nativeMount()!;
    expect(() => (n.mount as unknown as (...a: unknown[]) => unknown)('tmpfs', '/x')).toThrow(TypeError);
    expect(() => n.mount('tmpfs', 42 as unknown as string, 'tmpfs', 0, null)).toThrow(TypeError);
    expect(() => n.mount('tmpfs', '/x', 'tmpfs', -1, null)).toThrow(TypeError);
    expect(() => n.mount('tmpfs', '/x\0y', 'tmpfs', 0, null)).toThrow(TypeError);
    expect(() => n.umount2('/x', 1.5)).toThrow(TypeError);
  });
});

const mountSkip = noAddon ?? (isRoot ? null : 'mount(2) needs root');
describe.skipIf(mountSkip !== null)(`mount addon syscalls (root)${mountSkip ? ` (skipped: ${mountSkip})` : ''}`, () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('berth-native-');
  });
  afterEach(async () => {
    for (const m of await mountPoints()) if (m.startsWith(dir)) await nativeMount()!.umount2(m, MNT_DETACH).catch(() => {});
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('mounts and unmounts a tmpfs; a busy mount refuses, then detaches', async () => {
    const n = nativeMount()!;
    const target = path.join(dir, 'mnt');
    await fsp.mkdir(target);
    await n.mount('tmpfs', target, 'tmpfs', 0, 'size=1m,mode=0700');
    expect((await mountPoints()).has(target)).toBe(true);
    await fsp.writeFile(path.join(target, 'f'), 'x');
    const fh = await fsp.open(path.join(target, 'f'), 'r');
    try {
      const busy = await n.umount2(target, 0).then(() => null, (e: unknown) => e);
      expect(errnoName(busy)).toBe('EBUSY');
      expect((busy as { syscall?: string }).syscall).toBe('umount2');
      await n.umount2(target, MNT_DETACH);
      expect((await mountPoints()).has(target)).toBe(false);
    } finally {
      await fh.close();
    }
  });

  it('rejects with the errno of a failed mount', async () => {
    const n = nativeMount()!;
    const err = await n.mount('tmpfs', path.join(dir, 'missing'), 'tmpfs', 0, null).then(() => null, (e: unknown) => e);
    expect(errnoName(err)).toBe('ENOENT');
    expect(String((err as Error).message)).toContain('missing');
    const inval = await n.umount2(dir, 0).then(() => null, (e: unknown) => e);
    expect(errnoName(inval)).toBe('EINVAL'); // not a mount point
  });
});
