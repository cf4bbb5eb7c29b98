/**
 * The userland proxy (proxy.ts) over loopback only: TCP and UDP relayed to a target, a port
 * another container holds ("port is already allocated"), a port another process holds
 * ("address already in use"), a publish that fails halfway closing what it opened, no relay
 * before the target has an address, ephemeral ports skipping taken ones, release closing
 * listeners and live connections.
 */
import { createSocket } from 'node:dgram';
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { PortProxy } from '../src/proxy.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TCP echo server on 127.0.0.1 (the "container"). */
async function echoServer(): Promise<number> {
  const s = createServer((c) => c.pipe(c));
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return (s.address() as AddressInfo).port;
}

/** A free port the kernel gives now (closed again). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A port p with p+1 free too (both closed again). */
async function twoFreePorts(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p >= 65535) continue;
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen({ host: '127.0.0.1', port: p + 1 }, () => r(true));
    });
    if (ok) {
      await new Promise<void>((r) => s.close(() => r()));
      return p;
    }
  }
}

async function holdPort(port: number): Promise<Server> {
  const s = createServer();
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port }, () => r()));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

function newProxy(range: [number, number] = [1, 1]): PortProxy {
  const p = new PortProxy({ range: async () => range });
  cleanups.push(() => p.closeAll());
  return p;
}

async function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ host: '127.0.0.1', port }, () => c.end(text));
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    c.on('end', () => resolve(got));
    c.on('error', reject);
  });
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('PortProxy', () => {
  it('relays TCP from the host port to the target and stops listening on release', async () => {
    const target = await echoServer();
    const port = await freePort();
    const p = newProxy();
    const bound = await p.publish('c1', [{ containerPort: target, proto: 'tcp', hostIp: '127.0.0.1', hostPorts: [port, port] }], () => '127.0.0.1');
    expect(bound).toEqual([{ containerPort: target, proto: 'tcp', hostIp: '127.0.0.1', hostPort: port }]);
    expect(await roundTrip(port, 'hello')).toBe('hello');
    await p.release('c1');
    expect(p.listeners()).toEqual([]);
    const err = await caught(roundTrip(port, 'x'));
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('relays nowhere until the target has an address (a reserved port of a container not attached yet)', async () => {
    const target = await echoServer();
    const port = await freePort();
    const p = newProxy();
    let address = '';
    await p.publish('c1', [{ containerPort: target, proto: 'tcp', hostIp: '127.0.0.1', hostPorts: [port, port] }], () => address);
    // not to the host's own localhost:containerPort (an empty host would be): the client is dropped
    expect(await roundTrip(port, 'early').catch(() => '')).toBe('');
    address = '127.0.0.1';
    expect(await roundTrip(port, 'hello')).toBe('hello');
  });

  it('relays UDP datagrams both ways', async () => {
    const echo = createSocket('udp4');
    echo.on('message', (m, from) => echo.send(m, from.port, from.address));
    await new Promise<void>((r) => echo.bind({ address: '127.0.0.1', port: 0 }, () => r()));
    cleanups.push(() => new Promise<void>((r) => echo.close(() => r())));
    const port = await freePort();
    const p = newProxy();
    await p.publish('c1', [{ containerPort: echo.address().port, proto: 'udp', hostIp: '127.0.0.1', hostPorts: [port, port] }], () => '127.0.0.1');
    const client = createSocket('udp4');
    cleanups.push(() => new Promise<void>((r) => client.close(() => r())));
    const reply = new Promise<string>((r) => client.once('message', (m) => r(m.toString())));
    client.send('ping', port, '127.0.0.1');
    expect(await reply).toBe('ping');
  });

  it("refuses a port another container holds with dockerd's words, also against 0.0.0.0", async () => {
    const port = await freePort();
    const p = newProxy();
    await p.publish('c1', [{ containerPort: 80, proto: 'tcp', hostIp: '127.0.0.1', hostPorts: [port, port] }], () => '127.0.0.1');
    const err = await caught(p.publish('c2', [{ containerPort: 80, proto: 'tcp', hostIp: '', hostPorts: [port, port] }], () => '127.0.0.1'));
    expect(err.message).toBe(`Bind for 0.0.0.0:${port} failed: port is already allocated`);
    expect(errorKind(err)).toBe('System');
    // the other protocol is another port
    await p.publish('c2', [{ containerPort: 80, proto: 'udp', hostIp: '127.0.0.1', hostPorts: [port, port] }], () => '127.0.0.1');
  });

  it('reports a port another process holds as address already in use and closes what the publish had opened', async () => {
    const free = await freePort();
    const taken = await freePort();
    await holdPort(taken);
    const p = newProxy();
    const err = await caught(
      p.publish(
        'c1',
        [
          { containerPort: 80, proto: 'tcp', hostIp: '127.0.0.1', hostPorts: [free, free] },
          { containerPort: 81, proto: 'tcp', hostIp: '127.0.0.1', hostPorts: [taken, taken] },
        ],
        () => '127.0.0.1',
      ),
    );
    expect(err.message).toBe(`Error starting userland proxy: listen tcp4 127.0.0.1:${taken}: bind: address already in use`);
    expect(p.listeners()).toEqual([]);
    // the first port was closed again: it can be bound
    await holdPort(free);
  });

  it('gives an ephemeral port from the range, skipping a port in use, and says so when none is left', async () => {
    const a = await twoFreePorts();
    await holdPort(a);
    const p = newProxy([a, a + 1]);
    const [first] = await p.publish('c1', [{ containerPort: 80, proto: 'tcp', hostIp: '127.0.0.1', hostPorts: null }], () => '127.0.0.1');
    expect(first.hostPort).toBe(a + 1);
    const err = await caught(p.publish('c2', [{ containerPort: 80, proto: 'tcp', hostIp: '127.0.0.1', hostPorts: null }], () => '127.0.0.1'));
    expect(err.message).toBe('all ports are allocated');
    expect(p.listeners()).toHaveLength(1);
  });
});
