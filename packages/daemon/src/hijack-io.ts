/**
 * The I/O of a hijacked session (attach, exec start): stdout/stderr framed with stdcopy
 * headers (raw for a TTY) with the client's backpressure, stdin filtered for the detach keys,
 * and `hijackSession()`, the one way both routes take the connection over. Every stream here
 * is owned by its request (request-streams.ts): its errors end the session, never the daemon.
 */
import { Transform, Writable, finished, type Duplex, type TransformCallback } from 'node:stream';
import { InvalidParameterError } from '@berth/core';
import type { AttachStreams } from '@berth/core';
import { DEFAULT_DETACH_KEYS, frame, parseDetachKeys } from './format.js';
import type { RequestContext } from './router.js';
import { versionLessThan } from './version.js';

/** Writable that frames each chunk with the stdcopy header (or passes it raw for a TTY). */
export function framedWriter(out: Duplex | NodeJS.WritableStream, stream: 1 | 2, raw: boolean): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if ((out as Duplex).destroyed || (out as Duplex).writableEnded) return cb();
      const ok = out.write(raw ? chunk : frame(stream, chunk));
      if (ok) cb();
      else out.once('drain', () => cb());
    },
  });
}

/**
 * End the framed writers and wait until what they hold is on the socket (or the socket is
 * gone): a framed writer keeps chunks while the client reads slowly, and the handler's
 * return ends the socket, which would drop them.
 */
export async function flushWriters(sock: Duplex, ...writers: (Writable | null)[]): Promise<void> {
  const live = writers.filter((w): w is Writable => w !== null && !w.writableFinished);
  if (live.length === 0 || sock.destroyed) return;
  await new Promise<void>((resolve) => {
    let left = live.length;
    const done = () => {
      sock.off('close', done);
      resolve();
    };
    sock.once('close', done);
    for (const w of live) {
      finished(w, () => {
        if (--left === 0) done();
      });
      w.end();
    }
  });
}

/**
 * Filters stdin for the detach key sequence; calls `onDetach` and ends when it is typed.
 * Whatever arrives after the sequence (in the same chunk or later) is dropped: the session
 * is over, and a push after the end would be an error.
 */
export class DetachFilter extends Transform {
  private matched = 0;
  private detached = false;
  constructor(
    private readonly keys: Buffer,
    private readonly onDetach: () => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.detached) return cb();
    if (this.keys.length === 0) return cb(null, chunk);
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.matched]) {
        this.matched++;
        if (this.matched === this.keys.length) {
          this.detached = true;
          if (out.length) this.push(Buffer.from(out));
          this.push(null);
          this.onDetach();
          return cb();
        }
        continue;
      }
      if (this.matched > 0) {
        out.push(...this.keys.subarray(0, this.matched));
        this.matched = 0;
      }
      if (b === this.keys[0]) this.matched = 1;
      else out.push(b);
    }
    cb(null, out.length ? Buffer.from(out) : undefined);
  }
}

export function detachKeysFrom(raw: string | null): Buffer {
  try {
    return parseDetachKeys(raw === null || raw === '' ? DEFAULT_DETACH_KEYS : raw);
  } catch (err) {
    throw new InvalidParameterError(`Invalid detach keys (${raw}) provided: ${(err as Error).message}`);
  }
}

/** The content type of an attach/exec/logs stream: raw for a TTY or before API 1.42. */
export function streamContentType(version: string, tty: boolean): string {
  if (tty || versionLessThan(version, '1.42')) return 'application/vnd.docker.raw-stream';
  return 'application/vnd.docker.multiplexed-stream';
}

export interface HijackSessionOptions {
  tty: boolean;
  /** Forward the client's input as stdin, filtered for these detach keys; null: input is discarded. */
  stdin: Buffer | null;
  stdout: boolean;
  stderr: boolean;
}

/**
 * Take the connection over (a long-lived request) and run the session: `run` gets the io and
 * a signal that aborts when the client detaches or goes away; once it returns, what the
 * writers hold is flushed. Every stream is owned by the request.
 */
export async function hijackSession(
  ctx: RequestContext,
  o: HijackSessionOptions,
  run: (io: AttachStreams, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  ctx.streaming();
  const sock = ctx.hijack(streamContentType(ctx.version, o.tty));
  const detached = new AbortController();
  const onAbort = () => detached.abort();
  if (ctx.signal.aborted) onAbort();
  else ctx.signal.addEventListener('abort', onAbort);
  let stdin: NodeJS.ReadableStream | null = null;
  if (o.stdin) {
    // A client that goes away closes the process's stdin (it reads EOF), as dockerd does.
    stdin = sock.pipe(ctx.own(new DetachFilter(o.stdin, () => detached.abort()), 'stdin detach filter', 'end'));
  } else {
    sock.resume();
  }
  const stdout = o.stdout ? ctx.own(framedWriter(sock, 1, o.tty), 'stdout') : null;
  const stderr = o.stderr ? ctx.own(framedWriter(sock, o.tty ? 1 : 2, o.tty), 'stderr') : null;
  try {
    await run({ stdin, stdout, stderr }, detached.signal);
    await flushWriters(sock, stdout, stderr);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
