/**
 * The OCI runtime backend: drives any OCI runtime CLI (runc, crun, a test script…) through
 * conmon, one small monitor process per container. Layout under `<execRoot>/oci`:
 *   <id>/            bundle: config.json (0700, owned by the container's root), conmon's
 *                    pidfile, conmon.pid, ctl/winsz FIFOs, attach socket, oom marker,
 *                    berth.json (what a restarted daemon needs to find everything again)
 *   <id>/exec/<eid>/ one dir per exec session (its own conmon, process.json, exit file)
 *   exits/<id>       conmon's exit file: the exit code; its mtime is the exit time
 *   s/<id>           conmon's short symlink to the bundle (attach socket path < 108 bytes)
 *   state/<runtime>/ the runtime's own state root (`--root`)
 * Logs: conmon writes k8s-file next to the json-file log; LogPump converts (log-pump.ts).
 *
 * Apart: the one exit watcher of containers and execs, monitor liveness and what a restart
 * finds (exits.ts, monitor.ts, reaper.ts), exec sessions (exec.ts), conmon's command line
 * (conmon.ts), the runtime's CLI (runtime-cli.ts), checkpoint/restore: which runtimes can, the
 * checkpoint command, CRIU's logs (checkpoint.ts; the CRIU probe: criu.ts), optional step
 * timings (timings.ts), record rebuilding (record.ts) and file helpers (files.ts). What stays
 * here, a little over 500 lines, is the create/start/kill/delete sequence of one container and
 * the table of containers its steps share, kept together on purpose.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { nativeAddon, removeTrees } from '@berth/native';
import { EventEmitter } from 'eventemitter3';
import {
  ConflictError,
  ConsoleLogger,
  InvalidParameterError,
  NotFoundError,
  SystemError,
  atomicWriteFiles,
  errorKind,
  errorMessage,
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
  type RuntimeStatus,
} from '@berth/core';
import { attachSocket } from './attach.js';
import { CheckpointSupport, checkpointContainer, exitWaiter, restoreFailure } from './checkpoint.js';
import { conmonArgv, pidAlive, readPidFile, spawnConmon, waitGone } from './conmon.js';
import { LogPump, nullPump, type Pump } from './log-pump.js';
import { ExecSessions, sweepDanglingLinks } from './exec.js';
import { ExitWatch, type Tracked } from './exits.js';
import { fastStartRunc, removeContainerFiles, writeFifo } from './files.js';
import { procRef } from './monitor.js';
import { Reaper } from './reaper.js';
import { EXEC_ROOT_WRITE, loadMeta, type ContainerMeta } from './record.js';
import { RuntimeRegistry, findExecutable, type RuntimeMap } from './registry.js';
import { forceDelete, runRuntime, runtimeState, type RuntimeBinary } from './runtime-cli.js';
import { timed, type OciTimingObserver } from './timings.js';

export interface OciBackendOptions {
  /** The daemon's exec root (`--exec-root`); the backend keeps its files in `<execRoot>/oci`. */
  execRoot: string;
  runtimes: RuntimeMap;
  defaultRuntime: string;
  /** conmon binary (default: `conmon` from $PATH). */
  conmonPath?: string;
  /** Rotate conmon's intermediate k8s-file after this many bytes (default 8 MiB). */
  logRotateAt?: number;
  /**
   * runc only: start by reading the container's exec.fifo directly, which is all `runc start`
   * does (runc 1.x), saving a runc process (~50-100 ms). Falls back to `runc start` when the
   * fifo is not there or nobody writes to it. Default true.
   */
  fastStart?: boolean;
  /** Where warnings go: core's Logger (the plugin passes its ctx.logger; default: JSON lines on stderr). */
  logger?: Logger;
  /**
   * Make this process a child subreaper (reaper.ts) and collect the exits of orphaned
   * monitors and container processes: the real exit code of a container whose conmon was
   * killed. It changes how the whole host process reaps, so it is off by default (a library);
   * berthd turns it on.
   */
  subreaper?: boolean;
  /** Receives each container's step durations (bench/runtime: a TimingLog); none measured without it. */
  timings?: OciTimingObserver;
}

const BACKEND_NAME = 'oci';

export class OciRuntimeBackend implements RuntimeBackend {
  readonly name = BACKEND_NAME;
  /** checkExit converts the last output (LogPump.stop) before it emits the exit. */
  readonly logCompleteAtExit = true;
  readonly root: string;
  private readonly exitsDir: string;
  private readonly sockDir: string;
  private readonly stateRoot: string;
  readonly registry: RuntimeRegistry;
  private readonly conmonPath: string;
  private readonly events = new EventEmitter<{ exit: [ExitInfo] }>();
  private readonly tracked = new Map<string, Tracked>();
  private readonly exits: ExitWatch;
  private readonly execs: ExecSessions;
  private readonly reaper: Reaper | null;
  private readonly ckpt: CheckpointSupport;
  private readonly warn: (msg: string, err?: unknown) => void;

  constructor(private readonly opts: OciBackendOptions) {
    this.root = path.join(path.resolve(opts.execRoot), 'oci');
    this.exitsDir = path.join(this.root, 'exits');
    this.sockDir = path.join(this.root, 's');
    this.stateRoot = path.join(this.root, 'state');
    this.registry = new RuntimeRegistry(opts.runtimes, opts.defaultRuntime);
    this.conmonPath = opts.conmonPath ?? findExecutable('conmon') ?? 'conmon';
    const logger = opts.logger ?? new ConsoleLogger('warn', { component: 'runtime-oci' });
    this.warn = (msg, err) => logger.warn(msg, err === undefined ? undefined : { error: errorMessage(err) });
    for (const d of [this.root, this.exitsDir, this.sockDir, this.stateRoot]) {
      fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    }
    sweepDanglingLinks(this.sockDir, (msg) => this.warn(msg));
    this.reaper = opts.subreaper ? Reaper.start({ warn: this.warn, reaped: (e) => this.exits.reaped(e.pid) }) : null;
    this.exits = new ExitWatch({
      reaper: this.reaper,
      exitsDir: this.exitsDir,
      tracked: this.tracked,
      runtimeState: (meta) => this.runtimeState(meta),
      exited: (t, exit) => this.finishExit(t, exit),
      warn: this.warn,
    });
    this.execs = new ExecSessions({
      conmonPath: this.conmonPath,
      sockDir: this.sockDir,
      exits: this.exits,
      emitExit: (e) => this.events.emit('exit', e),
      warn: this.warn,
    });
    this.exits.start();
    this.ckpt = new CheckpointSupport(this.registry, (msg) => this.warn(msg));
    void this.ckpt.probe(); // in the background: features() tells once it has answered
  }

  /** Resolves once every runtime's features document has been read (the plugin waits for it; CRIU's probe may still run). */
  ready(): Promise<void> {
    return this.ckpt.probe();
  }

  /** The runtimes this backend serves (its registry: runc, --add-runtime, daemon.json), for routing and /info. */
  runtimes(): RuntimeDescription[] {
    return this.registry.names().map((name) => {
      const { config } = this.registry.get(name);
      return { name, path: config.path, ...(config.runtimeArgs?.length ? { runtimeArgs: [...config.runtimeArgs] } : {}) };
    });
  }

  /** One runtime's features (default: the default runtime); `checkpoint` per runtime, false until its probes said yes (checkpoint.ts). */
  features(runtime?: string): RuntimeFeatures {
    return { checkpoint: this.ckpt.known(runtime || this.registry.defaultRuntime), pause: true, exec: true, attach: true };
  }

  /** Whether a runtime (default: the default one) can checkpoint/restore, once its probes have answered. */
  checkpointSupported(runtime?: string): Promise<boolean> {
    return this.ckpt.supported(runtime || this.registry.defaultRuntime);
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

  // ---------------------------------------------------------------- paths & meta

  private bundleDir(id: string): string {
    return path.join(this.root, id);
  }
  private metaFile(id: string): string {
    return path.join(this.bundleDir(id), 'berth.json');
  }
  private exitFile(id: string): string {
    return path.join(this.exitsDir, id);
  }

  private static checkId(id: string): void {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(id)) throw new InvalidParameterError(`invalid container id ${JSON.stringify(id)}`);
  }

  private binary(meta: ContainerMeta): RuntimeBinary {
    return { name: meta.runtime, path: meta.runtimePath, globalArgs: meta.globalArgs };
  }

  /** berth.json, or a record rebuilt from the monitor, the runtime state and the bundle (record.ts). */
  private loadMeta(id: string): ContainerMeta | null {
    const ctx = { id, bundle: this.bundleDir(id), stateRoot: this.stateRoot, registry: this.registry };
    return loadMeta(ctx, (msg) => this.warn(msg));
  }

  private makePump(meta: ContainerMeta): Pump {
    if (!meta.k8sLog) return nullPump();
    return new LogPump({
      source: meta.k8sLog,
      target: meta.log.path,
      ...(meta.log.criPath ? { criLog: meta.log.criPath } : {}),
      maxSize: meta.log.maxSize,
      maxFile: meta.log.maxFile,
      ctlPath: path.join(meta.bundle, 'ctl'),
      rotateAt: this.opts.logRotateAt,
      onError: (err) => this.warn(`log conversion for ${meta.id}`, err),
      notice: (msg) => this.warn(`container ${meta.id}: ${msg}`),
    });
  }

  /** The container's entry, when it has not exited (Conflict otherwise, as dockerd says it). */
  private running(id: string): Tracked {
    const t = this.get(id);
    this.exits.checkExit(id);
    if (t.exit) throw new ConflictError(`Container ${id} is not running`);
    return t;
  }

  private get(id: string): Tracked {
    const t = this.tracked.get(id);
    if (t) return t;
    const meta = this.loadMeta(id);
    if (!meta) throw new NotFoundError(`No such container: ${id}`);
    return this.track(meta);
  }

  /** The container's entry, made (with its log pump, not started) when there is none. */
  private track(meta: ContainerMeta): Tracked {
    let t = this.tracked.get(meta.id);
    if (!t) {
      t = { meta, pump: this.makePump(meta), execs: new Map() };
      this.tracked.set(meta.id, t);
    }
    return t;
  }

  // ---------------------------------------------------------------- exits

  /** Report an exit once: final log conversion, the event, then the runtime's delete. */
  private finishExit(t: Tracked, exit: ExitInfo): void {
    const id = t.meta.id;
    this.opts.timings?.step(id, 'exitNotify', Date.now() - Date.parse(exit.exitedAt));
    t.exit = exit;
    t.pump.stop(); // the last output is in the json-file before anyone hears of the exit
    this.events.emit('exit', exit);
    // The engine deletes an exited container from the runtime (as dockerd deletes the task at
    // the exit); start that now, while the engine handles the exit, not after it. The
    // engine's delete() waits for it. setImmediate: the waiters of the exit go first.
    setImmediate(() => {
      if (this.tracked.get(id) === t) void this.reap(t);
    });
  }

  /** `runtime delete --force` of an exited container, once; true when it succeeded. */
  private reap(t: Tracked): Promise<boolean> {
    t.reap ??= runRuntime(this.binary(t.meta), t.meta.id, ['delete', '--force', t.meta.id], { timeoutMs: 20_000 }).then(
      () => true,
      () => false,
    );
    return t.reap;
  }

  // ---------------------------------------------------------------- lifecycle

  async create(opts: RuntimeCreateOptions): Promise<RuntimeProcess> {
    const { id } = opts;
    OciRuntimeBackend.checkId(id);
    const rt = this.registry.resolve(opts.runtime);
    if (opts.checkpoint) await this.ckpt.check(rt.name);
    if (!findExecutable(this.conmonPath)) {
      throw new SystemError(`conmon not found (${this.conmonPath}); install the conmon package`);
    }
    const bundle = this.bundleDir(id);
    // The runtime's own state dir too: a create that failed on it would force-delete (kill)
    // a container that still runs without its bundle.
    if (this.tracked.has(id) || fs.existsSync(bundle) || fs.existsSync(path.join(this.stateRoot, rt.name, id))) {
      throw new ConflictError(`container ${id} already exists in the runtime backend`);
    }
    // The runtime's configured arguments reach us through the engine (runtimes() → RuntimeCreateOptions), as a tap left them.
    const globalArgs = [...opts.runtimeArgs];
    if (!globalArgs.includes('--root') && !globalArgs.some((a) => a.startsWith('--root='))) {
      globalArgs.unshift('--root', path.join(this.stateRoot, rt.name));
    }
    const meta: ContainerMeta = {
      id,
      runtime: rt.name,
      runtimePath: rt.path,
      globalArgs,
      bundle,
      tty: opts.stdio.tty,
      openStdin: opts.stdio.openStdin,
      log: { ...opts.log },
      k8sLog: `${opts.log.path}.k8s`,
      created: new Date().toISOString(),
      ...(opts.checkpoint ? { restored: true } : {}),
      ...(opts.spec.hooks?.poststart?.length ? { poststartHooks: true } : {}),
    };
    try {
      const t = await timed(this.opts.timings, id, 'prepare', async () => {
        // Bundle: 0700, owned by the container's root (moby prepareBundleDir/MkdirAllAndChown).
        fs.mkdirSync(bundle, { mode: 0o700 });
        fs.chownSync(bundle, opts.rootUid, opts.rootGid);
        fs.mkdirSync(path.dirname(opts.log.path), { recursive: true });
        // one write (one thread-pool job with the native addon): the spec, then berth's record
        await atomicWriteFiles(bundle, [['config.json', JSON.stringify(opts.spec)], [path.basename(this.metaFile(id)), JSON.stringify(meta)]], EXEC_ROOT_WRITE);
        fs.rmSync(this.exitFile(id), { force: true });
        const nt = this.track(meta);
        nt.pump.start();
        return nt;
      });
      const args = conmonArgv({
        containerId: id,
        runtimePath: rt.path,
        runtimeArgs: globalArgs,
        dir: bundle,
        pidFile: path.join(bundle, 'pidfile'),
        log: `k8s-file:${meta.k8sLog}`,
        exitDir: this.exitsDir,
        sockDir: this.sockDir,
        tty: opts.stdio.tty,
        openStdin: opts.stdio.openStdin,
        leaveStdinOpen: !opts.stdio.stdinOnce,
        restoreFrom: opts.checkpoint?.path,
        noPivot: opts.noPivotRoot,
      });
      const pid = await timed(this.opts.timings, id, 'monitorCreate', () =>
        spawnConmon({ conmonPath: this.conmonPath, args, stderrFile: path.join(bundle, 'conmon.err'), cwd: bundle }),
      );
      const conmonPid = readPidFile(path.join(bundle, 'conmon.pid'));
      t.init = procRef(pid);
      t.monitor = procRef(conmonPid);
      this.exits.adopt(conmonPid, t.init);
      if (opts.stdio.tty && opts.stdio.consoleSize) {
        const [h, w] = opts.stdio.consoleSize;
        await this.resize(id, { height: h, width: w }).catch((err: unknown) => this.warn(`initial resize ${id}`, err));
      }
      return { id, pid };
    } catch (err) {
      // Before the cleanup removes the bundle: a restore keeps CRIU's restore.log from it.
      const failure = opts.checkpoint ? restoreFailure(meta, opts.checkpoint.path, err) : translateCreateError(id, err);
      await this.cleanup(id, meta).catch((e: unknown) => this.warn(`cleanup after failed create of ${id}`, e));
      throw failure;
    }
  }

  /**
   * IDs of every container this backend holds files for under its exec root (running,
   * exited or half-created). After a crash, an engine can delete those it has no record of.
   */
  async list(): Promise<string[]> {
    const entries = await fsp.readdir(this.root, { withFileTypes: true });
    const skip = new Set(['exits', 's', 'state']);
    return entries.filter((e) => e.isDirectory() && !skip.has(e.name)).map((e) => e.name).sort();
  }

  async start(id: string): Promise<void> {
    const t = this.get(id);
    if (t.exit) throw new ConflictError(`container ${id} has already exited; delete and create it again`);
    if (t.meta.restored) {
      // Restored from a checkpoint: already running (conmon ran `RUNTIME restore --detach`).
      const st = await this.runtimeState(t.meta);
      if (st && (st.status === 'running' || st.status === 'paused')) return;
      throw new ConflictError(`container ${id} restored from a checkpoint is ${st?.status ?? 'gone'}`);
    }
    await timed(this.opts.timings, id, 'start', async () => {
      if (!(this.opts.fastStart !== false && !t.meta.poststartHooks && (await fastStartRunc(t.meta)))) {
        await runRuntime(this.binary(t.meta), id, ['start', id]);
      }
    });
  }

  async kill(id: string, signal: number, opts: { all?: boolean } = {}): Promise<void> {
    const t = this.running(id);
    const args = ['kill'];
    if (opts.all) args.push('--all');
    args.push(id, String(signal));
    try {
      await runRuntime(this.binary(t.meta), id, args);
      if (signal === 9) t.sigkilled = true;
      if (t.monitorLost) this.exits.checkMonitor(t);
    } catch (err) {
      // Exited meanwhile: report it as not running, like dockerd.
      this.exits.checkExit(id);
      if (t.exit || errorKind(err) === 'NotFound') throw new ConflictError(`Container ${id} is not running`, { cause: err });
      throw err;
    }
  }

  async pause(id: string): Promise<void> {
    const t = this.get(id);
    await runRuntime(this.binary(t.meta), id, ['pause', id]);
  }

  async resume(id: string): Promise<void> {
    const t = this.get(id);
    await runRuntime(this.binary(t.meta), id, ['resume', id]);
  }

  private runtimeState(meta: ContainerMeta): Promise<{ status: RuntimeStatus; pid: number } | null> {
    return runtimeState(this.binary(meta), meta.id);
  }

  async state(id: string): Promise<RuntimeStateInfo | null> {
    const meta = this.tracked.get(id)?.meta ?? this.loadMeta(id);
    if (!meta) return null;
    this.exits.checkExit(id);
    const exit = this.tracked.get(id)?.exit ?? this.exits.readExit(meta);
    if (exit) return { id, status: 'stopped', pid: 0, exit };
    const st = await this.runtimeState(meta);
    if (!st) return { id, status: 'stopped', pid: 0 };
    return { id, status: st.status, pid: st.status === 'stopped' ? 0 : st.pid };
  }

  async restore(id: string): Promise<RuntimeStateInfo | null> {
    const meta = this.loadMeta(id);
    if (!meta) return null;
    const t = this.track(meta);
    this.execs.restore(t);
    return this.exits.reconnect(t);
  }

  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const meta = this.tracked.get(id)?.meta ?? this.loadMeta(id);
    if (!meta) {
      // Unknown, but leftovers of a half-made bundle may exist.
      await removeContainerFiles(this.bundleDir(id), id, [this.exitFile(id)]);
      return;
    }
    this.exits.checkExit(id);
    if (!this.tracked.get(id)?.exit) {
      const st = await this.runtimeState(meta);
      if (st && (st.status === 'running' || st.status === 'paused') && !opts.force) {
        throw new ConflictError(`container ${id} is ${st.status}: stop it before removing or force remove`);
      }
    }
    await timed(this.opts.timings, id, 'delete', () => this.cleanup(id, meta));
  }

  /** Remove everything held for a container: process, monitor, runtime state, files. */
  private async cleanup(id: string, meta: ContainerMeta): Promise<void> {
    const t = this.tracked.get(id);
    const conmonPid = readPidFile(path.join(meta.bundle, 'conmon.pid'));
    this.execs.killAll(t);
    const monitorFiles = (): string[] => {
      const pump = t?.pump ?? this.makePump(meta);
      pump.stop();
      return [...pump.retire(), this.exitFile(id), path.join(this.sockDir, id)];
    };
    // An exited container whose monitor is gone (an exit's cleanup, mostly): the monitor's files
    // (its log, the exit file, the attach socket) go beside the runtime's delete; the bundle
    // only after it (the runtime's poststop hooks may read it).
    const early = t?.exit && !(conmonPid > 0 && pidAlive(conmonPid)) ? removeTrees(nativeAddon(), monitorFiles()) : undefined;
    // An exited container's delete may have started at the exit already (checkExit).
    const [deleted, removedEarly] = await Promise.allSettled([
      (async () => {
        if (!(t?.exit && (await this.reap(t)))) await forceDelete(this.binary(meta), id);
      })(),
      early,
    ]);
    if (deleted.status === 'rejected') throw deleted.reason;
    if (conmonPid > 0) await waitGone(conmonPid, 5000);
    await this.execs.removeAll(t, meta.bundle);
    const files = early ? [] : monitorFiles();
    this.exits.release(t?.init);
    this.tracked.delete(id);
    // one thread-pool job with the native addon (issue 12): the bundle and what did not go early
    await removeContainerFiles(meta.bundle, id, files);
    if (removedEarly.status === 'rejected') throw removedEarly.reason;
  }

  // ---------------------------------------------------------------- stdio

  async attach(id: string, streams: AttachStreams): Promise<AttachSession> {
    const t = this.get(id);
    if (t.exit) throw new ConflictError(`container ${id} is not running`);
    return attachSocket(path.join(this.sockDir, id, 'attach'), streams, t.meta.tty);
  }

  async resize(id: string, size: { height: number; width: number }, execId?: string): Promise<void> {
    const t = this.get(id);
    const ex = execId ? t.execs.get(execId) : undefined;
    const dir = execId ? (ex && !ex.exit ? ex.dir : undefined) : t.meta.bundle;
    if (!dir) throw new NotFoundError(`No such exec instance: ${execId}`);
    const h = Math.max(0, Math.min(1000, Math.floor(size.height)));
    const w = Math.max(0, Math.min(1000, Math.floor(size.width)));
    await writeFifo(path.join(dir, 'ctl'), `1 ${h} ${w}\n`);
  }

  async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
    const t = this.running(id);
    OciRuntimeBackend.checkId(opts.execId);
    return this.execs.start(t, opts);
  }

  /** After a restart: an exec the restore found (exec.ts), running or with its exit; null when unknown. */
  async restoreExec(id: string, execId: string): Promise<ExecStateInfo | null> {
    return this.execs.state(this.tracked.get(id), execId);
  }

  /** The engine saved the exec's exit: its dir (exit file) goes. */
  async deleteExec(id: string, execId: string): Promise<void> {
    this.execs.forget(this.tracked.get(id), execId);
  }

  /** `RUNTIME update --resources - ID` with the OCI LinuxResources JSON on stdin. */
  async update(id: string, resources: OciResources): Promise<void> {
    const t = this.running(id);
    await runRuntime(this.binary(t.meta), id, ['update', '--resources', '-', id], { input: JSON.stringify(resources) });
  }

  /** `RUNTIME checkpoint` into `opts.path` (checkpoint.ts); exit=true returns once the container's exit (137) is reported. */
  async checkpoint(id: string, opts: { path: string; exit: boolean }): Promise<void> {
    const t = this.running(id);
    await this.ckpt.check(t.meta.runtime);
    const exit = opts.exit ? exitWaiter(this, id, this.warn) : null;
    try {
      await checkpointContainer(this.binary(t.meta), t.meta, opts);
      this.exits.checkExit(id);
      if (!t.exit) await exit?.done;
    } finally {
      exit?.cancel();
    }
  }

  async close(): Promise<void> {
    this.exits.close();
    this.reaper?.close();
    this.ckpt.close();
    for (const t of this.tracked.values()) t.pump.detach();
    this.tracked.clear();
    this.events.removeAllListeners();
  }
}

function translateCreateError(id: string, err: unknown): Error {
  if (errorKind(err) !== 'System' || !(err instanceof Error)) return err as Error;
  const msg = err.message;
  // Messages the engine maps to exit codes 127/126 (moby translateContainerdStartErr).
  return new SystemError(`failed to create container ${id}: ${msg}`, { cause: err });
}
