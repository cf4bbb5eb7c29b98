/**
 * The containerd runtime backend: berth's containers as containerd containers and tasks in
 * one containerd namespace (default `berth`), driven over containerd's gRPC API (client.ts).
 *
 * - create: a containerd container (the OCI spec as built by berth, whose root.path is the
 *   root filesystem berth's image store mounted: no snapshotter; the log settings as labels,
 *   so a restarted daemon finds them) and its task (runc shim io.containerd.runc.v2) with
 *   FIFOs for stdio in `<execRoot>/containerd/<id>/`, read into the container's json-file
 *   log (stdio.ts);
 * - exits: one pending tasks.Wait per task; at the exit the output is drained into the log
 *   before the exit is reported (logCompleteAtExit);
 * - restore after a daemon restart: tasks.Get; a running task gets its FIFOs and its Wait
 *   back, a stopped one reports the exit containerd kept (until the task is deleted);
 * - exec: tasks.Exec + Start with FIFOs of its own, its Wait, DeleteProcess (exec.ts);
 * - kill, pause/resume, update (resources), resize, delete (task, then container).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { EventEmitter } from 'eventemitter3';
import {
  ConflictError,
  ConsoleLogger,
  InvalidParameterError,
  NotFoundError,
  errorKind,
  errorMessage,
  formatRfc3339Nano,
  nowNanos,
  type AttachSession,
  type AttachStreams,
  type ExecOptions,
  type ExecSession,
  type ExecStateInfo,
  type ExitInfo,
  type Logger,
  type OciResources,
  type RuntimeBackend,
  type RuntimeCreateOptions,
  type RuntimeDescription,
  type RuntimeFeatures,
  type RuntimeProcess,
  type RuntimeStateInfo,
} from '@berth/core';
import { oomCounterFile, oomKills } from './cgroup.js';
import { ContainerdClient, type ExitMessage } from './client.js';
import { ExecProcesses, type ExecEntry } from './exec.js';
import { exitInfoOf, resourcesAny, runcOptionsAny, runtimeStatusOf, specAny, type ProcessMessage } from './proto.js';
import { FifoReader, LogSink, forwardStdin, makeFifos, openFifoWriter } from './stdio.js';
import { labelsOf, stdioOf, type TaskLabels } from './labels.js';

/** A runtime this backend serves: the containerd shim that runs it and, for runc's shim, the runc binary. */
export interface ContainerdRuntimeConfig {
  /** containerd runtime (shim) name; default io.containerd.runc.v2. */
  runtimeType?: string;
  /** The OCI runtime binary the runc shim runs (default: runc from the shim's PATH). */
  binaryName?: string;
}

export interface ContainerdBackendOptions {
  /** containerd's gRPC socket. */
  address: string;
  /** containerd namespace of berth's containers. */
  namespace: string;
  /** The daemon's exec root; the backend keeps its FIFOs in `<execRoot>/containerd`. */
  execRoot: string;
  /** Runtime names (HostConfig.Runtime) this backend serves. */
  runtimes: Record<string, ContainerdRuntimeConfig>;
  logger?: Logger;
  /** How long an exit waits for the process's output to reach the log (default 2 s). */
  drainMs?: number;
}

export const DEFAULT_RUNTIME_TYPE = 'io.containerd.runc.v2';
const BACKEND_NAME = 'containerd';

interface Task {
  id: string;
  dir: string;
  labels: TaskLabels;
  sink: LogSink | null;
  readers: FifoReader[];
  stdin: net.Socket | null;
  /** Set once the exit has been reported (after the output drained). */
  exit?: ExitInfo;
  /** Cancels the pending Wait. */
  watch: AbortController;
  /** The memory cgroup's OOM counter file, found while the container runs (cgroup.ts). */
  oomFile: string | null;
  execs: Map<string, ExecEntry>;
}

export class ContainerdRuntimeBackend implements RuntimeBackend {
  readonly name = BACKEND_NAME;
  /** An exit is reported after the task's output has drained into the json-file. */
  readonly logCompleteAtExit = true;
  readonly root: string;
  readonly client: ContainerdClient;
  private readonly events = new EventEmitter<{ exit: [ExitInfo] }>();
  private readonly tasks = new Map<string, Task>();
  private readonly execs: ExecProcesses;
  private readonly warn: (msg: string, err?: unknown) => void;
  private readonly drainMs: number;
  private closed = false;

  constructor(private readonly opts: ContainerdBackendOptions) {
    this.root = path.join(path.resolve(opts.execRoot), 'containerd');
    fs.mkdirSync(this.root, { recursive: true, mode: 0o711 });
    this.client = new ContainerdClient({ address: opts.address, namespace: opts.namespace });
    const logger = opts.logger ?? new ConsoleLogger('warn', { component: 'runtime-containerd' });
    this.warn = (msg, err) => logger.warn(msg, err === undefined ? undefined : { error: errorMessage(err) });
    this.drainMs = opts.drainMs ?? 2000;
    this.execs = new ExecProcesses({ client: this.client, drainMs: this.drainMs, warn: this.warn, emitExit: (e) => this.events.emit('exit', e) });
  }

  runtimes(): RuntimeDescription[] {
    return Object.entries(this.opts.runtimes).map(([name, r]) => ({ name, path: r.binaryName ?? r.runtimeType ?? DEFAULT_RUNTIME_TYPE }));
  }

  features(): RuntimeFeatures {
    return { checkpoint: false, pause: true, exec: true, attach: true };
  }

  onExit(listener: (exit: ExitInfo) => void): () => void {
    const safe = (e: ExitInfo): void => {
      try {
        listener(e);
      } catch (err) {
        this.warn('exit listener failed', err);
      }
    };
    this.events.on('exit', safe);
    return () => {
      this.events.off('exit', safe);
    };
  }

  /** containerd answers on its socket (the plugin's check at load). */
  async ping(timeoutMs?: number): Promise<string> {
    return (await this.client.serverVersion(timeoutMs)).version;
  }

  private static checkId(id: string): void {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,75}$/.test(id)) throw new InvalidParameterError(`invalid container id ${JSON.stringify(id)}`);
  }

  private dirOf(id: string): string {
    return path.join(this.root, id);
  }

  // ---------------------------------------------------------------- create/start

  async create(opts: RuntimeCreateOptions): Promise<RuntimeProcess> {
    const { id } = opts;
    ContainerdRuntimeBackend.checkId(id);
    const rt = this.opts.runtimes[opts.runtime];
    if (!rt) throw new InvalidParameterError(`runtime ${opts.runtime} is not served by the containerd backend (known: ${Object.keys(this.opts.runtimes).sort().join(', ')})`);
    if (opts.checkpoint) throw new InvalidParameterError('the containerd backend cannot restore a checkpoint');
    const dir = this.dirOf(id);
    if (this.tasks.has(id) || fs.existsSync(dir)) throw new ConflictError(`container ${id} already exists in the runtime backend`);
    const labels = labelsOf(opts);
    const io = stdioOf(dir, '', labels);
    fs.mkdirSync(dir, { mode: 0o700 });
    let created = false;
    const t: Task = { id, dir, labels, sink: null, readers: [], stdin: null, watch: new AbortController(), execs: new Map(), oomFile: null };
    try {
      await makeFifos([io.stdout, io.stderr, io.stdin].filter((p): p is string => !!p));
      fs.mkdirSync(path.dirname(opts.log.path), { recursive: true });
      this.attachIo(t);
      await this.client.createContainer({ id, labels: labels.raw, runtime: rt.runtimeType ?? DEFAULT_RUNTIME_TYPE, spec: specAny(opts.spec) });
      created = true;
      const pid = await this.client.createTask({
        id,
        stdin: io.stdin ?? '',
        stdout: io.stdout,
        stderr: io.stderr ?? '',
        terminal: labels.tty,
        options: runcOptionsAny({ noPivotRoot: opts.noPivotRoot, ioUid: opts.rootUid, ioGid: opts.rootGid, binaryName: rt.binaryName }),
      });
      t.oomFile = oomCounterFile(pid);
      this.tasks.set(id, t);
      this.watch(t);
      if (labels.tty && opts.stdio.consoleSize) {
        const [height, width] = opts.stdio.consoleSize;
        await this.resize(id, { height, width }).catch((err: unknown) => this.warn(`initial resize ${id}`, err));
      }
      return { id, pid };
    } catch (err) {
      this.tasks.delete(id);
      t.watch.abort();
      this.detachIo(t);
      if (created) {
        await this.client.deleteTask(id).catch(() => undefined);
        await this.client.deleteContainer(id).catch((e: unknown) => this.warn(`cleanup after failed create of ${id}`, e));
      }
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Open the task's FIFOs (they exist): output into the log, a stdin writer that keeps stdin open. */
  private attachIo(t: Task): void {
    const io = stdioOf(t.dir, '', t.labels);
    t.sink = new LogSink(t.labels.logPath, { maxSize: t.labels.maxSize, maxFile: t.labels.maxFile, onError: (err) => this.warn(`log of ${t.id}`, err) });
    const out = FifoReader.open(io.stdout);
    t.readers.push(out);
    t.sink.follow(out, 'stdout');
    if (io.stderr) {
      const errR = FifoReader.open(io.stderr);
      t.readers.push(errR);
      t.sink.follow(errR, 'stderr');
    }
    if (io.stdin) t.stdin = openFifoWriter(io.stdin);
  }

  private detachIo(t: Task): void {
    for (const r of t.readers.splice(0)) r.close();
    t.sink?.close();
    t.sink = null;
    t.stdin?.destroy();
    t.stdin = null;
  }

  async start(id: string): Promise<void> {
    const t = this.get(id);
    if (t.exit) throw new ConflictError(`container ${id} has already exited; delete and create it again`);
    await this.client.start(id);
  }

  // ---------------------------------------------------------------- exits

  /** One pending Wait for the task's init; retried while containerd cannot be reached. */
  private watch(t: Task): void {
    const signal = t.watch.signal;
    void (async () => {
      for (let delay = 100; !signal.aborted && !this.closed; delay = Math.min(delay * 2, 5000)) {
        let exit: ExitMessage;
        try {
          exit = await this.client.wait(t.id, '', signal);
        } catch (err) {
          if (signal.aborted || this.closed) return;
          if (errorKind(err) === 'NotFound') {
            // The task is gone (deleted behind berth's back): its exit status went with it.
            this.warn(`task ${t.id} disappeared from containerd; its exit code is unknown`);
            await this.exited(t, { exit_status: 255, exited_at: null });
            return;
          }
          // Once per outage: the retries go on quietly (containerd restarting, its socket gone).
          if (delay === 100) this.warn(`waiting for task ${t.id}: retrying until containerd answers`, err);
          await new Promise((r) => setTimeout(r, delay));
          continue;
        }
        await this.exited(t, exit);
        return;
      }
    })();
  }

  /** The init exited: drain its output into the log, then report the exit once. */
  private async exited(t: Task, exit: ExitMessage): Promise<void> {
    if (t.exit || this.tasks.get(t.id) !== t) return;
    const info = exitInfoOf(t.id, exit.exit_status, exit.exited_at, now);
    const drained = await Promise.all(t.readers.map((r) => r.drained(this.drainMs)));
    if (drained.includes(false)) this.warn(`container ${t.id}: its output did not end within ${this.drainMs} ms of its exit (a process outside it holds its stdout/stderr?)`);
    if (this.tasks.get(t.id) !== t || t.exit) return;
    this.detachIo(t);
    // The cgroup still exists: the task is deleted after the exit is reported.
    t.exit = { ...info, oomKilled: oomKills(t.oomFile) > 0 };
    this.events.emit('exit', t.exit);
  }

  // ---------------------------------------------------------------- lookups

  private get(id: string): Task {
    const t = this.tasks.get(id);
    if (!t) throw new NotFoundError(`No such container: ${id}`);
    return t;
  }

  /** The task, when its init has not exited (Conflict otherwise, as dockerd says it). */
  private running(id: string): Task {
    const t = this.get(id);
    if (t.exit) throw new ConflictError(`Container ${id} is not running`);
    return t;
  }

  // ---------------------------------------------------------------- signals & state

  async kill(id: string, signal: number, opts: { all?: boolean } = {}): Promise<void> {
    const t = this.running(id);
    try {
      await this.client.kill(id, signal, { all: opts.all });
    } catch (err) {
      // Exited meanwhile ("process already finished"): not running, as dockerd says it.
      if (t.exit || errorKind(err) === 'NotFound') throw new ConflictError(`Container ${id} is not running`, { cause: err });
      throw err;
    }
  }

  async pause(id: string): Promise<void> {
    this.running(id);
    await this.client.pause(id);
  }

  async resume(id: string): Promise<void> {
    this.running(id);
    await this.client.resume(id);
  }

  async update(id: string, resources: OciResources): Promise<void> {
    this.running(id);
    await this.client.update(id, resourcesAny(resources));
  }

  async resize(id: string, size: { height: number; width: number }, execId?: string): Promise<void> {
    const t = this.get(id);
    if (execId && !t.execs.has(execId)) throw new NotFoundError(`No such exec instance: ${execId}`);
    const clamp = (n: number): number => Math.max(0, Math.min(1000, Math.floor(n)));
    await this.client.resizePty(id, { width: clamp(size.width), height: clamp(size.height) }, execId ?? '');
  }

  /** containerd's view of the task: null when neither task nor container exists. */
  private async taskOf(id: string): Promise<ProcessMessage | 'no-task' | null> {
    try {
      return await this.client.get(id);
    } catch (err) {
      if (errorKind(err) !== 'NotFound') throw err;
    }
    try {
      await this.client.getContainer(id);
      return 'no-task';
    } catch (err) {
      if (errorKind(err) === 'NotFound') return null;
      throw err;
    }
  }

  async state(id: string): Promise<RuntimeStateInfo | null> {
    const t = this.tasks.get(id);
    if (t?.exit) return { id, status: 'stopped', pid: 0, exit: t.exit };
    const p = await this.taskOf(id);
    if (p === null) return null;
    if (p === 'no-task') return { id, status: 'stopped', pid: 0 };
    const status = runtimeStatusOf(p.status);
    if (status === 'stopped') return { id, status, pid: 0, ...(t ? {} : { exit: exitInfoOf(id, p.exit_status, p.exited_at, now) }) };
    return { id, status, pid: p.pid };
  }

  /** After a daemon restart: follow a task containerd kept running; report one that exited meanwhile. */
  async restore(id: string): Promise<RuntimeStateInfo | null> {
    if (this.tasks.has(id)) return this.state(id);
    const p = await this.taskOf(id);
    if (p === null) return null;
    if (p === 'no-task') return { id, status: 'stopped', pid: 0 };
    const status = runtimeStatusOf(p.status);
    const container = await this.client.getContainer(id);
    const labels = labelsOf(container.labels);
    const t: Task = { id, dir: this.dirOf(id), labels, sink: null, readers: [], stdin: null, watch: new AbortController(), execs: new Map(), oomFile: null };
    if (status === 'stopped') {
      const exit = exitInfoOf(id, p.exit_status, p.exited_at, now);
      t.exit = exit;
      this.tasks.set(id, t);
      return { id, status, pid: 0, exit };
    }
    try {
      this.attachIo(t);
    } catch (err) {
      this.detachIo(t);
      this.warn(`container ${id}: cannot reopen its stdio FIFOs; its output is not logged any more`, err);
    }
    t.oomFile = oomCounterFile(p.pid);
    this.tasks.set(id, t);
    this.watch(t);
    return { id, status, pid: p.pid };
  }

  async list(): Promise<string[]> {
    const ids = new Set((await this.client.listContainers()).map((c) => c.id));
    return [...ids].sort();
  }

  // ---------------------------------------------------------------- delete

  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const t = this.tasks.get(id);
    const p = await this.taskOf(id);
    if (p !== null && p !== 'no-task') {
      const status = runtimeStatusOf(p.status);
      if ((status === 'running' || status === 'paused') && !t?.exit) {
        if (!opts.force) throw new ConflictError(`container ${id} is ${status}: stop it before removing or force remove`);
        await this.killAndWait(id);
      }
      await this.ignoreNotFound(this.client.deleteTask(id));
    }
    if (p !== null) await this.ignoreNotFound(this.client.deleteContainer(id));
    if (t) {
      t.watch.abort();
      this.execs.closeAll(t.execs);
      this.detachIo(t);
      this.tasks.delete(id);
    }
    fs.rmSync(this.dirOf(id), { recursive: true, force: true });
  }

  private async killAndWait(id: string): Promise<void> {
    await this.ignoreNotFound(this.client.kill(id, 9, { all: true }));
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 10_000);
    try {
      await this.client.wait(id, '', ac.signal);
    } catch (err) {
      if (errorKind(err) !== 'NotFound') this.warn(`waiting for the killed task ${id}`, err);
    } finally {
      clearTimeout(timer);
    }
  }

  private async ignoreNotFound(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (err) {
      if (errorKind(err) !== 'NotFound') throw err;
    }
  }

  // ---------------------------------------------------------------- stdio & exec

  /**
   * Input for the container's stdin (its output reaches clients through the log). When the
   * client's input ends or the session detaches, a StdinOnce container without a terminal
   * gets the end of its input, as dockerd closes it (moby's CloseStdin && !TTY).
   */
  async attach(id: string, streams: AttachStreams): Promise<AttachSession> {
    const t = this.running(id);
    return forwardStdin(streams.stdin ?? null, t.stdin, () => {
      if (t.labels.stdinOnce && !t.labels.tty) this.closeInput(t);
    });
  }

  /** End the container's input: our write end closed, then the shim's (CloseIO); the process reads to the end of the FIFO, then EOF. */
  private closeInput(t: Task): void {
    const w = t.stdin;
    if (!w) return;
    t.stdin = null;
    w.end(() => {
      void this.client.closeStdin(t.id).catch((err: unknown) => this.warn(`closing the stdin of ${t.id}`, err));
    });
  }

  async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
    const t = this.running(id);
    ContainerdRuntimeBackend.checkId(opts.execId);
    return this.execs.start(id, t.dir, t.execs, opts);
  }

  async restoreExec(id: string, execId: string): Promise<ExecStateInfo | null> {
    const t = this.tasks.get(id);
    if (!t) return null;
    return this.execs.restore(id, t.dir, t.execs, execId);
  }

  async deleteExec(id: string, execId: string): Promise<void> {
    const t = this.tasks.get(id);
    if (!t || t.execs.has(execId)) return; // gone with its container, or still running
    await this.execs.remove(id, t.dir, execId);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.tasks.values()) {
      t.watch.abort();
      this.execs.closeAll(t.execs);
      for (const r of t.readers.splice(0)) r.close();
      t.sink?.close();
      t.stdin?.destroy();
    }
    this.tasks.clear();
    this.events.removeAllListeners();
    this.client.close();
  }
}

function now(): string {
  return formatRfc3339Nano(nowNanos());
}
