/**
 * dirFdOps(): one fd-relative step inside a directory, through the addon's openat2 and through
 * the /proc/self/fd fallback alike: a symlink at the step is never followed (the caller reads
 * it instead), names that would leave the directory are refused before any syscall, errors
 * carry Node's errno `code`, and every fd the tests open is closed (counted in /proc/self/fd);
 * a kernel without openat2 (ENOSYS) switches the addon's ops to the fallback.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { O_PATH, RESOLVE_BENEATH, RESOLVE_IN_ROOT, dirFdOps, nativeAddon, procFdPath, type DirFdOps, type NativeAddon } from '../src/index.js';
import { noAddon } from './build-skip.js';

const openFds = () => fs.readdirSync('/proc/self/fd').length;
const caught = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as NodeJS.ErrnoException);

const modes: Array<{ name: string; ops: () => DirFdOps; skip: string | null }> = [
  { name: 'addon openat2', ops: () => dirFdOps(nativeAddon()), skip: noAddon },
  { name: '/proc/self/fd fallback', ops: () => dirFdOps(null), skip: null },
];

for (const mode of modes) {
  describe.skipIf(mode.skip !== null)(`dirFdOps: ${mode.name}${mode.skip ? ` (skipped: ${mode.skip})` : ''}`, () => {
    let dir: string;
    let outside: string;
    let dirfd: number;
    let fdsBefore: number;
    let ops: DirFdOps;
    beforeEach(() => {
      ops = mode.ops();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-dirfd-'));
      outside = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-dirfd-out-'));
      fs.mkdirSync(path.join(dir, 'sub'));
      fs.writeFileSync(path.join(dir, 'file'), 'inside');
      fs.writeFileSync(path.join(outside, 'file'), 'outside');
      fs.symlinkSync(outside, path.join(dir, 'abs'));
      fs.symlinkSync('../' + path.basename(outside), path.join(dir, 'rel'));
      fdsBefore = openFds();
      dirfd = fs.openSync(dir, O_PATH | fs.constants.O_DIRECTORY);
    });
    afterEach(() => {
      fs.closeSync(dirfd);
      expect(openFds()).toBe(fdsBefore);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(outside, { recursive: true, force: true });
    });

    it(`is the ${mode.name}`, () => {
      expect(ops.kind).toBe(mode.name.startsWith('addon') ? 'openat2' : 'procfd');
    });

    it('opens a file and a directory in the directory; the fds read what is there', async () => {
      const fd = await ops.openAt(dirfd, 'file', fs.constants.O_RDONLY);
      try {
        expect(fs.readFileSync(fd, 'utf8')).toBe('inside');
      } finally {
        fs.closeSync(fd);
      }
      const sub = await ops.openAt(dirfd, 'sub', O_PATH | fs.constants.O_DIRECTORY);
      try {
        expect(fs.fstatSync(sub).isDirectory()).toBe(true);
        // a step from the new fd: the walk goes on from there
        fs.writeFileSync(path.join(dir, 'sub', 'x'), 'x');
        const x = await ops.openAt(sub, 'x', fs.constants.O_RDONLY);
        expect(fs.readFileSync(x, 'utf8')).toBe('x');
        fs.closeSync(x);
        // '.' is the directory itself
        const self = await ops.openAt(sub, '.', O_PATH | fs.constants.O_DIRECTORY);
        expect(fs.fstatSync(self).ino).toBe(fs.statSync(path.join(dir, 'sub')).ino);
        fs.closeSync(self);
      } finally {
        fs.closeSync(sub);
      }
    });

    it('never follows a symlink at the step: ELOOP or ENOTDIR, and the link is read instead', async () => {
      for (const name of ['abs', 'rel']) {
        const e1 = await caught(ops.openAt(dirfd, name, O_PATH | fs.constants.O_DIRECTORY));
        expect(['ELOOP', 'ENOTDIR']).toContain(e1?.code);
        const e2 = await caught(ops.openAt(dirfd, name, fs.constants.O_RDONLY));
        expect(e2?.code).toBe('ELOOP');
      }
      // O_PATH alone opens the symlink itself, never its target
      const l = await ops.openAt(dirfd, 'abs', O_PATH);
      try {
        expect(fs.fstatSync(l).isSymbolicLink()).toBe(true);
      } finally {
        fs.closeSync(l);
      }
      expect(await ops.readlinkAt(dirfd, 'abs')).toBe(outside);
      expect((await caught(ops.readlinkAt(dirfd, 'file')))?.code).toBe('EINVAL');
    });

    it('creates with O_CREAT|O_EXCL and the mode given; refuses to create through a symlink', async () => {
      const fd = await ops.openAt(dirfd, 'new', fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      fs.writeSync(fd, 'n');
      fs.closeSync(fd);
      expect(fs.statSync(path.join(dir, 'new')).mode & 0o777).toBe(0o600);
      fs.symlinkSync(path.join(outside, 'made'), path.join(dir, 'dangling'));
      const e = await caught(ops.openAt(dirfd, 'dangling', fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644));
      expect(e?.code).toBe('ELOOP');
      expect(fs.readdirSync(outside)).toEqual(['file']);
    });

    it('refuses names that are not one component before any syscall, and bad fds', async () => {
      for (const bad of ['', '..', 'a/b', '../file', '/etc', 'a\0b']) {
        await expect(ops.openAt(dirfd, bad, fs.constants.O_RDONLY)).rejects.toThrow(TypeError);
        await expect(ops.readlinkAt(dirfd, bad)).rejects.toThrow(TypeError);
      }
      await expect(ops.openAt(-1, 'file', fs.constants.O_RDONLY)).rejects.toThrow(TypeError);
      expect(() => procFdPath(dirfd, '..')).toThrow(TypeError);
      expect(procFdPath(dirfd, 'file')).toBe(`/proc/self/fd/${dirfd}/file`);
    });

    it('reports a missing name with ENOENT and a closed fd with EBADF', async () => {
      expect((await caught(ops.openAt(dirfd, 'missing', fs.constants.O_RDONLY)))?.code).toBe('ENOENT');
      const fd = fs.openSync(dir, O_PATH);
      fs.closeSync(fd);
      const e = await caught(ops.openAt(fd, 'file', fs.constants.O_RDONLY));
      // the fallback's /proc/self/fd/<closed> is missing: ENOENT; openat2 says EBADF
      expect(['EBADF', 'ENOENT']).toContain(e?.code);
    });
  });
}

describe('dirFdOps over an addon whose openat2 the kernel lacks (ENOSYS)', () => {
  it('falls back to /proc/self/fd from the first ENOSYS on, and keeps other errors', async () => {
    let calls = 0;
    const enosys = Object.assign(new Error('openat2 x: Function not implemented'), { errno: os.constants.errno.ENOSYS, syscall: 'openat2' });
    const fake = { openat2: () => (calls++, Promise.reject(enosys)), readlinkat: () => Promise.reject(new Error('unused')) } as unknown as NativeAddon;
    const ops = dirFdOps(fake);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-enosys-'));
    const dirfd = fs.openSync(dir, O_PATH | fs.constants.O_DIRECTORY);
    try {
      fs.writeFileSync(path.join(dir, 'f'), 'via procfd');
      for (let i = 0; i < 2; i++) {
        const fd = await ops.openAt(dirfd, 'f', fs.constants.O_RDONLY);
        expect(fs.readFileSync(fd, 'utf8')).toBe('via procfd');
        fs.closeSync(fd);
      }
      expect(calls).toBe(1);
      expect((await caught(ops.openAt(dirfd, 'missing', fs.constants.O_RDONLY)))?.code).toBe('ENOENT');
      const other = dirFdOps({ openat2: () => Promise.reject(Object.assign(new Error('x'), { errno: os.constants.errno.EACCES })) } as unknown as NativeAddon);
      expect((await caught(other.openAt(dirfd, 'f', fs.constants.O_RDONLY)))?.code).toBe('EACCES');
    } finally {
      fs.closeSync(dirfd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(noAddon !== null)(`addon openat2/readlinkat (raw)${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
  it('checks its arguments', () => {
    const n = nativeAddon()!;
    const call = (f: unknown, ...a: unknown[]) => () => (f as (...x: unknown[]) => unknown).call(n, ...a);
    expect(call(n.openat2, 3, 'x', 0, 0)).toThrow(TypeError);
    expect(call(n.openat2, -1, 'x', 0, 0, 0)).toThrow(TypeError);
    expect(call(n.openat2, 3, 7, 0, 0, 0)).toThrow(TypeError);
    expect(call(n.openat2, 3, 'x', -1, 0, 0)).toThrow(TypeError);
    expect(call(n.openat2, 3, 'x', 0, 0o10000, 0)).toThrow(TypeError);
    expect(call(n.readlinkat, 3)).toThrow(TypeError);
    expect(call(n.readlinkat, 1.5, 'x')).toThrow(TypeError);
  });

  it('RESOLVE_IN_ROOT clamps a path at the directory; RESOLVE_BENEATH refuses leaving it (EXDEV), with errno and syscall', async () => {
    const n = nativeAddon()!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-openat2-'));
    const dirfd = fs.openSync(dir, O_PATH | fs.constants.O_DIRECTORY);
    try {
      fs.writeFileSync(path.join(dir, 'passwd'), 'mine');
      fs.symlinkSync('/passwd', path.join(dir, 'lnk'));
      const fd = await n.openat2(dirfd, '../../../lnk', fs.constants.O_RDONLY, 0, RESOLVE_IN_ROOT);
      expect(fs.readFileSync(fd, 'utf8')).toBe('mine');
      fs.closeSync(fd);
      const e = (await caught(n.openat2(dirfd, '../x', fs.constants.O_RDONLY, 0, RESOLVE_BENEATH))) as NodeJS.ErrnoException & { syscall?: string };
      expect(e.errno).toBe(os.constants.errno.EXDEV);
      expect(e.syscall).toBe('openat2');
      const le = (await caught(n.readlinkat(dirfd, 'passwd'))) as NodeJS.ErrnoException & { syscall?: string };
      expect(le.errno).toBe(os.constants.errno.EINVAL);
      expect(le.syscall).toBe('readlinkat');
      const l = await n.openat2(dirfd, 'lnk', O_PATH | fs.constants.O_NOFOLLOW, 0, 0);
      expect(await n.readlinkat(l, '')).toBe('/passwd');
      fs.closeSync(l);
    } finally {
      fs.closeSync(dirfd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
