import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OciSpec } from '../../src/oci.js';
import {
  applyOpts,
  buildOciSpec,
  checkInitBinary,
  composeOpts,
  containerEnv,
  DEFAULT_MASKED_PATHS,
  DEFAULT_PATH_ENV,
  DEFAULT_READONLY_PATHS,
  defaultSpec,
  OCI_VERSION,
  replaceOrAppendEnv,
  withAnnotations,
  withCapabilities,
  withCgroupsPath,
  withDevices,
  withHostname,
  withMounts,
  withNamespace,
  withProcess,
  withResources,
  withRlimits,
  withRoot,
  withSysctls,
  withSystemPaths,
  withUser,
  type SpecOpt,
} from '../../src/spec/index.js';
import { ociSchemaErrors } from '../../../testing/src/specs.js';
import { build, deepFreeze, makeRecord, rejection, tempRootfs } from './helpers.js';

const schemaErrors = (spec: OciSpec): string => ociSchemaErrors('oci-runtime-spec/config-schema.json', spec);

let r: { dir: string; cleanup: () => void };
beforeAll(() => {
  r = tempRootfs();
});
afterAll(() => r.cleanup());

const ID = 'c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789';

describe('the OCI schema check itself', () => {
  it('accepts the default spec and rejects broken ones', () => {
    expect(schemaErrors(defaultSpec())).toBe('');
    expect(schemaErrors({ ...defaultSpec(), ociVersion: undefined } as unknown as OciSpec)).toMatch(/ociVersion/);
    const badUser = defaultSpec();
    badUser.process!.user.uid = -1;
    expect(schemaErrors(badUser)).toMatch(/uid/);
    const badProp = defaultSpec();
    badProp.linux!.rootfsPropagation = 'rslave';
    expect(schemaErrors(badProp)).toMatch(/rootfsPropagation/);
  });
});

describe('environment (dockerd CreateDaemonEnvironment)', () => {
  it('PATH default first, then HOSTNAME, TERM with a TTY, then Config.Env', () => {
    expect(containerEnv({ env: ['FOO=bar'], hostname: 'h', tty: true })).toEqual([DEFAULT_PATH_ENV, 'HOSTNAME=h', 'TERM=xterm', 'FOO=bar']);
  });

  it('Config.Env replaces in place; a bare name unsets', () => {
    expect(containerEnv({ env: ['PATH=/x', 'TERM=dumb', 'A=1', 'A=2'], hostname: 'h', tty: true })).toEqual(['PATH=/x', 'HOSTNAME=h', 'TERM=dumb', 'A=1', 'A=2']);
    expect(replaceOrAppendEnv(['PATH=/p', 'HOSTNAME=h'], ['HOSTNAME', 'EMPTY='])).toEqual(['PATH=/p', 'EMPTY=']);
  });

  it('in the spec', async () => {
    const spec = await build(r.dir, { Env: ['FOO=bar'], Hostname: 'web1' });
    expect(spec.process!.env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=web1', 'FOO=bar']);
    const noEnv = await build(r.dir, { Env: null, Hostname: 'web1' });
    expect(noEnv.process!.env).toEqual([DEFAULT_PATH_ENV, 'HOSTNAME=web1']);
  });
});

describe('process', () => {
  it('args from the record\'s Path and Args', async () => {
    const spec = await build(r.dir, {}, {}, { path: '/bin/sh', args: ['-c', 'echo hi'] });
    expect(spec.process!.args).toEqual(['/bin/sh', '-c', 'echo hi']);
  });

  it('no command → InvalidParameter', async () => {
    const err = await rejection(buildOciSpec({ container: makeRecord({ path: '' }), rootfsPath: r.dir, host: { capLastCap: 40, cgroupV2: false, cpuCount: 1 } }));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe('No command specified');
  });

  it('cwd: WorkingDir, default /, relative refused', async () => {
    expect((await build(r.dir)).process!.cwd).toBe('/');
    expect((await build(r.dir, { WorkingDir: '/tmp' })).process!.cwd).toBe('/tmp');
    await expect(build(r.dir, { WorkingDir: 'tmp' })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: "the working directory 'tmp' is invalid, it needs to be an absolute path",
    });
  });

  it('Tty → terminal, TERM=xterm and the console size', async () => {
    const spec = await build(r.dir, { Tty: true }, { ConsoleSize: [40, 120] });
    expect(spec.process!.terminal).toBe(true);
    expect(spec.process!.consoleSize).toEqual({ height: 40, width: 120 });
    expect(spec.process!.env).toContain('TERM=xterm');
    const noTty = await build(r.dir, {}, { ConsoleSize: [40, 120] });
    expect(noTty.process!.terminal).toBeUndefined();
    expect(noTty.process!.consoleSize).toBeUndefined();
  });

  it('Init: /sbin/docker-init -- args with the init binary bind-mounted read-only', async () => {
    // any existing host file stands in for the init binary (the builder checks it exists)
    const initPath = process.execPath;
    const spec = await build(r.dir, {}, { Init: true }, { initPath });
    expect(spec.process!.args).toEqual(['/sbin/docker-init', '--', 'sleep', '3600']);
    expect(spec.mounts!.find((m) => m.destination === '/sbin/docker-init')).toEqual({
      destination: '/sbin/docker-init',
      type: 'bind',
      source: initPath,
      options: ['bind', 'ro'],
    });
  });

  it('defaultInit (daemon.json "init"): applies when HostConfig.Init is unset, Init=false opts out', async () => {
    const initPath = process.execPath;
    for (const unset of [{}, { Init: null }]) {
      expect((await build(r.dir, {}, unset, { initPath, defaultInit: true })).process!.args).toEqual(['/sbin/docker-init', '--', 'sleep', '3600']);
    }
    const off = await build(r.dir, {}, { Init: false }, { initPath, defaultInit: true });
    expect(off.process!.args).toEqual(['sleep', '3600']);
    expect(off.mounts!.some((m) => m.destination === '/sbin/docker-init')).toBe(false);
  });

  it('Init without an init binary → System error naming docker-init; checkInitBinary names a missing one', async () => {
    await expect(build(r.dir, {}, { Init: true })).rejects.toMatchObject({ kind: 'System', message: expect.stringContaining('docker-init') });
    expect((await build(r.dir, {}, { Init: false })).process!.args).toEqual(['sleep', '3600']);
    const missing = `${r.dir}/no-such-init`;
    await expect(checkInitBinary(missing)).rejects.toMatchObject({ kind: 'System', message: expect.stringContaining(missing) });
    await expect(checkInitBinary(process.execPath)).resolves.toBeUndefined();
  });
});

describe('hostname, root, cgroups path, annotations, system paths', () => {
  it('hostname from Config.Hostname, else the short ID', async () => {
    expect((await build(r.dir, { Hostname: 'h1' })).hostname).toBe('h1');
    const spec = await build(r.dir, { Hostname: '' });
    expect(spec.hostname).toBe(ID.slice(0, 12));
    expect(spec.process!.env).toContain(`HOSTNAME=${ID.slice(0, 12)}`);
  });

  it('root path and ReadonlyRootfs', async () => {
    expect((await build(r.dir)).root).toEqual({ path: r.dir });
    expect((await build(r.dir, {}, { ReadonlyRootfs: true })).root).toEqual({ path: r.dir, readonly: true });
  });

  it('cgroupsPath: /berth/<id>, CgroupParent/<id>, systemd slices', async () => {
    expect((await build(r.dir)).linux!.cgroupsPath).toBe(`/berth/${ID}`);
    expect((await build(r.dir, {}, { CgroupParent: '/mygroup' })).linux!.cgroupsPath).toBe(`/mygroup/${ID}`);
    expect((await build(r.dir, {}, {}, { defaultCgroupParent: '/custom' })).linux!.cgroupsPath).toBe(`/custom/${ID}`);
    expect((await build(r.dir, {}, {}, { cgroupDriver: 'systemd' })).linux!.cgroupsPath).toBe(`system.slice:berth:${ID}`);
    expect((await build(r.dir, {}, { CgroupParent: 'my.slice' }, { cgroupDriver: 'systemd' })).linux!.cgroupsPath).toBe(`my.slice:berth:${ID}`);
    await expect(build(r.dir, {}, { CgroupParent: '/mygroup' }, { cgroupDriver: 'systemd' })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: 'cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"',
    });
  });

  it('annotations from HostConfig.Annotations', async () => {
    expect((await build(r.dir)).annotations).toBeUndefined();
    expect((await build(r.dir, {}, { Annotations: { 'io.example/a': 'b' } })).annotations).toEqual({ 'io.example/a': 'b' });
  });

  it('masked and read-only paths: defaults, overrides, empty lists, privileged', async () => {
    const def = await build(r.dir);
    expect(def.linux!.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS]);
    expect(def.linux!.maskedPaths).toContain('/proc/kcore');
    expect(def.linux!.maskedPaths).toContain('/sys/devices/virtual/powercap');
    expect(def.linux!.readonlyPaths).toEqual([...DEFAULT_READONLY_PATHS]);
    const over = await build(r.dir, {}, { MaskedPaths: ['/proc/kcore', '/secret'], ReadonlyPaths: ['/proc/sys'] });
    expect(over.linux!.maskedPaths).toEqual(['/proc/kcore', '/secret']);
    expect(over.linux!.readonlyPaths).toEqual(['/proc/sys']);
    const none = await build(r.dir, {}, { MaskedPaths: [], ReadonlyPaths: [] });
    expect(none.linux!.maskedPaths).toBeUndefined();
    const priv = await build(r.dir, {}, { Privileged: true, MaskedPaths: ['/x'] });
    expect(priv.linux!.maskedPaths).toBeUndefined();
    expect(priv.linux!.readonlyPaths).toBeUndefined();
  });

  it('privileged: rw /sys and cgroup, all devices, all caps', async () => {
    const spec = await build(r.dir, {}, { Privileged: true });
    expect(spec.mounts!.find((m) => m.destination === '/sys')!.options).toEqual(['nosuid', 'noexec', 'nodev']);
    expect(spec.mounts!.find((m) => m.destination === '/sys/fs/cgroup')!.options).toEqual(['nosuid', 'noexec', 'nodev']);
    expect(spec.linux!.resources!.devices).toEqual([{ allow: true, access: 'rwm' }]);
  });

  it('writes no hooks, seccomp or AppArmor profile (plugins do)', async () => {
    const spec = await build(r.dir);
    expect(spec.hooks).toBeUndefined();
    expect(spec.linux!.seccomp).toBeUndefined();
    expect(spec.process!.apparmorProfile).toBeUndefined();
    expect(spec.ociVersion).toBe(OCI_VERSION);
  });

  it('rootfs: rootfsPath, else the record\'s BaseFS, else a SystemError', async () => {
    const rec = { ...makeRecord(), BaseFS: r.dir };
    const host = { capLastCap: 40, cgroupV2: false, cpuCount: 1 };
    expect((await buildOciSpec({ container: rec, rootfsPath: '', host })).root).toEqual({ path: r.dir });
    const err = await rejection(buildOciSpec({ container: makeRecord(), rootfsPath: '', host }));
    expect(err.kind).toBe('System');
  });

  it('probes the host when no host facts are given', async () => {
    const spec = await buildOciSpec({ container: makeRecord({ hostConfig: { Privileged: true } }), rootfsPath: r.dir });
    expect(spec.process!.capabilities!.bounding!.length).toBeGreaterThanOrEqual(38);
    expect(schemaErrors(spec)).toBe('');
  });
});

describe('spec opts are pure', () => {
  const opts: Array<[string, SpecOpt]> = [
    ['withRoot', withRoot('/r', true)],
    ['withHostname', withHostname('h')],
    ['withUser', withUser({ uid: 1, gid: 2, additionalGids: [2] })],
    ['withProcess', withProcess({ args: ['a'], env: ['A=1'], cwd: '/x', terminal: true, noNewPrivileges: true })],
    ['withCapabilities', withCapabilities(['CAP_KILL'])],
    ['withRlimits', withRlimits([{ type: 'RLIMIT_NOFILE', soft: 1, hard: 2 }])],
    ['withNamespace', withNamespace('cgroup', 'new')],
    ['withMounts', withMounts({ containerMounts: [{ destination: '/d', type: 'bind', source: '/s', options: ['rbind'] }], readonlyRootfs: true, privileged: true, shmSize: 1 })],
    ['withDevices', withDevices({ cgroupRules: [{ allow: true, type: 'c', major: 1, minor: 1, access: 'r' }] })],
    ['withResources', withResources({ Memory: 64 * 1024 * 1024, PidsLimit: 5 })],
    ['withSysctls', withSysctls({ 'net.x': '1' })],
    ['withSystemPaths', withSystemPaths([], ['/p'])],
    ['withCgroupsPath', withCgroupsPath('/c')],
    ['withAnnotations', withAnnotations({ a: 'b' })],
  ];

  it.each(opts)('%s never mutates its input', (_name, opt) => {
    const input = deepFreeze(defaultSpec());
    const before = JSON.stringify(input);
    const out = opt(input);
    expect(out).not.toBe(input);
    expect(JSON.stringify(input)).toBe(before);
  });

  it('compose applies left to right, on an empty spec too', () => {
    const s = applyOpts({ ociVersion: '1.1.0' }, [withHostname('a'), composeOpts(withHostname('b'), withCgroupsPath('/x'))]);
    expect(s).toEqual({ ociVersion: '1.1.0', hostname: 'b', linux: { cgroupsPath: '/x' } });
  });

  it('defaultSpec returns a new object each time', () => {
    const a = defaultSpec();
    a.mounts!.pop();
    expect(defaultSpec().mounts).toHaveLength(7);
  });
});
