/**
 * SPDY/3.1 on the CRI streaming server (streaming.ts): the framing a kubelet's streaming proxy
 * and the API server → kubelet hop use (k8s.io/apimachinery httpstream/spdy), beside WebSocket.
 * The client sends an HTTP Upgrade (`Connection: Upgrade`, `Upgrade: SPDY/3.1`) offering
 * `X-Stream-Protocol-Version`s — for Exec/Attach v4/v3/v2.channel.k8s.io, for PortForward
 * portforward.k8s.io; none offered is 400, none in common 403 with
 * `X-Accepted-Stream-Protocol-Versions`, as kubelet answers — and the 101 echoes the chosen one.
 * Then the client opens one SPDY stream per channel, its `streamtype` header naming it; each gets
 * a SYN_REPLY at once.
 *
 * Exec/Attach: the streams `error`, `stdin`, `stdout`, `stderr` (not with a tty), `resize` (a tty,
 * v3+; JSON {Width, Height} objects one after another) are awaited (30 s, kubelet's stream
 * creation timeout; then the connection is dropped). The session itself is streaming.ts's, the
 * one behind WebSocket: SpdyChannels gives it the WebSocket shape it uses (ChannelSocket) — a
 * channel-prefixed message is a write to that channel's stream, the stdin stream's data is a
 * channel-0 message, its FIN the v5 "stdin is over" message, a resize object a channel-4
 * message. At the end the error stream carries the v4 Status JSON (v2/v3: only an error's text),
 * every stream gets a FIN and the connection a GOAWAY.
 *
 * PortForward: the client opens a `data` and an `error` stream per forwarded connection, both with
 * the `port` and a `requestID` header (none: kubelet's fallback to the stream IDs); a pair is
 * awaited for 30 s. Each complete pair is one connection of the same PortDialer the WebSocket
 * port forward uses (portforward.ts); its failure is written on the error stream in the same
 * words; the data stream's FIN half-closes the connection to the pod. The session lasts until
 * the client closes the connection, which tears down every forwarded connection.
 *
 * Framing: the npm package spdy-transport (SPDY/3 frames, the zlib header dictionary). Two things
 * a Go (moby/spdystream) peer does differently are adapted here, no more: its SYN_STREAMs carry
 * no `:method`/`:path` (spdy-transport's parser requires them: the two are supplied before the
 * parser checks), and it sends no WINDOW_UPDATEs (it keeps no flow control), so our send windows
 * are unbounded — a SPDY/3 sender waiting for updates would stall after 64 KiB.
 */
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import { errorMessage, type Logger } from '@berth/core';
import { validPorts, type PortConnection, type PortDialer } from './portforward.js';
import type { ExecAttachRequest, PortForwardRequest } from './streaming.js';

export const SPDY_STREAM_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io'] as const;
export const SPDY_PORT_FORWARD_PROTOCOLS = ['portforward.k8s.io'] as const;
/** kubelet's default stream creation timeout. */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;
/** After the session's GOAWAY, how long the client has to close the connection before it is cut. */
const CLOSE_GRACE_MS = 10_000;

/** The part of a WebSocket an exec/attach session uses (streaming.ts); SpdyChannels has the same shape. */
export interface ChannelSocket {
  readonly protocol: string;
  readonly readyState: number;
  readonly OPEN: number;
  send(data: Buffer, cb?: (err?: Error) => void): void;
  on(event: 'message', fn: (data: Buffer, isBinary: boolean) => void): unknown;
  on(event: 'close', fn: () => void): unknown;
  close(code?: number): void;
}

/** What spdy-transport (CommonJS, no types of its own) offers that this module uses. */
export interface SpdyStream extends Duplex {
  readonly id: number;
  readonly headers: Record<string, string | string[] | undefined>;
  respond(status: number, headers: Record<string, string>, cb?: (err?: Error | null) => void): void;
  abort(code?: string): void;
  _spdyState: { window: { send: { current: number; max: number; limit: number } } };
}
export interface SpdyConnection extends EventEmitter {
  start(version: number): void;
  end(cb?: () => void): void;
  request(uri: { path: string; method?: string; headers: Record<string, string> }, cb: (err: Error | null, s: SpdyStream) => void): SpdyStream;
  _spdyState: {
    parser: { parseKVs(body: unknown, cb: (err: Error | null, headers: Record<string, unknown>) => void): void };
    framer: { headersToDict(headers: unknown, pre: (h: Record<string, unknown>) => void, cb: unknown): void };
  };
}
interface SpdyTransport {
  connection: { create(socket: Duplex, opts: { protocol: 'spdy'; isServer: boolean }): SpdyConnection };
}
export const spdyTransport = createRequire(import.meta.url)('spdy-transport') as SpdyTransport;

/** An upgraded connection and the protocol version agreed on. */
export interface SpdySession {
  conn: SpdyConnection;
  protocol: string;
  socket: Duplex;
}

const headerList = (v: string | string[] | undefined): string[] =>
  (Array.isArray(v) ? v : [v ?? ''])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);

/** Whether an upgrade request asks for SPDY/3.1 (else it is a WebSocket's). */
export function isSpdyUpgrade(req: IncomingMessage): boolean {
  return headerList(req.headers.upgrade).some((u) => u.toLowerCase() === 'spdy/3.1');
}

/**
 * Answer a SPDY upgrade: the 101 with the chosen protocol version and a server connection on the
 * socket, or (undefined) the refusal kubelet gives — 400 without upgrade headers or without any
 * X-Stream-Protocol-Version, 403 when none offered is served.
 */
export function upgradeSpdy(req: IncomingMessage, socket: Duplex, head: Buffer, served: readonly string[]): SpdySession | undefined {
  const refuse = (code: 400 | 403, text: string, extra = '') => {
    const body = `${text}\n`;
    socket.end(`HTTP/1.1 ${code} ${code === 400 ? 'Bad Request' : 'Forbidden'}\r\nContent-Type: text/plain; charset=utf-8\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    return undefined;
  };
  if (!headerList(req.headers.connection).some((c) => c.toLowerCase() === 'upgrade')) return refuse(400, 'unable to upgrade: missing upgrade headers in request');
  const offered = headerList(req.headers['x-stream-protocol-version']);
  if (offered.length === 0) return refuse(400, 'unable to upgrade: X-Stream-Protocol-Version is required');
  const protocol = offered.find((p) => served.includes(p));
  if (!protocol) {
    const accepted = served.map((p) => `X-Accepted-Stream-Protocol-Versions: ${p}\r\n`).join('');
    return refuse(403, `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(' ')}], server accepts [${served.join(' ')}]`, accepted);
  }
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
  if (head.length) socket.unshift(head);
  const conn = spdyTransport.connection.create(socket, { protocol: 'spdy', isServer: true });
  acceptBarePeerStreams(conn);
  // A frame it cannot parse (the parser stops for good) or a broken socket: the connection is over.
  conn.on('error', () => socket.destroy());
  socket.on('error', () => {});
  return { conn, protocol, socket };
}

/** Go peers open streams with only their own headers; spdy-transport's parser wants :method and :path. */
function acceptBarePeerStreams(conn: SpdyConnection): void {
  const parser = conn._spdyState.parser;
  const parseKVs = parser.parseKVs.bind(parser);
  parser.parseKVs = (body, cb) =>
    parseKVs(body, (err, headers) => {
      if (!err && headers[':method'] === undefined) Object.assign(headers, { ':method': 'POST', ':path': '/' });
      cb(err, headers);
    });
}

/** A stream of ours: replied to, errors swallowed (a reset or a gone client shows as its end/close), no send window. */
function accept(st: SpdyStream): void {
  st.on('error', () => {});
  const send = st._spdyState.window.send;
  send.current = send.max = send.limit = Infinity;
  st.respond(200, {});
}

const headerOf = (st: SpdyStream, name: string): string => {
  const v = st.headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? '';
};

/** Serve one upgraded connection: an exec/attach session (run, streaming.ts's) or a port forward. */
export function serveSpdy(
  s: SpdySession,
  job: ExecAttachRequest | PortForwardRequest,
  deps: { run: (sock: ChannelSocket) => Promise<void>; dialer: PortDialer; logger: Logger; streamCreationTimeoutMs?: number },
): Promise<void> {
  const timeout = deps.streamCreationTimeoutMs ?? STREAM_CREATION_TIMEOUT_MS;
  return job.kind === 'portforward' ? servePortForward(s, job, deps.dialer, timeout) : serveExecAttach(s, job, deps.run, deps.logger, timeout);
}

const CHANNELS = ['stdin', 'stdout', 'stderr', 'error', 'resize'] as const;
type ChannelName = (typeof CHANNELS)[number];

function serveExecAttach(s: SpdySession, job: ExecAttachRequest, run: (sock: ChannelSocket) => Promise<void>, logger: Logger, timeoutMs: number): Promise<void> {
  const resizing = job.tty && s.protocol !== 'v2.channel.k8s.io';
  const expected = 1 + Number(job.stdin) + Number(job.stdout) + Number(job.stderr && !job.tty) + Number(resizing);
  const streams = new Map<ChannelName, SpdyStream>();
  let received = 0;
  return new Promise<void>((resolve) => {
    let started = false;
    const timer = setTimeout(() => {
      logger.warn('CRI SPDY stream: timed out waiting for the client to create streams', { kind: job.kind, containerId: job.containerId });
      s.socket.destroy();
    }, timeoutMs);
    s.socket.once('close', () => {
      clearTimeout(timer);
      if (!started) resolve();
    });
    s.conn.on('stream', (st: SpdyStream) => {
      accept(st);
      const type = headerOf(st, 'streamtype') as ChannelName;
      if (started || !CHANNELS.includes(type)) return void st.resume(); // kubelet ignores these too
      streams.set(type, st);
      if (++received < expected) return;
      clearTimeout(timer);
      started = true;
      run(new SpdyChannels(s.protocol === 'v4.channel.k8s.io' ? 'v4.channel.k8s.io' : 'channel.k8s.io', s, streams)).then(resolve, (err: unknown) => {
        logger.error('CRI SPDY stream failed', { kind: job.kind, error: errorMessage(err) });
        resolve();
      });
    });
  });
}

const STDIN = 0;
const RESIZE = 4;
const CLOSE = 255;
const STREAM_OF_CHANNEL: Record<number, ChannelName> = { 1: 'stdout', 2: 'stderr', 3: 'error' };

/**
 * The SPDY streams of one exec/attach in the shape of the WebSocket the session speaks: the
 * channel-prefixed messages both ways. `protocol` is what the session frames its end for:
 * v4 (the Status JSON) or channel.k8s.io (an error's text only, as v2/v3 over SPDY).
 */
export class SpdyChannels implements ChannelSocket {
  readonly OPEN = 1;
  readyState = 1;
  private readonly events = new EventEmitter();

  constructor(
    readonly protocol: string,
    private readonly s: SpdySession,
    private readonly streams: Map<ChannelName, SpdyStream>,
  ) {
    const message = (ch: number, data: Buffer) => this.events.emit('message', Buffer.concat([Buffer.from([ch]), data]), true);
    const stdin = streams.get('stdin');
    stdin?.on('data', (b: Buffer) => message(STDIN, b));
    stdin?.on('end', () => message(CLOSE, Buffer.from([STDIN])));
    const resize = streams.get('resize');
    if (resize) {
      const objects = jsonObjects();
      resize.on('data', (b: Buffer) => objects(b.toString()).forEach((o) => message(RESIZE, Buffer.from(o))));
    }
    for (const [name, st] of streams) if (name !== 'stdin' && name !== 'resize') st.resume(); // read to see the client's FIN
    s.socket.once('close', () => {
      this.readyState = 3;
      this.events.emit('close');
    });
  }

  send(data: Buffer, cb?: (err?: Error) => void): void {
    const st = this.streams.get(STREAM_OF_CHANNEL[data[0]!]!);
    if (!st || this.readyState !== this.OPEN || !st.writable) return void cb?.();
    st.write(data.subarray(1), () => cb?.());
  }

  on(event: 'message' | 'close', fn: (...args: never[]) => void): this {
    this.events.on(event, fn as (...args: unknown[]) => void);
    return this;
  }

  /** The session is over: FIN on every stream, GOAWAY; a client that then keeps the connection open is cut off. */
  close(): void {
    if (this.readyState !== this.OPEN) return;
    this.readyState = 2;
    for (const st of this.streams.values()) if (st.writable) st.end();
    this.s.conn.end();
    const cut = setTimeout(() => this.s.socket.destroy(), CLOSE_GRACE_MS);
    cut.unref();
    this.s.socket.once('close', () => clearTimeout(cut));
  }
}

/** Splits a stream of concatenated JSON objects (the resize stream) into the objects' texts. */
function jsonObjects(): (text: string) => string[] {
  let buf = '';
  let depth = 0;
  let inString = false;
  let escaped = false;
  return (text) => {
    const out: string[] = [];
    for (const c of text) {
      buf += c;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '{') depth++;
      else if (c === '}' && depth > 0 && --depth === 0) {
        out.push(buf.trim());
        buf = '';
      } else if (depth === 0 && c.trim() === '') buf = '';
    }
    return out;
  };
}

interface StreamPair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: NodeJS.Timeout;
}

function servePortForward(s: SpdySession, job: PortForwardRequest, dial: PortDialer, timeoutMs: number): Promise<void> {
  const pairs = new Map<string, StreamPair>();
  const live = new Set<PortConnection>();
  const forward = (data: SpdyStream, error: SpdyStream) => {
    const portText = headerOf(data, 'port');
    const port = Number(portText);
    const fail = (why: string) => {
      if (error.writable) error.write(`error forwarding port ${portText} to pod ${job.podId}: ${why}`);
    };
    const finish = () => {
      if (error.writable) error.end();
      if (data.writable) data.end();
    };
    if (!validPorts([port])) {
      fail(`invalid port ${JSON.stringify(portText)}`);
      return finish();
    }
    const conn = dial(job.netns, port, (b) => void (data.writable && data.write(b)));
    live.add(conn);
    data.on('data', (b: Buffer) => conn.write(b));
    data.on('end', () => conn.end?.());
    data.on('close', () => conn.kill()); // reset by the client, or over
    void conn.done.then((err) => {
      live.delete(conn);
      if (err) fail(err);
      finish();
    });
  };
  return new Promise<void>((resolve) => {
    s.socket.once('close', () => {
      for (const p of pairs.values()) clearTimeout(p.timer);
      for (const c of live) c.kill();
      resolve();
    });
    s.conn.on('stream', (st: SpdyStream) => {
      accept(st);
      const type = headerOf(st, 'streamtype');
      if (type !== 'data' && type !== 'error') return void st.abort();
      // Clients before requestID: the error stream's ID names the pair, the data stream's is 2 less.
      const id = headerOf(st, 'requestid') || String(type === 'error' ? st.id : st.id + 2);
      let pair = pairs.get(id);
      if (!pair) {
        const timer = setTimeout(() => {
          pairs.delete(id);
          if (pair!.error?.writable) pair!.error.end(`timed out waiting for streams of request ${id}`);
          pair!.data?.abort();
        }, timeoutMs);
        pair = { timer };
        pairs.set(id, pair);
      }
      if (pair[type]) return void st.abort(); // one of each per request
      pair[type] = st;
      if (!pair.data || !pair.error) return;
      clearTimeout(pair.timer);
      pairs.delete(id);
      pair.error.resume();
      forward(pair.data, pair.error);
    });
  });
}
