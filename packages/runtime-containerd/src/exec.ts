/**
 * Exec processes of the containerd backend: tasks.Exec with the OCI process as JSON, FIFOs of
 * their own (`exec-<id>-stdout` … in the container's directory) piped to the client's
 * streams, tasks.Start, one pending tasks.Wait; at the exit the output is drained to the
 * client, the process deleted from containerd (DeleteProcess) and its FIFOs removed before
 * `exited` resolves. After a daemon restart `restore` follows an exec containerd still runs
 * (its output is read and dropped: its client is gone) or reports the exit it kept.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';
import { ConflictError, errorKind, formatRfc3339Nano, nowNanos, type ExecOptions, type ExecSession, type ExecStateInfo, type ExitInfo } from '@berth/core';
import type { ContainerdClient, ExitMessage } from './client.js';
import { stdioOf, type StdioPaths } from './labels.js';
import { exitInfoOf, processAny, runtimeStatusOf } from './proto.js';
import { FifoReader, makeFifos, openFifoWriter } from './stdio.js';

export interface ExecEntry {
  execId: string;
  io: StdioPaths;
  readers: FifoReader[];
  stdin: net.Socket | null;
  watch: AbortController;
}

export interface ExecDeps {
  client: ContainerdClient;
  drainMs: number;
  warn: (msg: string, err?: unknown) => void;
  emitExit: (exit: ExitInfo) => void;
}

const now = (): string => formatRfc3339Nano(nowNanos());

export class ExecProcesses {
  constructor(private readonly d: ExecDeps) {}

  async start(id: string, dir: string, execs: Map<string, ExecEntry>, opts: ExecOptions): Promise<ExecSession> {
    const { execId } = opts;
    if (execs.has(execId)) throw new ConflictError(`exec ${execId} already runs in container ${id}`);
    const streams = opts.streams;
    const io = stdioOf(dir, execId, { tty: opts.tty, openStdin: opts.openStdin && !!streams.stdin });
    const e: ExecEntry = { execId, io, readers: [], stdin: null, watch: new AbortController() };
    execs.set(execId, e);
    let added = false;
    try {
      await makeFifos([io.stdout, io.stderr, io.stdin].filter((p): p is string => !!p));
      this.openOutput(e, streams.stdout ?? null, streams.stderr ?? null);
      await this.d.client.exec({ id, execId, stdin: io.stdin ?? '', stdout: io.stdout, stderr: io.stderr ?? '', terminal: opts.tty, spec: processAny(opts.process) });
      added = true;
      const waited = this.d.client.wait(id, execId, e.watch.signal);
      // Held until `exited` is read: a failed start below must not leave an unhandled rejection.
      waited.catch(() => undefined);
      const pid = await this.d.client.start(id, execId);
      // Input only now: the shim has its end of the stdin FIFO open, so what the client sent
      // (and its end, which closes the process's stdin once the shim has copied everything) is not lost.
      if (io.stdin && streams.stdin) this.pipeStdin(id, e, io.stdin, streams.stdin);
      const exited = waited.then(
        (exit) => this.finish(id, execs, e, exit),
        async (err: unknown) => {
          // Aborted: the backend closes (a restarted daemon follows the exec from its FIFOs).
          const closing = e.watch.signal.aborted;
          if (!closing) this.d.warn(`waiting for exec ${execId} of ${id}`, err);
          await this.cleanup(id, execs, e, !closing);
          throw err;
        },
      );
      // A signal for the exec's process only (a health probe past its timeout).
      const kill = (signal: number): Promise<void> => this.d.client.kill(id, signal, { execId });
      return { pid, exited, kill };
    } catch (err) {
      e.watch.abort();
      if (added) await this.d.client.deleteProcess(id, execId).catch(() => undefined);
      await this.cleanup(id, execs, e);
      throw err;
    }
  }

  /** The client's input into the exec's stdin; at its end our write end closes, then the shim's (CloseIO). */
  private pipeStdin(id: string, e: ExecEntry, fifo: string, input: NodeJS.ReadableStream): void {
    const w = openFifoWriter(fifo);
    e.stdin = w;
    input.on('data', (chunk: Buffer | string) => w.write(chunk));
    input.on('end', () => {
      w.end(() => {
        void this.d.client.closeStdin(id, e.execId).catch(() => undefined);
      });
    });
  }

  private openOutput(e: ExecEntry, stdout: NodeJS.WritableStream | null, stderr: NodeJS.WritableStream | null): void {
    for (const [fifo, target] of [
      [e.io.stdout, stdout],
      [e.io.stderr, stderr],
    ] as const) {
      if (!fifo || !fs.existsSync(fifo)) continue;
      const r = FifoReader.open(fifo);
      e.readers.push(r);
      if (target) r.socket.pipe(target as NodeJS.WritableStream & import('node:stream').Writable, { end: false });
      else r.socket.resume();
    }
  }

  /**
   * The exec exited: its output drained to the client, its FIFOs removed, the exit reported.
   * containerd keeps the exit until `remove` (the engine's deleteExec, once it has saved it),
   * so a daemon that dies in between still finds it.
   */
  private async finish(id: string, execs: Map<string, ExecEntry>, e: ExecEntry, exit: ExitMessage): Promise<number> {
    const drained = await Promise.all(e.readers.map((r) => r.drained(this.d.drainMs)));
    if (drained.includes(false)) this.d.warn(`exec ${e.execId} of ${id}: its output did not end within ${this.d.drainMs} ms of its exit`);
    await this.cleanup(id, execs, e);
    this.d.emitExit(exitInfoOf(id, exit.exit_status, exit.exited_at, now, e.execId));
    return exit.exit_status;
  }

  private async cleanup(_id: string, execs: Map<string, ExecEntry>, e: ExecEntry, removeFifos = true): Promise<void> {
    for (const r of e.readers.splice(0)) r.close();
    e.stdin?.destroy();
    e.stdin = null;
    if (execs.get(e.execId) === e) execs.delete(e.execId);
    if (removeFifos) for (const p of [e.io.stdin, e.io.stdout, e.io.stderr]) if (p) fs.rmSync(p, { force: true });
  }

  /** After a daemon restart: an exec containerd still runs is followed (its output dropped); one that ended reports its exit. */
  async restore(id: string, dir: string, execs: Map<string, ExecEntry>, execId: string): Promise<ExecStateInfo | null> {
    let p;
    try {
      p = await this.d.client.get(id, execId);
    } catch (err) {
      if (errorKind(err) === 'NotFound') return null;
      throw err;
    }
    const io = stdioOf(dir, execId, { tty: false, openStdin: true });
    const e: ExecEntry = { execId, io, readers: [], stdin: null, watch: new AbortController() };
    if (runtimeStatusOf(p.status) === 'stopped') {
      await this.cleanup(id, execs, e);
      const exit = exitInfoOf(id, p.exit_status, p.exited_at, now, execId);
      return { status: 'stopped', pid: 0, exitCode: exit.exitCode, exitedAt: exit.exitedAt };
    }
    execs.set(execId, e);
    try {
      this.openOutput(e, null, null);
    } catch (err) {
      this.d.warn(`exec ${execId} of ${id}: cannot reopen its output FIFOs`, err);
    }
    void this.d.client.wait(id, execId, e.watch.signal).then(
      (exit) => this.finish(id, execs, e, exit),
      () => this.cleanup(id, execs, e, false),
    );
    return { status: 'running', pid: p.pid };
  }

  /** The engine has saved the exec's exit: containerd may forget the process. */
  async remove(id: string, dir: string, execId: string): Promise<void> {
    try {
      await this.d.client.deleteProcess(id, execId);
    } catch (err) {
      if (errorKind(err) !== 'NotFound') throw err;
    }
    for (const p of Object.values(stdioOf(dir, execId, { tty: false, openStdin: true }))) fs.rmSync(p, { force: true });
  }

  /** Stop following every exec of a container: its removal (FIFOs go with its directory) or the backend's close. */
  closeAll(execs: Map<string, ExecEntry>): void {
    for (const e of execs.values()) {
      e.watch.abort();
      for (const r of e.readers.splice(0)) r.close();
      e.stdin?.destroy();
    }
    execs.clear();
  }
}
