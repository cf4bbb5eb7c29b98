/**
 * Name resolution across all of a container's user networks (publish.ts, resolv.ts) on the
 * FakeRuntime with the fake CNI plugins (harness.ts), networks on loopback subnets so the DNS
 * servers really answer over lo and a query can come from a container's address:
 *  - a (net1 + net2), b (net1), c (net2): a resolves b and c (each at its address on the
 *    network it shares with a), the network the query came in on first, `name.network`; b does
 *    not resolve c (isolation: the lookup has nothing, the server relays; only names it answers
 *    are asked over the wire here, so nothing is relayed off lo);
 *  - disconnecting a running container from the network its resolv.conf names moves it to its
 *    other user network's server, and back to the host's resolvers with none left;
 *  - a user-namespaced container (attach deferred to beforeStart) gets its network's DNS
 *    server and a resolv.conf naming it;
 *  - a name no container has is relayed to the asker's --dns servers (HostConfig.Dns) when it
 *    has some, else to the host's resolvers: two fake upstreams on 127.0.0.1 and 127.0.0.2 (the
 *    test's host resolv.conf names the second), same port (publishing's upstreamPort).
 */
import { createSocket } from 'node:dgram';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, type EngineInfo } from '@berth/core';
import type { TestEngine } from '@berth/testing';
import { INetworkService } from '../src/index.js';
import { publishingOf, type Publishing } from '../src/publish.js';
import { disposeEngine, fakeCni, run, setup } from './harness.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await disposeEngine();
});

async function engine(extra: Parameters<typeof setup>[3] = [], publishing: Parameters<typeof setup>[4] = {}) {
  let info: EngineInfo | undefined;
  const probe = definePlugin({ name: 'probe', type: 'io.berth.test.v1', apply: (_h, ctx) => void (info = ctx.engine) });
  const s = await setup({}, fakeCni(), '', [probe, ...extra], { dnsPort: 0, ...publishing });
  const net1 = (await s.svc.create({ Name: 'net1', IPAM: { Config: [{ Subnet: '127.79.0.0/24', Gateway: '127.79.0.1' }] } })).Id;
  const net2 = (await s.svc.create({ Name: 'net2', IPAM: { Config: [{ Subnet: '127.80.0.0/24', Gateway: '127.80.0.1' }] } })).Id;
  return { ...s, pub: (): Publishing => publishingOf(info!)!, net1, net2 };
}

/** A fake upstream resolver on `address`:`port` (0: any) answering every A question with `answer`. */
async function fakeUpstream(address: string, port: number, answer: string): Promise<number> {
  const sock = createSocket('udp4');
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  sock.on('message', (msg, from) => {
    const q = packet.decode(msg);
    const answers = (q.questions ?? []).map((x) => ({ type: 'A' as const, name: x.name, ttl: 60, data: answer }));
    sock.send(packet.encode({ type: 'response', id: q.id, flags: packet.RECURSION_AVAILABLE, questions: q.questions, answers }), from.port, from.address);
  });
  await new Promise<void>((r) => sock.bind({ address, port }, () => r()));
  return sock.address().port;
}

const ep = (te: TestEngine, id: string, net: string) => te.engine.containers.inspect(id).NetworkSettings.Networks[net];

/** An A query to `server` from the address `from` (a container's); the answers' addresses. */
async function ask(server: { address: string; port: number }, name: string, from: string): Promise<string[]> {
  const sock = createSocket('udp4');
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  await new Promise<void>((r) => sock.bind({ address: from, port: 0 }, () => r()));
  const reply = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
  sock.send(packet.encode({ type: 'query', id: 3, questions: [{ type: 'A', name }] }), server.port, server.address);
  return (packet.decode(await reply).answers ?? []).map((x) => String((x as { data?: unknown }).data));
}

const disconnect = (te: TestEngine, net: string, id: string) =>
  te.engine.containers.withRecordLocked(id, async (rec) => {
    if (await te.engine.container.resolve(INetworkService).disconnect(rec, net, false)) await te.engine.containers.save(rec);
  });

describe('DNS across all of a container’s networks', () => {
  it('a on net1+net2 resolves b (net1) and c (net2); b does not resolve c; the network asked on comes first', async () => {
    const { te, pub, net1, net2 } = await engine();
    const a = await run(te, { NetworkMode: 'net1' }, { name: 'ma', NetworkingConfig: { EndpointsConfig: { net1: { Aliases: ['one'] }, net2: { Aliases: ['two'] } } } });
    const b = await run(te, { NetworkMode: 'net1' }, { name: 'mb' });
    const c = await run(te, { NetworkMode: 'net2' }, { name: 'mc' });
    const ip = (id: string, net: string) => ep(te, id, net).IPAddress ?? '';
    const s1 = { address: '127.79.0.1', port: pub().dns.get(net1)!.server.port };

    // a asks net1's server (its resolv.conf names it) from its net1 address
    expect(await readFile(te.engine.containers.inspect(a).ResolvConfPath, 'utf8')).toMatch(/^nameserver 127\.79\.0\.1\n/);
    expect(await ask(s1, 'mb', ip(a, 'net1'))).toEqual([ip(b, 'net1')]);
    expect(await ask(s1, 'mc', ip(a, 'net1'))).toEqual([ip(c, 'net2')]);
    expect(pub().resolve(net1, 'mc.net2', ip(a, 'net1'))).toEqual([ip(c, 'net2')]);
    expect(pub().resolve(net1, 'mc.net1', ip(a, 'net1'))).toBeUndefined();
    // a's own name: its address on the network asked on; aliases only on their network
    expect(pub().resolve(net1, 'ma', ip(b, 'net1'))).toEqual([ip(a, 'net1')]);
    expect(pub().resolve(net2, 'ma', ip(c, 'net2'))).toEqual([ip(a, 'net2')]);
    expect(pub().resolve(net2, 'one', ip(c, 'net2'))).toBeUndefined();
    expect(pub().resolve(net2, 'two', ip(c, 'net2'))).toEqual([ip(a, 'net2')]);
    // isolation: b and c share no network
    expect(pub().resolve(net1, 'mc', ip(b, 'net1'))).toBeUndefined();
    expect(pub().resolve(net2, 'mb', ip(c, 'net2'))).toBeUndefined();
    // an asker berth does not know: the network's own names only
    expect(pub().resolve(net1, 'mc', '127.79.0.250')).toBeUndefined();
    expect(pub().resolve(net1, 'mb', '127.79.0.250')).toEqual([ip(b, 'net1')]);
  });

  it("disconnecting from the network resolv.conf names moves it to the other network's server, then back to the host's", async () => {
    const { te, pub, net2 } = await engine();
    const a = await run(te, { NetworkMode: 'net1' }, { name: 'ma', NetworkingConfig: { EndpointsConfig: { net1: {}, net2: {} } } });
    const c = await run(te, { NetworkMode: 'net2' }, { name: 'mc' });
    const file = te.engine.containers.inspect(a).ResolvConfPath;
    const ino = (await stat(file)).ino;

    await disconnect(te, 'net1', a);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^nameserver 127\.80\.0\.1\noptions ndots:0\n/);
    expect((await stat(file)).ino).toBe(ino);
    const s2 = { address: '127.80.0.1', port: pub().dns.get(net2)!.server.port };
    expect(await ask(s2, 'mc', ep(te, a, 'net2').IPAddress ?? '')).toEqual([ep(te, c, 'net2').IPAddress]);

    await disconnect(te, 'net2', a);
    expect(await readFile(file, 'utf8')).toBe('nameserver 10.9.9.9\n');
  });

  it('a user-namespaced container (attach in beforeStart) gets its network’s DNS server in resolv.conf', async () => {
    const fakeUserns = definePlugin({ name: 'fake-userns', type: 'io.berth.security.v1', apply: (_h, ctx) => ctx.addSecurityOption('name=userns') });
    const { te, pub, net1, binds } = await engine([fakeUserns]);
    const a = await run(te, { NetworkMode: 'net1' }, { name: 'ua' });
    expect(binds).toHaveLength(1);
    expect(pub().dns.get(net1)?.address).toBe('127.79.0.1');
    expect(await readFile(te.engine.containers.inspect(a).ResolvConfPath, 'utf8')).toMatch(/^nameserver 127\.79\.0\.1\n/);
  });

  it("relays a name no container has to the asker's --dns servers, else to the host's resolvers", async () => {
    const port = await fakeUpstream('127.0.0.1', 0, '10.1.1.1');
    await fakeUpstream('127.0.0.2', port, '10.2.2.2');
    const dir = await mkdtemp(join(tmpdir(), 'berth-dns-ext-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'resolv.conf'), 'nameserver 127.0.0.2\n');
    const { te, pub, net1 } = await engine([], { upstreamPort: port, resolvConf: join(dir, 'resolv.conf') });
    const own = await run(te, { NetworkMode: 'net1', Dns: ['127.0.0.1'] }, { name: 'own' });
    const plain = await run(te, { NetworkMode: 'net1' }, { name: 'plain' });
    const s1 = { address: '127.79.0.1', port: pub().dns.get(net1)!.server.port };

    expect(await ask(s1, 'example.test', ep(te, own, 'net1').IPAddress ?? '')).toEqual(['10.1.1.1']);
    expect(await ask(s1, 'example.test', ep(te, plain, 'net1').IPAddress ?? '')).toEqual(['10.2.2.2']);
    // a container's names are still answered by the server itself, whatever its --dns
    expect(await ask(s1, 'plain', ep(te, own, 'net1').IPAddress ?? '')).toEqual([ep(te, plain, 'net1').IPAddress]);
    expect(await pub().upstreams(net1, ep(te, own, 'net1').IPAddress ?? '')).toEqual([{ host: '127.0.0.1', port }]);
    // at most the first 3, in order, as dockerd
    const four = await run(te, { NetworkMode: 'net1', Dns: ['127.0.0.1', '127.0.0.3', '127.0.0.4', '127.0.0.5'] }, { name: 'four' });
    expect((await pub().upstreams(net1, ep(te, four, 'net1').IPAddress ?? '')).map((u) => u.host)).toEqual(['127.0.0.1', '127.0.0.3', '127.0.0.4']);
  });
});
