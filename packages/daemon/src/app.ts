/**
 * The HTTP app: a factory over Node's http (attach and exec need hijacked connections).
 * `buildApp()` returns request and upgrade listeners; `inject()` (inject.ts) drives it in
 * tests without berthd, and the daemon attaches it to its listening sockets.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import { Readable, type Duplex } from 'node:stream';
import { InvalidParameterError, NotFoundError, silentLogger, type Logger } from '@berth/core';
import { HttpError, httpStatusOf, sendError } from './http-errors.js';
import { requestScope, type RequestScope } from './last-guard.js';
import { RequestStreams, clientWentAway, type StreamFailure } from './request-streams.js';
import { Router, type RequestContext, type Route } from './router.js';
import { API_VERSION, ENGINE_VERSION, MIN_API_VERSION, compareVersions } from './version.js';

export interface AppOptions {
  /** Route modules; the daemon composes system, container and exec routes (routes/index.ts). */
  routes: readonly Route[];
  experimental?: boolean;
  logger?: Logger;
  /** Lowest API version served (dockerd's DOCKER_MIN_API_VERSION); default 1.24. */
  minApiVersion?: string;
}

export interface App {
  readonly router: Router;
  /** 'request' listener of an http(s) server. */
  handleRequest(req: IncomingMessage, res: ServerResponse): void;
  /** 'upgrade' listener: hijackable routes (attach, exec start) and plain routes on an upgrade request. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Requests (and hijacked sessions) in progress. */
  inflight(): number;
  /** Resolves when no request is in progress any more. */
  drained(): Promise<void>;
  /** End the long-lived requests (those that called ctx.streaming()): used on shutdown. */
  abortStreams(): void;
  /** Abort every request still in progress (after the shutdown grace period). */
  abortAll(): void;
}

const VERSION_PREFIX = /^\/v([0-9][0-9.]*)(\/.*)$/;

export function commonHeaders(experimental: boolean): Record<string, string> {
  return {
    'Api-Version': API_VERSION,
    'Docker-Experimental': String(experimental),
    Ostype: 'linux',
    Server: `Berth/${ENGINE_VERSION} (linux)`,
  };
}

export function buildApp(opts: AppOptions): App {
  const router = new Router().add(...opts.routes);
  const logger = opts.logger ?? silentLogger;
  const experimental = opts.experimental ?? false;
  const minVersion = opts.minApiVersion ?? MIN_API_VERSION;
  const headers = commonHeaders(experimental);
  const active = new Set<AbortController>();
  const streamingRequests = new Set<AbortController>();
  let closing = false;
  let waiters: Array<() => void> = [];

  const finished = (ac: AbortController) => {
    active.delete(ac);
    streamingRequests.delete(ac);
    if (active.size === 0) {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    }
  };

  const dispatch = (req: IncomingMessage, res: ServerResponse, upgrade: { socket: Duplex; head: Buffer; body: Buffer } | null) => {
    const ac = new AbortController();
    active.add(ac);
    let done = false;
    let hijacked: Duplex | null = null;
    const method = req.method ?? 'GET';
    const logPath = (req.url ?? '/').split('?')[0];
    // A request that failed mid-answer is cut off: the client must not take a truncated body
    // (a tar, a log) for a complete one.
    const cut = () => {
      if (hijacked) hijacked.destroy();
      else if (res.headersSent) res.destroy();
    };
    const streams = new RequestStreams((f: StreamFailure) => {
      if (f.quiet) {
        // logged by the last guard
      } else if (clientWentAway(f.error)) logger.debug('client went away', { method, path: logPath, stream: f.stream, error: f.error.message });
      else logger.error('request ended by a failing stream', { method, path: logPath, stream: f.stream, error: f.error.stack ?? f.error.message });
      ac.abort(f.error);
      // The handler may never settle (an uncaught error left it behind): answer now.
      if (hijacked || res.headersSent) cut();
      else sendError(res, f.error);
    });
    const finish = () => {
      if (done) return;
      done = true;
      streams.close();
      finished(ac);
    };
    const scope: RequestScope = {
      method,
      path: logPath,
      get ended() {
        return done;
      },
      // the guard has logged it
      fail: (err) => streams.fail(err, 'uncaught error', true),
    };
    // Everything the request does runs in its scope: the last guard can tell its errors apart.
    requestScope.run(scope, () => {
      streams.watch(req, 'request');
      streams.watch(res, 'response');
      const onClose = () => {
        if (!res.writableFinished || hijacked) ac.abort();
        if (!hijacked) finish();
      };
      res.once('close', onClose);
      res.once('finish', () => {
        if (!hijacked) finish();
      });
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);

      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://berth');
      } catch {
        sendError(res, new InvalidParameterError('malformed request URL'));
        return;
      }
      let path = url.pathname;
      let version = API_VERSION;
      const vm = VERSION_PREFIX.exec(path);
      if (vm) {
        version = vm[1];
        path = vm[2];
      }
      const hijack = (contentType: string): Duplex => {
        if (hijacked) throw new Error('connection already hijacked');
        const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
        let socket: Duplex;
        if (upgrade) {
          socket = upgrade.socket;
          res.detachSocket(socket as never);
          socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n${extra}\r\n`);
          if (upgrade.head.length > 0) socket.unshift(upgrade.head);
        } else {
          socket = req.socket;
          socket.write(`HTTP/1.1 200 OK\r\nContent-Type: ${contentType}\r\nConnection: close\r\n${extra}\r\n`);
          // The HTTP parser must not answer what the client writes after this point (see attachApp's clientError).
          (socket as { _berthHijacked?: boolean })._berthHijacked = true;
          // Nor end the connection at the client's FIN (Node's HTTP server does): a session can
          // still have output to send once the client has closed its side, as dockerd sends it.
          socket.removeAllListeners('end');
        }
        hijacked = socket;
        streams.own(socket, 'hijacked connection');
        socket.once('close', () => {
          ac.abort();
          finish();
        });
        return socket;
      };
      const ctx: RequestContext = {
        req,
        body: upgrade ? streams.own(Readable.from(upgrade.body.length ? [upgrade.body] : []), 'request body') : req,
        res,
        params: {},
        query: url.searchParams,
        version,
        signal: ac.signal,
        upgraded: upgrade !== null,
        hijack,
        own: (s, name, atEnd) => streams.own(s, name, atEnd),
        streaming() {
          streamingRequests.add(ac);
          if (closing) ac.abort();
        },
      };

      const run = async () => {
        if (vm) {
          if (compareVersions(version, minVersion) < 0) {
            throw new InvalidParameterError(
              `client version ${version} is too old. Minimum supported API version is ${minVersion}, please upgrade your client to a newer version`,
            );
          }
          if (compareVersions(version, API_VERSION) > 0) {
            throw new InvalidParameterError(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
          }
        }
        const m = router.match(method, path);
        if (!m.route) {
          if (m.methodNotAllowed) throw new HttpError(405, `method ${method} not allowed for ${path}`);
          throw new NotFoundError('page not found');
        }
        (ctx as { params: Record<string, string> }).params = m.params;
        await m.route.handler(ctx);
      };
      run().then(
        () => {
          if (streams.failure) {
            if (hijacked || res.headersSent) cut();
            else sendError(res, streams.failure.error);
          } else if (hijacked) {
            if (!hijacked.destroyed) hijacked.end();
          } else if (!res.writableEnded) {
            res.end();
          }
        },
        (err: unknown) => {
          const status = httpStatusOf(err);
          if (status >= 500 && !(ac.signal.aborted && clientWentAway(err))) {
            logger.error('handler failed', { method, path: url.pathname, error: err instanceof Error ? err.stack ?? err.message : String(err) });
          } else logger.debug('request refused', { method, path: url.pathname, status, error: err });
          if (hijacked || res.headersSent) cut();
          else sendError(res, err);
        },
      );
    });
  };

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node leaves an upgrade request's body on the socket: take its Content-Length bytes
    // first, so that they never reach the container's stdin.
    const len = Number(req.headers['content-length'] ?? '0');
    if (Number.isFinite(len) && len > 0 && len <= 4 * 1024 * 1024 && head.length < len) {
      const parts: Buffer[] = [head];
      let got = head.length;
      const onData = (chunk: Buffer) => {
        parts.push(chunk);
        got += chunk.length;
        if (got >= len) {
          socket.off('data', onData);
          socket.pause();
          const all = Buffer.concat(parts);
          handleUpgrade(req, socket, all);
        }
      };
      socket.on('data', onData);
      return;
    }
    const body = Number.isFinite(len) && len > 0 ? head.subarray(0, len) : Buffer.alloc(0);
    head = head.subarray(body.length);
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as never);
    socket.on('error', () => socket.destroy());
    res.once('finish', () => {
      res.detachSocket(socket as never);
      socket.end();
    });
    dispatch(req, res, { socket, head, body });
  }

  return {
    router,
    handleRequest(req, res) {
      dispatch(req, res, null);
    },
    handleUpgrade,
    inflight: () => active.size,
    drained: () => (active.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
    abortStreams() {
      closing = true;
      for (const ac of streamingRequests) ac.abort();
    },
    abortAll() {
      closing = true;
      for (const ac of active) ac.abort();
    },
  };
}
