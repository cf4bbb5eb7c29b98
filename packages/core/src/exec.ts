/**
 * Exec bookkeeping (POST /containers/{id}/exec, /exec/{id}/start, /exec/{id}/json): exec IDs,
 * ExecConfig, running state, exit code, ContainerRecord.ExecIDs; the process itself runs
 * through the backend's `exec`. The records are kept with their container (exec-store.ts) and
 * outlive a daemon restart: an exec that ran across it is followed again through the
 * backend's `restoreExec`, and its exit code is the real one. Once an exit is saved the
 * backend may drop its copy (`deleteExec`). Finished execs are pruned as dockerd does (two
 * passes of a 5-minute collector: CanRemove first, gone at the next), and all go with their
 * container.
 */
import { ConflictError, InvalidParameterError, NotFoundError, NotImplementedError, errorMessage, notRunning } from './errors.js';
import type { EventBus } from './events.js';
import type { ExecStore } from './exec-store.js';
import { generateId } from './ids.js';
import type { Logger } from './logger.js';
import type { OciProcess, OciSpec, OciUser } from './oci.js';
import type { AttachStreams, ExecSession, ExitInfo, RuntimeBackend } from './runtime.js';
import { EXIT_CODE_UNKNOWN, EXIT_EACCES, EXIT_START_FAILED } from './exit-codes.js';
import { declareFailpoint, failpoint } from './failpoint.js';
import { translateStartError } from './start-error.js';
import { isActive } from './state.js';
import { DEFAULT_CAPABILITIES, grantableCapabilities, knownCapabilities } from './spec/caps.js';
import { probeHost } from './spec/host.js';
import { resolveUser, resolveUserFromEntries } from './spec/user.js';
import type { ContainerRecord } from './types.js';

export interface ExecConfig {
  User?: string;
  Privileged?: boolean;
  Tty?: boolean;
  ConsoleSize?: [number, number] | null;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  DetachKeys?: string;
  Env?: string[] | null;
  WorkingDir?: string;
  Cmd: string[];
}

/** GET /exec/{id}/json's shape (swagger ExecInspectResponse). */
export interface ExecRecord {
  ID: string;
  ContainerID: string;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  OpenStdin: boolean;
  OpenStdout: boolean;
  OpenStderr: boolean;
  CanRemove: boolean;
  DetachKeys: string;
  ProcessConfig: { tty: boolean; entrypoint: string; arguments: string[]; privileged: boolean; user: string };
  Config: ExecConfig;
}

const FP_EXEC_EXIT_BEFORE_SAVE = declareFailpoint(
  'exec.exitBeforeSave',
  "exec exit: the exec's exit is set in memory and exec_die sent, before the exec records are saved (the backend still holds the exit)",
);

/** How often finished execs are collected (dockerd's execCommandGC): marked CanRemove at one pass, dropped at the next. */
export const EXEC_GC_INTERVAL_MS = 5 * 60_000;

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The user of an exec (its `User`, else the container's), as dockerd's getUser: the spec
 * builder's resolution, reading /etc/passwd and /etc/group inside the rootfs (a symlink
 * never leads onto the host's files), with HostConfig.GroupAdd.
 */
async function execUser(rec: ContainerRecord, userSpec: string | undefined): Promise<OciUser> {
  const groupAdd = rec.HostConfig.GroupAdd ?? [];
  return rec.BaseFS ? await resolveUser(rec.BaseFS, userSpec, groupAdd) : resolveUserFromEntries(userSpec, [], [], groupAdd);
}

/** Every capability a privileged exec can get: the host kernel's, within berthd's bounding set. */
async function hostCapabilities(): Promise<string[]> {
  const host = await probeHost();
  return grantableCapabilities(knownCapabilities(host.capLastCap), host.capBounding);
}

/** What exec needs of the container side, and nothing more (ContainerService provides it). */
export interface ExecContainers {
  /** The live record of a running container, by ID, name or unique prefix (404 otherwise). */
  liveRecord(idOrName: string): ContainerRecord;
  /** The backend that runs the container (execs run in it). */
  backendOf(rec: ContainerRecord): RuntimeBackend;
  /** The spec the container was last started with (an exec's process starts from its process). */
  specOf(id: string): OciSpec | undefined;
  /** Publish a container event (exec_create, exec_start, exec_die). */
  emitEvent(rec: ContainerRecord, action: string, extra?: Record<string, string>): void;
  /** Where the backends' exits of exec processes go. */
  onExecExit(listener: (exit: ExitInfo) => void): void;
}

export class ExecService {
  private readonly execs = new Map<string, ExecRecord>();
  /** Exec IDs per container, in creation order (what its execs.json holds). */
  private readonly byContainer = new Map<string, Set<string>>();
  private readonly sessions = new Map<string, ExecSession>();
  private readonly unsubscribe: () => void;
  private gcTimer: NodeJS.Timeout | null = null;
  /** Closed with the engine: exits that still arrive (a session's promise) are the next engine's business. */
  private closed = false;

  constructor(
    private readonly containers: ExecContainers,
    private readonly events: EventBus,
    private readonly logger: Logger,
    private readonly store: ExecStore,
  ) {
    containers.onExecExit((exit) => this.onExit(exit));
    // A removed container's exec records go with it (its directory, execs.json too, is gone).
    this.unsubscribe = events.subscribe((e) => {
      if (e.Type !== 'container' || e.Action !== 'destroy') return;
      for (const id of this.byContainer.get(e.Actor.ID) ?? []) this.execs.delete(id);
      this.byContainer.delete(e.Actor.ID);
      void store.drop(e.Actor.ID);
    });
    this.gcTimer = setInterval(() => this.gc(), EXEC_GC_INTERVAL_MS);
    this.gcTimer.unref();
  }

  /** At engine start, before the containers are restored: the stored exec records of `records`. */
  async load(records: readonly ContainerRecord[]): Promise<void> {
    for (const rec of records) {
      const list = await this.store.load(rec.ID);
      for (const e of list) this.add(e);
      // ExecIDs (inspect): the execs not over yet, as the records say.
      const open = list.filter((e) => e.ExitCode === null).map((e) => e.ID);
      rec.ExecIDs = open.length ? open : null;
    }
  }

  /**
   * After the containers are restored: each exec the records show running is asked of its
   * backend — still running (its exit comes later), ended meanwhile (its real exit code), or
   * unknown to it (the exit code is lost: EXIT_CODE_UNKNOWN, logged).
   */
  async restored(): Promise<void> {
    for (const e of [...this.execs.values()]) {
      if (!e.Running) continue;
      let rec: ContainerRecord;
      try {
        rec = this.containers.liveRecord(e.ContainerID);
      } catch {
        continue; // removed at the restore: its execs went with it
      }
      const backend = this.containers.backendOf(rec);
      const st = backend.restoreExec ? await backend.restoreExec(rec.ID, e.ID).catch((err: unknown) => {
        this.logger.error('exec restore failed', { container: rec.ID, exec: e.ID, error: errorMessage(err) });
        return null;
      }) : null;
      if (!e.Running) continue; // its exit arrived meanwhile
      if (st?.status === 'running') {
        e.Pid = st.pid;
        continue;
      }
      if (st?.exitCode === undefined) {
        this.logger.warn(`exec ${e.ID} of container ${rec.ID} was running when the daemon stopped and its runtime backend no longer knows it: its exit code is unknown, reported as ${EXIT_CODE_UNKNOWN}`);
      }
      this.finish(e, st?.exitCode ?? EXIT_CODE_UNKNOWN);
    }
  }

  /**
   * dockerd's exec collector: a finished exec is marked CanRemove at one pass and dropped at
   * the next (so it stays inspectable for 5 to 10 minutes); execs not over yet are kept.
   */
  gc(): void {
    const changed = new Set<string>();
    for (const e of [...this.execs.values()]) {
      if (e.Running || e.ExitCode === null) continue;
      if (e.CanRemove) {
        this.execs.delete(e.ID);
        this.byContainer.get(e.ContainerID)?.delete(e.ID);
      } else {
        e.CanRemove = true;
      }
      changed.add(e.ContainerID);
    }
    for (const id of changed) void this.persist(id);
  }

  /** The engine closes: stop the collector; every record change written. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.gcTimer) clearInterval(this.gcTimer);
    this.gcTimer = null;
    this.unsubscribe();
    await this.store.settle();
  }

  private add(e: ExecRecord): void {
    this.execs.set(e.ID, e);
    let set = this.byContainer.get(e.ContainerID);
    if (!set) this.byContainer.set(e.ContainerID, (set = new Set()));
    set.add(e.ID);
  }

  /** Write the container's exec records (not while it is being removed: its directory goes). */
  private persist(containerId: string): Promise<void> {
    try {
      const st = this.containers.liveRecord(containerId).State.Status;
      if (st === 'removing' || st === 'dead') return Promise.resolve();
    } catch {
      return Promise.resolve(); // removed
    }
    const list = [...(this.byContainer.get(containerId) ?? [])].map((id) => this.execs.get(id)).filter((e): e is ExecRecord => !!e);
    return this.store.save(containerId, list);
  }

  private cmdline(e: ExecRecord): string {
    return [e.ProcessConfig.entrypoint, ...e.ProcessConfig.arguments].join(' ');
  }

  private emit(e: ExecRecord, action: string, extra: Record<string, string> = {}): void {
    let rec: ContainerRecord;
    try {
      rec = this.containers.liveRecord(e.ContainerID);
    } catch {
      return; // the container is gone
    }
    this.containers.emitEvent(rec, action, { execID: e.ID, ...extra });
  }

  async create(idOrName: string, config: ExecConfig): Promise<{ Id: string }> {
    const rec = this.containers.liveRecord(idOrName);
    if (!Array.isArray(config?.Cmd) || config.Cmd.length === 0) throw new InvalidParameterError('No exec command specified');
    if (!isActive(rec)) throw notRunning(rec.ID);
    if (rec.State.Status === 'paused') throw new ConflictError(`Container ${rec.ID} is paused, unpause the container before exec`);
    if (rec.State.Status === 'restarting') throw new ConflictError(`Container ${rec.ID} is restarting, wait until the container is running`);
    const id = generateId();
    const e: ExecRecord = {
      ID: id,
      ContainerID: rec.ID,
      Running: false,
      ExitCode: null,
      Pid: 0,
      OpenStdin: !!config.AttachStdin,
      OpenStdout: !!config.AttachStdout,
      OpenStderr: !!config.AttachStderr,
      CanRemove: false,
      DetachKeys: config.DetachKeys ?? '',
      ProcessConfig: {
        tty: !!config.Tty,
        entrypoint: config.Cmd[0]!,
        arguments: config.Cmd.slice(1),
        privileged: !!config.Privileged,
        user: config.User ?? '',
      },
      Config: structuredClone(config),
    };
    this.add(e);
    rec.ExecIDs = [...(rec.ExecIDs ?? []), id];
    await this.persist(rec.ID);
    this.emit(e, `exec_create: ${this.cmdline(e)}`);
    return { Id: id };
  }

  inspect(execId: string): ExecRecord {
    const e = this.execs.get(execId);
    if (!e) throw new NotFoundError(`No such exec instance: ${execId}`);
    return structuredClone(e);
  }

  /**
   * Start the exec process; resolves once it runs (its session's `exited` gives the exit code).
   * It has a terminal when the exec was created with Tty (dockerd): the start request's Tty
   * only decides how the API frames the output.
   */
  async start(execId: string, opts: { streams?: AttachStreams } = {}): Promise<ExecSession> {
    const e = this.execs.get(execId);
    if (!e) throw new NotFoundError(`No such exec instance: ${execId}`);
    if (e.Running || e.ExitCode !== null) throw new ConflictError(`Error: Exec command ${execId} has already run`);
    const rec = this.containers.liveRecord(e.ContainerID);
    if (!isActive(rec)) throw notRunning(rec.ID);
    if (rec.State.Status === 'paused') throw new ConflictError(`Container ${rec.ID} is paused, unpause the container before exec`);
    const backend = this.containers.backendOf(rec);
    if (!backend.exec) throw new NotImplementedError(`runtime backend ${backend.name} does not support exec`);
    const spec = this.containers.specOf(rec.ID);
    const base = spec?.process;
    // The container's environment (from its spec; after an engine restart, rebuilt from Config) plus the exec's.
    const env = [...(base?.env ?? [DEFAULT_PATH, `HOSTNAME=${rec.Config.Hostname || rec.ID.slice(0, 12)}`, ...(rec.Config.Env ?? [])])];
    for (const kv of e.Config.Env ?? []) {
      const k = kv.split('=')[0];
      const i = env.findIndex((x) => x.split('=')[0] === k);
      if (i >= 0) env[i] = kv;
      else env.push(kv);
    }
    const tty = e.ProcessConfig.tty;
    if (tty && !env.some((x) => x.startsWith('TERM='))) env.push('TERM=xterm');
    const user = e.Config.User ? await execUser(rec, e.Config.User) : (base?.user ?? (await execUser(rec, rec.Config.User)));
    // A privileged exec gets every capability (dockerd), else the container's.
    const all = e.Config.Privileged ? await hostCapabilities() : [];
    const capabilities = e.Config.Privileged
      ? { bounding: [...all], effective: [...all], permitted: [...all] }
      : (base?.capabilities ?? { bounding: [...DEFAULT_CAPABILITIES], effective: [...DEFAULT_CAPABILITIES], permitted: [...DEFAULT_CAPABILITIES] });
    const process: OciProcess = {
      terminal: tty,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids ? { additionalGids: [...user.additionalGids] } : {}) },
      args: [e.ProcessConfig.entrypoint, ...e.ProcessConfig.arguments],
      env,
      cwd: e.Config.WorkingDir || base?.cwd || rec.Config.WorkingDir || '/',
      capabilities,
      ...(base?.noNewPrivileges !== undefined ? { noNewPrivileges: base.noNewPrivileges } : {}),
      ...(base?.apparmorProfile ? { apparmorProfile: base.apparmorProfile } : {}),
      ...(e.Config.ConsoleSize ? { consoleSize: { height: e.Config.ConsoleSize[0], width: e.Config.ConsoleSize[1] } } : {}),
    };
    e.Running = true;
    // Saved before the process exists: a daemon killed from here on finds the exec running and
    // asks its backend at the restore (its exit code, or lost).
    await this.persist(rec.ID);
    let session: ExecSession;
    try {
      session = await backend.exec(rec.ID, { execId, process, tty, openStdin: e.OpenStdin, streams: opts.streams ?? {} });
    } catch (err) {
      // dockerd (translateContainerdStartErr): 127 for a command not found, 126 otherwise
      const t = translateStartError(err);
      e.Running = false;
      e.ExitCode = t.exitCode === EXIT_START_FAILED ? EXIT_EACCES : t.exitCode;
      this.dropFromContainer(e);
      await this.persist(rec.ID);
      throw t.exitCode === EXIT_START_FAILED ? err : new InvalidParameterError(errorMessage(err), { cause: err });
    }
    e.Pid = session.pid;
    this.sessions.set(execId, session);
    void this.persist(rec.ID);
    this.emit(e, `exec_start: ${this.cmdline(e)}`);
    session.exited.then(
      (code) => this.finish(e, code),
      (err) => {
        this.logger.error('exec failed', { exec: execId, error: String(err) });
        this.finish(e, 126);
      },
    );
    return session;
  }

  private onExit(exit: ExitInfo): void {
    if (!exit.execId || this.closed) return;
    const e = this.execs.get(exit.execId);
    if (e?.Running) this.finish(e, exit.exitCode);
    // No record waits for it (its exit was saved already, or no record knows it): the backend can let it go.
    else void this.release(exit.id, exit.execId);
  }

  /** The exec is over: its state, the container's ExecIDs, exec_die; once saved, the backend's copy of the exit goes. */
  private finish(e: ExecRecord, code: number): void {
    if (!e.Running || this.closed) return;
    e.Running = false;
    e.ExitCode = code;
    e.Pid = 0;
    this.sessions.delete(e.ID);
    this.dropFromContainer(e);
    this.emit(e, 'exec_die', { exitCode: String(code) });
    failpoint(FP_EXEC_EXIT_BEFORE_SAVE);
    void this.persist(e.ContainerID).then(() => this.release(e.ContainerID, e.ID));
  }

  /** The backend's `deleteExec`, when it has one and the container is still there. */
  private async release(containerId: string, execId: string): Promise<void> {
    let rec: ContainerRecord;
    try {
      rec = this.containers.liveRecord(containerId);
    } catch {
      return; // removed: the backend's delete took everything
    }
    const backend = this.containers.backendOf(rec);
    await backend.deleteExec?.(rec.ID, execId).catch((err: unknown) => this.logger.warn('runtime backend could not drop a finished exec', { container: rec.ID, exec: execId, error: errorMessage(err) }));
  }

  private dropFromContainer(e: ExecRecord): void {
    try {
      const rec = this.containers.liveRecord(e.ContainerID);
      rec.ExecIDs = (rec.ExecIDs ?? []).filter((x) => x !== e.ID);
      if (rec.ExecIDs.length === 0) rec.ExecIDs = null;
    } catch {
      // container already removed
    }
  }

  async resize(execId: string, size: { height: number; width: number }): Promise<void> {
    const e = this.execs.get(execId);
    if (!e) throw new NotFoundError(`No such exec instance: ${execId}`);
    const rec = this.containers.liveRecord(e.ContainerID);
    const backend = this.containers.backendOf(rec);
    if (!backend.resize) throw new NotImplementedError(`runtime backend ${backend.name} does not support resize`);
    await backend.resize(rec.ID, size, execId);
  }
}
