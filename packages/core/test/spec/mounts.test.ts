import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkPropagation,
  defaultSpec,
  formatTmpfsSize,
  isValidMountMode,
  mergeTmpfsOptions,
  parseApiMount,
  parseBind,
  parseTmpfs,
  parseUserMounts,
  sortMountsByDepth,
  toOciMount,
  withMounts,
} from '../../src/spec/index.js';
import { mountOf, parseMountInfo } from '../../src/mountinfo.js';
import type { Mount } from '../../src/types.js';
import { build, rejection, tempDir, tempRootfs, thrown } from './helpers.js';

let r: { dir: string; cleanup: () => void };
let host: { dir: string; cleanup: () => void };
beforeAll(() => {
  r = tempRootfs();
  host = tempDir('berth-spectest-binds-');
  mkdirSync(path.join(host.dir, 'a'));
});
afterAll(() => {
  r.cleanup();
  host.cleanup();
});

describe('parseBind (HostConfig.Binds)', () => {
  it.each([
    ['/src:/dst', { source: '/src', destination: '/dst', readOnly: false, propagation: 'rprivate' }],
    ['/src:/dst:ro', { readOnly: true, propagation: 'rprivate' }],
    ['/src:/dst:rw,rslave', { readOnly: false, propagation: 'rslave' }],
    ['/src:/dst:ro,Z,rshared', { readOnly: true, propagation: 'rshared', label: 'Z' }],
    ['/src/:/dst/sub/', { source: '/src', destination: '/dst/sub' }],
    ['/a/../src//x:/dst/./y', { source: '/src/x', destination: '/dst/y' }],
  ])('%s', (raw, expected) => {
    expect(parseBind(raw)).toMatchObject({ type: 'bind', ...expected });
  });

  it('a source that is not absolute is a named volume; a lone destination an anonymous one', () => {
    expect(parseBind('data:/dst')).toMatchObject({ type: 'volume', source: 'data', destination: '/dst' });
    expect(parseBind('/dst')).toMatchObject({ type: 'volume', source: '', destination: '/dst' });
    expect(parseBind('/dst:ro')).toMatchObject({ type: 'volume', source: '', destination: '/dst', readOnly: true });
  });

  it.each([
    ['/a:data', "invalid volume specification: '/a:data': invalid mount config for type \"bind\": invalid mount path: 'data' mount path must be absolute"],
    ['/a:/b:xyz', 'invalid mode: xyz'],
    ['/a:/b:ro,rw', 'invalid mode: ro,rw'],
    ['/a:/b:nocopy', 'invalid mode: nocopy'],
    ['/a:/b:ro:extra', "invalid volume specification: '/a:/b:ro:extra'"],
    ['/a::/b', "invalid volume specification: '/a::/b'"],
    ['/a:/', "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"],
  ])('%s → %s', (raw, message) => {
    const err = thrown(() => parseBind(raw));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe(message);
  });

  it('valid modes: one of each kind at most', () => {
    expect(isValidMountMode('ro,z,rslave,nocopy')).toBe(true);
    expect(isValidMountMode('z,Z')).toBe(false);
    expect(isValidMountMode('shared,slave')).toBe(false);
    expect(isValidMountMode('')).toBe(false);
  });
});

describe('tmpfs (HostConfig.Tmpfs, Mounts type tmpfs)', () => {
  it('prepends dockerd\'s defaults, later options win', () => {
    expect(parseTmpfs('/run', 'rw,size=1m').tmpfsOptions).toEqual(['noexec', 'nosuid', 'nodev', 'rprivate', 'rw', 'size=1m']);
    expect(parseTmpfs('/scratch', '').tmpfsOptions).toEqual(['noexec', 'nosuid', 'nodev', 'rprivate']);
    expect(parseTmpfs('/x', 'exec,size=1k,size=2k,mode=700').tmpfsOptions).toEqual(['nosuid', 'nodev', 'rprivate', 'exec', 'size=2k', 'mode=700']);
  });

  it('refuses unknown options and relative paths with dockerd\'s messages', () => {
    expect(thrown(() => mergeTmpfsOptions(['foo'])).message).toBe('Invalid tmpfs option ["foo"]');
    expect(thrown(() => mergeTmpfsOptions(['bar=1'])).message).toBe('Invalid tmpfs option ["bar","1"]');
    expect(thrown(() => parseTmpfs('run', '')).message).toBe("invalid mount path: 'run' mount path must be absolute");
  });

  it('formats sizes like dockerd', () => {
    expect(formatTmpfsSize(1048576)).toBe('1m');
    expect(formatTmpfsSize(3 * 1024 ** 3)).toBe('3g');
    expect(formatTmpfsSize(4096)).toBe('4k');
    expect(formatTmpfsSize(1000)).toBe('1000');
  });
});

describe('parseApiMount (HostConfig.Mounts)', () => {
  it('bind: read-only, propagation, non-recursive, recursive read-only', () => {
    expect(toOciMount(parseApiMount({ Type: 'bind', Source: '/s', Target: '/t', ReadOnly: true }))).toEqual({
      destination: '/t',
      type: 'bind',
      source: '/s',
      options: ['rbind', 'ro', 'rprivate'],
    });
    expect(toOciMount(parseApiMount({ Type: 'bind', Source: '/s', Target: '/t', BindOptions: { Propagation: 'rslave', NonRecursive: true } })).options).toEqual([
      'bind',
      'rslave',
    ]);
    expect(
      toOciMount(parseApiMount({ Type: 'bind', Source: '/s', Target: '/t', ReadOnly: true, BindOptions: { ReadOnlyForceRecursive: true } })).options,
    ).toEqual(['rbind', 'rro', 'rprivate']);
  });

  it('tmpfs: mode in octal, size with suffix, read-only', () => {
    const m = toOciMount(parseApiMount({ Type: 'tmpfs', Target: '/t1', ReadOnly: true, TmpfsOptions: { SizeBytes: 1048576, Mode: 0o1770 } }));
    expect(m).toEqual({ destination: '/t1', type: 'tmpfs', source: 'tmpfs', options: ['noexec', 'nosuid', 'nodev', 'rprivate', 'ro', 'mode=1770', 'size=1m'] });
  });

  it.each<[Mount, string]>([
    [{ Type: 'bind', Source: '/s', Target: '' }, 'invalid mount config for type "bind": field Target must not be empty'],
    [{ Type: 'bind', Target: '/t' }, 'invalid mount config for type "bind": field Source must not be empty'],
    [{ Type: 'bind', Source: 'rel', Target: '/t' }, "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"],
    [{ Type: 'bind', Source: '/s', Target: 't' }, "invalid mount config for type \"bind\": invalid mount path: 't' mount path must be absolute"],
    [{ Type: 'bind', Source: '/s', Target: '/t', TmpfsOptions: {} }, 'invalid mount config for type "bind": field TmpfsOptions must not be specified'],
    [{ Type: 'tmpfs', Source: '/s', Target: '/t' }, 'invalid mount config for type "tmpfs": field Source must not be specified'],
    [{ Type: 'tmpfs', Target: '/t', BindOptions: {} }, 'invalid mount config for type "tmpfs": field BindOptions must not be specified'],
    [{ Type: 'weird' as Mount['Type'], Target: '/t' }, 'invalid mount config for type "weird": mount type unknown'],
  ])('%j → %s', (m, message) => {
    const err = thrown(() => parseApiMount(m));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe(message);
  });
});

describe('parseUserMounts', () => {
  it('keeps Binds, Mounts, Tmpfs in that order', () => {
    const ms = parseUserMounts({ Binds: ['/a:/x'], Mounts: [{ Type: 'tmpfs', Target: '/y' }], Tmpfs: { '/z': '' } });
    expect(ms.map((m) => [m.origin, m.destination])).toEqual([
      ['Binds', '/x'],
      ['Mounts', '/y'],
      ['Tmpfs', '/z'],
    ]);
  });

  it('refuses a destination used twice, across Binds, Mounts and Tmpfs', () => {
    expect(thrown(() => parseUserMounts({ Binds: ['/a:/data', '/b:/data'] })).message).toBe('Duplicate mount point: /data');
    expect(thrown(() => parseUserMounts({ Binds: ['/a:/data/'], Tmpfs: { '/data': '' } })).message).toBe('Duplicate mount point: /data');
  });

  it('parses volumes (named, anonymous, Mounts with nocopy and driver options) for a volume plugin to resolve', () => {
    const ms = parseUserMounts({
      Binds: ['named:/data:ro,nocopy', '/anon'],
      Mounts: [{ Type: 'volume', Source: 'v', Target: '/d', VolumeOptions: { NoCopy: true, Labels: { a: 'b' }, DriverConfig: { Name: 'local', Options: { type: 'tmpfs' } } } }],
    });
    expect(ms.map((m) => [m.type, m.source, m.destination, m.readOnly, m.noCopy === true])).toEqual([
      ['volume', 'named', '/data', true, true],
      ['volume', '', '/anon', false, false],
      ['volume', 'v', '/d', false, true],
    ]);
    expect(ms[2]!.volumeOptions).toEqual({ labels: { a: 'b' }, driver: 'local', driverOpts: { type: 'tmpfs' } });
    expect(thrown(() => parseUserMounts({ Mounts: [{ Type: 'volume', Source: 'v', Target: '/d', BindOptions: {} }] })).message).toBe(
      'invalid mount config for type "volume": field BindOptions must not be specified',
    );
  });
});

describe('withMounts', () => {
  it('sorts container mounts by depth, stable', () => {
    const m = (d: string) => ({ destination: d, type: 'bind', source: '/s', options: [] });
    expect(sortMountsByDepth([m('/a/b/c'), m('/z'), m('/a/b'), m('/a')]).map((x) => x.destination)).toEqual(['/z', '/a', '/a/b', '/a/b/c']);
  });

  it('a container mount replaces the default at its destination; one at /dev drops the /dev/* defaults', () => {
    const spec = withMounts({ containerMounts: [{ destination: '/dev', type: 'bind', source: '/mydev', options: ['rbind'] }] })(defaultSpec());
    expect(spec.mounts!.map((x) => x.destination)).toEqual(['/proc', '/sys', '/sys/fs/cgroup', '/dev']);
  });

  it('read-only rootfs: defaults except /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue become ro; privileged: /sys and cgroup rw', () => {
    const ro = withMounts({ containerMounts: [], readonlyRootfs: true })(defaultSpec());
    const opts = (d: string, s = ro) => s.mounts!.find((x) => x.destination === d)!.options!;
    expect(opts('/proc')).not.toContain('ro');
    expect(opts('/dev/shm')).not.toContain('ro');
    expect(opts('/sys')).toContain('ro');
    const priv = withMounts({ containerMounts: [], readonlyRootfs: true, privileged: true })(defaultSpec());
    expect(opts('/sys', priv)).not.toContain('ro');
    expect(opts('/sys/fs/cgroup', priv)).not.toContain('ro');
  });

  it('sets rootfsPropagation "shared" for a shared bind, nothing for a slave one', () => {
    const b = (p: string) => ({ destination: '/x', type: 'bind', source: '/s', options: ['rbind', p] });
    expect(withMounts({ containerMounts: [b('rshared')] })(defaultSpec()).linux!.rootfsPropagation).toBe('shared');
    expect(withMounts({ containerMounts: [b('rslave')] })(defaultSpec()).linux!.rootfsPropagation).toBeUndefined();
  });
});

describe('mount propagation checks (dockerd ensureShared / ensureSharedOrSlave)', () => {
  const info = parseMountInfo(
    [
      '22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw',
      '30 22 0:40 / /srv rw shared:5 - tmpfs tmpfs rw',
      '31 22 0:41 / /mnt/slave rw master:5 - tmpfs tmpfs rw',
      '32 22 0:42 / /with\\040space rw shared:7 - tmpfs tmpfs rw',
    ].join('\n'),
  );

  it('parses mountinfo, unescaping paths', () => {
    expect(info.map((m) => m.mountPoint)).toEqual(['/', '/srv', '/mnt/slave', '/with space']);
    expect(mountOf('/srv/data', info)!.mountPoint).toBe('/srv');
    expect(mountOf('/srvx', info)!.mountPoint).toBe('/');
  });

  it('accepts and refuses like dockerd', () => {
    expect(checkPropagation('/srv/a', 'rshared', info)).toBeNull();
    expect(checkPropagation('/srv/a', 'rslave', info)).toBeNull();
    expect(checkPropagation('/mnt/slave/a', 'rslave', info)).toBeNull();
    expect(checkPropagation('/mnt/slave/a', 'shared', info)).toBe('path /mnt/slave/a is mounted on /mnt/slave but it is not a shared mount');
    expect(checkPropagation('/home/a', 'rslave', info)).toBe('path /home/a is mounted on / but it is not a shared or slave mount');
    expect(checkPropagation('/home/a', 'rprivate', info)).toBeNull();
  });
});

describe('mounts in the built spec', () => {
  it('Binds create a missing source directory (dockerd\'s -v behaviour)', async () => {
    const src = path.join(host.dir, 'made/by/berth');
    const spec = await build(r.dir, {}, { Binds: [`${src}:/made:ro`] });
    expect(statSync(src).isDirectory()).toBe(true);
    expect(spec.mounts!.at(-1)).toEqual({ destination: '/made', type: 'bind', source: src, options: ['rbind', 'ro', 'rprivate'] });
  });

  it('Mounts refuse a missing source unless CreateMountpoint', async () => {
    const src = path.join(host.dir, 'missing');
    const err = await rejection(build(r.dir, {}, { Mounts: [{ Type: 'bind', Source: src, Target: '/m' }] }));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe(`invalid mount config for type "bind": bind source path does not exist: ${src}`);
    expect(existsSync(src)).toBe(false);
    await build(r.dir, {}, { Mounts: [{ Type: 'bind', Source: src, Target: '/m', BindOptions: { CreateMountpoint: true } }] });
    expect(existsSync(src)).toBe(true);
  });

  it('orders defaults, then container mounts by depth; network files after user mounts of the same depth', async () => {
    const spec = await build(
      r.dir,
      {},
      { Binds: [`${host.dir}/a:/deep/er/path`, `${host.dir}/a:/data`], Tmpfs: { '/run': '' } },
      { hostsPath: '/h/hosts', resolvConfPath: '/h/resolv.conf', hostnamePath: '/h/hostname' },
    );
    expect(spec.mounts!.map((m) => m.destination)).toEqual([
      '/proc',
      '/dev',
      '/dev/pts',
      '/sys',
      '/sys/fs/cgroup',
      '/dev/mqueue',
      '/dev/shm',
      '/data',
      '/run',
      '/etc/resolv.conf',
      '/etc/hostname',
      '/etc/hosts',
      '/deep/er/path',
    ]);
    expect(spec.mounts!.find((m) => m.destination === '/etc/hosts')).toEqual({
      destination: '/etc/hosts',
      type: 'bind',
      source: '/h/hosts',
      options: ['rbind', 'rprivate'],
    });
  });

  it('a user mount at /etc/hosts wins over the engine\'s file; read-only rootfs makes the network files ro', async () => {
    const spec = await build(r.dir, {}, { Binds: [`${host.dir}/a:/etc/hosts`], ReadonlyRootfs: true }, { hostsPath: '/h/hosts', resolvConfPath: '/h/resolv.conf' });
    const hosts = spec.mounts!.filter((m) => m.destination === '/etc/hosts');
    expect(hosts).toHaveLength(1);
    expect(hosts[0].source).toBe(`${host.dir}/a`);
    expect(spec.mounts!.find((m) => m.destination === '/etc/resolv.conf')!.options).toEqual(['rbind', 'ro', 'rprivate']);
    expect(spec.root).toEqual({ path: r.dir, readonly: true });
  });

  it('a Tmpfs at /dev/shm replaces the default shm', async () => {
    const spec = await build(r.dir, {}, { Tmpfs: { '/dev/shm': 'size=1m' } });
    const shm = spec.mounts!.filter((m) => m.destination === '/dev/shm');
    expect(shm).toEqual([{ destination: '/dev/shm', type: 'tmpfs', source: 'tmpfs', options: ['noexec', 'nosuid', 'nodev', 'rprivate', 'size=1m'] }]);
  });

  it('a volume becomes the bind a volume plugin contributed at its destination; one without fails the build', async () => {
    const vol = { destination: '/data', type: 'bind', source: '/vols/myvol/_data', options: ['rbind', 'ro', 'rprivate'] };
    const spec = await build(r.dir, {}, { Binds: ['myvol:/data:ro'] }, { contributedMounts: [vol] });
    expect(spec.mounts!.filter((m) => m.destination === '/data')).toEqual([vol]);
    await expect(build(r.dir, {}, { Binds: ['myvol:/data'] })).rejects.toMatchObject({ kind: 'System', message: 'volume "myvol" at /data was not mounted by a volume plugin' });
  });
});
