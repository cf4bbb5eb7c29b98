/**
 * The one atomic-write helper (core/src/atomic-write.ts): whole files, exact modes, no temp
 * files left behind, directories made first — through the native addon's one-job writeFiles
 * where it is loaded and through Node's fs calls without it (both paths, same table).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { atomicWriteFile, atomicWriteFileSync, atomicWriteFiles, isAtomicTempFile, makeDirs } from '../src/index.js';

const state = vi.hoisted(() => ({ addon: true, loaded: false }));
vi.mock('@berth/native', async (importOriginal) => {
  const real = await importOriginal<typeof import('@berth/native')>();
  state.loaded = real.nativeAddon() !== null;
  return { ...real, nativeAddon: () => (state.addon ? real.nativeAddon() : null) };
});
await import('@berth/native');
const paths = [
  { path: 'native addon', addon: true, skip: state.loaded ? null : 'native addon not loaded (not built)' },
  { path: 'JS fallback', addon: false, skip: null },
];

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'berth-atomic-'));
  dirs.push(d);
  return d;
}

describe.each(paths)('atomic writes ($path)', ({ addon, skip }) => {
  if (skip) console.warn(`atomic writes through the addon skipped: ${skip}`);
  beforeEach(({ skip: skipTest }) => {
    if (skip) skipTest(skip);
    state.addon = addon;
  });
  it('atomicWriteFile replaces the whole file or nothing', async () => {
    const d = await tempDir();
    const f = join(d, 'x.json');
    await atomicWriteFile(f, '{"a":1}');
    await atomicWriteFile(f, '{"a":2}', { fsync: false, syncDir: true });
    expect(await readFile(f, 'utf8')).toBe('{"a":2}');
    expect(await readdir(d)).toEqual(['x.json']);
    await expect(atomicWriteFile(join(d, 'missing', 'y.json'), 'x')).rejects.toThrow();
    expect(await readdir(d)).toEqual(['x.json']);
  });

  it('atomicWriteFiles: all temps first, renames in order; a failed write leaves the old files and no temps', async () => {
    const d = await tempDir();
    await atomicWriteFiles(d, [['a', 'A1'], ['b', 'B1']]);
    expect([await readFile(join(d, 'a'), 'utf8'), await readFile(join(d, 'b'), 'utf8')]).toEqual(['A1', 'B1']);
    // The second temp cannot be created (its name is a directory path that does not exist).
    await expect(atomicWriteFiles(d, [['a', 'A2'], ['no/such/dir', 'X']])).rejects.toThrow();
    expect(await readFile(join(d, 'a'), 'utf8')).toBe('A1');
    expect((await readdir(d)).sort()).toEqual(['a', 'b']);
  });

  it('gives the file its mode whatever the umask, and makes the directory when asked', async () => {
    const d = await tempDir();
    const old = process.umask(0o077);
    try {
      await atomicWriteFile(join(d, 'sub', 'hosts'), '127.0.0.1 localhost\n', { mode: 0o644, mkdir: true });
      atomicWriteFileSync(join(d, 'sync.json'), '{}', { mode: 0o640 });
    } finally {
      process.umask(old);
    }
    expect((await stat(join(d, 'sub', 'hosts'))).mode & 0o777).toBe(0o644);
    expect((await stat(join(d, 'sync.json'))).mode & 0o777).toBe(0o640);
    expect((await stat(join(d, 'sub', 'hosts'))).isFile()).toBe(true);
  });

  it('leaves no temp file when the rename fails (both variants)', async () => {
    const d = await tempDir();
    atomicWriteFileSync(join(d, 'a'), 'A');
    // renaming a file over a non-empty directory fails after the temp file was written
    await atomicWriteFile(join(d, 'dir', 'x'), 'x', { mkdir: true });
    await expect(atomicWriteFile(join(d, 'dir'), 'B', { fsync: false })).rejects.toThrow();
    expect(() => atomicWriteFileSync(join(d, 'dir'), 'B')).toThrow();
    expect((await readdir(d)).filter(isAtomicTempFile)).toEqual([]);
    expect(await readFile(join(d, 'a'), 'utf8')).toBe('A');
  });

  it('dirs: made in order before the writes (parents too); an existing one fails with EEXIST naming it unless existOk', async () => {
    const d = await tempDir();
    const c = join(d, 'overlay', 'c');
    await atomicWriteFile(join(c, 'meta.json'), '{}', { mode: 0o644, dirs: [{ path: c, mode: 0o755 }, { path: join(c, 'work'), mode: 0o700 }] });
    expect((await readdir(c)).sort()).toEqual(['meta.json', 'work']);
    const err = (await atomicWriteFile(join(c, 'meta.json'), '{"x":1}', { dirs: [{ path: c, mode: 0o755 }] }).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect([err.code, err.path]).toEqual(['EEXIST', c]);
    expect(await readFile(join(c, 'meta.json'), 'utf8')).toBe('{}');
    await atomicWriteFile(join(c, 'meta.json'), '{"x":2}', { dirs: [{ path: c, mode: 0o755, existOk: true }] });
    expect(await readFile(join(c, 'meta.json'), 'utf8')).toBe('{"x":2}');
    expect((await readdir(c)).filter(isAtomicTempFile)).toEqual([]);
  });

  it('makeDirs: each directory with its mode, an existing one refused unless existOk', async () => {
    const d = await tempDir();
    await makeDirs([{ path: join(d, 'a', 'b'), mode: 0o710 }, { path: join(d, 'a', 'b', 'c'), mode: 0o700 }]);
    expect((await stat(join(d, 'a', 'b', 'c'))).isDirectory()).toBe(true);
    await makeDirs([{ path: join(d, 'a', 'b'), mode: 0o710, existOk: true }]);
    await mkdir(join(d, 'x'));
    await expect(makeDirs([{ path: join(d, 'x'), mode: 0o755 }])).rejects.toMatchObject({ code: 'EEXIST', path: join(d, 'x') });
  });
});
