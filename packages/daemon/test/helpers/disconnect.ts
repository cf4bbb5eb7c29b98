/**
 * A client that goes away at random points (issue 10 item 1): for each of `iterations`
 * requests it picks a streaming endpoint and a point with a seeded generator, sends the
 * request (raw bytes over the unix socket), and destroys its socket there — mid-headers,
 * mid-body, right after the response head, after some of the body, or after a delay. Used by
 * streams-disconnect.test.ts (FakeRuntime) and test/e2e/daemon-disconnect.e2e.test.ts (berthd).
 */
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';

export interface DisconnectEndpoint {
  name: string;
  /** The request's bytes: the head (with the final blank line) and an optional body. */
  request(): Promise<{ head: string; body?: Buffer }>;
  /** Bytes a hijacked session's client types after the head (stdin, detach keys, more). */
  typing?: Buffer[];
}

export type DisconnectPoint = 'mid-request' | 'after-request' | 'after-head' | 'mid-response' | 'after-delay';
const POINTS: DisconnectPoint[] = ['mid-request', 'after-request', 'after-head', 'mid-response', 'after-delay'];

/** mulberry32: a small seeded generator, so that a failing run can be replayed by its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DisconnectRun {
  endpoint: string;
  point: DisconnectPoint;
  /** Response bytes the client had when it went away. */
  received: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One request, abandoned at `point`; resolves once the client socket is destroyed. */
async function once(socketPath: string, ep: DisconnectEndpoint, point: DisconnectPoint, rnd: () => number): Promise<DisconnectRun> {
  const { head, body } = await ep.request();
  const bytes = Buffer.concat([Buffer.from(head), body ?? Buffer.alloc(0)]);
  const sock = net.connect(socketPath);
  sock.on('error', () => {});
  let received = 0;
  let gotHead: () => void = () => {};
  const headSeen = new Promise<void>((r) => (gotHead = r));
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  let want = Infinity;
  let reached: () => void = () => {};
  const enough = new Promise<void>((r) => (reached = r));
  sock.on('data', (d: Buffer) => {
    received += d.length;
    gotHead();
    if (received >= want) reached();
  });
  await new Promise<void>((resolve) => {
    sock.once('connect', () => resolve());
    sock.once('close', () => resolve());
  });
  const gone = Promise.race([closed, sleep(400)]);
  if (point === 'mid-request') {
    sock.write(bytes.subarray(0, 1 + Math.floor(rnd() * (bytes.length - 1))));
    await sleep(rnd() * 20);
  } else {
    sock.write(bytes);
    for (const t of ep.typing ?? []) {
      await sleep(rnd() * 10);
      if (!sock.destroyed) sock.write(t);
    }
    if (point === 'after-head') await Promise.race([headSeen, gone]);
    else if (point === 'mid-response') {
      want = 1 + Math.floor(rnd() * 256 * 1024);
      if (received >= want) reached();
      await Promise.race([enough, gone]);
    } else if (point === 'after-delay') await sleep(rnd() * 300);
  }
  sock.destroy();
  await closed;
  if (process.env.BERTH_DISCONNECT_DEBUG) console.log(ep.name, point, received);
  return { endpoint: ep.name, point, received };
}

/** `iterations` abandoned requests over the endpoints, `parallel` at a time. */
export async function disconnectLoop(opts: { socketPath: string; endpoints: DisconnectEndpoint[]; iterations: number; seed: number; parallel?: number }): Promise<DisconnectRun[]> {
  const rnd = seeded(opts.seed);
  const plan = Array.from({ length: opts.iterations }, (_, i) => ({
    // every endpoint in turn, so that each gets iterations / endpoints rounds; the point is random
    ep: opts.endpoints[i % opts.endpoints.length],
    point: POINTS[Math.floor(rnd() * POINTS.length)],
    rnd: seeded(Math.floor(rnd() * 2 ** 32)),
  }));
  const runs: DisconnectRun[] = [];
  const parallel = opts.parallel ?? 4;
  for (let i = 0; i < plan.length; i += parallel) {
    runs.push(...(await Promise.all(plan.slice(i, i + parallel).map((p) => once(opts.socketPath, p.ep, p.point, p.rnd)))));
  }
  return runs;
}

/** A raw HTTP/1.1 request head. */
export function httpHead(method: string, path: string, headers: Record<string, string | number> = {}): string {
  return `${method} ${path} HTTP/1.1\r\nHost: berth\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

/** An upgrade (hijack) request with a JSON body. */
export function upgradeHead(path: string, json = ''): { head: string; body: Buffer } {
  const body = Buffer.from(json);
  return { head: httpHead('POST', path, { Connection: 'Upgrade', Upgrade: 'tcp', 'Content-Type': 'application/json', 'Content-Length': body.length }), body };
}

/** Polls `read` until `ok` holds for it or `withinMs` passed; returns the last value (for the test to assert on). */
export async function settles<T>(read: () => T | Promise<T>, ok: (v: T) => boolean, withinMs = 30_000): Promise<T> {
  const end = Date.now() + withinMs;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > end) return v;
    await sleep(100);
  }
}

/** A tar archive of `files` (name → content), for archive PUT bodies. */
export async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const { default: tar } = await import('tar-stream');
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, size: content.length, mode: 0o644 }, content);
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Open file descriptors of a process (Linux). */
export function openFds(pid: number | 'self' = 'self'): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '(closed)';
    }
  });
}

/**
 * The container's streaming endpoints: attach (stdin, the detach keys, input after them), exec
 * start (`createExec` makes a fresh exec each time), logs -f, events, stats, archive GET/PUT
 * (`tar` is the PUT body) and export.
 */
export function containerEndpoints(id: string, createExec: () => Promise<string>, tar: Buffer): DisconnectEndpoint[] {
  return [
    {
      name: 'attach',
      request: async () => upgradeHead(`/v1.44/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x`),
      typing: [Buffer.from('echo hi\n'), Buffer.from('\x18'), Buffer.from('typed after the detach\n')],
    },
    {
      name: 'exec start',
      request: async () => upgradeHead(`/v1.44/exec/${await createExec()}/start`, '{"Detach":false,"Tty":false}'),
      typing: [Buffer.from('input\n')],
    },
    { name: 'logs -f', request: async () => ({ head: httpHead('GET', `/v1.44/containers/${id}/logs?follow=1&stdout=1&stderr=1`) }) },
    { name: 'events', request: async () => ({ head: httpHead('GET', '/v1.44/events') }) },
    { name: 'stats', request: async () => ({ head: httpHead('GET', `/v1.44/containers/${id}/stats`) }) },
    { name: 'archive GET', request: async () => ({ head: httpHead('GET', `/v1.44/containers/${id}/archive?path=/`) }) },
    {
      name: 'archive PUT',
      request: async () => ({ head: httpHead('PUT', `/v1.44/containers/${id}/archive?path=/tmp`, { 'Content-Type': 'application/x-tar', 'Content-Length': tar.length }), body: tar }),
    },
    { name: 'export', request: async () => ({ head: httpHead('GET', `/v1.44/containers/${id}/export`) }) },
  ];
}

/** The image endpoints that stream: save, load (`image` is a docker-save tarball), and pull/push of `remote` (a registry reference) when given. */
export function imageEndpoints(name: string, image: Buffer, remote: string | null): DisconnectEndpoint[] {
  const eps: DisconnectEndpoint[] = [
    { name: 'images save', request: async () => ({ head: httpHead('GET', `/v1.44/images/get?names=${encodeURIComponent(name)}`) }) },
    {
      name: 'images load',
      request: async () => ({ head: httpHead('POST', '/v1.44/images/load?quiet=1', { 'Content-Type': 'application/x-tar', 'Content-Length': image.length }), body: image }),
    },
  ];
  if (remote) {
    const auth = Buffer.from('{}').toString('base64');
    eps.push(
      { name: 'images pull', request: async () => ({ head: httpHead('POST', `/v1.44/images/create?fromImage=${encodeURIComponent(remote)}&tag=latest`, { 'X-Registry-Auth': auth, 'Content-Length': 0 }) }) },
      { name: 'images push', request: async () => ({ head: httpHead('POST', `/v1.44/images/${remote}/push?tag=latest`, { 'X-Registry-Auth': auth, 'Content-Length': 0 }) }) },
    );
  }
  return eps;
}
