/**
 * Every stream a request uses belongs to that request: the body, the response, a hijacked
 * socket, and whatever a route makes (detach filters, framed writers, tar and image streams).
 * `RequestStreams` gives each one an 'error' listener — a failing stream ends its request,
 * logged with method and path, never the process — and destroys what is still open when the
 * request ends. Routes register through `ctx.own()` and send bodies with `sendStream()`;
 * nothing else in the daemon attaches its own 'error' listeners to request streams.
 */
import type { RequestContext } from './router.js';

/** What the registry needs of a stream: Node's Readable, Writable, Duplex, sockets. */
export interface OwnedStream {
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
  destroy(err?: Error): unknown;
  readonly destroyed?: boolean;
}

/**
 * What the end of the request does to a stream it owns: `destroy` it, or `end` it (a
 * process's stdin: the process reads EOF, as when the client closes it, instead of waiting
 * forever on an input nobody will write).
 */
export type OnRequestEnd = 'destroy' | 'end';

export interface StreamFailure {
  error: Error;
  /** Which stream of the request failed ("hijacked connection", "archive tar", …). */
  stream: string;
  /** Already logged by whoever reported it (the last guard). */
  quiet?: boolean;
}

/** Error codes that only say the client went away (logged at debug, not as failures). */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END', 'ABORT_ERR']);

export function clientWentAway(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CLIENT_GONE.has(code);
}

export class RequestStreams {
  private readonly owned = new Map<OwnedStream, OnRequestEnd>();
  private closed = false;
  /** The first stream failure of this request, if any. */
  failure: StreamFailure | null = null;

  /** `onFailure` is told the first failure (to log it and end the request). */
  constructor(private readonly onFailure: (f: StreamFailure) => void) {}

  /** End the request because of `error` in `stream` (`quiet`: the caller has logged it). */
  fail(error: Error, stream: string, quiet = false): void {
    if (this.failure || this.closed) return;
    this.failure = { error, stream, quiet };
    this.onFailure(this.failure);
  }

  /** Handle the stream's errors (the request ends on one), without owning its lifetime. */
  watch<S extends OwnedStream>(s: S, stream: string): S {
    // The listener stays after the request ended: a late error of a stream then is harmless.
    s.on('error', (error) => this.fail(error, stream));
    return s;
  }

  /** watch() and destroy (or end) the stream when the request ends (at once if it already has). */
  own<S extends OwnedStream>(s: S, stream: string, atEnd: OnRequestEnd = 'destroy'): S {
    this.watch(s, stream);
    if (this.closed) {
      release(s, atEnd);
      return s;
    }
    this.owned.set(s, atEnd);
    s.once('close', () => this.owned.delete(s));
    return s;
  }

  /** The request ended: destroy (or end) every stream it still owns. */
  close(): void {
    this.closed = true;
    for (const [s, atEnd] of this.owned) release(s, atEnd);
    this.owned.clear();
  }

  /** Streams still open (tests: nothing is left once requests end). */
  get open(): number {
    return this.owned.size;
  }
}

function release(s: OwnedStream, atEnd: OnRequestEnd): void {
  if (s.destroyed) return;
  const w = s as OwnedStream & { end?: () => unknown; writableEnded?: boolean };
  if (atEnd === 'end' && typeof w.end === 'function') {
    if (!w.writableEnded) w.end();
  } else s.destroy();
}

export interface SendStreamOptions {
  contentType?: string;
  /** The request's name for the stream, in logs ("archive tar", "image save"). */
  name: string;
  /**
   * Runs once the source ended and before the response ends (the client sees the end of the
   * body only after it, as with dockerd's deferred Unmount); its error fails the request.
   */
  beforeEnd?: () => Promise<void>;
}

/**
 * Send `src` as the response body with backpressure. The source is owned by the request: a
 * client that goes away destroys it; its error before the first byte is the request's error
 * answer, after it the response is cut off (a truncated body, never a clean end).
 */
export async function sendStream(ctx: RequestContext, src: NodeJS.ReadableStream & OwnedStream, opts: SendStreamOptions): Promise<void> {
  if (opts.contentType) ctx.res.setHeader('Content-Type', opts.contentType);
  ctx.own(src, opts.name);
  let started = false;
  await new Promise<void>((resolve, reject) => {
    const settle = (err?: Error) => {
      ctx.signal.removeEventListener('abort', onAbort);
      src.removeListener('data', onData);
      src.removeListener('end', onEnd);
      src.removeListener('error', onError);
      ctx.res.removeListener('drain', onDrain);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => {
      src.destroy();
      settle();
    };
    const onDrain = () => src.resume();
    const onData = (chunk: Buffer) => {
      started = true;
      if (!ctx.res.write(chunk)) src.pause();
    };
    const onEnd = () => settle();
    const onError = (err: Error) => (started ? settle() : settle(err));
    if (ctx.signal.aborted) return onAbort();
    ctx.signal.addEventListener('abort', onAbort);
    ctx.res.on('drain', onDrain);
    src.on('data', onData);
    src.on('end', onEnd);
    src.on('error', onError);
  });
  if (ctx.signal.aborted) return;
  if (opts.beforeEnd) await opts.beforeEnd();
  if (!ctx.res.writableEnded) ctx.res.end();
}
