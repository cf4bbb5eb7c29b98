/**
 * What clients read about a container's network: stats.networks (per-interface counters from
 * the container's own network namespace; left out for loopback-only and for the host's
 * namespace, as dockerd) and NetworkSettings in inspect and `docker ps` (MacAddress "" and the
 * other endpoint keys present on none/host; the container-wide legacy fields before API 1.52
 * only). The namespace test makes a real netns (unshare -n) and skips without root.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { validateDefinition, type TestEngine } from '@berth/testing';
import { networks, parseNetDev, sample, type Injector } from '../src/index.js';
import { engineApp } from './helpers/engine-app.js';

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      12    0    0    0     0          0         0      840      12    0    0    0     0       0          0
  eth0: 1234567    8901    2    3    0     0          0         0   765432     4321    4    5    0     0       0          0
veth-a1b2c3:5 6 0 0 0 0 0 0 7 8 0 0 0 0 0 0
`;

describe('stats.networks', () => {
  it('parses /proc/<pid>/net/dev into ContainerNetworkStats per interface, loopback left out', () => {
    const n = parseNetDev(NET_DEV);
    expect(Object.keys(n)).toEqual(['eth0', 'veth-a1b2c3']);
    expect(n.eth0).toEqual({ rx_bytes: 1234567, rx_packets: 8901, rx_errors: 2, rx_dropped: 3, tx_bytes: 765432, tx_packets: 4321, tx_errors: 4, tx_dropped: 5 });
    expect(n['veth-a1b2c3']).toMatchObject({ rx_bytes: 5, rx_packets: 6, tx_bytes: 7, tx_packets: 8 });
    for (const s of Object.values(n)) expect(validateDefinition('ContainerNetworkStats', s)).toBe('');
  });

  it('a process in the daemon\'s own namespace (--network host) has no networks field', async () => {
    expect(await networks(process.pid)).toBeUndefined();
    expect(await sample(process.pid)).not.toHaveProperty('networks');
  });

  const rootless = process.getuid?.() !== 0 ? 'needs root for a network namespace' : spawnSync('unshare', ['--version']).error ? 'needs unshare(1)' : '';
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = undefined;
  });
  /** A process in a new network namespace after `setup` ran there; the namespace goes with it. */
  async function inNetns(setup: string): Promise<number> {
    child = spawn('unshare', ['-n', 'sh', '-c', `${setup} && echo ready && exec sleep 60`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const c = child;
    await new Promise<void>((resolve, reject) => {
      c.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      c.on('exit', (code) => reject(new Error(`unshare exited with ${code}`)));
    });
    return c.pid!;
  }

  it.skipIf(!!rootless)(`a namespace of its own: its interfaces but lo; only lo (--network none): no field${rootless ? ` (skipped: ${rootless})` : ''}`, async () => {
    const lonely = await inNetns('ip link set lo up');
    expect(await networks(lonely)).toBeUndefined();
    child!.kill('SIGKILL');
    const pid = await inNetns('ip link set lo up && ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up');
    const n = await networks(pid);
    expect(Object.keys(n ?? {}).sort()).toEqual(['v0', 'v1']);
    const s = await sample(pid);
    expect(Object.keys(s.networks ?? {}).sort()).toEqual(['v0', 'v1']);
    for (const v of Object.values(s.networks!)) expect(validateDefinition('ContainerNetworkStats', v)).toBe('');
  });
});

describe('NetworkSettings in inspect and ps', () => {
  const app = engineApp();
  let t: TestEngine | undefined;
  let inj: Injector | undefined;

  it.each(['none', 'host'])('--network %s: MacAddress "" and every endpoint key; the legacy container-wide fields only before 1.52', async (mode) => {
    ({ t, inj } = await app.open());
    const created = await inj.request({ method: 'POST', url: '/v1.44/containers/create?name=c1', body: { Image: 'plain', Cmd: ['/bin/true'], Labels: { 'io.berth.rootfs': t.rootfs }, HostConfig: { NetworkMode: mode } } });
    expect(created.statusCode, created.body.toString()).toBe(201);

    const old = await inj.request({ url: '/v1.44/containers/c1/json' });
    const ns = old.json().NetworkSettings;
    expect(validateDefinition('NetworkSettings', ns)).toBe('');
    expect(ns).toMatchObject({ MacAddress: '', IPAddress: '', Gateway: '', EndpointID: '', IPPrefixLen: 0, Bridge: '' });
    expect(Object.keys(ns.Networks)).toEqual([mode]);
    expect(ns.Networks[mode]).toMatchObject({ MacAddress: '', IPAddress: '', Gateway: '', IPPrefixLen: 0, IPAMConfig: null });

    const now = await inj.request({ url: '/v1.52/containers/c1/json' });
    const ns2 = now.json().NetworkSettings;
    expect(validateDefinition('NetworkSettings', ns2)).toBe('');
    expect(ns2).not.toHaveProperty('MacAddress');
    expect(ns2).not.toHaveProperty('IPAddress');
    expect(ns2.Networks[mode].MacAddress).toBe('');

    const ps = await inj.request({ url: '/v1.44/containers/json?all=1' });
    expect(validateDefinition('EndpointSettings', ps.json()[0].NetworkSettings.Networks[mode])).toBe('');
    expect(ps.json()[0].NetworkSettings.Networks[mode]).toMatchObject({ MacAddress: '', IPAddress: '' });
  });
});
