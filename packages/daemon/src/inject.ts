/**
 * Drive an app without berthd: `inject(app, req)` serves it on a private temp unix
 * socket for the one request (fastify's inject, over real Node http so that hijacked
 * routes behave as in production). `openInjector(app)` keeps one socket for many requests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { App } from './app.js';

export interface InjectRequest {
  method?: string;
  url: string;
  headers?: Record<string, string>;
  /** Object → JSON with Content-Type application/json unless headers say otherwise. */
  body?: string | Buffer | object;
}

export interface InjectResponse {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json<T = any>(): T;
}

export interface Injector {
  readonly socketPath: string;
  request(req: InjectRequest): Promise<InjectResponse>;
  /** Send an upgrade request (Upgrade: tcp) and get the hijacked socket after the 101. */
  upgrade(req: InjectRequest): Promise<{ statusCode: number; headers: http.IncomingHttpHeaders; socket: Duplex; head: Buffer }>;
  close(): Promise<void>;
}

export function attachApp(server: http.Server, app: App): void {
  server.on('request', (req, res) => app.handleRequest(req, res));
  server.on('upgrade', (req, socket, head) => app.handleUpgrade(req, socket, head));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if ((socket as { _berthHijacked?: boolean })._berthHijacked) return;
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const [status, message] = clientErrorAnswer(err.code);
    const body = JSON.stringify({ message }) + '\n';
    // Closed once written: a client that never reads must not keep the descriptor.
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, () => socket.destroy());
  });
}

/** The answer to a request Node's parser refused (before any route saw it). */
export function clientErrorAnswer(code: string | undefined): [status: string, message: string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return ['431 Request Header Fields Too Large', 'request header fields too large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      return ['408 Request Timeout', 'timed out waiting for the request headers'];
    default:
      return ['400 Bad Request', 'malformed HTTP request'];
  }
}

function encode(req: InjectRequest): { headers: Record<string, string>; payload: Buffer | undefined } {
  const headers: Record<string, string> = { ...(req.headers ?? {}) };
  let payload: Buffer | undefined;
  if (req.body !== undefined) {
    if (typeof req.body === 'string') payload = Buffer.from(req.body);
    else if (Buffer.isBuffer(req.body)) payload = req.body;
    else {
      payload = Buffer.from(JSON.stringify(req.body));
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
    }
    headers['Content-Length'] = String(payload.length);
  }
  return { headers, payload };
}

export async function openInjector(app: App): Promise<Injector> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-inject-'));
  const socketPath = path.join(dir, 'api.sock');
  const server = http.createServer();
  attachApp(server, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  const agent = new http.Agent({ keepAlive: false });
  return {
    socketPath,
    request(req) {
      const { headers, payload } = encode(req);
      return new Promise((resolve, reject) => {
        const r = http.request({ socketPath, agent, method: req.method ?? 'GET', path: req.url, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            const text = body.toString('utf8');
            resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text) });
          });
        });
        r.on('error', reject);
        r.end(payload);
      });
    },
    upgrade(req) {
      const { headers, payload } = encode(req);
      return new Promise((resolve, reject) => {
        const r = http.request({
          socketPath,
          agent,
          method: req.method ?? 'POST',
          path: req.url,
          headers: { ...headers, Connection: 'Upgrade', Upgrade: 'tcp' },
        });
        r.on('upgrade', (res, socket, head) => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, socket, head }));
        r.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(Object.assign(new Error(`no upgrade: ${res.statusCode} ${Buffer.concat(chunks).toString()}`), { statusCode: res.statusCode })));
        });
        r.on('error', reject);
        r.end(payload);
      });
    },
    async close() {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function inject(app: App, req: InjectRequest): Promise<InjectResponse> {
  const inj = await openInjector(app);
  try {
    return await inj.request(req);
  } finally {
    await inj.close();
  }
}
