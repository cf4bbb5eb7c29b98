import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  defaultDeviceCgroupRules,
  devicesFromMapping,
  hostDevices,
  isValidDevicePermissions,
  parseDevice,
  parseDeviceCgroupRule,
  splitDevNumber,
} from '../../src/spec/index.js';
import { build, rejection, tempDir, tempRootfs, thrown } from './helpers.js';

let r: { dir: string; cleanup: () => void };
beforeAll(() => {
  r = tempRootfs();
});
afterAll(() => r.cleanup());

const isRoot = process.getuid?.() === 0;

describe('parseDevice (CLI form)', () => {
  it.each([
    ['/dev/x', { PathOnHost: '/dev/x', PathInContainer: '/dev/x', CgroupPermissions: 'rwm' }],
    ['/dev/x:/dev/y', { PathOnHost: '/dev/x', PathInContainer: '/dev/y', CgroupPermissions: 'rwm' }],
    ['/dev/x:r', { PathOnHost: '/dev/x', PathInContainer: '/dev/x', CgroupPermissions: 'r' }],
    ['/dev/x:/dev/y:rw', { PathOnHost: '/dev/x', PathInContainer: '/dev/y', CgroupPermissions: 'rw' }],
  ])('%s', (s, expected) => {
    expect(parseDevice(s)).toEqual(expected);
  });

  it('refuses bad modes and specs', () => {
    expect(thrown(() => parseDevice('/dev/x:/dev/y:rwx')).message).toBe('invalid device mode: rwx');
    expect(thrown(() => parseDevice('/dev/x:/dev/y:r:w')).message).toBe('invalid device specification: /dev/x:/dev/y:r:w');
    expect(thrown(() => parseDevice('/dev/x:rel')).message).toBe('rel is not an absolute path');
    expect(isValidDevicePermissions('rr')).toBe(false);
    expect(isValidDevicePermissions('mwr')).toBe(true);
  });
});

describe('parseDeviceCgroupRule', () => {
  it('parses rules; * becomes -1', () => {
    expect(parseDeviceCgroupRule('c 42:* rmw')).toEqual({ allow: true, type: 'c', major: 42, minor: -1, access: 'rmw' });
    expect(parseDeviceCgroupRule('b 7:0 r')).toEqual({ allow: true, type: 'b', major: 7, minor: 0, access: 'r' });
    expect(parseDeviceCgroupRule('a *:* rwm')).toEqual({ allow: true, type: 'a', major: -1, minor: -1, access: 'rwm' });
  });

  it.each(['x 1:2 rwm', 'c 1:2', 'c 1:2 rwx', 'c 1 rwm', ' c 1:2 r'])('refuses %j with dockerd\'s message', (rule) => {
    const err = thrown(() => parseDeviceCgroupRule(rule));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe(`invalid device cgroup rule format: '${rule}'`);
  });
});

describe('splitDevNumber', () => {
  it('splits Linux dev_t like glibc', () => {
    const makedev = (maj: bigint, min: bigint) => ((maj & 0xfffn) << 8n) | ((maj & ~0xfffn) << 32n) | (min & 0xffn) | ((min & ~0xffn) << 12n);
    expect(splitDevNumber(makedev(1n, 3n))).toEqual({ major: 1, minor: 3 });
    expect(splitDevNumber(makedev(259n, 65537n))).toEqual({ major: 259, minor: 65537 });
    expect(splitDevNumber(makedev(4095n, 255n))).toEqual({ major: 4095, minor: 255 });
  });
});

describe('devicesFromMapping (HostConfig.Devices)', () => {
  it('stats the host device: type, major, minor, mode, owner', async () => {
    const [d] = await devicesFromMapping({ PathOnHost: '/dev/null', PathInContainer: '/dev/mynull', CgroupPermissions: 'rw' });
    expect(d.device).toEqual({ path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 });
    expect(d.rule).toEqual({ allow: true, type: 'c', major: 1, minor: 3, access: 'rw' });
  });

  it('an empty PathInContainer means the host path; empty permissions mean rwm', async () => {
    const [d] = await devicesFromMapping({ PathOnHost: '/dev/zero', PathInContainer: '' });
    expect(d.device.path).toBe('/dev/zero');
    expect(d.rule.access).toBe('rwm');
  });

  it('a directory gives every device node below it', async (ctx) => {
    if (!isRoot) ctx.skip('needs root (mknod)');
    const t = tempDir();
    try {
      mkdirSync(path.join(t.dir, 'sub'));
      execFileSync('mknod', [path.join(t.dir, 'c1'), 'c', '1', '3']);
      execFileSync('mknod', [path.join(t.dir, 'sub/b1'), 'b', '7', '200']);
      writeFileSync(path.join(t.dir, 'not-a-device'), '');
      const devs = await devicesFromMapping({ PathOnHost: t.dir, PathInContainer: '/dev/mine', CgroupPermissions: 'r' });
      expect(devs.map((d) => [d.device.path, d.device.type, d.device.major, d.device.minor, d.rule.access])).toEqual([
        ['/dev/mine/c1', 'c', 1, 3, 'r'],
        ['/dev/mine/sub/b1', 'b', 7, 200, 'r'],
      ]);
    } finally {
      t.cleanup();
    }
  });

  it('refuses missing paths and files that are not devices, with dockerd\'s wording', async () => {
    const missing = await rejection(devicesFromMapping({ PathOnHost: '/dev/nonexistent-berth', PathInContainer: '/dev/x' }));
    expect(missing.kind).toBe('InvalidParameter');
    expect(missing.message).toBe('error gathering device information while adding custom device "/dev/nonexistent-berth": no such file or directory');
    const t = tempDir();
    try {
      writeFileSync(path.join(t.dir, 'f'), '');
      const f = path.join(t.dir, 'f');
      expect((await rejection(devicesFromMapping({ PathOnHost: f, PathInContainer: '/dev/f' }))).message).toBe(
        `error gathering device information while adding custom device ${JSON.stringify(f)}: not a device node`,
      );
    } finally {
      t.cleanup();
    }
    expect((await rejection(devicesFromMapping({ PathOnHost: '/dev/null', PathInContainer: '/dev/x', CgroupPermissions: 'x' }))).message).toBe(
      'invalid device mode: x',
    );
  });
});

describe('hostDevices (privileged)', () => {
  it('lists the host\'s device nodes, sorted, without /dev/pts, /dev/shm and /dev/console', async () => {
    const devs = await hostDevices();
    const paths = devs.map((d) => d.path);
    expect(paths).toContain('/dev/null');
    expect(devs.find((d) => d.path === '/dev/null')).toMatchObject({ type: 'c', major: 1, minor: 3 });
    expect(paths.some((p) => p.startsWith('/dev/pts/') || p.startsWith('/dev/shm/'))).toBe(false);
    expect(paths).not.toContain('/dev/console');
    expect([...paths].sort()).toEqual(paths);
  });
});

describe('devices in the built spec', () => {
  it('unprivileged: dockerd\'s default rules (deny all, allow basics, deny fuse), then devices, then DeviceCgroupRules', async () => {
    const spec = await build(r.dir, {}, {
      Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/mynull', CgroupPermissions: 'rw' }],
      DeviceCgroupRules: ['c 42:* rmw'],
    });
    expect(spec.linux!.devices).toEqual([{ path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 }]);
    expect(spec.linux!.resources!.devices).toEqual([
      ...defaultDeviceCgroupRules(),
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
      { allow: true, type: 'c', major: 42, minor: -1, access: 'rmw' },
    ]);
    expect(defaultDeviceCgroupRules()[0]).toEqual({ allow: false, access: 'rwm' });
    expect(defaultDeviceCgroupRules().at(-1)).toEqual({ allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' });
  });

  it('no devices asked → no linux.devices', async () => {
    expect((await build(r.dir)).linux!.devices).toBeUndefined();
  });

  it('privileged: every host device, allow all', async () => {
    const spec = await build(r.dir, {}, { Privileged: true, Devices: [{ PathOnHost: '/dev/zero', PathInContainer: '/dev/ignored' }] });
    expect(spec.linux!.resources!.devices).toEqual([{ allow: true, access: 'rwm' }]);
    expect(spec.linux!.devices!.map((d) => d.path)).toContain('/dev/null');
    expect(spec.linux!.devices!.map((d) => d.path)).not.toContain('/dev/ignored');
  });

  it('privileged with a custom device root (tests): lists what is there', async (ctx) => {
    if (!isRoot || !existsSync('/usr/bin/mknod')) ctx.skip(isRoot ? '/usr/bin/mknod is not installed' : 'needs root (mknod)');
    const t = tempDir();
    try {
      execFileSync('mknod', ['-m', '640', path.join(t.dir, 'null'), 'c', '1', '3']);
      const spec = await build(r.dir, {}, { Privileged: true }, { devRoot: t.dir });
      expect(spec.linux!.devices).toEqual([{ path: path.join(t.dir, 'null'), type: 'c', major: 1, minor: 3, fileMode: 0o640, uid: 0, gid: 0 }]);
    } finally {
      t.cleanup();
    }
  });

  it('bad rules and missing devices fail the build as InvalidParameter', async () => {
    await expect(build(r.dir, {}, { DeviceCgroupRules: ['nope'] })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: "invalid device cgroup rule format: 'nope'",
    });
    await expect(build(r.dir, {}, { Devices: [{ PathOnHost: '/dev/nonexistent-berth', PathInContainer: '/dev/x' }] })).rejects.toMatchObject({
      kind: 'InvalidParameter',
    });
  });
});
