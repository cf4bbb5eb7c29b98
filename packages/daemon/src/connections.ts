/**
 * Slow and idle clients cannot starve berthd (issue 10 item 9). dockerd has no such limits;
 * these are berth's own, configurable (berthd --berth-header-timeout, --berth-idle-timeout,
 * --berth-max-connections, or the same keys in daemon.json):
 *
 * - headers timeout: a connection that has not sent a request's complete headers within it is
 *   answered 408 and closed;
 * - idle timeout: a keep-alive connection with no request in progress is closed after it
 *   (never a request in progress: hijacked attach/exec sessions and streams such as
 *   logs -f, events and stats are not idle, whatever their traffic);
 * - connection cap: at the cap, a new connection takes the place of the connection that has
 *   been idle (or sending headers) the longest; only when every connection has a request in
 *   progress is the new one refused. So `/_ping` still answers while hundreds of clients
 *   trickle their headers, and file descriptors stay bounded.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '@berth/core';

export interface ConnectionLimits {
  /** ms to receive a request's headers (Node's headersTimeout). */
  headerTimeoutMs: number;
  /** ms a keep-alive connection may stay without a request (Node's keepAliveTimeout). */
  idleTimeoutMs: number;
  /** Open API connections per listener. */
  maxConnections: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headerTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxConnections: 4096,
};

interface ConnState {
  /** Requests in progress on the connection (a hijacked one never ends before the socket). */
  busy: number;
  hijacked: boolean;
}

export interface ConnectionTracker {
  /** Connections open now. */
  readonly size: number;
  /** Connections closed to make room for a new one, and new ones refused, since the start. */
  readonly shed: number;
  readonly refused: number;
}

/** Apply the timeouts and the cap to an API server (before it listens). */
export function limitConnections(server: http.Server, limits: ConnectionLimits, logger: Logger, secure = false): ConnectionTracker {
  server.requestTimeout = 0; // image loads and pushes may take long; the headers timeout is the slow-client bound
  server.headersTimeout = limits.headerTimeoutMs;
  server.keepAliveTimeout = limits.idleTimeoutMs;
  // How often Node checks the headers timeout (30 s by default would let it run late).
  (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.max(100, Math.min(1000, Math.floor(limits.headerTimeoutMs / 4)));
  // Insertion order: the first idle entry is the one idle the longest.
  const conns = new Map<Socket, ConnState>();
  let shed = 0;
  let refused = 0;
  let lastWarn = 0;
  const warn = (msg: string) => {
    const now = Date.now();
    if (now - lastWarn < 10_000) return;
    lastWarn = now;
    logger.warn(msg, { max: limits.maxConnections, shed, refused });
  };
  const idleAgain = (sock: Socket, st: ConnState) => {
    if (--st.busy > 0 || !conns.has(sock)) return;
    conns.delete(sock);
    conns.set(sock, st);
  };
  server.on(secure ? 'secureConnection' : 'connection', (sock: Socket) => {
    if (conns.size >= limits.maxConnections) {
      let victim: Socket | null = null;
      for (const [s, st] of conns) {
        if (st.busy === 0 && !st.hijacked) {
          victim = s;
          break;
        }
      }
      if (!victim) {
        refused++;
        warn('API connection cap reached and every connection has a request in progress: refusing new connections');
        sock.destroy();
        return;
      }
      shed++;
      warn('API connection cap reached: closing the connections idle the longest to make room');
      conns.delete(victim);
      victim.destroy();
    }
    const st: ConnState = { busy: 0, hijacked: false };
    conns.set(sock, st);
    sock.once('close', () => conns.delete(sock));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const sock = req.socket as Socket;
    const st = conns.get(sock);
    if (!st) return;
    st.busy++;
    res.once('close', () => idleAgain(sock, st));
  });
  server.on('upgrade', (req: http.IncomingMessage) => {
    const st = conns.get(req.socket as Socket);
    if (st) st.hijacked = true;
  });
  return {
    get size() {
      return conns.size;
    },
    get shed() {
      return shed;
    },
    get refused() {
      return refused;
    },
  };
}
