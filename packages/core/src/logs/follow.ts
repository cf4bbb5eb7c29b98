/**
 * A container's log through the engine (`engine.logs`): `docker logs` with or without
 * `--follow`, and the live output an attach session streams. Following ends with the
 * container: at the end of the log when the runtime backend says its log is complete at the
 * exit (RuntimeBackend.logCompleteAtExit), otherwise once the log has been quiet for
 * `drainMs` after the exit (at most `maxDrainMs`). Reading itself is readLogs (reader.ts).
 */
import { existsSync } from 'node:fs';
import type { ContainerRecord } from '../types.js';
import type { ContainerService } from '../service.js';
import { readLogs, type LogMessage, type LogTime } from './reader.js';

export interface ContainerLogOptions {
  follow?: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Only entries at or after / at or before this time (ns bigint, Unix seconds, RFC 3339); absent = no bound. */
  since?: LogTime;
  until?: LogTime;
  /** The last n entries; absent or < 0 = all. */
  tail?: number;
  signal: AbortSignal;
}

export interface ContainerLogsOptions {
  /** After the exit, a follow of a backend without a complete log stops once no entry came for this long (default 200 ms). */
  drainMs?: number;
  /** …and at the latest this long after the exit (default 5 s). */
  maxDrainMs?: number;
}

/** The container service's part the log reader needs (ContainerService fits). */
export type LogContainers = Pick<ContainerService, 'get' | 'wait' | 'backendOf'>;

export class ContainerLogs {
  readonly drainMs: number;
  private readonly maxDrainMs: number;

  constructor(
    private readonly containers: LogContainers,
    opts: ContainerLogsOptions = {},
  ) {
    this.drainMs = opts.drainMs ?? 200;
    this.maxDrainMs = opts.maxDrainMs ?? 5000;
  }

  /**
   * Resolves when the container (running now or soon) stops, or `signal` aborts; never rejects.
   * `nextExit`: a stopped container too is waited for until it has run and stopped again (attach).
   */
  exited(id: string, signal: AbortSignal, nextExit = false): Promise<void> {
    const rec = this.containers.get(id);
    const condition = nextExit || rec.State.Running || rec.State.Status === 'created' ? 'next-exit' : 'not-running';
    return this.containers.wait(id, condition, { signal }).then(
      () => undefined,
      () => undefined,
    );
  }

  /**
   * `docker logs`: the entries of the container's log; with `follow` on a running container,
   * then the new ones until it stops (or `signal` aborts). A container without a log yields nothing.
   */
  async *read(idOrName: string, o: ContainerLogOptions): AsyncGenerator<LogMessage> {
    const rec = this.containers.get(idOrName);
    if (!rec.LogPath) return;
    const follow = !!o.follow && rec.State.Running;
    const stop = new AbortController();
    const drain = new AbortController();
    const onAbort = () => stop.abort();
    if (o.signal.aborted) stop.abort();
    else o.signal.addEventListener('abort', onAbort);
    if (follow) this.endAtExit(rec, stop, drain, () => Date.now());
    try {
      yield* this.quiet(
        readLogs(rec.LogPath, {
          follow,
          stdout: o.stdout,
          stderr: o.stderr,
          ...(o.since !== undefined ? { since: o.since } : {}),
          ...(o.until !== undefined ? { until: o.until } : {}),
          ...(o.tail !== undefined && o.tail >= 0 ? { tail: o.tail } : {}),
          signal: stop.signal,
          drain: drain.signal,
        }),
        stop.signal,
      );
    } finally {
      o.signal.removeEventListener('abort', onAbort);
      stop.abort();
    }
  }

  /**
   * The container's output from now on (an attach session): nothing written after the call is
   * lost, also when the container starts only later (again: `docker start -a`). Ends after its
   * next exit as described at the top, or when `signal` aborts.
   */
  async *follow(idOrName: string, o: { stdout: boolean; stderr: boolean; signal: AbortSignal }): AsyncGenerator<LogMessage> {
    const rec = this.containers.get(idOrName);
    if (!rec.LogPath) return;
    const since = Date.now() / 1000;
    const stop = new AbortController();
    const drain = new AbortController();
    const onAbort = () => stop.abort();
    if (o.signal.aborted) stop.abort();
    else o.signal.addEventListener('abort', onAbort);
    let lastEntry = Date.now();
    this.endAtExit(rec, stop, drain, () => lastEntry, true);
    try {
      // readLogs reads a file that exists when it opens from its start, but may skip what a
      // file that appears while it follows got before it noticed: open only once it exists.
      while (!stop.signal.aborted && !drain.signal.aborted && !existsSync(rec.LogPath)) await new Promise((r) => setTimeout(r, 10));
      for await (const m of this.quiet(readLogs(rec.LogPath, { follow: true, since, stdout: o.stdout, stderr: o.stderr, signal: stop.signal, drain: drain.signal }), stop.signal)) {
        lastEntry = Date.now();
        yield m;
      }
    } finally {
      o.signal.removeEventListener('abort', onAbort);
      stop.abort();
    }
  }

  /**
   * After the exit: a backend whose log is complete lets the read end at the end of the log
   * (`drain`); otherwise `stop` once the log has been quiet for drainMs (at most maxDrainMs).
   */
  private endAtExit(rec: ContainerRecord, stop: AbortController, drain: AbortController, lastEntry: () => number, nextExit = false): void {
    const complete = this.containers.backendOf(rec).logCompleteAtExit === true;
    void this.exited(rec.ID, stop.signal, nextExit).then(() => {
      if (stop.signal.aborted) return;
      if (complete) {
        drain.abort();
        return;
      }
      const exitAt = Date.now();
      const poll = setInterval(() => {
        const now = Date.now();
        if (now - Math.max(lastEntry(), exitAt) >= this.drainMs || now - exitAt > this.maxDrainMs) stop.abort();
      }, Math.max(5, Math.min(25, this.drainMs)));
      stop.signal.addEventListener('abort', () => clearInterval(poll));
    });
  }

  /** The entries of `it`; a log removed under the read, or a read stopped by `stop`, just ends. */
  private async *quiet(it: AsyncGenerator<LogMessage>, stop: AbortSignal): AsyncGenerator<LogMessage> {
    try {
      yield* it;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || stop.aborted) return;
      throw err;
    }
  }
}
