/**
 * The user-network DNS server (dns.ts) on loopback with a high port: A answers for the
 * network's names (case-insensitive, trailing dot), an empty answer for AAAA of such a name,
 * other names relayed unchanged to the upstream (a fake one on loopback), SERVFAIL when no
 * upstream answers, DNS over TCP; the lookup gets the asker's source address; the host's
 * resolvers read from its resolv.conf (a container's resolv.conf on user networks: resolv.test.ts).
 */
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { DnsServer, hostResolvers, type Upstream } from '../src/dns.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** dns-packet decodes the rcode and answer data; its types leave them out. */
const rcode = (r: packet.DecodedPacket) => (r as unknown as { rcode: string }).rcode;
const dataOf = (a: packet.Answer) => (a as { data?: unknown }).data;

const names: Record<string, string[]> = { web: ['10.89.0.2'], db: ['10.89.0.3', '10.89.0.4'] };
/** The askers' addresses the lookup was given, and those the upstreams were asked for. */
const askers: string[] = [];
const relayedFor: string[] = [];

async function server(upstreams: Upstream[] = []): Promise<DnsServer> {
  const lookup = (n: string, from: string) => {
    askers.push(from);
    return names[n];
  };
  const s = new DnsServer({ address: '127.0.0.1', port: 0, lookup, upstreams: async (from) => (relayedFor.push(from), upstreams), timeoutMs: 300 });
  await s.start();
  cleanups.push(() => s.close());
  return s;
}

async function udpQuery(port: number, name: string, type: packet.RecordType = 'A', from?: string): Promise<packet.DecodedPacket> {
  const sock = createSocket('udp4');
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  if (from) await new Promise<void>((r) => sock.bind({ address: from, port: 0 }, () => r()));
  const reply = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
  sock.send(packet.encode({ type: 'query', id: 4242, flags: packet.RECURSION_DESIRED, questions: [{ type, name }] }), port, '127.0.0.1');
  return packet.decode(await reply);
}

/** A query over TCP (length-prefixed) to the server on 127.0.0.1:`port`; the decoded reply. */
async function tcpQuery(port: number, name: string, id = 7): Promise<packet.DecodedPacket> {
  const msg = packet.streamEncode({ type: 'query', id, questions: [{ type: 'A', name }] });
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const c = createConnection({ host: '127.0.0.1', port }, () => c.write(msg));
    cleanups.push(() => void c.destroy());
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) resolve(buf);
    });
    c.on('error', reject);
  });
  return packet.streamDecode(reply) as packet.DecodedPacket;
}

describe('DnsServer', () => {
  it('a server closed while a question is being relayed ends that question quietly: no throw, no unhandled rejection (it ended berthd)', async () => {
    // an upstream that never answers: the relay waits its whole timeout
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind({ address: '127.0.0.1', port: 0 }, () => r()));
    cleanups.push(() => new Promise<void>((r) => silent.close(() => r())));
    const heard = new Promise<void>((r) => silent.once('message', () => r()));
    const rejections: unknown[] = [];
    const onRejection = (e: unknown) => void rejections.push(e);
    process.on('unhandledRejection', onRejection);
    cleanups.push(() => void process.off('unhandledRejection', onRejection));
    const s = new DnsServer({ address: '127.0.0.1', port: 0, lookup: () => undefined, upstreams: async () => [{ host: '127.0.0.1', port: silent.address().port }], timeoutMs: 200 });
    await s.start();
    const sock = createSocket('udp4');
    cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
    sock.send(packet.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'nowhere.invalid' }] }), s.port, '127.0.0.1');
    await heard; // the question is with the upstream now
    await s.close();
    await new Promise((r) => setTimeout(r, 400)); // past the relay's timeout: the SERVFAIL has nowhere to go
    expect(rejections).toEqual([]);
  });

  it("answers A for the network's names, case-insensitive, with every address", async () => {
    const s = await server();
    const r = await udpQuery(s.port, 'DB.');
    expect(r.id).toBe(4242);
    expect(rcode(r)).toBe('NOERROR');
    expect(r.flag_aa).toBe(true);
    expect(r.answers?.map(dataOf)).toEqual(['10.89.0.3', '10.89.0.4']);
  });

  it("gives the lookup the asker's source address (UDP and TCP)", async () => {
    const s = await server();
    askers.length = 0;
    await udpQuery(s.port, 'web', 'A', '127.0.0.9');
    const c = createConnection({ host: '127.0.0.1', port: s.port, localAddress: '127.0.0.10' }, () => c.write(packet.streamEncode({ type: 'query', id: 8, questions: [{ type: 'A', name: 'web' }] })));
    cleanups.push(() => void c.destroy());
    await new Promise((r) => c.once('data', r));
    expect(askers).toEqual(['127.0.0.9', '127.0.0.10']);
  });

  it('answers AAAA for a known name with no records (no IPv6 on berth networks)', async () => {
    const s = await server();
    const r = await udpQuery(s.port, 'web', 'AAAA');
    expect(rcode(r)).toBe('NOERROR');
    expect(r.answers).toEqual([]);
  });

  it("relays other names unchanged to the asker's upstream and returns its reply", async () => {
    const up = createSocket('udp4');
    const seen: string[] = [];
    up.on('message', (m, from) => {
      const q = packet.decode(m);
      seen.push(q.questions![0].name);
      up.send(packet.encode({ type: 'response', id: q.id, flags: packet.RECURSION_AVAILABLE | 3, questions: q.questions }), from.port, from.address);
    });
    await new Promise<void>((r) => up.bind({ address: '127.0.0.1', port: 0 }, () => r()));
    cleanups.push(() => new Promise<void>((r) => up.close(() => r())));
    const s = await server([{ host: '127.0.0.1', port: up.address().port }]);
    relayedFor.length = 0;
    const r = await udpQuery(s.port, 'elsewhere.test', 'A', '127.0.0.12');
    expect(relayedFor).toEqual(['127.0.0.12']);
    expect(seen).toEqual(['elsewhere.test']);
    expect(rcode(r)).toBe('NXDOMAIN');
    expect(r.id).toBe(4242);
  });

  it('answers SERVFAIL when no upstream answers', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind({ address: '127.0.0.1', port: 0 }, () => r()));
    cleanups.push(() => new Promise<void>((r) => silent.close(() => r())));
    const s = await server([{ host: '127.0.0.1', port: silent.address().port }]);
    const r = await udpQuery(s.port, 'nowhere.test');
    expect(rcode(r)).toBe('SERVFAIL');
  });

  it('answers over TCP (length-prefixed)', async () => {
    const s = await server();
    const r = await tcpQuery(s.port, 'web');
    expect(r.id).toBe(7);
    expect(r.answers?.map(dataOf)).toEqual(['10.89.0.2']);
  });

  it('relays over the protocol asked by: a truncated UDP reply as it is, the TCP retry over TCP', async () => {
    // an upstream whose UDP replies are truncated (TC, no answers) and whose TCP replies are whole
    const full = Array.from({ length: 40 }, (_, i) => `192.0.2.${i + 1}`);
    const reply = (q: packet.DecodedPacket, tcp: boolean) =>
      packet.encode({ type: 'response', id: q.id, flags: packet.RECURSION_AVAILABLE | (tcp ? 0 : packet.TRUNCATED_RESPONSE), questions: q.questions, answers: tcp ? full.map((data) => ({ type: 'A' as const, name: q.questions![0].name, data })) : [] });
    const up = createSocket('udp4');
    up.on('message', (m, from) => up.send(reply(packet.decode(m), false), from.port, from.address));
    await new Promise<void>((r) => up.bind({ address: '127.0.0.1', port: 0 }, () => r()));
    cleanups.push(() => new Promise<void>((r) => up.close(() => r())));
    const upTcp = createServer((c) =>
      c.on('data', (d) => {
        const body = reply(packet.streamDecode(d) as packet.DecodedPacket, true);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(body.length);
        c.end(Buffer.concat([len, body]));
      }),
    );
    await new Promise<void>((r) => upTcp.listen({ host: '127.0.0.1', port: up.address().port }, () => r()));
    cleanups.push(() => new Promise<void>((r) => upTcp.close(() => r())));
    const s = await server([{ host: '127.0.0.1', port: up.address().port }]);

    const overUdp = await udpQuery(s.port, 'big.test');
    expect(overUdp.flag_tc).toBe(true);
    expect(overUdp.answers).toEqual([]);
    const overTcp = await tcpQuery(s.port, 'big.test', 9);
    expect(overTcp.id).toBe(9);
    expect(overTcp.flag_tc).toBe(false);
    expect(overTcp.answers?.map(dataOf)).toEqual(full);
  });
});

describe('resolv.conf', () => {
  it("reads the host's nameservers", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'n2-dns-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'resolv.conf'), '# x\nnameserver 127.0.0.53\nsearch example.test\n nameserver 192.0.2.1\n');
    expect(await hostResolvers(join(dir, 'resolv.conf'))).toEqual([
      { host: '127.0.0.53', port: 53 },
      { host: '192.0.2.1', port: 53 },
    ]);
  });
});
