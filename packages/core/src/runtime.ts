/**
 * The runtime backend contract (interface `RuntimeBackend`; plugins register backends with
 * `PluginContext.registerBackend`, the engine keeps them in its BackendRegistry, and token
 * `IRuntime` resolves to the default one). A backend runs OCI bundles: the default
 * one drives an OCI runtime CLI (runc, crun, …) through a small monitor per container; the
 * fake one in @berth/testing scripts exits and failures. The engine never touches a
 * runtime binary itself.
 */
import type { OciProcess, OciResources, OciSpec } from './oci.js';

export interface RuntimeCreateOptions {
  /** Container ID (64 hex). */
  id: string;
  /** The spec `specBuild` produced; the backend writes it as the bundle's config.json. */
  spec: OciSpec;
  /**
   * The OCI runtime to run the container with: HostConfig.Runtime or the default, one of the
   * names the chosen backend serves (`runtimes()`). A runtimeCreate tap may change it.
   */
  runtime: string;
  /**
   * Global arguments for the runtime binary, before its subcommand: the runtime's configured
   * ones (daemon.json `runtimes.<name>.runtimeArgs`) unless a runtimeCreate tap set others.
   */
  runtimeArgs: string[];
  /**
   * Create without pivot_root (runc `--no-pivot`): dockerd's NoPivotRoot, set when the daemon
   * runs with DOCKER_RAMDISK (a root filesystem on a ramdisk, where pivot_root fails). The
   * engine always sets it; absent (a backend driven directly) means false.
   */
  noPivotRoot?: boolean;
  /** Owner of the bundle dir (the container's root after user-namespace mapping). */
  rootUid: number;
  rootGid: number;
  stdio: { tty: boolean; openStdin: boolean; stdinOnce: boolean; consoleSize?: [number, number] };
  /**
   * Docker json-file log of the container, in its directory under the data root. `criPath`: a
   * copy of the output in the CRI log format (`<RFC3339Nano> stdout|stderr F|P <msg>`) appended
   * at that path (kubelet's log file of a CRI container, set by the CRI plugin's runtimeCreate
   * tap); a backend that cannot write it ignores it.
   */
  log: { path: string; maxSize?: number; maxFile?: number; criPath?: string };
  /** Restore from this checkpoint directory instead of a fresh create. */
  checkpoint?: { path: string };
  /** Annotations/labels a backend may use (e.g. for selecting a runtime). */
  labels?: Record<string, string>;
}

export interface RuntimeProcess {
  id: string;
  pid: number;
}

export interface ExitInfo {
  /** Container ID. */
  id: string;
  /** Set when the process that exited is an exec, not the container's init. */
  execId?: string;
  exitCode: number;
  oomKilled: boolean;
  /** RFC 3339 (nanoseconds when known). */
  exitedAt: string;
}

export type RuntimeStatus = 'created' | 'running' | 'paused' | 'stopped';

export interface RuntimeStateInfo {
  id: string;
  status: RuntimeStatus;
  pid: number;
  /** Present when the container has stopped and its exit is known. */
  exit?: ExitInfo;
}

export interface AttachStreams {
  stdin?: NodeJS.ReadableStream | null;
  stdout?: NodeJS.WritableStream | null;
  stderr?: NodeJS.WritableStream | null;
}

export interface AttachSession {
  /** Stop forwarding; the container keeps running. */
  detach(): void;
  /** Resolves when the container's output has ended or after detach. */
  readonly done: Promise<void>;
}

export interface ExecOptions {
  execId: string;
  process: OciProcess;
  tty: boolean;
  openStdin: boolean;
  streams: AttachStreams;
}

export interface ExecSession {
  pid: number;
  /** Resolves with the exec process's exit code. */
  readonly exited: Promise<number>;
  /**
   * Signal the exec's process while it runs (a no-op once it is gone). The health monitor
   * SIGKILLs a probe past its timeout with it; a backend without it leaves such a probe running.
   */
  kill?(signal: number): Promise<void>;
}

/** What a backend still knows of an exec process after a daemon restart (RuntimeBackend.restoreExec). */
export interface ExecStateInfo {
  /** 'running': the backend follows it and reports its exit through `onExit`; 'stopped': it ended meanwhile. */
  status: 'running' | 'stopped';
  /** The exec process's pid while it runs; 0 once stopped. */
  pid: number;
  /** Set when stopped: its exit code (the monitor's exit file), and when it exited (RFC 3339). */
  exitCode?: number;
  exitedAt?: string;
}

export interface RuntimeFeatures {
  checkpoint: boolean;
  pause: boolean;
  exec: boolean;
  attach: boolean;
}

/** The plugin type of runtime backends: a plugin that needs one loaded first says `requires: [RUNTIME_PLUGIN_TYPE]`. */
export const RUNTIME_PLUGIN_TYPE = 'io.berth.runtime.v1';

/** One OCI runtime a backend serves, as /info lists it (dockerd's Runtime object). */
export interface RuntimeDescription {
  /** The name HostConfig.Runtime / `docker run --runtime` selects it by; unique across backends. */
  readonly name: string;
  /** The runtime's binary, when it has one. */
  readonly path?: string;
  /** Global arguments the runtime is configured with (they become RuntimeCreateOptions.runtimeArgs). */
  readonly runtimeArgs?: readonly string[];
}

export interface RuntimeBackend {
  /** Backend name, persisted per container (RuntimeBackend) to route calls after restart. */
  readonly name: string;
  /**
   * The OCI runtimes this backend serves, at least one, fixed once registered: the engine's
   * backend registry routes a container to the backend that serves its runtime's name.
   */
  runtimes(): RuntimeDescription[];
  /** Create the container (bundle, monitor, runtime `create`); not started yet. */
  create(opts: RuntimeCreateOptions): Promise<RuntimeProcess>;
  start(id: string): Promise<void>;
  kill(id: string, signal: number, opts?: { all?: boolean }): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Remove everything the backend holds for the container. Idempotent. */
  delete(id: string, opts?: { force?: boolean }): Promise<void>;
  /** null when the backend knows nothing of the container. */
  state(id: string): Promise<RuntimeStateInfo | null>;
  /**
   * True when the container's whole output is in its json-file log (`log.path`) before its
   * exit is reported through `onExit`. Attach and `logs --follow` then end at the end of the
   * log right after the exit; otherwise they wait until the log has been quiet for a while.
   */
  readonly logCompleteAtExit?: boolean;
  /** Exit events of containers and exec processes; returns the unsubscribe function. */
  onExit(listener: (exit: ExitInfo) => void): () => void;
  /**
   * After a daemon restart: reconnect to the container's monitor. Running → its state;
   * exited while the daemon was down → status 'stopped' with `exit`; unknown → null.
   */
  restore(id: string): Promise<RuntimeStateInfo | null>;
  /**
   * What one of the runtimes this backend serves can do (`runtime` omitted or '': the
   * backend's default runtime; a name it does not serve: checkpoint false). Per runtime, as
   * checkpoint is: runc can (through CRIU) where a fake runtime cannot, or the other way round.
   */
  features(runtime?: string): RuntimeFeatures;
  /**
   * Whether `runtime` can checkpoint and restore, once the backend knows (a probe such as
   * `criu check` may still be running when `features()` is asked: it then says false). The
   * engine asks this before a checkpoint or a restore when the backend has it, else `features()`.
   */
  checkpointSupported?(runtime?: string): Promise<boolean>;
  /**
   * IDs of every container the backend holds (bundles, monitors), whatever their state. At
   * start the engine force-deletes those its state store does not know: leftovers of a
   * daemon killed between the backend's create and the store's write.
   */
  list?(): Promise<string[]>;
  attach?(id: string, streams: AttachStreams): Promise<AttachSession>;
  resize?(id: string, size: { height: number; width: number }, execId?: string): Promise<void>;
  exec?(id: string, opts: ExecOptions): Promise<ExecSession>;
  /**
   * After a daemon restart: the exec process `execId` of container `id` (the engine asks for
   * each exec its records show running). Running → the backend reports its exit through
   * `onExit` later; stopped → its exit code; null when the backend knows nothing of it (the
   * engine then reports its exit code as lost). A backend without it cannot follow execs across
   * a restart.
   */
  restoreExec?(id: string, execId: string): Promise<ExecStateInfo | null>;
  /**
   * The engine has saved the exit of exec `execId` (or has no record of it): the backend may
   * drop what it kept to report that exit (an exit file). Idempotent; a running exec is left alone.
   */
  deleteExec?(id: string, execId: string): Promise<void>;
  update?(id: string, resources: OciResources): Promise<void>;
  /**
   * Checkpoint a running container into `opts.path` (created if missing). exit=true: the
   * container stops and its exit is reported through onExit (137: CRIU kills it, as dockerd
   * shows it) before this resolves; false: it keeps running (`--leave-running`). A runtime
   * that cannot (`features(runtime).checkpoint` false) → InvalidParameter `checkpoint is not
   * supported by runtime X`; the runtime's/CRIU's failure → System, naming CRIU's log.
   * Restore is `create` with `RuntimeCreateOptions.checkpoint`: the container is then running
   * when create resolves, and `start` only checks that it is.
   */
  checkpoint?(id: string, opts: { path: string; exit: boolean }): Promise<void>;
  /** Release watchers etc. when the engine closes (containers keep running). */
  close?(): Promise<void>;
}
