/**
 * A SPDY/3.1 client of the CRI streaming server that behaves as the Go peers kubelet's streaming
 * URLs get (k8s.io/apimachinery httpstream/spdy on moby/spdystream): the upgrade is a POST with
 * one `X-Stream-Protocol-Version` line per offer, its SYN_STREAMs carry only their own headers
 * (no :method/:path), and it keeps no flow control (no SETTINGS, no WINDOW_UPDATE). For tests
 * and tools, as connectCri is for the gRPC side; the server is spdy.ts.
 */
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex, Readable } from 'node:stream';
import { spdyTransport, type SpdyConnection, type SpdyStream } from './spdy.js';

/** The answer to an upgrade: 101 with the connection, or the refusal's status, body and accepted versions. */
export interface SpdyDialed {
  status: number;
  protocol?: string;
  conn?: SpdyConnection;
  socket?: Duplex;
  body?: string;
  accepted?: string | string[];
}

/**
 * Upgrade a streaming URL to SPDY/3.1 offering `protocols` (none: no X-Stream-Protocol-Version);
 * an https:// URL (a streaming server with TLS) is dialed with `tls` (e.g. the CA to trust).
 */
export function dialSpdy(url: string, protocols: string[], tls: { ca?: string | Buffer } = {}): Promise<SpdyDialed> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { Connection: 'Upgrade', Upgrade: 'SPDY/3.1' };
    if (protocols.length) headers['X-Stream-Protocol-Version'] = protocols;
    const target = { host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', headers };
    const req = u.protocol === 'https:' ? httpsRequest({ ...target, ...tls }) : request(target);
    req.on('upgrade', (res, socket, head) => {
      if (head.length) socket.unshift(head);
      const conn = spdyTransport.connection.create(socket, { protocol: 'spdy', isServer: false });
      const framer = conn._spdyState.framer;
      const toDict = framer.headersToDict.bind(framer);
      framer.headersToDict = (h, pre, cb) =>
        toDict(
          h,
          (out) => {
            pre(out);
            for (const k of Object.keys(out)) if (k.startsWith(':')) delete out[k];
          },
          cb,
        );
      Object.assign(framer, { windowUpdateFrame: () => {}, settingsFrame: () => {} });
      conn.on('error', () => {});
      socket.on('error', () => {});
      conn.start(3);
      resolve({ status: res.statusCode!, protocol: res.headers['x-stream-protocol-version'] as string, conn, socket });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body, accepted: res.headers['x-accepted-stream-protocol-versions'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Open a stream with these headers (e.g. { streamtype: 'stdout' }) and wait for the server's SYN_REPLY. */
export function openSpdyStream(conn: SpdyConnection, headers: Record<string, string>): Promise<SpdyStream> {
  return new Promise((resolve, reject) => {
    const st = conn.request({ method: 'POST', path: '/', headers }, (err) => err && reject(err));
    st.on('error', () => {});
    st.once('response', () => resolve(st));
  });
}

/** Everything a stream carries until its end (or its reset). */
export function readAll(st: Readable): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    st.on('data', (b: Buffer) => (s += b.toString()));
    st.on('end', () => resolve(s));
    st.on('close', () => resolve(s));
  });
}
