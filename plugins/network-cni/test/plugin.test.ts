/**
 * The network-cni plugin on the FakeRuntime with an in-process fake of the CNI plugins (bridge
 * with host-local-like allocation, loopback, tuning) and fake namespaces (no root): the default
 * bridge's subnet rule, NetworkSettings as dockerd fills them, /etc/hosts with the address
 * (network-basic), the release at exit, a failed start rolled back, --ip/--network-alias/
 * --mac-address, user networks (create/list/inspect/remove/prune, persisted), connect.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, errorKind } from '@berth/core';
import { INetworkService, type NetworkService } from '../src/index.js';
import { disposeEngine, fakeCni, run, setup } from './harness.js';

afterEach(disposeEngine);

/** A /proc/net/route line: the kernel prints each u32 in memory (little-endian) order, so 172.17.0.0 is 000011AC. */
function routeLine(iface: string, dst: string, prefix: number): string {
  const hex = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join('');
  const num = dst.split('.').reduce((a, p) => a * 256 + Number(p), 0);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return `${iface}\t${hex(num)}\t00000000\t0001\t0\t0\t0\t${hex(mask)}\t0\t0\t0\n`;
}

describe('network-cni plugin', () => {
  it('default bridge: 172.17.0.0/16, NetworkSettings as dockerd, hosts record, SandboxKey = the netns file; released at exit', async () => {
    const { te, cni, netns, svc } = await setup();
    const id = await run(te, {}, { name: 'web' });
    const rec = te.engine.containers.inspect(id);
    const bridge = await svc.inspect('bridge');
    expect(bridge.IPAM.Config).toEqual([{ Subnet: '172.17.0.0/16', Gateway: '172.17.0.1' }]);
    const ep = rec.NetworkSettings.Networks.bridge;
    expect(Object.keys(rec.NetworkSettings.Networks)).toEqual(['bridge']);
    expect(ep).toMatchObject({ NetworkID: bridge.Id, IPAddress: '172.17.0.2', IPPrefixLen: 16, Gateway: '172.17.0.1', MacAddress: '0a:58:00:00:00:09', IPAMConfig: null, Aliases: null, DNSNames: null });
    expect(ep.EndpointID).toMatch(/^[0-9a-f]{64}$/);
    expect(rec.NetworkSettings).toMatchObject({ IPAddress: '172.17.0.2', IPPrefixLen: 16, Gateway: '172.17.0.1', EndpointID: ep.EndpointID });
    const sandbox = join(te.execRoot, 'netns', id);
    expect(rec.NetworkSettings.SandboxKey).toBe(sandbox);
    expect(netns.has(sandbox)).toBe(true);
    expect(te.fake.containers.get(id)?.spec.linux?.namespaces?.find((n) => n.type === 'network')?.path).toBe(sandbox);
    expect(await readFile(rec.HostsPath, 'utf8')).toContain(`172.17.0.2\t${id.slice(0, 12)}\n`);
    const add = cni.calls.find((c) => c.type === 'bridge' && c.cmd === 'ADD')!;
    expect(add.conf).toMatchObject({ bridge: 'berth0', isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(te.dataRoot, 'network-cni', 'ipam') } });
    expect(add.ifName).toBe('eth0');
    expect(Object.keys((await svc.inspect('bridge')).Containers)).toEqual([id]);

    await te.engine.containers.stop(id, { timeout: 0 });
    await te.engine.containers.wait(id, 'not-running');
    await te.engine.containers.idle();
    expect(cni.calls.filter((c) => c.cmd === 'DEL').map((c) => `${c.type}/${c.ifName}`)).toEqual(['bridge/eth0']);
    expect(netns.has(sandbox)).toBe(false);
    expect(cni.allocated.size).toBe(0);
    expect(await readdir(join(te.dataRoot, 'network-cni', 'results'))).toEqual([]);
    expect((await svc.inspect('bridge')).Containers).toEqual({});
    // the record drops what only the running sandbox had (dockerd's cleanOperationalData), keeps what was asked
    const after = te.engine.containers.inspect(id).NetworkSettings;
    expect(after).toMatchObject({ SandboxKey: '', SandboxID: '', IPAddress: '', Gateway: '', IPPrefixLen: 0, EndpointID: '' });
    expect(after.Networks.bridge).toMatchObject({ NetworkID: bridge.Id, EndpointID: '', IPAddress: '', Gateway: '', IPPrefixLen: 0 });
    // and the next start attaches again
    await te.engine.containers.start(id);
    expect(te.engine.containers.inspect(id).NetworkSettings.Networks.bridge.IPAddress).toBe('172.17.0.2');
  });

  it('the default subnet skips one a host route takes (next of the default pools); bip, fixed-cidr and mtu', async () => {
    const a = await setup({}, fakeCni(), routeLine('eth9', '172.17.0.0', 16));
    expect((await a.svc.inspect('bridge')).IPAM.Config[0]).toEqual({ Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' });
    await disposeEngine();
    const b = await setup({ bip: '198.18.5.1/24', fixedCidr: '198.18.5.128/25', mtu: 1400, bridge: 'btest0' });
    expect((await b.svc.inspect('bridge')).IPAM.Config[0]).toEqual({ Subnet: '198.18.5.0/24', Gateway: '198.18.5.1' });
    const id = await run(b.te);
    const add = b.cni.calls.find((c) => c.type === 'bridge' && c.cmd === 'ADD')!;
    expect(add.conf).toMatchObject({ bridge: 'btest0', mtu: 1400, ipam: { ranges: [[{ subnet: '198.18.5.0/24', gateway: '198.18.5.1', rangeStart: '198.18.5.128', rangeEnd: '198.18.5.254' }]] } });
    expect(b.te.engine.containers.inspect(id).NetworkSettings.Networks.bridge.IPAddress).toBe('198.18.5.128');
  });

  it('a failed ADD fails the start and leaves no attachment, namespace or address', async () => {
    const { te, cni, netns } = await setup({}, fakeCni({ failBridgeAdd: true }));
    const id = await te.createContainer({ Config: { Cmd: ['/bin/true'] } });
    const err = await te.engine.containers.start(id).catch((e: unknown) => e);
    expect(String((err as Error).message)).toContain('failed to set bridge addr');
    await te.engine.containers.idle();
    expect(netns.size).toBe(0);
    expect(cni.allocated.size).toBe(0);
    expect(await readdir(join(te.dataRoot, 'network-cni', 'results'))).toEqual([]);
    expect(te.engine.containers.inspect(id).State.Running).toBe(false);
  });

  it('user networks: create (IPAM, labels), duplicates, IPv6 refused, list filters, --ip/alias/mac, remove in use refused, prune; persisted', async () => {
    const { te, cni, svc, plugins } = await setup();
    const { Id } = await svc.create({ Name: 'app', Labels: { 'com.docker.compose.project': 'p' }, IPAM: { Config: [{ Subnet: '198.18.7.0/24', IPRange: '198.18.7.64/26' }] } });
    expect(errorKind(await svc.create({ Name: 'app' }).catch((e: unknown) => e))).toBe('Conflict');
    expect(errorKind(await svc.create({ Name: 'v6', EnableIPv6: true }).catch((e: unknown) => e))).toBe('InvalidParameter');
    expect(errorKind(await svc.create({ Name: 'ov', IPAM: { Config: [{ Subnet: '198.18.7.128/25' }] } }).catch((e: unknown) => e))).toBe('Forbidden');
    // concurrent creates get different subnets
    const [x, y] = await Promise.all([svc.create({ Name: 'x' }), svc.create({ Name: 'y' })]);
    expect((await svc.inspect(x.Id)).IPAM.Config[0].Subnet).not.toBe((await svc.inspect(y.Id)).IPAM.Config[0].Subnet);
    await svc.remove('x');
    await svc.remove('y');
    const auto = await svc.create({ Name: 'auto' });
    expect((await svc.inspect(auto.Id)).IPAM.Config).toEqual([{ Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' }]);
    const names = async (f: Record<string, string[]>) => (await svc.list(new Map(Object.entries(f).map(([k, v]) => [k, new Set(v)])))).map((n) => n.Name).sort();
    expect(await names({})).toEqual(['app', 'auto', 'bridge', 'host', 'none']);
    expect(await names({ label: ['com.docker.compose.project=p'] })).toEqual(['app']);
    expect(await names({ type: ['custom'] })).toEqual(['app', 'auto']);
    expect(await names({ type: ['builtin'] })).toEqual(['bridge', 'host', 'none']);
    expect(await names({ driver: ['null'] })).toEqual(['none']);
    expect(await names({ id: [Id.slice(0, 8)] })).toEqual(['app']);

    // --ip on the default bridge is refused at create, as dockerd
    const bad = await te.createContainer({ Config: { Cmd: ['/bin/true'] }, NetworkingConfig: { EndpointsConfig: { bridge: { IPAMConfig: { IPv4Address: '172.17.0.9' } } } } }).catch((e: unknown) => e);
    expect(String((bad as Error).message)).toContain('user specified IP address is supported on user defined networks only');
    const id = await run(te, { NetworkMode: 'app' }, { name: 'db', NetworkingConfig: { EndpointsConfig: { app: { IPAMConfig: { IPv4Address: '198.18.7.70' }, Aliases: ['database'], MacAddress: '02:42:c6:12:07:46' } } } });
    const ep = te.engine.containers.inspect(id).NetworkSettings.Networks.app;
    expect(ep).toMatchObject({ NetworkID: Id, IPAddress: '198.18.7.70', IPPrefixLen: 24, Aliases: ['database'], DNSNames: ['db', 'database', id.slice(0, 12)], MacAddress: '02:42:c6:12:07:46', IPAMConfig: { IPv4Address: '198.18.7.70' } });
    const add = cni.calls.filter((c) => c.cmd === 'ADD' && c.id === id).map((c) => c.type);
    expect(add).toEqual(['bridge', 'tuning']); // lo: up in the namespace netns.ts made, no plugin
    expect(cni.calls.find((c) => c.type === 'bridge' && c.id === id)!.conf.runtimeConfig).toEqual({ ips: ['198.18.7.70'] });
    expect(te.engine.containers.inspect(id).NetworkSettings.IPAddress).toBe(''); // legacy fields: the default bridge's only

    const inUse = await svc.remove('app').catch((e: unknown) => e);
    expect(errorKind(inUse)).toBe('Forbidden');
    expect(String((inUse as Error).message)).toBe(`error while removing network: network app id ${Id} has active endpoints`);
    expect(errorKind(await svc.remove('bridge').catch((e: unknown) => e))).toBe('Forbidden');
    expect((await svc.prune()).NetworksDeleted).toEqual(['auto']);
    expect(await names({ dangling: ['true'] })).toEqual([]);

    // persisted: a new engine on the same data root has the network
    await te.engine.containers.stop(id, { timeout: 0 });
    await te.engine.containers.idle();
    const again = await te.restart({ plugins });
    const svc2 = again.container.resolve(INetworkService) as NetworkService;
    expect((await svc2.inspect('app')).Id).toBe(Id);
    expect((await svc2.inspect('bridge')).Id).toBe((await svc.inspect('bridge')).Id);
    await svc2.remove('app');
    expect(errorKind(await svc2.inspect('app').catch((e: unknown) => e))).toBe('NotFound');
  });

  it('bridge none (dockerd -b none): no default bridge network; default containers are left to network-basic, user networks attach', async () => {
    const { te, cni, netns, svc } = await setup({ bridge: 'none' });
    expect((await svc.list()).map((n) => n.Name).sort()).toEqual(['host', 'none']);
    const id = await run(te);
    expect(cni.calls).toEqual([]);
    expect(netns.size).toBe(0);
    const rec = te.engine.containers.inspect(id);
    expect(rec.NetworkSettings.SandboxKey).toBe('');
    expect(await readFile(rec.HostsPath, 'utf8')).not.toContain('172.17.');
    await svc.create({ Name: 'u', IPAM: { Config: [{ Subnet: '198.18.9.0/24' }] } });
    const u = await run(te, { NetworkMode: 'u' });
    expect(te.engine.containers.inspect(u).NetworkSettings.Networks.u.IPAddress).toBe('198.18.9.2');
  });

  it('a container found gone after a daemon restart is released from the CNI cache (DEL of each attachment, namespace removed)', async () => {
    const { te, cni, netns, plugins } = await setup();
    const id = await run(te);
    const sandbox = join(te.execRoot, 'netns', id);
    expect(netns.has(sandbox)).toBe(true);
    expect(cni.calls.map((c) => `${c.cmd} ${c.type}/${c.ifName}`)).toEqual(['ADD bridge/eth0']);
    // the loopback attachment a daemon before netns.ts's lo up made: still DELed, after the networks
    const lo = { cniVersion: '1.0.0', name: 'berth-loopback', plugins: [{ type: 'loopback' }] };
    const legacy = { kind: 'berthCniCacheV1', containerId: id, ifName: 'lo', netns: sandbox, networkName: 'berth-loopback', config: lo, result: { cniVersion: '1.0.0' } };
    await writeFile(join(te.dataRoot, 'network-cni', 'results', `${id}-lo.json`), JSON.stringify(legacy));
    te.fake.forget(id); // the daemon went down and the container with it
    expect(cni.calls.filter((c) => c.cmd === 'DEL')).toEqual([]);
    await te.restart({ plugins });
    await te.engine.containers.idle();
    expect(te.engine.containers.inspect(id).State.Running).toBe(false);
    expect(cni.calls.filter((c) => c.cmd === 'DEL').map((c) => `${c.type}/${c.ifName}`)).toEqual(['bridge/eth0', 'loopback/lo']);
    expect(netns.has(sandbox)).toBe(false);
    expect(cni.allocated.size).toBe(0);
    expect(await readdir(join(te.dataRoot, 'network-cni', 'results'))).toEqual([]);
  });

  it('docker network create -d <CNI plugin>: the conflist from the config dir whose name or first plugin is the driver; none → 404', async () => {
    const confDir = await mkdtemp(join(tmpdir(), 'berth-cni-conf-'));
    try {
      const list = { cniVersion: '1.0.0', name: 'mycni', plugins: [{ type: 'bridge', bridge: 'bk0', ipam: { type: 'host-local', ranges: [[{ subnet: '198.18.11.0/24' }]] } }] };
      await writeFile(join(confDir, '10-mycni.conflist'), JSON.stringify(list));
      await writeFile(join(confDir, '05-broken.conflist'), '{ not json');
      const { te, cni, svc } = await setup({ confDir });
      const { Id } = await svc.create({ Name: 'k', Driver: 'mycni' });
      expect((await svc.inspect('k')).Driver).toBe('mycni');
      const id = await run(te, { NetworkMode: 'k' });
      const add = cni.calls.find((c) => c.type === 'bridge' && c.id === id)!;
      expect(add.conf).toMatchObject({ name: Id, bridge: 'bk0' });
      expect(te.engine.containers.inspect(id).NetworkSettings.Networks.k.IPAddress).toBe('198.18.11.2');
      const none = await svc.create({ Name: 'z', Driver: 'nope' }).catch((e: unknown) => e);
      expect(errorKind(none)).toBe('NotFound');
      expect(String((none as Error).message)).toContain('plugin "nope" not found');
    } finally {
      await rm(confDir, { recursive: true, force: true });
    }
  });

  it('with a user namespace (userns remap) the runtime makes the namespace and the attach runs in beforeStart, its address added to hosts', async () => {
    const fakeUserns = definePlugin({ name: 'fake-userns', type: 'io.berth.security.v1', apply: (_h, ctx) => ctx.addSecurityOption('name=userns') });
    const { te, cni, netns, binds } = await setup({}, fakeCni(), '', [fakeUserns]);
    const id = await run(te);
    const rec = te.engine.containers.inspect(id);
    const sandbox = join(te.execRoot, 'netns', id);
    // the spec asks the runtime for a new namespace; the plugin keeps the one the process got
    expect(te.fake.containers.get(id)?.spec.linux?.namespaces?.find((n) => n.type === 'network')).toEqual({ type: 'network' });
    expect(binds).toEqual([`/proc/${rec.State.Pid}/ns/net`]);
    expect(rec.NetworkSettings).toMatchObject({ SandboxKey: sandbox, IPAddress: '172.17.0.2' });
    expect(cni.calls.find((c) => c.type === 'bridge')!.conf).toBeDefined();
    expect(await readFile(rec.HostsPath, 'utf8')).toContain(`172.17.0.2\t${id.slice(0, 12)}\n`);
    // --userns=host: the namespace is the plugin's, as without remap
    const h = await run(te, { UsernsMode: 'host' });
    expect(te.fake.containers.get(h)?.spec.linux?.namespaces?.find((n) => n.type === 'network')?.path).toBe(join(te.execRoot, 'netns', h));
    expect(binds).toHaveLength(1);
    await te.engine.containers.stop(id, { timeout: 0 });
    await te.engine.containers.idle();
    expect(netns.has(sandbox)).toBe(false);
  });

  it('a container on a network that does not exist is refused at create (404)', async () => {
    const { te } = await setup();
    const err = await te.createContainer({ Config: { Cmd: ['/bin/true'] }, HostConfig: { NetworkMode: 'nosuch' } }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('NotFound');
    expect(String((err as Error).message)).toContain('network nosuch not found');
  });
});
