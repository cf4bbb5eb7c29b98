import { describe, expect, it } from 'vitest';
import { UsageError, parseBerthdArgs } from '../src/options.js';

const noFile = () => null;

describe('berthd options', () => {
  it('has dockerd defaults', () => {
    const { config } = parseBerthdArgs([], noFile);
    expect(config.hosts).toEqual(['unix:///run/berth/berth.sock']);
    expect(config.dataRoot).toBe('/var/lib/berth');
    expect(config.execRoot).toBe('/run/berth');
    expect(config.defaultRuntime).toBe('runc');
    expect(config.liveRestore).toBe(false);
  });

  it('takes dockerd flag names, repeated -H and --add-runtime', () => {
    const { config } = parseBerthdArgs(
      ['-H', 'unix:///tmp/a.sock', '--host', 'tcp://127.0.0.1:2376', '--data-root', '/d', '--exec-root', '/e', '--experimental', '--live-restore', '--log-level', 'warn', '-G', 'staff', '-p', '/p.pid', '--add-runtime', 'crun=/usr/bin/crun', '--default-runtime', 'crun', '--tlsverify', '--tlscacert', 'ca', '--tlscert', 'c', '--tlskey', 'k'],
      noFile,
    );
    expect(config.hosts).toEqual(['unix:///tmp/a.sock', 'tcp://127.0.0.1:2376']);
    expect(config).toMatchObject({ dataRoot: '/d', execRoot: '/e', experimental: true, liveRestore: true, logLevel: 'warn', group: 'staff', groupExplicit: true, pidfile: '/p.pid', defaultRuntime: 'crun' });
    expect(config.runtimes.crun).toEqual({ path: '/usr/bin/crun' });
    expect(config.tls).toEqual({ verify: true, ca: 'ca', cert: 'c', key: 'k' });
  });

  it('reads daemon.json with dockerd keys', () => {
    const file = JSON.stringify({ 'data-root': '/x', 'live-restore': true, runtimes: { kata: { path: '/k', runtimeArgs: ['--debug'] } }, 'default-runtime': 'kata', hosts: ['unix:///s.sock'] });
    const { config } = parseBerthdArgs(['--config-file', '/etc/daemon.json'], (p) => (p === '/etc/daemon.json' ? file : null));
    expect(config).toMatchObject({ dataRoot: '/x', liveRestore: true, defaultRuntime: 'kata', hosts: ['unix:///s.sock'] });
    expect(config.runtimes.kata).toEqual({ path: '/k', runtimeArgs: ['--debug'] });
  });

  it('takes --userns-remap or daemon.json "userns-remap" (not both)', () => {
    expect(parseBerthdArgs([], noFile).config.usernsRemap).toBeUndefined();
    expect(parseBerthdArgs(['--userns-remap', 'default'], noFile).config.usernsRemap).toBe('default');
    const file = JSON.stringify({ 'userns-remap': 'alice:staff' });
    const read = (p: string) => (p === '/f' ? file : null);
    expect(parseBerthdArgs(['--config-file', '/f'], read).config.usernsRemap).toBe('alice:staff');
    expect(() => parseBerthdArgs(['--config-file', '/f', '--userns-remap', 'default'], read)).toThrow('userns-remap: (from flag: default');
    expect(() => parseBerthdArgs(['--config-file', '/g'], (p) => (p === '/g' ? '{"userns-remap": 5}' : null))).toThrow('"userns-remap" must be a string');
  });

  it('takes --ip-masq[=true|false] or daemon.json "ip-masq" (not both); unset: berth does not masquerade', () => {
    expect(parseBerthdArgs([], noFile).config.network.ipMasq).toBeUndefined();
    expect(parseBerthdArgs(['--ip-masq'], noFile).config.network.ipMasq).toBe(true);
    expect(parseBerthdArgs(['--ip-masq=true'], noFile).config.network.ipMasq).toBe(true);
    expect(parseBerthdArgs(['--ip-masq=false'], noFile).config.network.ipMasq).toBe(false);
    expect(() => parseBerthdArgs(['--ip-masq=maybe'], noFile)).toThrow('invalid --ip-masq "maybe"');
    const read = (p: string) => (p === '/f' ? JSON.stringify({ 'ip-masq': true }) : null);
    expect(parseBerthdArgs(['--config-file', '/f'], read).config.network.ipMasq).toBe(true);
    expect(() => parseBerthdArgs(['--config-file', '/f', '--ip-masq'], read)).toThrow('ip-masq: (from flag: true');
    expect(() => parseBerthdArgs(['--config-file', '/g'], (p) => (p === '/g' ? '{"ip-masq": "yes"}' : null))).toThrow('"ip-masq" must be a boolean');
  });

  it('takes --seccomp-profile or daemon.json "seccomp-profile" (not both)', () => {
    expect(parseBerthdArgs([], noFile).config.seccompProfile).toBeUndefined();
    expect(parseBerthdArgs(['--seccomp-profile', 'unconfined'], noFile).config.seccompProfile).toBe('unconfined');
    const read = (p: string) => (p === '/f' ? JSON.stringify({ 'seccomp-profile': '/etc/berth/seccomp.json' }) : null);
    expect(parseBerthdArgs(['--config-file', '/f'], read).config.seccompProfile).toBe('/etc/berth/seccomp.json');
    expect(() => parseBerthdArgs(['--config-file', '/f', '--seccomp-profile', 'builtin'], read)).toThrow('seccomp-profile: (from flag: builtin');
    expect(() => parseBerthdArgs(['--config-file', '/g'], (p) => (p === '/g' ? '{"seccomp-profile": true}' : null))).toThrow('"seccomp-profile" must be a string');
  });

  it('takes --init / --init-path or daemon.json "init" / "init-path" (not both)', () => {
    const none = parseBerthdArgs([], noFile).config;
    expect([none.init, none.initPath]).toEqual([false, undefined]);
    const flags = parseBerthdArgs(['--init', '--init-path', '/opt/tini'], noFile).config;
    expect([flags.init, flags.initPath]).toEqual([true, '/opt/tini']);
    const read = (p: string) => (p === '/f' ? JSON.stringify({ init: true, 'init-path': '/usr/bin/tini' }) : null);
    const file = parseBerthdArgs(['--config-file', '/f'], read).config;
    expect([file.init, file.initPath]).toEqual([true, '/usr/bin/tini']);
    expect(() => parseBerthdArgs(['--config-file', '/f', '--init'], read)).toThrow('init: (from flag: true');
    expect(() => parseBerthdArgs(['--config-file', '/g'], (p) => (p === '/g' ? '{"init": "yes"}' : null))).toThrow('"init" must be a boolean');
  });

  it('takes the default bridge flags -b/--bridge, --bip, --fixed-cidr, --mtu or daemon.json keys (+ default-address-pools), not both', () => {
    expect(parseBerthdArgs([], noFile).config.network).toEqual({});
    const flags = parseBerthdArgs(['-b', 'none', '--bip', '10.9.0.1/24', '--fixed-cidr', '10.9.0.128/25', '--mtu', '1400'], noFile).config;
    expect(flags.network).toEqual({ bridge: 'none', bip: '10.9.0.1/24', fixedCidr: '10.9.0.128/25', mtu: 1400 });
    const read = (p: string) => (p === '/f' ? JSON.stringify({ bridge: 'br9', mtu: 9000, 'default-address-pools': [{ base: '10.10.0.0/16', size: 24 }] }) : null);
    expect(parseBerthdArgs(['--config-file', '/f'], read).config.network).toEqual({ bridge: 'br9', mtu: 9000, defaultAddressPools: [{ base: '10.10.0.0/16', size: 24 }] });
    expect(() => parseBerthdArgs(['--config-file', '/f', '--bridge', 'x'], read)).toThrow('bridge: (from flag: x');
    expect(() => parseBerthdArgs(['--mtu', '20'], noFile)).toThrow(UsageError);
    expect(() => parseBerthdArgs(['--config-file', '/g'], (p) => (p === '/g' ? '{"default-address-pools": [{"base": 1}]}' : null))).toThrow('"default-address-pools" must be a list');
  });

  it('takes the slow-client bounds as flags (seconds) or daemon.json keys', () => {
    expect(parseBerthdArgs([], noFile).config.connections).toBeUndefined();
    const { config } = parseBerthdArgs(['--berth-header-timeout', '2.5', '--berth-idle-timeout', '90', '--berth-max-connections', '100'], noFile);
    expect(config.connections).toEqual({ headerTimeoutMs: 2500, idleTimeoutMs: 90_000, maxConnections: 100 });
    const file = JSON.stringify({ 'berth-max-connections': 8, 'berth-idle-timeout': 1 });
    expect(parseBerthdArgs(['--config-file', '/f'], (p) => (p === '/f' ? file : null)).config.connections).toEqual({ maxConnections: 8, idleTimeoutMs: 1000 });
    for (const bad of [['--berth-max-connections', '0'], ['--berth-max-connections', '1.5'], ['--berth-header-timeout', 'soon'], ['--berth-idle-timeout', '-1']]) {
      expect(() => parseBerthdArgs(bad, noFile), bad.join(' ')).toThrow(UsageError);
    }
    expect(() => parseBerthdArgs(['--config-file', '/f', '--berth-max-connections', '9'], (p) => (p === '/f' ? file : null))).toThrow(/specified both/);
  });

  it('refuses conflicts, unknown keys, bad values, unknown flags', () => {
    const read = (text: string) => () => text;
    expect(() => parseBerthdArgs(['--data-root', '/a'], read('{"data-root":"/b"}'))).toThrow(/specified both as a flag and in the configuration file: data-root/);
    expect(() => parseBerthdArgs([], read('{"colour":"red"}'))).toThrow(/don't match any configuration option: colour/);
    expect(() => parseBerthdArgs([], read('{"live-restore":"yes"}'))).toThrow(UsageError);
    expect(() => parseBerthdArgs([], read('{not json'))).toThrow(/invalid JSON/);
    expect(() => parseBerthdArgs(['--log-level', 'loud'], noFile)).toThrow(/unable to parse logging level/);
    expect(() => parseBerthdArgs(['--add-runtime', 'runc=/x'], noFile)).toThrow(/reserved/);
    expect(() => parseBerthdArgs(['--add-runtime', 'nopath'], noFile)).toThrow(/name=path/);
    expect(() => parseBerthdArgs(['--default-runtime', 'ghost'], noFile)).toThrow(/not registered/);
    expect(() => parseBerthdArgs(['--bogus'], noFile)).toThrow(UsageError);
    expect(() => parseBerthdArgs(['--config-file', '/missing.json'], noFile)).toThrow(/no such file/);
  });
});
