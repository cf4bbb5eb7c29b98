/**
 * A small router over Node's http: routes are `METHOD /path/{param}` patterns; a
 * `{name:.*}` parameter spans slashes (image names). Paths are matched after the version
 * prefix (`/v1.44/...`) is stripped; the prefix is validated by the app.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { OnRequestEnd, OwnedStream } from './request-streams.js';

export interface RequestContext {
  readonly req: IncomingMessage;
  /** The request body (for an upgrade request: the Content-Length bytes read before the hijack). */
  readonly body: NodeJS.ReadableStream;
  readonly res: ServerResponse;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The API version of this request: from the URL prefix, else the daemon's own. */
  readonly version: string;
  /** Aborted when the client disconnects before the answer is complete. */
  readonly signal: AbortSignal;
  /** True when the client asked for a connection upgrade (Upgrade: tcp). */
  readonly upgraded: boolean;
  /**
   * Take over the connection (attach, exec start): writes the 101 (or 200) head with the
   * given content type and hands the raw socket over. Only for routes declared `hijack`.
   */
  hijack(contentType: string): Duplex;
  /**
   * Give a stream this request made (a transform, a tar, a pipe's end) to the request: its
   * errors end the request, logged with method and path, and it is destroyed when the
   * request ends. Returns the stream. (request-streams.ts)
   */
  own<S extends OwnedStream>(stream: S, name: string, atEnd?: OnRequestEnd): S;
  /**
   * Declare this request long-lived (events, logs/stats follow, attach): on shutdown the
   * daemon ends it instead of waiting for it.
   */
  streaming(): void;
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

export interface Route {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  handler: Handler;
  /** The handler may take over the connection with ctx.hijack(). */
  hijack?: boolean;
}

interface CompiledRoute extends Route {
  re: RegExp;
  names: string[];
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

export type MatchResult = RouteMatch | { route: null; methodNotAllowed: boolean };

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const src = route.path
    .split('/')
    .map((seg) => {
      const m = /^\{(\w+)(:\.\*)?\}$/.exec(seg);
      if (!m) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(m[1]);
      return m[2] ? '(.+)' : '([^/]+)';
    })
    .join('/');
  return { ...route, re: new RegExp(`^${src}/?$`), names };
}

export class Router {
  private readonly routes: CompiledRoute[] = [];

  add(...routes: Route[]): this {
    for (const r of routes) {
      if (this.routes.some((x) => x.method === r.method && x.path === r.path)) {
        throw new Error(`duplicate route ${r.method} ${r.path}`);
      }
      this.routes.push(compile(r));
    }
    return this;
  }

  list(): readonly Route[] {
    return this.routes;
  }

  match(method: string, path: string): MatchResult {
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.re.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      let ok = true;
      r.names.forEach((n, i) => {
        try {
          params[n] = decodeURIComponent(m[i + 1]);
        } catch {
          ok = false;
        }
      });
      if (!ok) continue;
      pathMatched = true;
      if (r.method !== method && !(method === 'HEAD' && r.method === 'GET' && !this.hasExact('HEAD', r.path))) continue;
      return { route: r, params };
    }
    return { route: null, methodNotAllowed: pathMatched };
  }

  private hasExact(method: string, path: string): boolean {
    return this.routes.some((r) => r.method === method && r.path === path);
  }
}
