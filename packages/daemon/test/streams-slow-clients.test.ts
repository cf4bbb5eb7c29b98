/**
 * Issue 10 item 9: slow and idle clients cannot starve the API (connections.ts). A few
 * hundred clients trickling their headers do not keep /_ping from answering and the server's
 * connections stay at the cap; slow headers get a 408 and are closed; keep-alive connections
 * idle past the idle timeout are closed, but hijacked sessions and streams (events) are not;
 * oversized headers get a 431. Over a real unix socket with ApiServer, no root.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiServer, apiRoutes, buildApp, type ConnectionLimits, type ExecPort } from '../src/index.js';
import { execInspect, fakePort, record } from './helpers/fake-port.js';

const CID = 'c'.repeat(64);

interface Served {
  server: ApiServer;
  socket: string;
  port: ReturnType<typeof fakePort>;
}

let dir: string | undefined;
let served: Served | undefined;
const clients: net.Socket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  if (served) {
    await served.server.shutdown();
    served.server.release();
  }
  served = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function serve(limits: Partial<ConnectionLimits>): Promise<Served> {
  dir = mkdtempSync(path.join(os.tmpdir(), 'berth-slow-'));
  const socket = path.join(dir, 'api.sock');
  const port = fakePort([record(CID, 'box', 'running')]);
  // An exec that runs until the client goes away: a hijacked session with no traffic.
  const exec: ExecPort = {
    create: async () => ({ id: 'e'.repeat(64) }),
    start: (_id, _o, _io, signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve())),
    resize: async () => {},
    inspect: async (id) => execInspect(id, CID, { Cmd: ['sh'], Tty: true, AttachStdout: true }),
  };
  const app = buildApp({ routes: apiRoutes({ ...port, exec }) });
  const server = new ApiServer(app, { hosts: [`unix://${socket}`], dataRoot: path.join(dir, 'data'), execRoot: path.join(dir, 'exec'), pidfile: '', group: '', connections: limits });
  await server.start();
  served = { server, socket, port };
  return served;
}

function ping(socket: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: '/_ping', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A client that sends part of a request's headers and then nothing. */
function slowClient(socket: string): Promise<net.Socket> {
  return new Promise((resolve) => {
    const c = net.connect(socket, () => {
      c.write('GET /_ping HTTP/1.1\r\nHost: berth\r\nX-Slow: ');
      resolve(c);
    });
    c.on('error', () => {});
    clients.push(c);
  });
}

/** Resolves once `cond` holds (the test's timeout bounds the wait). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
}

/** Everything the server sends until it closes the connection. */
function untilClosed(c: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString()));
    if (c.destroyed) resolve(got);
    c.on('close', () => resolve(got));
  });
}

describe('slow clients', () => {
  it('300 clients trickling headers: /_ping answers and the server holds at most the cap', async () => {
    const { socket, server } = await serve({ maxConnections: 64, headerTimeoutMs: 60_000 });
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: 100 }, () => slowClient(socket)));
      expect(await ping(socket)).toBe(200);
      expect(server.connections[0].size).toBeLessThanOrEqual(64);
    }
    expect(server.connections[0].shed).toBeGreaterThan(0);
    expect(server.connections[0].refused).toBe(0);
  });

  it('a client that does not finish its headers in time gets a 408 and is closed', async () => {
    const { socket, server } = await serve({ headerTimeoutMs: 300 });
    const slow = await Promise.all(Array.from({ length: 20 }, () => slowClient(socket)));
    const answers = await Promise.all(slow.map(untilClosed));
    for (const a of answers) expect(a).toMatch(/^HTTP\/1\.1 408 /);
    await until(() => server.connections[0].size === 0);
    expect(await ping(socket)).toBe(200);
  });

  it('oversized headers get a 431', async () => {
    const { socket } = await serve({});
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ socketPath: socket, path: '/_ping', agent: false, headers: { 'X-Big': 'x'.repeat(64 * 1024) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(431);
  });

  it('the idle timeout closes idle keep-alive connections, never hijacked sessions or streams', async () => {
    const { socket, server, port } = await serve({ idleTimeoutMs: 200 });
    // keep-alive: one request, then nothing
    const idle = net.connect(socket);
    clients.push(idle);
    const idleClosed = untilClosed(idle);
    idle.write('GET /_ping HTTP/1.1\r\nHost: berth\r\n\r\n');
    // events: a stream with no event for a while
    const events = net.connect(socket);
    clients.push(events);
    let eventsData = '';
    let eventsClosed = false;
    events.on('data', (d: Buffer) => (eventsData += d.toString()));
    events.on('close', () => (eventsClosed = true));
    events.write('GET /events HTTP/1.1\r\nHost: berth\r\n\r\n');
    // exec start over Upgrade: tcp, a session with no traffic
    const hij = net.connect(socket);
    clients.push(hij);
    let hijData = '';
    let hijClosed = false;
    hij.on('data', (d: Buffer) => (hijData += d.toString()));
    hij.on('close', () => (hijClosed = true));
    hij.write(`POST /exec/${'e'.repeat(64)}/start HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);

    expect(await idleClosed).toMatch(/^HTTP\/1\.1 200 /);
    // Several idle timeouts later the stream and the session are still there and still work.
    await new Promise((r) => setTimeout(r, 1000));
    expect(eventsClosed).toBe(false);
    expect(hijClosed).toBe(false);
    expect(hijData).toMatch(/^HTTP\/1\.1 101 /);
    port.emit({ Type: 'container', Action: 'start', Actor: { ID: CID, Attributes: {} }, scope: 'local', time: 1, timeNano: BigInt(Date.now()) * 1_000_000n });
    await until(() => eventsData.includes('"Action":"start"'));
    expect(server.connections[0].size).toBe(2);
  });
});
