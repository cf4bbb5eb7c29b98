/**
 * Attaching to a container through the engine (`engine.attach`), as moby's daemon/attach.go:
 * the replay of its log (`logs=1`), then its live output read by following the json-file log
 * (so nothing written between attach and start is lost) and its stdin through the runtime
 * backend's attach socket. Every write waits for the client (backpressure): a slow reader
 * slows the log reader down instead of piling output up in memory.
 *
 * The sessions of a container are tracked: a container that exits and is auto-removed
 * (`docker run --rm`) must not lose its log before the attached clients have read it, so the
 * engine's `beforeRemove` tap (`core:attach-drain`) waits for them (bounded). Resizing the
 * container's terminal (moby's daemon/resize.go) is here too.
 */
import { once } from 'node:events';
import { ConflictError } from './errors.js';
import type { ContainerLogs } from './logs/follow.js';
import type { LogMessage } from './logs/reader.js';
import type { AttachStreams } from './runtime.js';
import type { ContainerService } from './service.js';

export const ATTACH_DRAIN_TAP = 'core:attach-drain';

export interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Replay the container's log first (`logs=1`). */
  logs: boolean;
  /** Then stream its live output and input until it stops (`stream=1`). */
  stream: boolean;
}

/** The container service's part attach needs (ContainerService fits). */
export type AttachContainers = Pick<ContainerService, 'get' | 'backendOf' | 'emitEvent' | 'liveRecord'>;

export class ContainerAttach {
  private readonly active = new Map<string, Set<Promise<unknown>>>();

  constructor(
    private readonly containers: AttachContainers,
    private readonly logs: ContainerLogs,
  ) {}

  /**
   * Run an attach session on `io`; resolves when it ends: after the replay without `stream`,
   * else when the container stops (its output drained), the client detaches or `signal` aborts.
   * A container that does not run (created, or exited: `docker start -a`) is streamed from its
   * next start to its next exit, as dockerd attaches to its stream pipes. ConflictError for a
   * paused container, and for one that cannot start again (dead, being removed).
   */
  async attach(idOrName: string, o: AttachOptions, io: AttachStreams, signal: AbortSignal): Promise<void> {
    const rec = this.containers.get(idOrName);
    if (o.logs && (io.stdout || io.stderr)) {
      for await (const m of this.logs.read(rec.ID, { stdout: !!io.stdout, stderr: !!io.stderr, signal })) {
        if (!(await writeEntry(io, m, signal))) return;
      }
    }
    if (!o.stream || signal.aborted) return;
    const now = this.containers.get(rec.ID);
    if (!now.State.Running && now.State.Status !== 'created' && now.State.Status !== 'exited') throw new ConflictError('You cannot attach to a stopped container, start it first');
    if (now.State.Paused) throw new ConflictError('You cannot attach to a paused container, unpause it first');
    this.containers.emitEvent(this.containers.liveRecord(rec.ID), 'attach');
    const session = new AbortController();
    const stopSession = () => session.abort();
    if (signal.aborted) session.abort();
    else signal.addEventListener('abort', stopSession);
    const done = this.logs.exited(rec.ID, session.signal, true);
    const tasks: Promise<unknown>[] = [];
    if (io.stdout || io.stderr) {
      const output = (async () => {
        for await (const m of this.logs.follow(rec.ID, { stdout: !!io.stdout, stderr: !!io.stderr, signal: session.signal })) {
          if (!(await writeEntry(io, m, session.signal))) return;
        }
      })();
      this.track(rec.ID, output);
      tasks.push(output);
    }
    if (o.stdin && io.stdin) tasks.push(this.forwardStdin(rec.ID, io.stdin, session.signal, done));
    await Promise.race([done, new Promise<void>((r) => session.signal.addEventListener('abort', () => r()))]);
    // The output task ends after the drain; the stdin task with the exit.
    await Promise.allSettled(tasks);
    signal.removeEventListener('abort', stopSession);
    session.abort();
  }

  /** Resize the container's terminal (moby's daemon/resize.go): 409 when it does not run or its backend cannot. */
  async resize(idOrName: string, size: { height: number; width: number }): Promise<void> {
    const rec = this.containers.get(idOrName);
    if (!rec.State.Running) throw new ConflictError(`Container ${rec.ID} is not running`);
    const backend = this.containers.backendOf(rec);
    if (!backend.resize) throw new ConflictError(`runtime backend ${backend.name} cannot resize`);
    await backend.resize(rec.ID, size);
  }

  /** Attach sessions of the container streaming its output now. */
  sessions(containerId: string): number {
    return this.active.get(containerId)?.size ?? 0;
  }

  /** Wait for the container's sessions to have written its output, at most `timeoutMs`. */
  async drain(containerId: string, timeoutMs: number): Promise<void> {
    const set = this.active.get(containerId);
    if (!set || set.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...set]), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    if (timer) clearTimeout(timer);
  }

  private track(containerId: string, p: Promise<unknown>): void {
    let set = this.active.get(containerId);
    if (!set) this.active.set(containerId, (set = new Set()));
    set.add(p);
    const drop = () => {
      set.delete(p);
      if (set.size === 0 && this.active.get(containerId) === set) this.active.delete(containerId);
    };
    p.then(drop, drop);
  }

  /** Input: the runtime backend's attach socket, once the container runs. */
  private async forwardStdin(id: string, stdin: NodeJS.ReadableStream, signal: AbortSignal, done: Promise<void>): Promise<void> {
    let over = false;
    void done.then(() => (over = true));
    let cur = this.containers.get(id);
    while (!cur.State.Running && !signal.aborted && !over) {
      if (cur.State.Status !== 'created' && cur.State.Status !== 'exited') return;
      await new Promise((r) => setTimeout(r, 20));
      cur = this.containers.get(id);
    }
    if (signal.aborted || over) return;
    const backend = this.containers.backendOf(cur);
    if (!backend.attach) return;
    const s = await backend.attach(id, { stdin, stdout: null, stderr: null });
    signal.addEventListener('abort', () => s.detach());
    await Promise.race([s.done, done]);
    s.detach();
  }
}

/**
 * Write one log entry to its stream and wait until the client has taken it when the stream is
 * full (its 'drain'). False when the session is over (`signal` aborted, the stream closed or failed).
 */
async function writeEntry(io: AttachStreams, m: LogMessage, signal: AbortSignal): Promise<boolean> {
  const target = m.stream === 'stderr' ? io.stderr : io.stdout;
  if (!target) return !signal.aborted;
  if (target.write(m.line)) return !signal.aborted;
  const closed = new AbortController();
  const onAbort = () => closed.abort();
  signal.addEventListener('abort', onAbort);
  try {
    const drained = once(target, 'drain', { signal: closed.signal }).then(
      () => true,
      () => false,
    );
    const gone = once(target, 'close', { signal: closed.signal }).then(
      () => false,
      () => false,
    );
    return await Promise.race([drained, gone]);
  } finally {
    signal.removeEventListener('abort', onAbort);
    closed.abort();
  }
}
