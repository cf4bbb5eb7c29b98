import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { sha256 } from '../src/digest.js';
import { SpecialOps } from '../src/special.js';
import { unpackLayer } from '../src/unpack.js';
import { gzip, isRoot, listTree, makeTar, streamOf, tempDir } from './helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('unpackLayer', () => {
  it('unpacks files, dirs, symlinks and hard links and computes the DiffID of the uncompressed tar', async () => {
    const t = await makeTar([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/busybox', content: 'ELF', mode: 0o755 },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' },
      { name: 'bin/ls', type: 'link', linkname: 'bin/busybox' },
      { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', uid: 0, gid: 0 },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
    ]);
    const dest = path.join(dir, 'l');
    await fsp.mkdir(dest);
    const r = await unpackLayer(streamOf(gzip(t)), dest);
    expect(r.diffId).toBe(sha256(t));
    expect(r.compression).toBe('gzip');
    expect(r.tarSize).toBe(t.length);
    expect(await listTree(dest)).toEqual(['bin', 'bin/busybox', 'bin/ls', 'bin/sh', 'etc', 'etc/passwd', 'tmp']);
    expect(await fsp.readlink(path.join(dest, 'bin/sh'))).toBe('/bin/busybox');
    const a = await fsp.stat(path.join(dest, 'bin/busybox'));
    const b = await fsp.stat(path.join(dest, 'bin/ls'));
    expect(a.ino).toBe(b.ino);
    expect(a.mode & 0o7777).toBe(0o755);
    expect((await fsp.stat(path.join(dest, 'tmp'))).mode & 0o7777).toBe(0o1777);
    expect((await fsp.stat(path.join(dest, 'etc/passwd'))).mtime.getTime()).toBe(1_000_000_000_000);
  });

  it('handles zstd-compressed layers', async () => {
    const t = await makeTar([{ name: 'a', content: 'x' }]);
    const { execFileSync } = await import('node:child_process');
    let z: Buffer;
    try {
      z = execFileSync('zstd', ['-c', '-q'], { input: t });
    } catch {
      return expect.fail('zstd CLI is needed for this test (apt-get install zstd)');
    }
    const dest = path.join(dir, 'l');
    await fsp.mkdir(dest);
    const r = await unpackLayer(streamOf(z), dest);
    expect(r.compression).toBe('zstd');
    expect(r.diffId).toBe(sha256(t));
    expect(await fsp.readFile(path.join(dest, 'a'), 'utf8')).toBe('x');
  });

  it.skipIf(!isRoot)(`turns OCI whiteouts into overlayfs whiteouts and records them (root: mknod, trusted xattrs)${isRoot ? '' : ' (skipped: needs root)'}`, async () => {
    const t = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh.motd' },
      { name: 'var/.wh..wh..opq' },
      { name: 'var/new', content: 'n' },
    ]);
    const dest = path.join(dir, 'l');
    await fsp.mkdir(dest);
    const r = await unpackLayer(streamOf(t), dest);
    expect(r.whiteouts).toEqual(['etc/motd']);
    expect(r.opaqueDirs).toEqual(['var']);
    const st = await fsp.lstat(path.join(dest, 'etc/motd'));
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0);
    const sp = new SpecialOps();
    try {
      expect((await sp.getxattrs(path.join(dest, 'var')))['trusted.overlay.opaque']?.toString()).toBe('y');
    } finally {
      await sp.close();
    }
    expect(await listTree(dest)).toEqual(['etc', 'etc/motd', 'var', 'var/new']);
  });

  it('keeps binary xattr values from PAX headers (GNU tar --xattrs)', async () => {
    const { execFileSync } = await import('node:child_process');
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'f'), 'hi');
    const value = Buffer.from([0x00, 0xff, 0x80, 0x62, 0x69, 0x6e]);
    const sp = new SpecialOps();
    try {
      await sp.setxattr(path.join(src, 'f'), 'user.bin', value);
      const t = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-C', src, '-cf', '-', 'f']);
      const dest = path.join(dir, 'l');
      await fsp.mkdir(dest);
      await unpackLayer(streamOf(t), dest);
      expect((await sp.getxattrs(path.join(dest, 'f')))['user.bin']).toEqual(value);
      expect(await fsp.readFile(path.join(dest, 'f'), 'utf8')).toBe('hi');
    } finally {
      await sp.close();
    }
  });

  it('later entries replace earlier ones', async () => {
    const t = await makeTar([
      { name: 'a', content: 'one' },
      { name: 'a', content: 'two' },
      { name: 'd/', type: 'directory' },
      { name: 'd/x', content: 'x' },
      { name: 'd', content: 'file now' },
    ]);
    const dest = path.join(dir, 'l');
    await fsp.mkdir(dest);
    await unpackLayer(streamOf(t), dest);
    expect(await fsp.readFile(path.join(dest, 'a'), 'utf8')).toBe('two');
    expect(await fsp.readFile(path.join(dest, 'd'), 'utf8')).toBe('file now');
  });

  it('errors are InvalidParameter (400)', async () => {
    const t = await makeTar([{ name: '../x', content: 'x' }]);
    const dest = path.join(dir, 'l');
    await fsp.mkdir(dest);
    const err = await unpackLayer(streamOf(t), dest).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
  });
});
