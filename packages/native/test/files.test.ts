/**
 * writeFiles (native/files.c via src/files.ts): a create's directories and atomic writes as one
 * thread-pool job — what it makes (modes whatever the umask, contents, order), and that every
 * failure stops the job with Node's fs error shape (code, errno, syscall, path) and leaves no
 * temp or half-written file: an existing directory, a rename refused, a write cut short by the
 * file size limit (EFBIG in a child process).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIR_EXIST_OK, WRITE_NO_FSYNC, WRITE_SYNC_DIR, nativeAddon, nativeAddonStatus, writeFiles } from '../src/index.js';

const addon = nativeAddon();
const skip = addon ? null : `native addon not loaded: ${nativeAddonStatus().fallback}`;
const noPrlimit = spawnSync('prlimit', ['--version']).status === 0 ? null : 'no prlimit binary (util-linux) to set the file size limit';
const ADDON_FILE = fileURLToPath(new URL('../dist/native/berth.node', import.meta.url));

describe.skipIf(skip !== null)(`writeFiles: directories and atomic writes in one job${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let umask: number;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-native-files-'));
    umask = process.umask(0o022);
  });
  afterEach(async () => {
    process.umask(umask);
    await rm(dir, { recursive: true, force: true });
  });
  const temps = async (d: string) => (await readdir(d)).filter((n) => n.startsWith('.tmp-'));

  it("makes the directories in order (missing parents too), then the files with their mode whatever the umask", async () => {
    process.umask(0o077);
    const c = path.join(dir, 'a', 'c');
    await writeFiles(addon!, [[c, 0o755, 0], [path.join(c, 'merged'), 0o755, 0], [path.join(c, 'work'), 0o700, 0]], c, [['meta.json', '{"x":1}'], ['bin', Buffer.from([0, 1, 2, 255])]], 0o644, 0);
    expect((await readdir(c)).sort()).toEqual(['bin', 'merged', 'meta.json', 'work']);
    expect(await readFile(path.join(c, 'meta.json'), 'utf8')).toBe('{"x":1}');
    expect([...(await readFile(path.join(c, 'bin')))]).toEqual([0, 1, 2, 255]);
    expect((await stat(path.join(c, 'meta.json'))).mode & 0o777).toBe(0o644);
    // directories get mkdir(2)'s mode, umask applied (as Node's mkdir)
    expect((await stat(path.join(c, 'merged'))).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(c, 'work'))).mode & 0o777).toBe(0o700);
  });

  it('replaces existing files (flags: no fsync, directory fsync) and an existing directory is fine with DIR_EXIST_OK', async () => {
    await writeFile(path.join(dir, 'f'), 'old old old');
    for (const flags of [0, WRITE_NO_FSYNC, WRITE_SYNC_DIR, WRITE_NO_FSYNC | WRITE_SYNC_DIR]) {
      await writeFiles(addon!, [[dir, 0o710, DIR_EXIST_OK]], dir, [['f', `new ${flags}`]], 0o600, flags);
      expect(await readFile(path.join(dir, 'f'), 'utf8')).toBe(`new ${flags}`);
    }
    expect(await readdir(dir)).toEqual(['f']);
    // directories alone (no files): makeDirs' case
    await writeFiles(addon!, [[path.join(dir, 'd1'), 0o755, 0]], '', [], 0, 0);
    expect((await stat(path.join(dir, 'd1'))).isDirectory()).toBe(true);
  });

  it('an existing directory without DIR_EXIST_OK: EEXIST naming it, as Node throws it, and nothing after it is done', async () => {
    const c = path.join(dir, 'c');
    await mkdir(c);
    const err = (await writeFiles(addon!, [[c, 0o755, 0], [path.join(c, 'merged'), 0o755, 0]], c, [['meta.json', '{}']], 0o644, 0).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(err).toBeInstanceOf(Error);
    expect([err.code, err.errno, err.syscall, err.path]).toEqual(['EEXIST', -17, 'mkdir', c]);
    expect(err.message).toBe(`EEXIST: file already exists, mkdir '${c}'`);
    expect(await readdir(c)).toEqual([]);
  });

  it('a rename that fails: the files renamed before it are new, the rest old, no temp left', async () => {
    await writeFile(path.join(dir, 'a'), 'A1');
    await writeFile(path.join(dir, 'c'), 'C1');
    await mkdir(path.join(dir, 'b', 'x'), { recursive: true }); // a file cannot be renamed over a non-empty directory
    const err = (await writeFiles(addon!, [], dir, [['a', 'A2'], ['b', 'B2'], ['c', 'C2']], 0o600, 0).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect([err.syscall, err.code]).toEqual(['rename', 'EISDIR']);
    expect(err.path).toMatch(/\/\.tmp-b\.[0-9a-f]{8}$/);
    expect([await readFile(path.join(dir, 'a'), 'utf8'), await readFile(path.join(dir, 'c'), 'utf8')]).toEqual(['A2', 'C1']);
    expect(await temps(dir)).toEqual([]);
  });

  it.skipIf(noPrlimit !== null)(`a write cut short (file size limit: EFBIG) leaves the old file whole and no half-written temp${noPrlimit ? ` (skipped: ${noPrlimit})` : ''}`, async () => {
    await writeFile(path.join(dir, 'big'), 'old');
    const script = [
      `process.on('SIGXFSZ', () => {});`, // the write then fails with EFBIG instead of killing the process
      `const addon = (await import('node:module')).createRequire(import.meta.url)(${JSON.stringify(ADDON_FILE)});`,
      `try { await addon.writeFiles([], ${JSON.stringify(dir)}, [['big', 'x'.repeat(65536)]], 0o600, 0); console.log('written'); }`,
      `catch (e) { console.log(JSON.stringify({ errno: e.errno, syscall: e.syscall, path: e.path })); }`,
    ].join('\n');
    const out = execFileSync('prlimit', ['--fsize=4096', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' }).trim();
    const e = JSON.parse(out) as { errno: number; syscall: string; path: string };
    expect([e.errno, e.syscall]).toEqual([27, 'write']); // EFBIG
    expect(e.path).toMatch(/\/\.tmp-big\.[0-9a-f]{8}$/);
    expect(await readFile(path.join(dir, 'big'), 'utf8')).toBe('old');
    expect(await readdir(dir)).toEqual(['big']);
  });

  it('argument checks: a TypeError before any work', async () => {
    const c = path.join(dir, 'c');
    const bad: unknown[][] = [
      [[[c, 0o755, 0]], dir, [['x/y', 'data']], 0o600, 0], // a name with '/'
      [[[c, 0o755, 0]], dir, [['', 'data']], 0o600, 0],
      [[[c, 0o755]], dir, [], 0o600, 0], // a dir without flags
      [[[c, 0o755, 0]], dir, [['f', 42]], 0o600, 0], // data neither string nor bytes
      [[], '', [['f', 'x']], 0o600, 0], // files without a directory
      [[], dir, [], 0o600, 8], // an unknown flag
      [[], dir, [], 0o600],
    ];
    for (const args of bad) expect(() => (addon!.writeFiles as (...a: unknown[]) => unknown)(...args)).toThrow(TypeError);
    expect(existsSync(c)).toBe(false);
  });
});
