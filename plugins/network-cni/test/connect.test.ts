/**
 * network-cni's `network` events and connect/disconnect (service.ts, hosts.ts) on the FakeRuntime
 * with the fake CNI plugins (harness.ts), no root:
 *  - events as dockerd logs them: create and destroy of a network, connect at a start and
 *    disconnect at its release (Actor.ID = network ID; name, type, container), prune;
 *  - connect of a running container: the next interface, a record of its new address in its
 *    /etc/hosts, the user network's DNS server started (on a loopback gateway) and named in its
 *    resolv.conf, its names answered there; disconnect takes the interface, the record and the
 *    DNS server away again; a stopped container only gets the request recorded (no event);
 *  - a release DELs the attachments of different networks at once.
 */
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, IEventBus, type EngineInfo } from '@berth/core';
import type { TestEngine } from '@berth/testing';
import { INetworkService, type EndpointRequest } from '../src/index.js';
import { publishingOf } from '../src/publish.js';
import { disposeEngine, fakeCni, run, setup } from './harness.js';

afterEach(disposeEngine);

const networkEvents = (te: TestEngine) =>
  te.engine.container
    .resolve(IEventBus)
    .history()
    .filter((e) => e.Type === 'network')
    .map((e) => ({ action: e.Action, id: e.Actor.ID, ...e.Actor.Attributes }));

/** The connect path under the container's lock, as the daemon's /networks/{id}/connect runs it. */
const connect = (te: TestEngine, net: string, id: string, ep?: EndpointRequest) =>
  te.engine.containers.withRecordLocked(id, async (rec) => {
    await te.engine.container.resolve(INetworkService).connect(rec, net, ep);
    await te.engine.containers.save(rec);
  });
const disconnect = (te: TestEngine, net: string, id: string) =>
  te.engine.containers.withRecordLocked(id, async (rec) => {
    if (await te.engine.container.resolve(INetworkService).disconnect(rec, net, false)) await te.engine.containers.save(rec);
  });

async function stop(te: TestEngine, id: string): Promise<void> {
  await te.engine.containers.stop(id, { timeout: 0 });
  await te.engine.containers.wait(id, 'not-running');
  await te.engine.containers.idle();
}

describe('network events, connect and disconnect', () => {
  it('create, connect at start, disconnect at release, destroy, prune: as dockerd logs them', async () => {
    const { te, svc } = await setup();
    const bridgeId = (await svc.inspect('bridge')).Id;
    const { Id } = await svc.create({ Name: 'app', IPAM: { Config: [{ Subnet: '198.18.7.0/24' }] } });
    const id = await run(te, { NetworkMode: 'app' });
    await stop(te, id);
    const other = await run(te);
    await stop(te, other);
    await svc.remove('app');
    const { Id: other2 } = await svc.create({ Name: 'spare', IPAM: { Config: [{ Subnet: '198.18.6.0/24' }] } });
    expect((await svc.prune()).NetworksDeleted).toEqual(['spare']);
    expect(networkEvents(te)).toEqual([
      { action: 'create', id: Id, name: 'app', type: 'bridge' },
      { action: 'connect', id: Id, container: id, name: 'app', type: 'bridge' },
      { action: 'disconnect', id: Id, container: id, name: 'app', type: 'bridge' },
      { action: 'connect', id: bridgeId, container: other, name: 'bridge', type: 'bridge' },
      { action: 'disconnect', id: bridgeId, container: other, name: 'bridge', type: 'bridge' },
      { action: 'destroy', id: Id, name: 'app', type: 'bridge' },
      { action: 'create', id: other2, name: 'spare', type: 'bridge' },
      { action: 'destroy', id: other2, name: 'spare', type: 'bridge' },
      { action: 'prune', id: '', reclaimed: '0' },
    ]);
  });

  it('connect of a running container: eth1, its /etc/hosts record, the network DNS serving it; disconnect undoes them', async () => {
    let info: EngineInfo | undefined;
    const probe = definePlugin({ name: 'probe', type: 'io.berth.test.v1', apply: (_h, ctx) => void (info = ctx.engine) });
    const { te, svc, cni } = await setup({}, fakeCni(), '', [probe], { dnsPort: 0 });
    const { Id } = await svc.create({ Name: 'lonet', IPAM: { Config: [{ Subnet: '127.78.0.0/24', Gateway: '127.78.0.1' }] } });
    const id = await run(te, {}, { name: 'web', Config: { Cmd: ['/bin/true'], Hostname: 'webhost' } });
    const rec = () => te.engine.containers.inspect(id);
    const pub = publishingOf(info!)!;
    expect(pub.dns.has(Id)).toBe(false);
    const resolvBefore = await readFile(rec().ResolvConfPath, 'utf8');
    expect(resolvBefore).toContain('nameserver 10.9.9.9');

    await connect(te, 'lonet', id, { Aliases: ['www'] });
    const ep = rec().NetworkSettings.Networks.lonet;
    expect(ep).toMatchObject({ NetworkID: Id, IPAddress: '127.78.0.2', Gateway: '127.78.0.1', Aliases: ['www'], DNSNames: ['web', 'www', id.slice(0, 12)] });
    expect(cni.calls.filter((c) => c.cmd === 'ADD').map((c) => `${c.type}/${c.ifName}`)).toEqual(['bridge/eth0', 'bridge/eth1']);
    expect(await readFile(rec().HostsPath, 'utf8')).toContain('127.78.0.2\twebhost\n');
    expect(pub.dns.has(Id)).toBe(true);
    expect(pub.lookup(Id, 'www')).toEqual(['127.78.0.2']);
    expect(await readFile(rec().ResolvConfPath, 'utf8')).toMatch(/^nameserver 127\.78\.0\.1\n/);
    expect(Object.keys((await svc.inspect('lonet')).Containers)).toEqual([id]);

    await disconnect(te, 'lonet', id);
    expect(Object.keys(rec().NetworkSettings.Networks)).toEqual(['bridge']);
    expect(cni.calls.filter((c) => c.cmd === 'DEL').map((c) => `${c.type}/${c.ifName}`)).toEqual(['bridge/eth1']);
    const hosts = await readFile(rec().HostsPath, 'utf8');
    expect(hosts).not.toContain('127.78.0.2');
    expect(hosts).toContain(`${rec().NetworkSettings.Networks.bridge.IPAddress}\twebhost\n`);
    expect(pub.dns.has(Id)).toBe(false);
    expect((await svc.inspect('lonet')).Containers).toEqual({});
    const bridgeId = (await svc.inspect('bridge')).Id;
    expect(networkEvents(te).filter((e) => e.id === Id && e.action !== 'create')).toEqual([
      { action: 'connect', id: Id, container: id, name: 'lonet', type: 'bridge' },
      { action: 'disconnect', id: Id, container: id, name: 'lonet', type: 'bridge' },
    ]);
    expect(networkEvents(te).filter((e) => e.id === bridgeId).map((e) => e.action)).toEqual(['connect']);

    // a stopped container: the request is recorded for its next start, no interface, no event
    await stop(te, id);
    const n = networkEvents(te).length;
    await connect(te, 'lonet', id);
    expect(Object.keys(rec().NetworkSettings.Networks).sort()).toEqual(['bridge', 'lonet']);
    expect(networkEvents(te)).toHaveLength(n);
    await te.engine.containers.start(id);
    expect(rec().NetworkSettings.Networks.lonet.IPAddress).toMatch(/^127\.78\.0\.\d+$/);
  });

  it('a release DELs the attachments of different networks at once', async () => {
    const base = fakeCni();
    let inFlight = 0;
    let most = 0;
    let bothIn: () => void = () => {};
    const both = new Promise<void>((r) => (bothIn = r));
    const cni = {
      ...base,
      exec: async (...a: Parameters<typeof base.exec>) => {
        if (a[1].CNI_COMMAND !== 'DEL') return base.exec(...a);
        most = Math.max(most, ++inFlight);
        if (inFlight === 2) bothIn();
        // each DEL waits for the other one (bounded: a release that runs them one by one ends, and fails below)
        await Promise.race([both, new Promise((r) => setTimeout(r, 1000))]);
        inFlight--;
        return base.exec(...a);
      },
    };
    const { te, svc } = await setup({}, cni);
    await svc.create({ Name: 'one', IPAM: { Config: [{ Subnet: '198.18.8.0/24' }] } });
    await svc.create({ Name: 'two', IPAM: { Config: [{ Subnet: '198.18.9.0/24' }] } });
    const id = await run(te, { NetworkMode: 'one' }, { NetworkingConfig: { EndpointsConfig: { one: {}, two: {} } } });
    expect(Object.keys(te.engine.containers.inspect(id).NetworkSettings.Networks).sort()).toEqual(['one', 'two']);
    await stop(te, id);
    expect(base.calls.filter((c) => c.cmd === 'DEL').map((c) => c.ifName).sort()).toEqual(['eth0', 'eth1']);
    expect(most).toBe(2);
  });
});
