/**
 * FakeRuntime: a RuntimeBackend for unit tests (no root, no processes). Containers "run"
 * in memory; exits are scripted (exit code, run time, ignored signals, OOM) or triggered by
 * hand; any step can be made to fail or to take time; every call is recorded. Checkpoint
 * writes `<path>/fake-checkpoint.json` (the container's process) and a create with
 * `checkpoint` reads it back and is running at once, as a restore; `features` (per runtime
 * with `runtimeFeatures`) says whether it may.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  AttachSession,
  AttachStreams,
  ExecOptions,
  ExecSession,
  ExecStateInfo,
  ExitInfo,
  OciResources,
  OciSpec,
  RuntimeBackend,
  RuntimeDescription,
  RuntimeCreateOptions,
  RuntimeFeatures,
  RuntimeProcess,
  RuntimeStateInfo,
  RuntimeStatus,
} from '@berth/core';
import { ConflictError, formatRfc3339Nano, InvalidParameterError, JsonFileWriter, NotFoundError, SystemClock } from '@berth/core';

/** The file a FakeRuntime checkpoint writes into its directory (and a restore reads). */
export const FAKE_CHECKPOINT_FILE = 'fake-checkpoint.json';

export type FakeStep = 'create' | 'start' | 'kill' | 'pause' | 'resume' | 'delete' | 'state' | 'restore' | 'list' | 'exec' | 'attach' | 'update' | 'restoreExec' | 'deleteExec' | 'checkpoint';

export interface FakeScript {
  /** Exit code when the container ends by itself (default 0). */
  exitCode?: number;
  /** Milliseconds the container runs after start before it exits by itself; undefined: until killed. */
  runFor?: number;
  /** Signals the container ignores (e.g. [15] for a process that ignores SIGTERM). */
  ignoreSignals?: number[];
  /** Report the exit as OOM-killed. */
  oomKilled?: boolean;
  /** Exit code of exec processes (default 0) and how long they run (default 0 ms). */
  execExitCode?: number;
  execRunFor?: number;
  /** What exec processes write to their stdout as they start. */
  execOutput?: string;
  /**
   * Output (stdout lines, without "\n") written to the container's json-file log
   * (RuntimeCreateOptions.log.path): the first half in small bursts while it runs, the rest
   * when it exits by itself, in the same tick as the exit event (as the OCI backend converts
   * the last output and then reports the exit).
   */
  output?: string[];
}

export interface FakeCall {
  method: FakeStep | 'onExit' | 'features' | 'close' | 'resize';
  id?: string;
  args: unknown[];
}

export interface FakeContainer {
  id: string;
  status: RuntimeStatus;
  pid: number;
  spec: OciSpec;
  options: RuntimeCreateOptions;
  exit?: ExitInfo;
  timer?: NodeJS.Timeout;
  pendingSignal?: number;
  /** Created from this checkpoint dir (a restore): running since its create. */
  restoredFrom?: string;
}

export interface FakeRuntimeOptions {
  name?: string;
  /** Default script for every container (per-container scripts override). */
  script?: FakeScript;
  /** Delay, in ms, of each step. */
  delays?: Partial<Record<FakeStep, number>>;
  /** The runtimes this backend serves (HostConfig.Runtime selects it by their names); default: one named as the backend. */
  runtimes?: Array<string | RuntimeDescription>;
  features?: Partial<RuntimeFeatures>;
  /** Per runtime name, over `features` (e.g. `{ criu: { checkpoint: true } }`: only that runtime can checkpoint). */
  runtimeFeatures?: Record<string, Partial<RuntimeFeatures>>;
  /** RuntimeBackend.logCompleteAtExit (default false). */
  logCompleteAtExit?: boolean;
}

interface Failure {
  error: Error;
  times: number;
  match?: (id: string | undefined) => boolean;
}

const clock = new SystemClock();

export class FakeRuntime implements RuntimeBackend {
  readonly name: string;
  readonly calls: FakeCall[] = [];
  readonly containers = new Map<string, FakeContainer>();
  private readonly listeners = new Set<(e: ExitInfo) => void>();
  private readonly failures = new Map<FakeStep, Failure[]>();
  private readonly scripts = new Map<string, FakeScript>();
  private readonly delays: Partial<Record<FakeStep, number>>;
  private defaultScript: FakeScript;
  private nextPid = 1000;
  /** Every exec process by exec ID (its container, pid, and exit once over) until deleteExec or the container's delete. */
  private readonly execStates = new Map<string, { id: string; pid: number; exit?: ExitInfo }>();
  private readonly execsRunning = new Set<string>();
  private readonly runtimeList: RuntimeDescription[];
  private readonly featureSet: RuntimeFeatures;
  private readonly runtimeFeatures: Record<string, Partial<RuntimeFeatures>>;

  readonly logCompleteAtExit: boolean;

  constructor(opts: FakeRuntimeOptions = {}) {
    this.name = opts.name ?? 'fake';
    this.logCompleteAtExit = opts.logCompleteAtExit ?? false;
    this.defaultScript = { ...(opts.script ?? {}) };
    this.delays = { ...(opts.delays ?? {}) };
    this.runtimeList = (opts.runtimes ?? [this.name]).map((r) => (typeof r === 'string' ? { name: r } : { ...r }));
    this.featureSet = { checkpoint: false, pause: true, exec: true, attach: false, ...(opts.features ?? {}) };
    this.runtimeFeatures = { ...(opts.runtimeFeatures ?? {}) };
  }

  // ------------------------------------------------------------ scripting

  /** Script one container (by ID) or, with '*', every container. */
  script(id: string | '*', script: FakeScript): this {
    if (id === '*') this.defaultScript = { ...this.defaultScript, ...script };
    else this.scripts.set(id, { ...(this.scripts.get(id) ?? {}), ...script });
    return this;
  }

  /** Make `step` fail (`times` times, default once; Infinity for always), optionally only for one container. */
  fail(step: FakeStep, error: Error | string, opts: { times?: number; id?: string } = {}): this {
    const list = this.failures.get(step) ?? [];
    list.push({
      error: typeof error === 'string' ? new Error(error) : error,
      times: opts.times ?? 1,
      ...(opts.id ? { match: (id) => id === opts.id } : {}),
    });
    this.failures.set(step, list);
    return this;
  }

  delay(step: FakeStep, ms: number): this {
    this.delays[step] = ms;
    return this;
  }

  private scriptOf(id: string): FakeScript {
    return { ...this.defaultScript, ...(this.scripts.get(id) ?? {}) };
  }

  private async step(step: FakeStep, id: string | undefined, args: unknown[]): Promise<void> {
    this.calls.push({ method: step, ...(id !== undefined ? { id } : {}), args });
    const ms = this.delays[step];
    if (ms) await new Promise((r) => setTimeout(r, ms));
    const list = this.failures.get(step);
    const f = list?.find((x) => x.times > 0 && (!x.match || x.match(id)));
    if (f) {
      f.times--;
      throw f.error;
    }
  }

  /** Calls of one method (optionally for one container). */
  callsOf(method: FakeCall['method'], id?: string): FakeCall[] {
    return this.calls.filter((c) => c.method === method && (id === undefined || c.id === id));
  }

  // ------------------------------------------------------------ manual control

  /** Make a running container exit now, as if its process ended. */
  exit(id: string, exitCode: number, opts: { oomKilled?: boolean; silent?: boolean } = {}): void {
    const c = this.containers.get(id);
    if (!c || (c.status !== 'running' && c.status !== 'paused')) return;
    if (c.timer) clearTimeout(c.timer);
    c.status = 'stopped';
    c.pid = 0;
    c.exit = { id, exitCode, oomKilled: !!opts.oomKilled, exitedAt: formatRfc3339Nano(clock.nowNano()) };
    if (!opts.silent) this.emitExit(c.exit);
  }

  /** Forget a container entirely (restore then answers null). */
  forget(id: string): void {
    const c = this.containers.get(id);
    if (c?.timer) clearTimeout(c.timer);
    this.containers.delete(id);
  }

  /**
   * Hold a container the engine never created, as a backend does after a daemon crash between
   * its create and the store's write (an orphan). Status `running` by default.
   */
  hold(id: string, opts: { status?: RuntimeStatus; spec?: OciSpec } = {}): FakeContainer {
    if (this.containers.has(id)) throw new Error(`container ${id} already exists in ${this.name}`);
    const spec = opts.spec ?? { ociVersion: '1.2.0' };
    const status = opts.status ?? 'running';
    const c: FakeContainer = {
      id,
      status,
      pid: status === 'stopped' ? 0 : this.nextPid++,
      spec,
      options: {
        id,
        spec,
        runtime: this.runtimeList[0]!.name,
        runtimeArgs: [],
        noPivotRoot: false,
        rootUid: 0,
        rootGid: 0,
        stdio: { tty: false, openStdin: false, stdinOnce: false },
        log: { path: '' },
      },
    };
    this.containers.set(id, c);
    return c;
  }

  emitExit(e: ExitInfo): void {
    const ex = e.execId ? this.execStates.get(e.execId) : undefined;
    if (ex) ex.exit = { ...e };
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  listenerCount(): number {
    return this.listeners.size;
  }

  // ------------------------------------------------------------ RuntimeBackend

  runtimes(): RuntimeDescription[] {
    return this.runtimeList.map((r) => ({ ...r }));
  }

  async create(opts: RuntimeCreateOptions): Promise<RuntimeProcess> {
    await this.step('create', opts.id, [opts]);
    if (this.containers.has(opts.id)) throw new Error(`container ${opts.id} already exists in ${this.name}`);
    if (opts.checkpoint) this.readCheckpoint(opts.runtime, opts.checkpoint.path);
    const pid = this.nextPid++;
    const c: FakeContainer = { id: opts.id, status: 'created', pid, spec: opts.spec, options: opts };
    this.containers.set(opts.id, c);
    if (opts.checkpoint) {
      // A restore: running at once (as the OCI backend's conmon --restore leaves it).
      c.restoredFrom = opts.checkpoint.path;
      this.run(c);
    }
    return { id: opts.id, pid };
  }

  async start(id: string): Promise<void> {
    await this.step('start', id, []);
    const c = this.containers.get(id);
    if (!c) throw new Error(`container ${id} does not exist`);
    if (c.restoredFrom && c.status === 'running') return; // restored: running since its create
    if (c.status !== 'created') throw new Error(`cannot start a container that is ${c.status}`);
    this.run(c);
  }

  /** The container's process runs: its scripted output and exit. */
  private run(c: FakeContainer): void {
    const id = c.id;
    c.status = 'running';
    const s = this.scriptOf(id);
    const out = s.output ?? [];
    const half = Math.floor(out.length / 2);
    const writeLines = (lines: string[]): void => {
      if (!lines.length || !c.options.log.path) return;
      const w = new JsonFileWriter(c.options.log.path, { ...(c.options.log.maxSize ? { maxSize: c.options.log.maxSize } : {}), ...(c.options.log.maxFile ? { maxFile: c.options.log.maxFile } : {}) });
      for (const line of lines) w.write({ stream: 'stdout', line: `${line}\n`, time: formatRfc3339Nano(clock.nowNano()) });
      w.close();
    };
    for (let i = 0; i < half; i += 100) {
      const burst = out.slice(i, Math.min(i + 100, half));
      setTimeout(() => writeLines(burst), i / 100);
    }
    if (s.runFor !== undefined) {
      c.timer = setTimeout(() => {
        if (c.status !== 'running') return;
        writeLines(out.slice(half));
        this.exit(id, s.exitCode ?? 0, { oomKilled: s.oomKilled });
      }, s.runFor);
    }
  }

  async kill(id: string, signal: number, opts?: { all?: boolean }): Promise<void> {
    await this.step('kill', id, [signal, opts]);
    const c = this.containers.get(id);
    if (!c || (c.status !== 'running' && c.status !== 'paused' && c.status !== 'created')) {
      throw new Error(`container ${id} is not running`);
    }
    const s = this.scriptOf(id);
    if (signal !== 9 && s.ignoreSignals?.includes(signal)) return;
    if (c.status === 'paused' && signal !== 9) {
      c.pendingSignal = signal; // delivered on resume, like a frozen cgroup
      return;
    }
    setImmediate(() => this.exit(id, 128 + signal));
  }

  async pause(id: string): Promise<void> {
    await this.step('pause', id, []);
    const c = this.containers.get(id);
    if (!c || c.status !== 'running') throw new Error(`container ${id} is not running`);
    c.status = 'paused';
  }

  async resume(id: string): Promise<void> {
    await this.step('resume', id, []);
    const c = this.containers.get(id);
    if (!c || c.status !== 'paused') throw new Error(`container ${id} is not paused`);
    c.status = 'running';
    const sig = c.pendingSignal;
    c.pendingSignal = undefined;
    if (sig !== undefined) setImmediate(() => this.exit(id, 128 + sig));
  }

  async delete(id: string, opts?: { force?: boolean }): Promise<void> {
    await this.step('delete', id, [opts]);
    const c = this.containers.get(id);
    if (!c) return;
    if ((c.status === 'running' || c.status === 'paused') && !opts?.force) throw new Error(`cannot delete running container ${id}`);
    if (c.timer) clearTimeout(c.timer);
    this.containers.delete(id);
    for (const [execId, x] of this.execStates) if (x.id === id) this.execStates.delete(execId);
  }

  async state(id: string): Promise<RuntimeStateInfo | null> {
    await this.step('state', id, []);
    const c = this.containers.get(id);
    if (!c) return null;
    return { id, status: c.status, pid: c.pid, ...(c.exit ? { exit: { ...c.exit } } : {}) };
  }

  /** IDs of every container held, whatever its state (sorted). */
  async list(): Promise<string[]> {
    await this.step('list', undefined, []);
    return [...this.containers.keys()].sort();
  }

  onExit(listener: (exit: ExitInfo) => void): () => void {
    this.calls.push({ method: 'onExit', args: [] });
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async restore(id: string): Promise<RuntimeStateInfo | null> {
    await this.step('restore', id, []);
    const c = this.containers.get(id);
    if (!c) return null;
    return { id, status: c.status, pid: c.pid, ...(c.exit ? { exit: { ...c.exit } } : {}) };
  }

  features(runtime?: string): RuntimeFeatures {
    const name = runtime || this.runtimeList[0]!.name;
    if (!this.runtimeList.some((r) => r.name === name)) return { ...this.featureSet, checkpoint: false };
    return { ...this.featureSet, ...(this.runtimeFeatures[name] ?? {}) };
  }

  /**
   * As the OCI backend: a running (or paused) container's process is written to
   * `<path>/fake-checkpoint.json`; exit=true then ends it with 137 (reported before this
   * resolves). A runtime whose features say no → InvalidParameter.
   */
  async checkpoint(id: string, opts: { path: string; exit: boolean }): Promise<void> {
    await this.step('checkpoint', id, [opts]);
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`No such container: ${id}`);
    if (c.status !== 'running' && c.status !== 'paused') throw new ConflictError(`Container ${id} is not running`);
    this.checkpointable(c.options.runtime);
    fs.mkdirSync(opts.path, { recursive: true });
    const saved = { id, runtime: c.options.runtime, process: c.spec.process ?? null, exit: opts.exit };
    fs.writeFileSync(path.join(opts.path, FAKE_CHECKPOINT_FILE), JSON.stringify(saved));
    if (opts.exit) this.exit(id, 137);
  }

  private checkpointable(runtime: string): void {
    const name = runtime || this.runtimeList[0]!.name;
    if (!this.features(name).checkpoint) throw new InvalidParameterError(`checkpoint is not supported by runtime ${name}`);
  }

  /** A restore's checkpoint: refused like a checkpoint, and the file must be there. */
  private readCheckpoint(runtime: string, dir: string): void {
    this.checkpointable(runtime);
    try {
      JSON.parse(fs.readFileSync(path.join(dir, FAKE_CHECKPOINT_FILE), 'utf8'));
    } catch (err) {
      throw new Error(`restore from ${dir} failed: ${(err as Error).message}`);
    }
  }

  async attach(id: string, streams: AttachStreams): Promise<AttachSession> {
    await this.step('attach', id, [streams]);
    return { detach() {}, done: Promise.resolve() };
  }

  async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
    await this.step('exec', id, [opts]);
    const c = this.containers.get(id);
    if (!c || c.status !== 'running') throw new Error(`container ${id} is not running`);
    const s = this.scriptOf(id);
    const pid = this.nextPid++;
    this.execStates.set(opts.execId, { id, pid });
    if (s.execOutput) opts.streams.stdout?.write(s.execOutput);
    let end!: (code: number) => void;
    const exited = new Promise<number>((resolve) => {
      const timer = setTimeout(() => end(s.execExitCode ?? 0), s.execRunFor ?? 0);
      end = (code) => {
        clearTimeout(timer);
        this.execsRunning.delete(opts.execId);
        this.emitExit({ id, execId: opts.execId, exitCode: code, oomKilled: false, exitedAt: formatRfc3339Nano(clock.nowNano()) });
        resolve(code);
      };
    });
    this.execsRunning.add(opts.execId);
    // A signal ends the exec process as the kernel's default action would (128 + signal).
    const kill = async (signal: number): Promise<void> => {
      this.calls.push({ method: 'kill', id, args: [signal, opts.execId] });
      if (this.execsRunning.has(opts.execId)) end(128 + signal);
    };
    return { pid, exited, kill };
  }

  /** Exec processes (by exec ID) that have not exited yet. */
  runningExecs(): string[] {
    return [...this.execsRunning];
  }

  /** After a restart: the exec as this fake still holds it (running, or its exit), null once deleted. */
  async restoreExec(id: string, execId: string): Promise<ExecStateInfo | null> {
    await this.step('restoreExec', id, [execId]);
    const x = this.execStates.get(execId);
    if (!x || x.id !== id) return null;
    return x.exit ? { status: 'stopped', pid: 0, exitCode: x.exit.exitCode, exitedAt: x.exit.exitedAt } : { status: 'running', pid: x.pid };
  }

  async deleteExec(id: string, execId: string): Promise<void> {
    await this.step('deleteExec', id, [execId]);
    const x = this.execStates.get(execId);
    if (x?.id === id && x.exit) this.execStates.delete(execId);
  }

  async update(id: string, resources: OciResources): Promise<void> {
    await this.step('update', id, [resources]);
    const c = this.containers.get(id);
    if (!c || (c.status !== 'running' && c.status !== 'paused')) throw new Error(`container ${id} is not running`);
    c.spec = { ...c.spec, linux: { ...(c.spec.linux ?? {}), resources } };
  }

  async resize(id: string, size: { height: number; width: number }, execId?: string): Promise<void> {
    this.calls.push({ method: 'resize', id, args: [size, execId] });
  }

  async close(): Promise<void> {
    this.calls.push({ method: 'close', args: [] });
    for (const c of this.containers.values()) if (c.timer) clearTimeout(c.timer);
  }
}
