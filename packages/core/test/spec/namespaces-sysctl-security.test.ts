import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGoBool, parseSecurityOpts, planNamespaces, validateSysctls } from '../../src/spec/index.js';
import type { HostConfig } from '../../src/types.js';
import { build, tempRootfs, thrown } from './helpers.js';

let r: { dir: string; cleanup: () => void };
beforeAll(() => {
  r = tempRootfs();
});
afterAll(() => r.cleanup());

const types = (spec: Awaited<ReturnType<typeof build>>) => spec.linux!.namespaces!.map((n) => (n.path ? `${n.type}=${n.path}` : n.type));

describe('planNamespaces', () => {
  it('defaults: all new, cgroup ns host on v1 and private on v2', () => {
    expect(planNamespaces({})).toEqual({ network: 'new', pid: 'new', ipc: 'new', uts: 'new', cgroup: 'host' });
    expect(planNamespaces({}, { cgroupV2: true }).cgroup).toBe('new');
    expect(planNamespaces({ CgroupnsMode: 'host' }, { cgroupV2: true }).cgroup).toBe('host');
    expect(planNamespaces({ CgroupnsMode: 'private' }).cgroup).toBe('new');
  });

  it('host modes and the network namespace input', () => {
    expect(planNamespaces({ PidMode: 'host', IpcMode: 'host', UTSMode: 'host', NetworkMode: 'host' })).toMatchObject({
      pid: 'host',
      ipc: 'host',
      uts: 'host',
      network: 'host',
    });
    expect(planNamespaces({}, { networkNamespacePath: null }).network).toBe('host');
    expect(planNamespaces({ NetworkMode: 'bridge' }, { networkNamespacePath: '/run/netns/x' }).network).toEqual({ path: '/run/netns/x' });
    expect(planNamespaces({ NetworkMode: 'none' }).network).toBe('new');
  });

  it('container:<id> modes join a path the engine gives, or are not implemented', () => {
    expect(planNamespaces({ PidMode: 'container:abc' }, { join: { pid: '/proc/42/ns/pid' } }).pid).toEqual({ path: '/proc/42/ns/pid' });
    const err = thrown(() => planNamespaces({ IpcMode: 'container:abc' }));
    expect(err.kind).toBe('NotImplemented');
    expect(thrown(() => planNamespaces({ NetworkMode: 'container:abc' })).kind).toBe('NotImplemented');
  });

  it.each<[HostConfig, string]>([
    [{ PidMode: 'weird' }, 'invalid PID mode: weird'],
    [{ IpcMode: 'weird' }, 'invalid IPC mode: weird'],
    [{ UTSMode: 'weird' }, 'invalid UTS mode: weird'],
    [{ CgroupnsMode: 'weird' as HostConfig['CgroupnsMode'] }, 'invalid cgroup namespace mode: weird'],
  ])('%j → %s', (hc, message) => {
    const err = thrown(() => planNamespaces(hc));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe(message);
  });
});

describe('namespaces in the built spec', () => {
  it('default: mount, network, uts, pid, ipc in dockerd\'s order', async () => {
    expect(types(await build(r.dir))).toEqual(['mount', 'network', 'uts', 'pid', 'ipc']);
  });

  it('host modes drop the namespace; CgroupnsMode private adds cgroup', async () => {
    expect(types(await build(r.dir, {}, { NetworkMode: 'host', PidMode: 'host', IpcMode: 'host', UTSMode: 'host' }))).toEqual(['mount']);
    expect(types(await build(r.dir, {}, { CgroupnsMode: 'private' }))).toEqual(['mount', 'network', 'uts', 'pid', 'ipc', 'cgroup']);
  });

  it('networkNamespacePath: null = host, string = join', async () => {
    expect(types(await build(r.dir, {}, {}, { networkNamespacePath: null }))).toEqual(['mount', 'uts', 'pid', 'ipc']);
    expect(types(await build(r.dir, {}, {}, { networkNamespacePath: '/run/netns/n1' }))).toEqual(['mount', 'network=/run/netns/n1', 'uts', 'pid', 'ipc']);
  });

  it('host UTS: no hostname in the spec (HOSTNAME env still set)', async () => {
    const spec = await build(r.dir, { Hostname: 'myhost', Domainname: 'example.com' }, { UTSMode: 'host' });
    expect(spec.hostname).toBeUndefined();
    expect(spec.linux!.sysctl?.['kernel.domainname']).toBeUndefined();
    expect(spec.process!.env).toContain('HOSTNAME=myhost');
  });

  it('IPC: private → 64 MiB tmpfs (or ShmSize); none → no /dev/shm; host → the host\'s /dev/shm; shareable → the engine\'s shm dir', async () => {
    const shm = async (hc: HostConfig, extra = {}) => (await build(r.dir, {}, hc, extra)).mounts!.filter((m) => m.destination === '/dev/shm');
    expect(await shm({})).toEqual([
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864'] },
    ]);
    expect((await shm({ ShmSize: 128 * 1024 * 1024 }))[0].options).toContain('size=134217728');
    expect(await shm({ IpcMode: 'none' })).toEqual([]);
    expect(await shm({ IpcMode: 'host' })).toEqual([{ destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate'] }]);
    expect(await shm({ IpcMode: 'shareable' }, { shmPath: '/var/lib/berth/containers/x/shm' })).toEqual([
      { destination: '/dev/shm', type: 'bind', source: '/var/lib/berth/containers/x/shm', options: ['rbind', 'rprivate'] },
    ]);
    expect((await shm({ IpcMode: 'shareable' }))[0].type).toBe('tmpfs');
    expect(await shm({ IpcMode: 'container:abc' }, { shmPath: '/s', namespacePaths: { ipc: '/proc/1/ns/ipc' } })).toEqual([
      { destination: '/dev/shm', type: 'bind', source: '/s', options: ['rbind', 'rprivate'] },
    ]);
    await expect(build(r.dir, {}, { IpcMode: 'container:abc' }, { namespacePaths: { ipc: '/proc/1/ns/ipc' } })).rejects.toMatchObject({
      kind: 'NotImplemented',
    });
  });
});

describe('sysctls', () => {
  const priv = { privateIpc: true, privateNetwork: true, privateUts: true };

  it('accepts namespaced sysctls', () => {
    expect(() =>
      validateSysctls({ 'kernel.shmmax': '1', 'fs.mqueue.msg_max': '20', 'net.ipv4.ip_forward': '1', 'kernel.domainname': 'x' }, priv),
    ).not.toThrow();
  });

  it.each<[Record<string, string>, Partial<typeof priv>, string]>([
    [{ 'net.ipv4.ip_forward': '1' }, { privateNetwork: false }, 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'],
    [{ 'kernel.panic': '1' }, {}, 'sysctl "kernel.panic" is not in a separate kernel namespace'],
    [{ 'vm.swappiness': '1' }, {}, 'sysctl "vm.swappiness" is not in a separate kernel namespace'],
    [{ 'kernel.sem': '1 2 3 4' }, { privateIpc: false }, 'sysctl "kernel.sem" is not allowed in the hosts ipc namespace'],
    [{ 'fs.mqueue.msg_max': '1' }, { privateIpc: false }, 'sysctl "fs.mqueue.msg_max" is not allowed in the hosts ipc namespace'],
    [{ 'kernel.hostname': 'x' }, { privateUts: false }, 'sysctl "kernel.hostname" is not allowed in the hosts uts namespace'],
  ])('%j (%j) → %s', (sysctls, ns, message) => {
    const err = thrown(() => validateSysctls(sysctls, { ...priv, ...ns }));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe(message);
  });

  it('in the spec: dockerd\'s network defaults, user values win, Domainname → kernel.domainname', async () => {
    const spec = await build(r.dir, { Domainname: 'example.com' }, { Sysctls: { 'net.ipv4.ip_unprivileged_port_start': '1024', 'kernel.shmmax': '1000000' } });
    expect(spec.linux!.sysctl).toEqual({
      'net.ipv4.ip_unprivileged_port_start': '1024',
      'net.ipv4.ping_group_range': '0 2147483647',
      'kernel.domainname': 'example.com',
      'kernel.shmmax': '1000000',
    });
    expect(spec.domainname).toBeUndefined();
  });

  it('joining another container\'s netns: no network defaults (that container\'s settings stay)', async () => {
    const spec = await build(r.dir, {}, { NetworkMode: 'container:abc' }, { networkNamespacePath: '/proc/42/ns/net' });
    expect(spec.linux!.sysctl).toBeUndefined();
    expect(spec.linux!.namespaces).toContainEqual({ type: 'network', path: '/proc/42/ns/net' });
  });

  it('host network: no network defaults, net.* refused', async () => {
    expect((await build(r.dir, {}, { NetworkMode: 'host' })).linux!.sysctl).toBeUndefined();
    await expect(build(r.dir, {}, { NetworkMode: 'host', Sysctls: { 'net.core.somaxconn': '1024' } })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: 'sysctl "net.core.somaxconn" not allowed in host network namespace',
    });
  });
});

describe('SecurityOpt', () => {
  it('parses every form dockerd accepts', () => {
    expect(parseSecurityOpts(['no-new-privileges'])).toMatchObject({ noNewPrivileges: true });
    expect(parseSecurityOpts(['no-new-privileges:true'])).toMatchObject({ noNewPrivileges: true });
    expect(parseSecurityOpts(['no-new-privileges=1'])).toMatchObject({ noNewPrivileges: true });
    expect(parseSecurityOpts(['no-new-privileges', 'no-new-privileges=false'])).toMatchObject({ noNewPrivileges: false });
    expect(parseSecurityOpts(['seccomp=unconfined', 'apparmor=docker-default', 'label=type:svirt_t', 'label:disable', 'disable'])).toEqual({
      noNewPrivileges: false,
      unconfinedSystemPaths: false,
      writableCgroups: false,
      seccomp: 'unconfined',
      apparmor: 'docker-default',
      label: ['type:svirt_t', 'disable', 'disable'],
    });
    expect(parseSecurityOpts(['systempaths=unconfined', 'writable-cgroups=true'])).toMatchObject({ unconfinedSystemPaths: true, writableCgroups: true });
    expect(parseGoBool('T')).toBe(true);
    expect(parseGoBool('yes')).toBeUndefined();
  });

  it.each([
    ['no-new-privileges:maybe', 'invalid --security-opt 2: "no-new-privileges:maybe"'],
    ['systempaths=confined', 'invalid --security-opt 2: "systempaths=confined"'],
    ['foo=bar', 'invalid --security-opt 2: "foo=bar"'],
    ['nonsense', 'invalid --security-opt 1: "nonsense"'],
  ])('%s → %s', (opt, message) => {
    const err = thrown(() => parseSecurityOpts([opt]));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe(message);
  });

  it('in the spec: noNewPrivileges, systempaths=unconfined, writable-cgroups', async () => {
    expect((await build(r.dir, {}, { SecurityOpt: ['no-new-privileges'] })).process!.noNewPrivileges).toBe(true);
    expect((await build(r.dir, {}, { SecurityOpt: ['no-new-privileges:false'] })).process!.noNewPrivileges).toBeUndefined();
    const unconfined = await build(r.dir, {}, { SecurityOpt: ['systempaths=unconfined'] });
    expect(unconfined.linux!.maskedPaths).toBeUndefined();
    expect(unconfined.linux!.readonlyPaths).toBeUndefined();
    const rw = await build(r.dir, {}, { SecurityOpt: ['writable-cgroups=true'] });
    expect(rw.mounts!.find((m) => m.type === 'cgroup')!.options).toEqual(['nosuid', 'noexec', 'nodev']);
    await expect(build(r.dir, {}, { SecurityOpt: ['bogus=1'] })).rejects.toMatchObject({ kind: 'InvalidParameter' });
  });
});
