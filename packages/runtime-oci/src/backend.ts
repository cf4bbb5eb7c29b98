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
 * Size: exit detection and monitor liveness (exits.ts, monitor.ts), exec sessions (exec.ts),
 * record rebuilding (record.ts) and file helpers (files.ts) are already apart; what stays
 * here is the create/start/kill/delete/restore sequence of one container, kept together.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { EventEmitter } from 'eventemitter3';
import {
  ConflictError,
  InvalidParameterError,
  NotFoundError,
  NotImplementedError,
  SystemError,
  atomicWriteFile,
  errorKind,
  type AttachSession,
  type AttachStreams,
  type ExecOptions,
  type ExecSession,
  type ExitInfo,
  type OciResources,
  type RuntimeBackend,
  type RuntimeCreateOptions,
  type RuntimeFeatures,
  type RuntimeProcess,
  type RuntimeStateInfo,
  type RuntimeStatus,
} from '@berth/core';
import { attachSocket } from './attach.js';
import { pidAlive, readPidFile, spawnConmon, waitGone } from './conmon.js';
import { LogPump, nullPump, type Pump } from './log-pump.js';
import { removeExecFiles, restoreExecs, startExec, sweepDanglingLinks, type ExecContext } from './exec.js';
import { ExitWatch, type Tracked } from './exits.js';
import { fastStartRunc, listDir, mountsUnder, writeFifo } from './files.js';
import { procRef } from './monitor.js';
import { EXEC_ROOT_WRITE, conmonArgs, loadMeta, type ContainerMeta } from './record.js';
import { RuntimeRegistry, findExecutable, type RuntimeMap } from './registry.js';
import { runRuntime, type RuntimeBinary } from './runtime-cli.js';

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
  /** Where warnings go (default: console.warn). */
  warn?: (msg: string, err?: unknown) => void;
}


/** Where a container's time went in the backend (milliseconds), for bench/runtime. */
export interface OciTimings {
  /** Bundle dir, config.json (fsync), metadata. */
  prepare?: number;
  /** conmon spawn until it reports the pid (includes the runtime's `create`). */
  monitorCreate?: number;
  /** The runtime's `start`. */
  start?: number;
  /** From the exit file's mtime to the exit event (detection + final log conversion). */
  exitNotify?: number;
  /** delete: runtime delete, monitor gone, files removed. */
  delete?: number;
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
  private readonly warn: (msg: string, err?: unknown) => void;

  constructor(private readonly opts: OciBackendOptions) {
    this.root = path.join(path.resolve(opts.execRoot), 'oci');
    this.exitsDir = path.join(this.root, 'exits');
    this.sockDir = path.join(this.root, 's');
    this.stateRoot = path.join(this.root, 'state');
    this.registry = new RuntimeRegistry(opts.runtimes, opts.defaultRuntime);
    this.conmonPath = opts.conmonPath ?? findExecutable('conmon') ?? 'conmon';
    this.warn = opts.warn ?? ((msg, err) => console.warn(`[runtime-oci] ${msg}`, err ?? ''));
    for (const d of [this.root, this.exitsDir, this.sockDir, this.stateRoot]) {
      fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    }
    sweepDanglingLinks(this.sockDir, (msg) => this.warn(msg));
    this.exits = new ExitWatch({
      exitsDir: this.exitsDir,
      tracked: this.tracked,
      runtimeState: (meta) => this.runtimeState(meta),
      exited: (t, exit) => this.finishExit(t, exit),
      forgetExec: (t, execId) => this.forgetExec(t, execId),
      warn: this.warn,
    });
    this.exits.start();
  }

  /** Names of the registered runtimes (for /info and error messages). */
  runtimes(): string[] {
    return this.registry.names();
  }

  private criuWorks: boolean | undefined;

  features(): RuntimeFeatures {
    // Checkpoint needs CRIU that works on this kernel: `criu check`, once.
    if (this.criuWorks === undefined) {
      const criu = findExecutable('criu');
      this.criuWorks = false;
      if (criu) {
        try {
          execFileSync(criu, ['check'], { stdio: 'ignore', timeout: 10_000 });
          this.criuWorks = true;
        } catch {
          this.warn('criu is installed but `criu check` fails: checkpoint/restore disabled');
        }
      }
    }
    return { checkpoint: this.criuWorks, pause: true, exec: true, attach: true };
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
      maxSize: meta.log.maxSize,
      maxFile: meta.log.maxFile,
      ctlPath: path.join(meta.bundle, 'ctl'),
      rotateAt: this.opts.logRotateAt,
      onError: (err) => this.warn(`log conversion for ${meta.id}`, err),
      notice: (msg) => this.warn(`container ${meta.id}: ${msg}`),
    });
  }

  private get(id: string): Tracked {
    const t = this.tracked.get(id);
    if (t) return t;
    const meta = this.loadMeta(id);
    if (!meta) throw new NotFoundError(`No such container: ${id}`);
    const nt: Tracked = { meta, pump: this.makePump(meta), execs: new Map() };
    this.tracked.set(id, nt);
    return nt;
  }

  // ---------------------------------------------------------------- exits

  /** Report an exit once: final log conversion, the event, then the runtime's delete. */
  private finishExit(t: Tracked, exit: ExitInfo): void {
    const id = t.meta.id;
    this.recordTiming(id, 'exitNotify', Date.now() - Date.parse(exit.exitedAt));
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

  private readonly timingLog = new Map<string, OciTimings>();

  private recordTiming(id: string, key: keyof OciTimings, ms: number): void {
    let t = this.timingLog.get(id);
    if (!t) {
      if (this.timingLog.size >= 1000) this.timingLog.delete(this.timingLog.keys().next().value!);
      t = {};
      this.timingLog.set(id, t);
    }
    t[key] = ms;
  }

  /** Per-step durations of a container's create/start/exit/delete (last 1000 containers). */
  timings(id: string): OciTimings | undefined {
    return this.timingLog.get(id);
  }

  // ---------------------------------------------------------------- lifecycle

  async create(opts: RuntimeCreateOptions): Promise<RuntimeProcess> {
    const { id } = opts;
    OciRuntimeBackend.checkId(id);
    const rt = this.registry.resolve(opts.runtime);
    if (!findExecutable(this.conmonPath)) {
      throw new SystemError(`conmon not found (${this.conmonPath}); install the conmon package`);
    }
    const bundle = this.bundleDir(id);
    // The runtime's own state dir too: a create that failed on it would force-delete (kill)
    // a container that still runs without its bundle.
    if (this.tracked.has(id) || fs.existsSync(bundle) || fs.existsSync(path.join(this.stateRoot, rt.name, id))) {
      throw new ConflictError(`container ${id} already exists in the runtime backend`);
    }
    // The engine passes daemon.json runtimeArgs too; the registry's are the fallback.
    const globalArgs = opts.runtimeArgs.length ? [...opts.runtimeArgs] : [...rt.runtimeArgs];
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
    };
    let t: Tracked | undefined;
    const t0 = performance.now();
    try {
      // Bundle: 0700, owned by the container's root (moby prepareBundleDir/MkdirAllAndChown).
      fs.mkdirSync(bundle, { mode: 0o700 });
      fs.chownSync(bundle, opts.rootUid, opts.rootGid);
      fs.mkdirSync(path.dirname(opts.log.path), { recursive: true });
      await atomicWriteFile(path.join(bundle, 'config.json'), JSON.stringify(opts.spec), EXEC_ROOT_WRITE);
      await atomicWriteFile(this.metaFile(id), JSON.stringify(meta), EXEC_ROOT_WRITE);
      fs.rmSync(this.exitFile(id), { force: true });
      t = { meta, pump: this.makePump(meta), execs: new Map() };
      this.tracked.set(id, t);
      t.pump.start();
      const t1 = performance.now();
      this.recordTiming(id, 'prepare', t1 - t0);
      const args = [
        '--api-version', '1',
        '-c', id, '-u', id, '-n', id,
        '-r', rt.path,
        '-b', bundle,
        '-p', path.join(bundle, 'pidfile'),
        '-P', path.join(bundle, 'conmon.pid'),
        '-l', `k8s-file:${meta.k8sLog}`,
        '--exit-dir', this.exitsDir,
        '--socket-dir-path', this.sockDir,
        '--persist-dir', bundle,
        '--log-level', 'error',
      ];
      for (const a of globalArgs) args.push('--runtime-arg', a);
      if (opts.stdio.tty) args.push('-t');
      if (opts.stdio.openStdin) {
        args.push('-i');
        if (!opts.stdio.stdinOnce) args.push('--leave-stdin-open');
      }
      if (opts.checkpoint) args.push('--restore', opts.checkpoint.path);
      const pid = await spawnConmon({
        conmonPath: this.conmonPath,
        args,
        stderrFile: path.join(bundle, 'conmon.err'),
        cwd: bundle,
      });
      this.recordTiming(id, 'monitorCreate', performance.now() - t1);
      t.init = procRef(pid);
      t.monitor = procRef(readPidFile(path.join(bundle, 'conmon.pid')));
      if (opts.stdio.tty && opts.stdio.consoleSize) {
        const [h, w] = opts.stdio.consoleSize;
        await this.resize(id, { height: h, width: w }).catch((err: unknown) => this.warn(`initial resize ${id}`, err));
      }
      return { id, pid };
    } catch (err) {
      await this.cleanup(id, meta).catch((e: unknown) => this.warn(`cleanup after failed create of ${id}`, e));
      throw translateCreateError(id, err);
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
    const t0 = performance.now();
    if (!(this.opts.fastStart !== false && (await fastStartRunc(t.meta)))) {
      await runRuntime(this.binary(t.meta), id, ['start', id]);
    }
    this.recordTiming(id, 'start', performance.now() - t0);
  }

  async kill(id: string, signal: number, opts: { all?: boolean } = {}): Promise<void> {
    const t = this.get(id);
    this.exits.checkExit(id);
    if (t.exit) throw new ConflictError(`Container ${id} is not running`);
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

  private async runtimeState(meta: ContainerMeta): Promise<{ status: RuntimeStatus; pid: number } | null> {
    try {
      const { stdout } = await runRuntime(this.binary(meta), meta.id, ['state', meta.id], { timeoutMs: 10_000 });
      const st = JSON.parse(stdout) as { status?: string; pid?: number };
      const status: RuntimeStatus =
        st.status === 'created' || st.status === 'running' || st.status === 'paused' ? st.status : 'stopped';
      return { status, pid: st.pid ?? 0 };
    } catch (err) {
      if (errorKind(err) === 'NotFound') return null;
      throw err;
    }
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
    let t = this.tracked.get(id);
    if (!t) {
      t = { meta, pump: this.makePump(meta), execs: new Map() };
      this.tracked.set(id, t);
    }
    restoreExecs({ sockDir: this.sockDir, bundle: meta.bundle, containerId: id, execs: t.execs });
    const exit = this.exits.readExit(meta);
    if (exit) {
      t.exit = exit;
      t.pump.stop(); // catch up on what the container wrote while the daemon was down
      return { id, status: 'stopped', pid: 0, exit };
    }
    t.pump.start();
    const conmonPid = readPidFile(path.join(meta.bundle, 'conmon.pid'));
    t.monitor = conmonArgs(conmonPid, id) ? procRef(conmonPid) : null;
    const st = await this.runtimeState(meta);
    if (st && st.status !== 'stopped') {
      // The monitor may have exited between our read and now: look once more.
      this.exits.checkExit(id);
      if (t.exit) return { id, status: 'stopped', pid: 0, exit: t.exit };
      t.init = procRef(st.pid);
      // Running without a monitor (it was killed): berth watches the process from now on.
      if (!t.monitor) this.exits.checkMonitor(t);
      return { id, status: st.status, pid: st.pid };
    }
    if (pidAlive(conmonPid)) {
      // conmon is writing the exit file right now.
      await waitGone(conmonPid, 2000);
      const late = this.exits.readExit(meta);
      if (late) {
        t.exit = late;
        t.pump.stop();
        return { id, status: 'stopped', pid: 0, exit: late };
      }
    }
    // No monitor and no exit file (the monitor was killed): the exit code is lost.
    this.warn(`container ${id} exited while its monitor was gone: its exit code is unknown, reported as 255`);
    const lost: ExitInfo = { id, exitCode: 255, oomKilled: false, exitedAt: new Date().toISOString() };
    t.exit = lost;
    t.pump.stop();
    return { id, status: 'stopped', pid: 0, exit: lost };
  }

  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const meta = this.tracked.get(id)?.meta ?? this.loadMeta(id);
    if (!meta) {
      // Unknown, but leftovers of a half-made bundle may exist.
      if (fs.existsSync(this.bundleDir(id))) await this.removeBundle(id);
      fs.rmSync(this.exitFile(id), { force: true });
      return;
    }
    this.exits.checkExit(id);
    if (!this.tracked.get(id)?.exit) {
      const st = await this.runtimeState(meta);
      if (st && (st.status === 'running' || st.status === 'paused') && !opts.force) {
        throw new ConflictError(`container ${id} is ${st.status}: stop it before removing or force remove`);
      }
    }
    const t0 = performance.now();
    await this.cleanup(id, meta);
    this.recordTiming(id, 'delete', performance.now() - t0);
  }

  /** Remove everything held for a container: process, monitor, runtime state, files. */
  private async cleanup(id: string, meta: ContainerMeta): Promise<void> {
    const t = this.tracked.get(id);
    const bin = this.binary(meta);
    const conmonPid = readPidFile(path.join(meta.bundle, 'conmon.pid'));
    for (const ex of t?.execs.values() ?? []) {
      try {
        process.kill(ex.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    try {
      // An exited container's delete may have started at the exit already (checkExit).
      const reaped = t?.exit ? await this.reap(t) : false;
      if (!reaped) await runRuntime(bin, id, ['delete', '--force', id], { timeoutMs: 20_000 });
    } catch (err) {
      if (errorKind(err) !== 'NotFound') {
        // Not a container the runtime knows in a deletable state: kill and retry once.
        await runRuntime(bin, id, ['kill', '--all', id, '9']).catch(() => undefined);
        await runRuntime(bin, id, ['delete', '--force', id]).catch((e: unknown) => {
          if (errorKind(e) !== 'NotFound') throw e;
        });
      }
    }
    if (conmonPid > 0) await waitGone(conmonPid, 5000);
    for (const ex of t?.execs.values() ?? []) if (ex.conmonPid > 0) await waitGone(ex.conmonPid, 2000);
    if (t) {
      t.pump.stop();
      t.pump.removeFiles();
    } else {
      const p = this.makePump(meta);
      p.stop();
      p.removeFiles();
    }
    this.tracked.delete(id);
    fs.rmSync(this.exitFile(id), { force: true });
    fs.rmSync(path.join(this.sockDir, id), { force: true });
    for (const ex of t?.execs.keys() ?? []) fs.rmSync(path.join(this.sockDir, ex), { force: true });
    for (const ex of listDir(path.join(meta.bundle, 'exec'))) fs.rmSync(path.join(this.sockDir, ex), { force: true });
    await this.removeBundle(id);
  }

  /** Remove the bundle dir, refusing to recurse through anything still mounted in it. */
  private async removeBundle(id: string): Promise<void> {
    const bundle = this.bundleDir(id);
    const mounts = await mountsUnder(bundle);
    if (mounts.length) {
      throw new SystemError(`bundle of ${id} still has mounts (${mounts.join(', ')}); not removing it`);
    }
    await fsp.rm(bundle, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- stdio

  async attach(id: string, streams: AttachStreams): Promise<AttachSession> {
    const t = this.get(id);
    if (t.exit) throw new ConflictError(`container ${id} is not running`);
    return attachSocket(path.join(this.sockDir, id, 'attach'), streams, t.meta.tty);
  }

  async resize(id: string, size: { height: number; width: number }, execId?: string): Promise<void> {
    const t = this.get(id);
    const dir = execId ? t.execs.get(execId)?.dir : t.meta.bundle;
    if (!dir) throw new NotFoundError(`No such exec instance: ${execId}`);
    const h = Math.max(0, Math.min(1000, Math.floor(size.height)));
    const w = Math.max(0, Math.min(1000, Math.floor(size.width)));
    await writeFifo(path.join(dir, 'ctl'), `1 ${h} ${w}\n`);
  }

  async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
    const t = this.get(id);
    this.exits.checkExit(id);
    if (t.exit) throw new ConflictError(`Container ${id} is not running`);
    OciRuntimeBackend.checkId(opts.execId);
    return startExec(this.execContext(t), opts);
  }

  private execContext(t: Tracked): ExecContext {
    return {
      conmonPath: this.conmonPath,
      sockDir: this.sockDir,
      containerId: t.meta.id,
      bundle: t.meta.bundle,
      runtimePath: t.meta.runtimePath,
      globalArgs: t.meta.globalArgs,
      execs: t.execs,
      emitExit: (e) => this.events.emit('exit', e),
      warn: this.warn,
      translateError: translateExecError,
    };
  }

  /** An exec found at restore whose monitor is now gone: remove its files. */
  private forgetExec(t: Tracked, execId: string): void {
    const ex = t.execs.get(execId);
    if (!ex) return;
    t.execs.delete(execId);
    removeExecFiles(this.sockDir, ex.dir, execId);
  }

  /** `RUNTIME update --resources - ID` with the OCI LinuxResources JSON on stdin. */
  async update(id: string, resources: OciResources): Promise<void> {
    const t = this.get(id);
    this.exits.checkExit(id);
    if (t.exit) throw new ConflictError(`Container ${id} is not running`);
    await runRuntime(this.binary(t.meta), id, ['update', '--resources', '-', id], { input: JSON.stringify(resources) });
  }

  async checkpoint(id: string, opts: { path: string; exit: boolean }): Promise<void> {
    const t = this.get(id);
    if (!this.features().checkpoint) throw new NotImplementedError('checkpoint needs CRIU working on this host (`criu check` fails or criu is not installed)');
    const args = ['checkpoint', '--image-path', opts.path];
    if (!opts.exit) args.push('--leave-running');
    args.push(id);
    await runRuntime(this.binary(t.meta), id, args, { timeoutMs: 120_000 });
  }

  async close(): Promise<void> {
    this.exits.close();
    for (const t of this.tracked.values()) t.pump.detach();
    this.tracked.clear();
    this.events.removeAllListeners();
  }
}

/** An exec the runtime refused, in containerd's words ("OCI runtime exec failed: …", as dockerd shows it). */
function translateExecError(err: unknown): Error {
  if (errorKind(err) !== 'System' || !(err instanceof Error)) return err as Error;
  return new SystemError(`OCI runtime exec failed: ${err.message}`, { cause: err });
}

function translateCreateError(id: string, err: unknown): Error {
  if (errorKind(err) !== 'System' || !(err instanceof Error)) return err as Error;
  const msg = err.message;
  // Messages the engine maps to exit codes 127/126 (moby translateContainerdStartErr).
  return new SystemError(`failed to create container ${id}: ${msg}`, { cause: err });
}
