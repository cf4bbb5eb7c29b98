/**
 * DnsServer on port 0 (the kernel picks the UDP port, TCP takes the same number): when another
 * TCP socket holds that number, both are bound again with another pick instead of failing
 * (seen as an EADDRINUSE flake of dns.test.ts on a busy machine). A fixed port still fails.
 */
import type * as Dgram from 'node:dgram';
import { createConnection, createServer, type Server } from 'node:net';
import * as packet from 'dns-packet';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DnsServer } from '../src/dns.js';

// The first UDP bind's port is taken over TCP by someone else before the server's TCP listen.
const taken = vi.hoisted(() => ({ armed: false, port: 0, holders: [] as Server[] }));
vi.mock('node:dgram', async (importOriginal) => {
  const real = await importOriginal<typeof Dgram>();
  const createSocket = ((...args: Parameters<typeof real.createSocket>) => {
    const sock = real.createSocket(...args);
    const bind = sock.bind.bind(sock) as (...a: unknown[]) => Dgram.Socket;
    (sock as unknown as { bind: (...a: unknown[]) => Dgram.Socket }).bind = (...a: unknown[]) => {
      const done = a.find((x) => typeof x === 'function') as (() => void) | undefined;
      const rest = a.filter((x) => typeof x !== 'function');
      return bind(...rest, () => {
        if (!taken.armed) return done?.();
        taken.armed = false;
        taken.port = sock.address().port;
        const holder = createServer();
        taken.holders.push(holder);
        holder.listen({ host: '127.0.0.1', port: taken.port }, () => done?.());
      });
    };
    return sock;
  }) as typeof real.createSocket;
  return { ...real, createSocket, default: { ...real, createSocket } };
});

const servers: DnsServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const h of taken.holders.splice(0)) await new Promise<void>((r) => h.close(() => r()));
});

const serverOn = (port: number) => new DnsServer({ address: '127.0.0.1', port, lookup: (n) => (n === 'web' ? ['10.89.0.2'] : undefined), upstreams: async () => [] });

describe('DnsServer on port 0', () => {
  it('binds UDP and TCP again when the TCP side of the picked port is taken, and answers over TCP', async () => {
    taken.armed = true;
    const s = serverOn(0);
    servers.push(s);
    await s.start();
    expect(taken.port).toBeGreaterThan(0);
    expect(s.port).toBeGreaterThan(0);
    expect(s.port).not.toBe(taken.port);
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const c = createConnection({ host: '127.0.0.1', port: s.port }, () => c.write(packet.streamEncode({ type: 'query', id: 3, questions: [{ type: 'A', name: 'web' }] })));
      let buf = Buffer.alloc(0);
      c.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          c.destroy();
          resolve(buf);
        }
      });
      c.on('error', reject);
    });
    expect((packet.streamDecode(reply) as packet.DecodedPacket).answers?.map((a) => (a as { data?: unknown }).data)).toEqual(['10.89.0.2']);
  });

  it('a fixed port whose TCP side is taken fails with EADDRINUSE (no other port is tried)', async () => {
    const holder = createServer();
    taken.holders.push(holder);
    await new Promise<void>((r) => holder.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const port = (holder.address() as { port: number }).port;
    const s = serverOn(port);
    await expect(s.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
