/**
 * Exec bookkeeping (POST /containers/{id}/exec, /exec/{id}/start, /exec/{id}/json): exec IDs,
 * ExecConfig, running state, exit code, ContainerRecord.ExecIDs; the process itself runs
 * through the backend's `exec`.
 */
import { readFile } from 'node:fs/promises';
import { ConflictError, InvalidParameterError, NotFoundError, NotImplementedError, errorMessage, notRunning } from './errors.js';
import type { EventBus } from './events.js';
import { generateId } from './ids.js';
import type { Logger } from './logger.js';
import type { OciProcess, OciSpec, OciUser } from './oci.js';
import type { AttachStreams, ExecSession, ExitInfo, RuntimeBackend } from './runtime.js';
import { EXIT_EACCES, EXIT_START_FAILED } from './exit-codes.js';
import { translateStartError } from './start-error.js';
import { isActive } from './state.js';
import { DEFAULT_CAPABILITIES, knownCapabilities } from './spec/caps.js';
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

/** Every capability the host kernel knows (/proc/sys/kernel/cap_last_cap). */
async function hostCapabilities(): Promise<string[]> {
  const last = Number((await readFile('/proc/sys/kernel/cap_last_cap', 'utf8').catch(() => '')).trim());
  return Number.isInteger(last) && last > 0 ? knownCapabilities(last) : knownCapabilities();
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
  private readonly sessions = new Map<string, ExecSession>();

  constructor(
    private readonly containers: ExecContainers,
    private readonly events: EventBus,
    private readonly logger: Logger,
  ) {
    containers.onExecExit((exit) => this.onExit(exit));
    // A removed container's exec records go with it (dockerd drops them too).
    events.subscribe((e) => {
      if (e.Type !== 'container' || e.Action !== 'destroy') return;
      for (const [id, x] of this.execs) if (x.ContainerID === e.Actor.ID) this.execs.delete(id);
    });
  }

  private cmdline(e: ExecRecord): string {
    return [e.ProcessConfig.entrypoint, ...e.ProcessConfig.arguments].join(' ');
  }

  private emit(e: ExecRecord, action: string, extra: Record<string, string> = {}): void {
    const rec = this.containers.liveRecord(e.ContainerID);
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
    this.execs.set(id, e);
    rec.ExecIDs = [...(rec.ExecIDs ?? []), id];
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
    let session: ExecSession;
    try {
      session = await backend.exec(rec.ID, { execId, process, tty, openStdin: e.OpenStdin, streams: opts.streams ?? {} });
    } catch (err) {
      // dockerd (translateContainerdStartErr): 127 for a command not found, 126 otherwise
      const t = translateStartError(err);
      e.Running = false;
      e.ExitCode = t.exitCode === EXIT_START_FAILED ? EXIT_EACCES : t.exitCode;
      this.dropFromContainer(e);
      throw t.exitCode === EXIT_START_FAILED ? err : new InvalidParameterError(errorMessage(err), { cause: err });
    }
    e.Pid = session.pid;
    this.sessions.set(execId, session);
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
    const e = exit.execId ? this.execs.get(exit.execId) : undefined;
    if (e) this.finish(e, exit.exitCode);
  }

  private finish(e: ExecRecord, code: number): void {
    if (!e.Running) return;
    e.Running = false;
    e.ExitCode = code;
    e.Pid = 0;
    this.sessions.delete(e.ID);
    this.dropFromContainer(e);
    this.emit(e, 'exec_die', { exitCode: String(code) });
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
