/**
 * publish.ts's taps on the FakeRuntime (no root): the network-cni plugin with a fake CNI whose
 * bridge hands out addresses of a user network in 127.77.0.0/24 — loopback addresses, so the
 * proxy and the DNS server really relay and answer over lo:
 *  - a published port relays to the "container" address (a local server), fills
 *    NetworkSettings.Ports; the same host port for another container fails its start with
 *    dockerd's words and leaves no listener of its own; stop closes the listener;
 *  - the ports DNAT serves reach portmap (last in the first network's conflist) as its
 *    portMappings, loopback ones not; its DEL gets them from the result cache; a port that
 *    cannot be had fails the start before any ADD; without portmap or iptables (dnat false) no
 *    portmap runs and the proxy serves every client;
 *  - the user network's DNS server on its gateway answers the running containers' names and
 *    aliases, a container's resolv.conf names it, and it closes with the last container.
 */
import { createSocket } from 'node:dgram';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, errorKind, type EngineInfo } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { networkBasicPlugin } from '@berth/plugin-network-basic';
import { INetworkService, networkCniPlugin, type CniExec, type NetworkService } from '../src/index.js';
import { publishingOf, type PublishingOptions } from '../src/publish.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What the CNI fake was asked: plugin type, command, container, config. */
const cniCalls: Array<{ type: string; cmd: string; id: string; conf: Record<string, unknown> }> = [];

/** CNI fake: loopback answers, bridge gives 127.77.0.2, .3, … (gateway .1), portmap passes its prevResult on, DEL frees nothing it needs to. */
function loopbackCni(): CniExec {
  let next = 2;
  cniCalls.length = 0;
  return async (binary, env, stdin) => {
    const json = (o: unknown) => ({ code: 0, stdout: JSON.stringify(o), stderr: '' });
    const conf = JSON.parse(stdin) as Record<string, unknown>;
    cniCalls.push({ type: binary.slice(binary.lastIndexOf('/') + 1), cmd: env.CNI_COMMAND, id: env.CNI_CONTAINERID ?? '', conf });
    if (env.CNI_COMMAND !== 'ADD') return { code: 0, stdout: '', stderr: '' };
    if (binary.endsWith('/portmap')) return json(conf.prevResult);
    if (binary.endsWith('/loopback')) return json({ cniVersion: '1.0.0', interfaces: [{ name: 'lo', sandbox: env.CNI_NETNS }] });
    const addr = `127.77.0.${next++}`;
    return json({ cniVersion: '1.0.0', interfaces: [{ name: env.CNI_IFNAME, mac: '0a:58:00:00:00:07', sandbox: env.CNI_NETNS }], ips: [{ address: `${addr}/24`, gateway: '127.77.0.1', interface: 0 }] });
  };
}

async function setup(publishing: Pick<PublishingOptions, 'dnat'> = {}): Promise<{ te: TestEngine; info: () => EngineInfo; netId: string; dir: string }> {
  const te = await createTestEngine({ plugins: [] });
  cleanups.push(() => te.dispose());
  const dir = join(te.dir, 'host');
  await mkdir(dir, { recursive: true });
  // the host's resolver: a loopback address nothing listens on (a relayed question never leaves lo)
  await writeFile(join(dir, 'resolv.conf'), 'nameserver 127.77.0.254\nsearch example.test\n');
  await writeFile(join(dir, 'route'), 'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n');
  await writeFile(join(dir, 'range'), '41000\t41099\n');
  let engineInfo: EngineInfo | undefined;
  const probe = definePlugin({ name: 'probe', type: 'io.berth.test.v1', apply: (_h, ctx) => void (engineInfo = ctx.engine) });
  const plugin = networkCniPlugin({
    config: { bridge: 'none' },
    exec: loopbackCni(),
    skipHostChecks: true,
    routesFile: join(dir, 'route'),
    netns: { create: async () => undefined, bind: async () => undefined, remove: async () => undefined },
    publishing: { ...publishing, dnsPort: 0, resolvConf: join(dir, 'resolv.conf'), portRangeFile: join(dir, 'range') },
  });
  await te.restart({ plugins: [probe, plugin, networkBasicPlugin({ config: { resolvConfFile: join(dir, 'resolv.conf'), hostsFile: join(dir, 'hosts') } })] });
  const svc = te.engine.container.resolve(INetworkService) as NetworkService;
  const { Id } = await svc.create({ Name: 'pubnet', IPAM: { Config: [{ Subnet: '127.77.0.0/24', Gateway: '127.77.0.1' }] } });
  return { te, info: () => engineInfo!, netId: Id, dir };
}

async function start(te: TestEngine, name: string, extra: { ports?: Record<string, Array<{ HostIp?: string; HostPort?: string }>>; aliases?: string[] } = {}): Promise<string> {
  const id = await te.createContainer({
    name,
    Config: { Cmd: ['/bin/true'] },
    HostConfig: { NetworkMode: 'pubnet', ...(extra.ports ? { PortBindings: extra.ports } : {}) },
    NetworkingConfig: { EndpointsConfig: { pubnet: { ...(extra.aliases ? { Aliases: extra.aliases } : {}) } } },
  });
  await te.engine.containers.start(id);
  return id;
}

async function stop(te: TestEngine, id: string): Promise<void> {
  await te.engine.containers.stop(id, { timeout: 0 });
  await te.engine.containers.wait(id, 'not-running');
  await te.engine.containers.idle();
}

/** A server on the first container's address (127.77.0.2) answering one line and closing. */
async function containerServer(): Promise<number> {
  const s: Server = createServer((c) => c.end('from-container\n'));
  await new Promise<void>((r) => s.listen({ host: '127.77.0.2', port: 0 }, () => r()));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return (s.address() as AddressInfo).port;
}

function read(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ host: '127.0.0.1', port });
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    c.on('close', () => resolve(got));
    c.on('error', reject);
  });
}

describe('published ports and DNS (publish.ts)', () => {
  it('relays a published port to the container address; a taken port fails the other start; stop frees it', async () => {
    const { te, info } = await setup();
    const port = await containerServer();
    const a = await start(te, 'pa', { ports: { [`${port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] } });
    const ports = te.engine.containers.inspect(a).NetworkSettings.Ports;
    const hostPort = Number(ports[`${port}/tcp`]![0].HostPort);
    expect(ports).toEqual({ [`${port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(hostPort) }] });
    expect(hostPort).toBeGreaterThanOrEqual(41000);
    expect(hostPort).toBeLessThanOrEqual(41099);
    expect(await read(hostPort)).toBe('from-container\n');

    const b = await te.createContainer({ name: 'pb', Config: { Cmd: ['/bin/true'] }, HostConfig: { NetworkMode: 'pubnet', PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(hostPort) }] } } });
    const err = await te.engine.containers.start(b).catch((e: unknown) => e as Error);
    expect(errorKind(err)).toBe('System');
    expect((err as Error).message).toContain(`Bind for 127.0.0.1:${hostPort} failed: port is already allocated`);
    expect(publishingOf(info())!.proxy.listeners()).toEqual([{ containerPort: port, proto: 'tcp', hostIp: '127.0.0.1', hostPort }]);

    await stop(te, a);
    expect(publishingOf(info())!.proxy.listeners()).toEqual([]);
  });

  it('hands the ports DNAT serves to portmap as portMappings (not loopback ones), DEL gets them from the cache; a taken port fails before any ADD', async () => {
    const { te } = await setup();
    const a = await start(te, 'pm', { ports: { '80/tcp': [{ HostPort: '' }, { HostIp: '127.0.0.1', HostPort: '' }], '53/udp': [{ HostIp: '0.0.0.0', HostPort: '' }] } });
    const ports = te.engine.containers.inspect(a).NetworkSettings.Ports;
    const hp = (key: string, i = 0) => Number(ports[key]![i].HostPort);
    const add = cniCalls.filter((c) => c.id === a && c.cmd === 'ADD').map((c) => c.type);
    expect(add.slice(-2)).toEqual(['bridge', 'portmap']);
    const pm = cniCalls.find((c) => c.id === a && c.type === 'portmap' && c.cmd === 'ADD')!.conf;
    expect(pm).toMatchObject({ capabilities: { portMappings: true }, snat: false, conditionsV4: ['!', '-d', '127.0.0.0/8', '!', '-i', expect.stringMatching(/^br-[0-9a-f]{12}$/)] });
    const mappings = [
      { hostPort: hp('53/udp'), containerPort: 53, protocol: 'udp' },
      { hostPort: hp('80/tcp'), containerPort: 80, protocol: 'tcp' },
    ];
    expect((pm.runtimeConfig as { portMappings: unknown }).portMappings).toEqual(mappings);
    expect(ports['80/tcp']![1]).toEqual({ HostIp: '127.0.0.1', HostPort: String(hp('80/tcp', 1)) });

    // the same host port wanted by another: refused before its CNI ADD runs (nothing to undo)
    const b = await te.createContainer({ name: 'pn', Config: { Cmd: ['/bin/true'] }, HostConfig: { NetworkMode: 'pubnet', PortBindings: { '80/tcp': [{ HostPort: String(hp('80/tcp')) }] } } });
    const err = await te.engine.containers.start(b).catch((e: unknown) => e as Error);
    expect((err as Error).message).toMatch(new RegExp(`driver failed programming external connectivity on endpoint pn \\([0-9a-f]{64}\\): Bind for 0\\.0\\.0\\.0:${hp('80/tcp')} failed: port is already allocated$`));
    expect(cniCalls.filter((c) => c.id === b && c.cmd === 'ADD' && c.type !== 'loopback')).toEqual([]);

    // stop: portmap's DEL has the mappings (its rules are found by them), from the result cache
    await stop(te, a);
    const del = cniCalls.find((c) => c.id === a && c.type === 'portmap' && c.cmd === 'DEL')!.conf;
    expect((del.runtimeConfig as { portMappings: unknown }).portMappings).toEqual(mappings);
  });

  it('without portmap or iptables: no portmap in the ADD, the proxy still serves the port', async () => {
    const { te } = await setup({ dnat: async () => false });
    const port = await containerServer();
    const a = await start(te, 'pd', { ports: { [`${port}/tcp`]: [{ HostPort: '' }] } });
    expect(cniCalls.filter((c) => c.id === a && c.type === 'portmap')).toEqual([]);
    const hostPort = Number(te.engine.containers.inspect(a).NetworkSettings.Ports[`${port}/tcp`]![0].HostPort);
    expect(await read(hostPort)).toBe('from-container\n');
    await stop(te, a);
  });

  it("answers the network's running names and aliases on its gateway, names it in resolv.conf, closes with the last container", async () => {
    const { te, info, netId } = await setup();
    const srv = await start(te, 'srv', { aliases: ['web'] });
    const cli = await start(te, 'cli');
    const dns = publishingOf(info())!.dns.get(netId);
    expect(dns?.address).toBe('127.77.0.1');
    const ask = async (name: string) => {
      const sock = createSocket('udp4');
      cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
      const reply = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
      sock.send(packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name }] }), dns!.server.port, '127.77.0.1');
      return packet.decode(await reply).answers?.map((x) => (x as { data?: unknown }).data);
    };
    expect(await ask('web')).toEqual(['127.77.0.2']);
    expect(await ask('cli')).toEqual(['127.77.0.3']);
    expect(await readFile(te.engine.containers.inspect(cli).ResolvConfPath, 'utf8')).toBe('nameserver 127.77.0.1\nsearch example.test\noptions ndots:0\n\n# ExtServers: [8.8.8.8 8.8.4.4]\n# Option ndots from: internal\n');

    await stop(te, srv);
    // a stopped container's names are gone at once; the server stays for cli
    expect((await ask('web')) ?? []).toEqual([]);
    await stop(te, cli);
    expect(publishingOf(info())!.dns.size).toBe(0);
  });
});
