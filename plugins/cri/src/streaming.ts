/**
 * The CRI streaming server (Exec, Attach): the RPC answers a URL on this HTTP server, holding a
 * one-use token (valid a minute, as containerd's); kubelet (or kubectl through the API server)
 * opens it as a WebSocket with one of the subprotocols `v5.channel.k8s.io`, `v4.channel.k8s.io`,
 * `channel.k8s.io`. Every binary message is one channel byte then data: 0 stdin (client →
 * server), 1 stdout, 2 stderr, 3 the error/status channel, 4 terminal resize (client → server,
 * JSON {"Width","Height"}); v5 adds 255 = close a channel (255 0: stdin is over). At the end the
 * server writes channel 3 — v4/v5: a Status object (`Success`, or `Failure` with reason
 * `NonZeroExitCode` and the exit code as a cause), channel.k8s.io: only an error's text — and
 * closes. PortForward URLs (`/portforward/<token>`) are served by portforward.ts. An upgrade to
 * `SPDY/3.1` (what kubelet's proxy and the API server send) is served by spdy.ts with the same
 * sessions. Listens on loopback by default
 * (config `streamingAddress`, host:port; port 0 = any free one), as containerd does.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { PassThrough, Writable } from 'node:stream';
import { WebSocketServer } from 'ws';
import { errorMessage, type Engine, type Logger } from '@berth/core';
import { PORT_FORWARD_PROTOCOLS, portsOfQuery, relayDialer, servePortForward, validPorts, type PortDialer } from './portforward.js';
import type { TlsMaterial } from './streaming-tls.js';
import { isSpdyUpgrade, serveSpdy, SPDY_PORT_FORWARD_PROTOCOLS, SPDY_STREAM_PROTOCOLS, upgradeSpdy, type ChannelSocket } from './spdy.js';

export const STREAM_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'channel.k8s.io'] as const;
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;
const TOKEN_TTL_MS = 60_000;

/** What one URL runs: an exec or attach, or a port forward. */
export type StreamRequest = ExecAttachRequest | PortForwardRequest;

export interface ExecAttachRequest {
  kind: 'exec' | 'attach';
  containerId: string;
  cmd?: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface PortForwardRequest {
  kind: 'portforward';
  podId: string;
  /** The pod's network namespace file (absent: the host's, a host-network pod). */
  netns?: string;
  /** The request's ports (empty: the URL's `port` query parameters). */
  ports: number[];
}

export interface StreamingServer {
  /** A one-use URL for `req`. */
  url(req: StreamRequest): string;
  close(): Promise<void>;
}

/** The v4/v5 status object of an ending stream (metav1.Status as kubelet writes it). */
export function statusOf(exitCode: number | undefined, error?: string): Record<string, unknown> {
  if (error !== undefined) return { metadata: {}, status: 'Failure', message: error, reason: 'InternalError' };
  if (!exitCode) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: exit status ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

export async function startStreamingServer(opts: { address: string; engine: () => Engine; logger: Logger; dialer?: PortDialer; tls?: TlsMaterial }): Promise<StreamingServer> {
  const pending = new Map<string, StreamRequest & { expires: number }>();
  const spdySockets = new Set<Duplex>();
  const protocolsOf = (url: string | undefined): readonly string[] => (url?.startsWith('/portforward/') ? PORT_FORWARD_PROTOCOLS : STREAM_PROTOCOLS);
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered, req) => protocolsOf(req.url).find((p) => offered.has(p)) ?? false });
  const plainRequest = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('berth serves CRI streams over WebSocket (v4.channel.k8s.io) or SPDY/3.1 upgrades only\n');
  };
  // With TLS (streaming-tls.ts) the same handlers on an HTTPS server: the URLs are https://.
  const server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, plainRequest) : createServer(plainRequest);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (code: number, text: string) => socket.end(`HTTP/1.1 ${code} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    const m = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)(\?.*)?$/.exec(req.url ?? '');
    const job = m ? pending.get(m[2]!) : undefined;
    if (!m || !job || job.kind !== m[1] || job.expires < Date.now()) return refuse(404, 'Not Found');
    if (isSpdyUpgrade(req)) {
      const spdy = upgradeSpdy(req, socket, head, job.kind === 'portforward' ? SPDY_PORT_FORWARD_PROTOCOLS : SPDY_STREAM_PROTOCOLS);
      if (!spdy) return;
      pending.delete(m[2]!); // one use
      spdySockets.add(socket);
      socket.once('close', () => spdySockets.delete(socket));
      const session = (sock: ChannelSocket) => run(job as ExecAttachRequest, sock);
      return void serveSpdy(spdy, job, { run: session, dialer: opts.dialer ?? relayDialer, logger: opts.logger });
    }
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    // exec/attach need a channel protocol; a port forward may offer none (kubelet then frames as v4).
    const noneOffered = job.kind === 'portforward' && offered.length === 0;
    if (!noneOffered && !protocolsOf(req.url).some((p) => offered.includes(p))) return refuse(400, 'Bad Request');
    const pf = job.kind === 'portforward' ? { ...job, ports: job.ports.length ? job.ports : portsOfQuery(req.url!) } : undefined;
    if (pf && !validPorts(pf.ports)) return refuse(400, 'Bad Request');
    pending.delete(m[2]!); // one use
    wss.handleUpgrade(req, socket, head, (ws) => {
      const served = pf ? servePortForward(ws, pf, opts.dialer ?? relayDialer) : run(job as ExecAttachRequest, ws);
      served.catch((err: unknown) => opts.logger.error('CRI stream failed', { kind: job.kind, error: errorMessage(err) }));
    });
  });

  const run = async (job: ExecAttachRequest, ws: ChannelSocket): Promise<void> => {
    const v1 = ws.protocol === 'channel.k8s.io';
    const e = opts.engine();
    const out = (ch: number) =>
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          if (ws.readyState !== ws.OPEN) return cb();
          ws.send(Buffer.concat([Buffer.from([ch]), chunk]), () => cb()); // waits for the socket: backpressure
        },
      });
    const stdin = job.stdin ? new PassThrough() : null;
    // A resize that comes before the process runs is applied once it does.
    let early: { width: number; height: number } | undefined;
    let resize: (size: { width: number; height: number }) => void = (s) => (early = s);
    const abort = new AbortController();
    ws.on('message', (data: Buffer, isBinary) => {
      const b = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
      if (!isBinary || b.length === 0) return;
      if (b[0] === STDIN) stdin?.write(b.subarray(1));
      else if (b[0] === RESIZE) {
        try {
          const s = JSON.parse(b.subarray(1).toString()) as { Width?: number; Height?: number };
          if (s.Width && s.Height) resize({ width: s.Width, height: s.Height });
        } catch {
          // a malformed resize is dropped, as kubelet does
        }
      } else if (b[0] === CLOSE && b[1] === STDIN) stdin?.end();
    });
    ws.on('close', () => {
      stdin?.end();
      abort.abort();
    });
    const io = { stdin, stdout: job.stdout ? out(STDOUT) : null, stderr: job.stderr && !job.tty ? out(STDERR) : null };
    let exitCode: number | undefined;
    let error: string | undefined;
    try {
      if (job.kind === 'exec') {
        const { Id } = await e.execs.create(job.containerId, { Cmd: job.cmd ?? [], AttachStdin: job.stdin, AttachStdout: job.stdout, AttachStderr: job.stderr && !job.tty, Tty: job.tty });
        resize = (s) => void e.execs.resize(Id, s).catch(() => {});
        const session = await e.execs.start(Id, { streams: io });
        if (early) resize(early);
        abort.signal.addEventListener('abort', () => void session.kill?.(9));
        exitCode = await session.exited;
      } else {
        resize = (s) => void e.attach.resize(job.containerId, s).catch(() => {});
        if (early && job.tty) resize(early);
        await e.attach.attach(job.containerId, { stdin: job.stdin, stdout: job.stdout, stderr: job.stderr, logs: false, stream: true }, io, abort.signal);
      }
    } catch (err) {
      error = errorMessage(err);
    }
    if (ws.readyState !== ws.OPEN) return;
    const status = statusOf(exitCode, error);
    if (!v1) ws.send(Buffer.concat([Buffer.from([ERROR]), Buffer.from(JSON.stringify(status))]));
    else if (status.status !== 'Success') ws.send(Buffer.concat([Buffer.from([ERROR]), Buffer.from(String(status.message))]));
    ws.close(1000);
  };

  const [host, portText] = splitHostPort(opts.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(portText), host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const base = `${opts.tls ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  return {
    url(req) {
      const now = Date.now();
      for (const [k, v] of pending) if (v.expires < now) pending.delete(k);
      const token = randomBytes(18).toString('base64url');
      pending.set(token, { ...req, expires: now + TOKEN_TTL_MS });
      return `${base}/${req.kind}/${token}`;
    },
    async close() {
      for (const c of wss.clients) c.terminate();
      for (const s of spdySockets) s.destroy(); // upgraded: the HTTP server's closeAllConnections does not reach them
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** "127.0.0.1:0", "[::1]:10010" → host, port. */
export function splitHostPort(address: string): [string, string] {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(address);
  if (!m || Number(m[2]) > 65535) throw new Error(`invalid address ${JSON.stringify(address)}: host:port expected`);
  return [m[1]!, m[2]!];
}
