/** The one atomic-write helper (core/src/atomic-write.ts): whole files, exact modes, no temp files left behind. */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { atomicWriteFile, atomicWriteFileSync, atomicWriteFiles, isAtomicTempFile } from '../src/index.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'berth-atomic-'));
  dirs.push(d);
  return d;
}

describe('atomic writes', () => {
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
});
