/**
 * The container service: create, start (dockerd's start path, step by step, with rollback),
 * stop, kill, wait, remove, restart, pause/unpause, rename, lookup. One per engine.
 *
 * Concurrency: calls on one container serialize on a per-container lock; calls on
 * different containers run in parallel. Exit events from the runtime do not take that lock
 * (a stop holds it while it waits for the exit); their processing is tracked per container
 * and every locked operation first waits for it to finish. `kill` is not serialized (like
 * dockerd, it must reach a container while a stop is waiting).
 *
 * Size: this file holds more than one concern (record defaults, name index, exit handling,
 * restart manager, waits, restore); issue 11 splits it along those seams. Add new logic in
 * modules of its own (reconcile.ts, links.ts, unreadable.ts, hostconfig-validate.ts do).
 */
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { Clock } from './clock.js';
import { formatRfc3339Nano, normaliseTime, parseRfc3339Nano } from './clock.js';
import {
  ConflictError,
  InvalidParameterError,
  NotFoundError,
  NotImplementedError,
  NotModifiedError,
  SystemError,
  errorKind,
  errorMessage,
  noSuchContainer,
  notRunning,
} from './errors.js';
import type { EventBus } from './events.js';
import {
  type EngineInfo,
  type Hooks,
  type HookName,
  type ReleaseContext,
  CreateContext,
  StartContext,
} from './hooks.js';
import { generateId, generateName, isFullId, normaliseName } from './ids.js';
import { type ImageStore, mergeImageConfigIntoContainer } from './image.js';
import { prepareStartLinks, registerLinks, startAfterLinkTargets } from './links.js';
import { KeyedLock } from './lock.js';
import type { Logger } from './logger.js';
import type { OciSpec } from './oci.js';
import type { ProvenanceRecorder } from './provenance.js';
import type { ExitInfo, RuntimeBackend, RuntimeCreateOptions, RuntimeStateInfo } from './runtime.js';
import { SIGKILL, SIGTERM, parseSignal } from './signals.js';
import {
  initialState,
  isActive,
  resetRemoving,
  setDead,
  setPaused,
  setRemoving,
  setRestarting,
  setRunning,
  setStopped,
  setUnpaused,
} from './state.js';
import { saveRetrying, type StateStore } from './store.js';
import { failpoint } from './failpoint.js';
import { FP } from './points.js';
import { holders, listHoldings, type Holdings } from './reconcile.js';
import { UnreadableContainers } from './unreadable.js';
import type { EngineConfig } from './tokens.js';
import type { ContainerConfig, ContainerRecord, ContainerStatus, EndpointSettings, HostConfig, MountPoint, NetworkSettings } from './types.js';
import { deferred, fullMessage, parseSize, sleep } from './util.js';
import { verifyHostConfig } from './hostconfig-validate.js';
import { verifyContainerConfig } from './config-validate.js';
import { applyOpts } from './spec/opts.js';
import { withResources } from './spec/resources.js';
import { parseUserMounts } from './spec/mounts.js';

export interface CreateOptions {
  /** Container name, with or without the leading slash; generated when absent. */
  name?: string;
  Config: ContainerConfig;
  HostConfig?: HostConfig;
  NetworkingConfig?: { EndpointsConfig?: Record<string, EndpointSettings> | null } | null;
  /**
   * berth-only: run on this plain root filesystem directory (no image store needed). Also
   * accepted as the label `io.berth.rootfs`.
   */
  rootfs?: string;
}

export interface CreateResult {
  Id: string;
  Warnings: string[];
}

export interface StartOptions {
  checkpoint?: string;
  checkpointDir?: string;
  /**
   * API < 1.24 only: a HostConfig in the start body replaces the stored one before the start
   * (deprecated in dockerd, still honoured for old clients).
   */
  hostConfig?: HostConfig | null;
}

export interface StopOptions {
  /** Seconds to wait before SIGKILL; default Config.StopTimeout, else 10. Negative: wait forever. */
  timeout?: number;
  /** Signal name or number; default Config.StopSignal, else SIGTERM. */
  signal?: string | number;
}

export interface RemoveOptions {
  force?: boolean;
  volumes?: boolean;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface WaitResult {
  StatusCode: number;
  Error?: { Message: string };
}

/** The HostConfig fields create always stores (dockerd's defaults). */
export type StoredHostConfig = HostConfig & Required<Pick<HostConfig, 'Runtime' | 'NetworkMode' | 'LogConfig' | 'RestartPolicy'>>;

/**
 * HostConfig as create stores it: `Runtime` = the default runtime, `NetworkMode` = bridge,
 * `LogConfig` = json-file, `RestartPolicy` = no where they are empty. Pure (no validation).
 */
export function withHostConfigDefaults(hc: HostConfig, defaultRuntime: string): StoredHostConfig {
  return {
    ...hc,
    Runtime: hc.Runtime || defaultRuntime,
    NetworkMode: hc.NetworkMode || 'bridge',
    LogConfig: { Type: hc.LogConfig?.Type || 'json-file', Config: hc.LogConfig?.Config ?? {} },
    RestartPolicy: { Name: hc.RestartPolicy?.Name || 'no', MaximumRetryCount: hc.RestartPolicy?.MaximumRetryCount ?? 0 },
  };
}

/** A container's NetworkSettings before any networking ran (no sandbox, no ports). */
export function newNetworkSettings(networks: Record<string, EndpointSettings> = {}): NetworkSettings {
  return { Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, Networks: networks };
}

export type NewContainerFields = Pick<ContainerRecord, 'ID' | 'Name' | 'Created' | 'Config' | 'HostConfig'> & Partial<ContainerRecord>;

/**
 * A record as create makes it, before it is stored: state `created` ({@link initialState}),
 * `Path`/`Args` from Entrypoint + Cmd, NetworkSettings with one empty endpoint for
 * `HostConfig.NetworkMode` (none for `container:<id>` or an empty mode), Docker's empty
 * strings elsewhere. Any field given in `fields` wins. Tests build their records with it too.
 */
export function newContainerRecord(fields: NewContainerFields): ContainerRecord {
  const { ID, Name, Created, Config, HostConfig } = fields;
  const argv = [...(Config.Entrypoint ?? []), ...(Config.Cmd ?? [])];
  const mode = HostConfig.NetworkMode;
  const rec: ContainerRecord = {
    ID,
    Name,
    Created,
    Path: argv[0] ?? '',
    Args: argv.slice(1),
    Config,
    HostConfig,
    State: initialState(),
    Image: '',
    NetworkSettings: newNetworkSettings(mode && !mode.startsWith('container:') ? { [mode]: {} } : {}),
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: '',
    RestartCount: 0,
    Driver: '',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    Mounts: [],
  };
  return Object.assign(rec, fields);
}

/** Label that points a container at a plain rootfs directory (berth-only). */
export const ROOTFS_LABEL = 'io.berth.rootfs';
/** dockerd's default StopTimeout. */
export const DEFAULT_STOP_TIMEOUT = 10;
/** How long to wait for the exit after SIGKILL before giving up. */
const KILL_WAIT_MS = 30_000;
/** dockerd's exit code for a start that failed (exitUnknown). */
export const EXIT_UNKNOWN = 128;
export const EXIT_CMD_NOT_FOUND = 127;
export const EXIT_EACCES = 126;

/** HostConfig numbers `docker update` changes (0 = keep). */
const UPDATABLE_NUMBERS = [
  'BlkioWeight', 'CpuShares', 'CpuPeriod', 'CpuQuota', 'CpuRealtimePeriod', 'CpuRealtimeRuntime',
  'Memory', 'MemoryReservation', 'MemorySwap', 'NanoCpus', 'KernelMemoryTCP',
] as const satisfies ReadonlyArray<keyof HostConfig>;

export interface ContainerServiceDeps {
  hooks: Hooks;
  runtime: RuntimeBackend;
  store: StateStore;
  events: EventBus;
  logger: Logger;
  clock: Clock;
  config: EngineConfig;
  info: EngineInfo;
  provenance: ProvenanceRecorder;
  images?: ImageStore;
}

interface Waiter {
  condition: WaitCondition;
  resolve(r: WaitResult): void;
}

type StepName = 'mount' | 'networking' | 'spec' | 'create' | 'beforeStart' | 'start' | 'save';

const STEP_OF_HOOK: Partial<Record<HookName, StepName>> = {
  beforeMount: 'mount',
  networking: 'networking',
  specBuild: 'spec',
  runtimeCreate: 'create',
  beforeStart: 'beforeStart',
};

/** Error of a runtime create/start translated like moby's translateContainerdStartErr. */
export function translateStartError(err: unknown): { exitCode: number; error: unknown } {
  const text = fullMessage(err);
  if (/executable file not found|no such file or directory|system cannot find the file specified/i.test(text)) {
    return { exitCode: EXIT_CMD_NOT_FOUND, error: new InvalidParameterError(`failed to create task for container: ${text}`, { cause: err }) };
  }
  if (/permission denied/i.test(text)) {
    return { exitCode: EXIT_EACCES, error: new InvalidParameterError(`failed to create task for container: ${text}`, { cause: err }) };
  }
  return { exitCode: EXIT_UNKNOWN, error: err };
}

/** `docker inspect`'s Mounts for Binds and Mounts (tmpfs from HostConfig.Tmpfs are not listed, as in dockerd). */
export function mountPointsOf(hc: HostConfig): MountPoint[] {
  const parsed = parseUserMounts(hc);
  const binds = hc.Binds ?? [];
  let bindIdx = 0;
  const out: MountPoint[] = [];
  for (const m of parsed) {
    if (m.origin === 'Tmpfs') continue;
    let mode = '';
    if (m.origin === 'Binds') {
      const parts = (binds[bindIdx++] ?? '').split(':');
      mode = parts.length === 3 ? parts[2]! : '';
    }
    out.push({
      Type: m.type,
      Source: m.source,
      Destination: m.destination,
      Mode: mode,
      RW: !m.readOnly,
      Propagation: m.type === 'bind' ? m.propagation : '',
    });
  }
  return out;
}

export class ContainerService {
  private readonly records = new Map<string, ContainerRecord>();
  /** "/name" → container ID (reserved at create, before the record exists). */
  private readonly names = new Map<string, string>();
  private readonly lock = new KeyedLock();
  private readonly waiters = new Map<string, Waiter[]>();
  /** Exit processing in flight, per container. */
  private readonly exitWork = new Map<string, Promise<void>>();
  /** Listeners for the end of the next exit's processing (stop, kill, remove -f). */
  private readonly exitDone = new Map<string, Array<() => void>>();
  /** Containers in the middle of a start: exits that arrive early are held until the start finishes. */
  private readonly starting = new Set<string>();
  private readonly earlyExits = new Map<string, ExitInfo>();
  /** Containers whose mounts/networking are set up and must be released. */
  private readonly live = new Set<string>();
  /** Containers the backend holds (created and not yet deleted). */
  private readonly inBackend = new Set<string>();
  /** Backends by name (the default one and alternates returned by runtimeCreate taps). */
  private readonly backends = new Map<string, RuntimeBackend>();
  private readonly unsubscribers = new Map<string, () => void>();
  private readonly background = new Set<Promise<unknown>>();
  /** Pending policy restarts and their backoff (dockerd's restart manager). */
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  private readonly backoff = new Map<string, number>();
  /** Containers being stopped by a daemon shutdown (no policy restart now, but at the next boot). */
  private readonly shuttingDown = new Set<string>();
  /** The spec each container was last started with (exec builds its process from it). */
  private readonly specs = new Map<string, OciSpec>();
  private closed = false;
  /** What the backends held when load() ran, for the orphan sweep right after it. */
  private holdings: Map<string, Holdings> | undefined;
  /** Containers whose record could not be read at start-up (the engine sets them): /info warnings, rm -f by ID. */
  readonly unreadable: UnreadableContainers;

  constructor(private readonly d: ContainerServiceDeps) {
    this.registerBackend(d.runtime);
    this.unreadable = new UnreadableContainers({ ...d, backends: () => [...this.backends.values()], newRecord: newContainerRecord });
  }

  // ---------------------------------------------------------------- backends

  /** Make a backend known by name and listen to its exits. */
  registerBackend(backend: RuntimeBackend): void {
    const known = this.backends.get(backend.name);
    if (known === backend) return;
    if (known) throw new ConflictError(`a different runtime backend named ${backend.name} is already registered`);
    this.backends.set(backend.name, backend);
    this.unsubscribers.set(backend.name, backend.onExit((exit) => this.onRuntimeExit(backend, exit)));
  }

  backendOf(rec: ContainerRecord): RuntimeBackend {
    const b = rec.RuntimeBackend ? this.backends.get(rec.RuntimeBackend) : this.d.runtime;
    if (!b) throw new SystemError(`runtime backend ${rec.RuntimeBackend} of container ${rec.ID} is not available`);
    return b;
  }

  // ---------------------------------------------------------------- lookup

  /** The live record for a full ID, a name ("/x" or "x") or a unique ID prefix. */
  private resolve(idOrName: string): ContainerRecord {
    if (typeof idOrName !== 'string' || idOrName === '') throw noSuchContainer(String(idOrName ?? ''));
    const byId = this.records.get(idOrName);
    if (byId) return byId;
    const name = idOrName.startsWith('/') ? idOrName : `/${idOrName}`;
    const nameId = this.names.get(name);
    if (nameId) {
      const r = this.records.get(nameId);
      if (r) return r;
    }
    if (/^[0-9a-f]+$/.test(idOrName)) {
      let found: ContainerRecord | undefined;
      for (const [id, r] of this.records) {
        if (id.startsWith(idOrName)) {
          if (found) throw new InvalidParameterError(`multiple IDs found with provided prefix: ${idOrName}`);
          found = r;
        }
      }
      if (found) return found;
    }
    throw noSuchContainer(idOrName);
  }

  /** A copy of the container's record (lookup by full ID, name or unique ID prefix). */
  get(idOrName: string): ContainerRecord {
    return structuredClone(this.resolve(idOrName));
  }

  /** Same as get: the whole record, for the API's inspect. */
  inspect(idOrName: string): ContainerRecord {
    return this.get(idOrName);
  }

  /** All containers, newest first (like `docker ps -a`). */
  list(): ContainerRecord[] {
    // By time, not by string: RFC3339Nano trims trailing zeros, so text order is not time order.
    const t = (r: ContainerRecord) => parseRfc3339Nano(r.Created) ?? 0n;
    return [...this.records.values()]
      .map((r) => structuredClone(r))
      .sort((a, b) => (t(a) < t(b) ? 1 : t(a) > t(b) ? -1 : 0));
  }

  has(idOrName: string): boolean {
    try {
      this.resolve(idOrName);
      return true;
    } catch {
      return false;
    }
  }

  // ---------------------------------------------------------------- helpers

  private now(): string {
    return formatRfc3339Nano(this.d.clock.nowNano());
  }

  private attributes(rec: ContainerRecord, extra: Record<string, string> = {}): Record<string, string> {
    return { ...(rec.Config.Labels ?? {}), image: rec.Config.Image ?? '', name: rec.Name.replace(/^\//, ''), ...extra };
  }

  private emit(rec: ContainerRecord, action: string, extra?: Record<string, string>): void {
    this.d.events.publish('container', action, rec.ID, this.attributes(rec, extra));
  }

  private async stateChange(rec: ContainerRecord, from: ContainerStatus | null, to: ContainerStatus | null, reason: string): Promise<void> {
    // Isolated by the core interceptor: a failing tap is logged, never thrown.
    await this.d.hooks.onStateChange.promise({ container: structuredClone(rec), from, to, reason });
  }

  /** Save the record (retried a few times: a full disk may free up); throws, logged, when it cannot. */
  private async persist(rec: ContainerRecord): Promise<void> {
    if (!this.records.has(rec.ID) && !rec.RemovalInProgress) return;
    try {
      await saveRetrying(this.d.store, rec, {
        onRetry: (err, attempt) => this.d.logger.warn('saving container state failed; trying again', { container: rec.ID, attempt, error: errorMessage(err) }),
      });
    } catch (err) {
      this.d.logger.error('failed to persist container state', { container: rec.ID, error: errorMessage(err) });
      throw new SystemError(`failed to save state of container ${rec.ID}: ${errorMessage(err)}`, { cause: err });
    }
  }

  private async persistQuietly(rec: ContainerRecord): Promise<void> {
    await this.persist(rec).catch(() => {});
  }

  private reserveName(name: string, id: string): void {
    const other = this.names.get(name);
    if (other !== undefined && other !== id) {
      throw new ConflictError(
        `Conflict. The container name "${name}" is already in use by container "${other}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    }
    this.names.set(name, id);
  }

  /** Run `fn` under the container's lock, after any exit processing in flight. */
  private withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(id, async () => {
      await this.exitWork.get(id)?.catch(() => {});
      return fn();
    });
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err) => this.d.logger.error('background task failed', { error: errorMessage(err) }));
    this.background.add(q);
    void q.finally(() => this.background.delete(q));
  }

  /** Resolves when the next exit of the container has been fully processed. */
  private nextExitDone(id: string): Promise<void> {
    const d = deferred<void>();
    const list = this.exitDone.get(id) ?? [];
    list.push(() => d.resolve());
    this.exitDone.set(id, list);
    return d.promise;
  }

  private dropExitListeners(id: string): void {
    const list = this.exitDone.get(id);
    this.exitDone.delete(id);
    for (const l of list ?? []) l();
  }

  private resolveWaiters(rec: ContainerRecord, conditions: WaitCondition[]): void {
    const list = this.waiters.get(rec.ID);
    if (!list) return;
    const result: WaitResult = { StatusCode: rec.State.ExitCode };
    if (rec.State.Error) result.Error = { Message: rec.State.Error };
    const keep: Waiter[] = [];
    for (const w of list) {
      if (conditions.includes(w.condition)) w.resolve(result);
      else keep.push(w);
    }
    if (keep.length) this.waiters.set(rec.ID, keep);
    else this.waiters.delete(rec.ID);
  }

  // ---------------------------------------------------------------- create

  private validateHostConfig(hc: HostConfig): void {
    verifyHostConfig(hc, { mode: 'create' });
    const runtimes = this.d.runtime.runtimes?.();
    const wanted = hc.Runtime || this.d.config.defaultRuntime;
    if (runtimes && !runtimes.includes(wanted)) {
      throw new InvalidParameterError(`unknown or invalid runtime name: ${wanted} (known runtimes: ${runtimes.join(', ')})`);
    }
  }

  async create(opts: CreateOptions): Promise<CreateResult> {
    if (this.closed) throw new SystemError('engine is closed');
    if (!opts || typeof opts !== 'object') throw new InvalidParameterError('config cannot be empty in order to create a container');
    verifyContainerConfig(opts.Config);
    let config: ContainerConfig = structuredClone(opts.Config ?? {});
    const name = opts.name ? normaliseName(opts.name) : undefined;

    const rootfs = opts.rootfs ?? config.Labels?.[ROOTFS_LABEL];
    if (rootfs !== undefined && (!rootfs || !isAbsolute(rootfs))) {
      throw new InvalidParameterError(`rootfs must be an absolute path: ${JSON.stringify(rootfs)}`);
    }
    // A plain rootfs replaces the image: Config.Image is then only a name, never looked up.
    let imageId = '';
    if (this.d.images && config.Image && rootfs === undefined) {
      const img = await this.d.images.resolve(config.Image);
      if (!img) throw new NotFoundError(`No such image: ${config.Image}`);
      imageId = img.id;
      config = mergeImageConfigIntoContainer(config, img.config);
    }
    const argv = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
    if (argv.length === 0) throw new InvalidParameterError('no command specified');
    if (config.StopSignal) parseSignal(config.StopSignal);
    if (config.StopTimeout !== undefined && config.StopTimeout !== null && !Number.isInteger(config.StopTimeout)) {
      throw new InvalidParameterError('invalid StopTimeout: must be an integer');
    }
    // Binds, Mounts and Tmpfs are checked now (dockerd refuses a bad -v at create), and listed like `docker inspect`'s Mounts.
    const { hostConfig, mounts } = this.normaliseHostConfig(opts.HostConfig ?? {});

    let id = generateId();
    while (this.records.has(id)) id = generateId();
    let finalName = name;
    if (!finalName) {
      for (let i = 0; ; i++) {
        const n = `/${generateName(i > 3 ? i : 0)}`;
        if (!this.names.has(n)) {
          finalName = n;
          break;
        }
      }
    }
    this.reserveName(finalName, id);

    const created = this.now();
    const endpoints = opts.NetworkingConfig?.EndpointsConfig;
    const dir = this.d.store.dir(id);
    const rec = newContainerRecord({
      ID: id,
      Name: finalName,
      Created: created,
      Config: config,
      HostConfig: hostConfig,
      Image: imageId,
      LogPath: hostConfig.LogConfig.Type === 'none' ? '' : join(dir, `${id}-json.log`),
      Mounts: mounts,
      ...(endpoints && Object.keys(endpoints).length ? { NetworkSettings: newNetworkSettings(structuredClone(endpoints)) } : {}),
      ...(rootfs ? { BaseFS: rootfs } : {}),
    });
    const ctx = new CreateContext(rec, this.d.info);
    try {
      registerLinks(rec, this);
      await this.d.hooks.beforeCreate.promise(ctx);
      failpoint(FP.createAfterRootfs);
      await mkdir(dir, { recursive: true, mode: 0o710 });
      failpoint(FP.createBeforeRecordSave);
      this.records.set(id, rec);
      await this.persist(rec);
      failpoint(FP.createAfterRecordSave);
    } catch (err) {
      this.records.delete(id);
      if (this.names.get(finalName) === id) this.names.delete(finalName);
      await this.runUndos(ctx.undos);
      await this.d.store.remove(id).catch(() => {});
      throw err;
    }
    this.emit(rec, 'create');
    await this.stateChange(rec, null, 'created', 'create');
    return { Id: id, Warnings: ctx.warnings };
  }

  // ---------------------------------------------------------------- start

  async start(idOrName: string, opts: StartOptions = {}): Promise<void> {
    if (opts.checkpoint && !this.d.config.experimental) {
      throw new InvalidParameterError('checkpoint is only supported in experimental mode');
    }
    const rec = this.resolve(idOrName);
    await this.withLock(rec.ID, () => this.startLocked(rec, opts));
  }

  private async runUndos(undos: StartContext['undos'], filter?: (hook: string) => boolean): Promise<void> {
    for (const u of [...undos].reverse()) {
      if (filter && !filter(u.hook)) continue;
      try {
        await u.fn();
      } catch (err) {
        this.d.logger.error('undo step failed', { plugin: u.plugin, hook: u.hook, label: u.label, error: errorMessage(err) });
      }
    }
  }

  private async release(rec: ContainerRecord, reason: ReleaseContext['reason'], which: { network: boolean; mount: boolean } = { network: true, mount: true }): Promise<void> {
    const ctx: ReleaseContext = { container: rec, reason, engine: this.d.info };
    if (which.network) {
      await this.d.hooks.releaseNetwork.promise(ctx).catch((err) =>
        this.d.logger.error('releaseNetwork failed', { container: rec.ID, reason, error: errorMessage(err) }),
      );
    }
    if (which.mount) {
      await this.d.hooks.unmount.promise(ctx).catch((err) =>
        this.d.logger.error('unmount failed', { container: rec.ID, reason, error: errorMessage(err) }),
      );
    }
  }

  private async startLocked(rec: ContainerRecord, opts: StartOptions, policy = false): Promise<void> {
    if (!this.records.has(rec.ID)) throw noSuchContainer(rec.ID);
    if (isActive(rec) && !(policy && rec.State.Status === 'restarting')) throw new NotModifiedError('Container already started');
    if (rec.RemovalInProgress || rec.State.Dead || rec.State.Status === 'removing' || rec.State.Status === 'dead') {
      throw new ConflictError('container is marked for removal and cannot be started');
    }
    const id = rec.ID;
    if (opts.hostConfig && Object.keys(opts.hostConfig).length > 0) this.replaceHostConfig(rec, opts.hostConfig);
    let checkpoint: { name: string; path: string } | undefined;
    if (opts.checkpoint) {
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(opts.checkpoint)) throw new InvalidParameterError(`invalid checkpoint name: ${opts.checkpoint}`);
      const base = opts.checkpointDir || join(this.d.store.dir(id), 'checkpoints');
      checkpoint = { name: opts.checkpoint, path: join(base, opts.checkpoint) };
    }
    this.d.provenance.reset(id);
    const ctx = new StartContext(rec, this.d.info, checkpoint);
    const done: StepName[] = [];
    let backend: RuntimeBackend | undefined;
    let current: StepName = 'mount';
    let startedFrom: ContainerStatus = rec.State.Status;
    this.starting.add(id);
    this.earlyExits.delete(id);
    try {
      // 1. conditionalMountOnStart
      current = 'mount';
      await this.d.hooks.beforeMount.promise(ctx);
      done.push('mount');
      ctx.rootfsPath ??= rec.BaseFS;
      if (!ctx.rootfsPath) {
        throw new InvalidParameterError(
          `container ${id} has no root filesystem: no image store mounted one and no rootfs was given at create`,
        );
      }
      rec.BaseFS = ctx.rootfsPath;

      // 2. initializeNetworking
      current = 'networking';
      prepareStartLinks(ctx, this);
      await this.d.hooks.networking.promise(ctx);
      done.push('networking');
      if (ctx.hostsPath !== undefined) rec.HostsPath = ctx.hostsPath;
      if (ctx.resolvConfPath !== undefined) rec.ResolvConfPath = ctx.resolvConfPath;
      if (ctx.hostnamePath !== undefined) rec.HostnamePath = ctx.hostnamePath;

      // 3. createSpec
      current = 'spec';
      const base: OciSpec = { ociVersion: '1.2.0' };
      const spec = await this.d.hooks.specBuild.promise(base, ctx);
      if (!spec || typeof spec !== 'object') throw new SystemError('specBuild produced no spec');
      ctx.spec = spec;
      this.specs.set(id, spec);
      done.push('spec');

      // 4. runtime create (options adjustable; an alternate backend may take over)
      current = 'create';
      if (this.inBackend.has(id)) await this.removeStoppedLeftover(rec);
      const createOpts = this.createOptions(rec, spec, checkpoint);
      const alternate = await this.d.hooks.runtimeCreate.promise(createOpts, ctx);
      backend = alternate ?? this.d.runtime;
      if (alternate) this.registerBackendFromTap(alternate);
      ctx.runtime = backend;
      if (rec.RuntimeBackend !== backend.name) {
        // Saved before the runtime's create: after a crash from here on, the restore asks this
        // backend about the container (and the record keeps naming it if the save lands late).
        rec.RuntimeBackend = backend.name;
        await this.persist(rec);
      }
      let proc;
      try {
        proc = await this.timed(id, backend, 'create', () => backend!.create(createOpts));
      } catch (err) {
        throw Object.assign(translateStartError(err), { runtimeStep: true });
      }
      done.push('create');
      this.inBackend.add(id);
      ctx.pid = proc.pid;
      failpoint(FP.startAfterRuntimeCreate);

      // 5. between create and start (CNI attach, moby initializeCreatedTask)
      current = 'beforeStart';
      await this.d.hooks.beforeStart.promise(ctx);
      done.push('beforeStart');

      // 6. start
      current = 'start';
      try {
        await this.timed(id, backend, 'start', () => backend!.start(id));
      } catch (err) {
        throw Object.assign(translateStartError(err), { runtimeStep: true });
      }
      done.push('start');
      failpoint(FP.startAfterRuntimeStart);

      // Running: saved before anyone is told. A record that cannot be saved fails the start.
      current = 'save';
      this.live.add(id);
      const from = rec.State.Status;
      const before = { state: { ...rec.State }, started: rec.HasBeenStartedBefore, manual: rec.HasBeenManuallyStopped, count: rec.RestartCount };
      setRunning(rec, ctx.pid ?? 0, this.now());
      rec.HasBeenStartedBefore = true;
      rec.HasBeenManuallyStopped = false;
      if (!policy) {
        // A start by hand resets the restart manager (dockerd: ResetRestartManager(true)).
        rec.RestartCount = 0;
        this.backoff.delete(id);
      }
      try {
        await this.persist(rec);
      } catch (err) {
        this.live.delete(id);
        Object.assign(rec.State, before.state);
        rec.HasBeenStartedBefore = before.started;
        rec.HasBeenManuallyStopped = before.manual;
        rec.RestartCount = before.count;
        throw err;
      }
      startedFrom = from;
    } catch (thrown) {
      this.starting.delete(id);
      this.earlyExits.delete(id);
      const translated = (thrown as { runtimeStep?: boolean }).runtimeStep
        ? (thrown as { exitCode: number; error: unknown })
        : { exitCode: EXIT_UNKNOWN, error: thrown };
      await this.rollback(rec, ctx, done, current, backend);
      // dockerd: the error is kept, exit code 128 unless a better one is known, state saved.
      const restarting = rec.State.Status === 'restarting';
      if (restarting) {
        // A policy restart that failed: the container stays down (dockerd's restart manager gives up).
        setStopped(rec, { exitCode: rec.State.ExitCode, finishedAt: rec.State.FinishedAt });
        this.backoff.delete(id);
      }
      rec.State.Error = fullMessage(translated.error);
      if (rec.State.ExitCode === 0 || translated.exitCode !== EXIT_UNKNOWN) rec.State.ExitCode = translated.exitCode;
      rec.State.Pid = 0;
      if (restarting) await this.stateChange(rec, 'restarting', 'exited', 'start-failed');
      await this.persistQuietly(rec);
      this.resolveWaiters(rec, ['not-running', 'next-exit']);
      if (rec.HostConfig.AutoRemove) {
        await this.removeLocked(rec, { force: true, volumes: true }).catch((err) =>
          this.d.logger.error('auto-remove after failed start failed', { container: id, error: errorMessage(err) }),
        );
      }
      throw translated.error;
    }

    // Running and saved. Exits that arrive until the start is fully announced are held, so `die` never precedes `start`.
    this.emit(rec, 'start');
    await this.stateChange(rec, startedFrom, 'running', policy ? 'restart-policy' : 'start');
    this.starting.delete(id);
    const early = this.earlyExits.get(id);
    if (early) {
      this.earlyExits.delete(id);
      this.processExit(rec, early);
    }
  }

  /**
   * The runtime still holds a container that is not running here (its exit was not saved, so
   * its delete was skipped, or the delete failed): delete it before creating it again — never
   * one that still runs there.
   */
  private async removeStoppedLeftover(rec: ContainerRecord): Promise<void> {
    const backend = this.backendOf(rec);
    const st = await backend.state(rec.ID).catch(() => null);
    if (st && (st.status === 'running' || st.status === 'paused')) {
      throw new ConflictError(`container ${rec.ID} is still ${st.status} in runtime backend ${backend.name}; stop or remove it first`);
    }
    if (st) await backend.delete(rec.ID, { force: true });
    this.inBackend.delete(rec.ID);
  }

  /** Validate a HostConfig and fill dockerd's defaults, as create does. */
  private normaliseHostConfig(input: HostConfig): { hostConfig: StoredHostConfig; mounts: MountPoint[] } {
    const hc: HostConfig = structuredClone(input);
    this.validateHostConfig(hc);
    const mounts = mountPointsOf(hc);
    return { hostConfig: withHostConfigDefaults(hc, this.d.config.defaultRuntime), mounts };
  }

  private replaceHostConfig(rec: ContainerRecord, input: HostConfig): void {
    const { hostConfig, mounts } = this.normaliseHostConfig(input);
    rec.HostConfig = hostConfig;
    rec.Mounts = mounts;
  }

  /** Run a backend call and record it in the container's provenance (hook `runtime.<step>`, plugin = backend name). */
  private async timed<T>(id: string, backend: RuntimeBackend, step: string, fn: () => Promise<T>): Promise<T> {
    const startedAt = this.now();
    const t0 = performance.now();
    const rec = { hook: `runtime.${step}`, plugin: backend.name, tap: step, stage: 0, startedAt };
    try {
      const r = await fn();
      this.d.provenance.record(id, { ...rec, durationMs: performance.now() - t0 });
      return r;
    } catch (err) {
      this.d.provenance.record(id, { ...rec, durationMs: performance.now() - t0, error: errorMessage(err) });
      throw err;
    }
  }

  private registerBackendFromTap(backend: RuntimeBackend): void {
    const known = this.backends.get(backend.name);
    if (!known) this.registerBackend(backend);
    else if (known !== backend) throw new ConflictError(`runtimeCreate returned a backend named ${backend.name}, but another backend has that name`);
  }

  private createOptions(rec: ContainerRecord, spec: OciSpec, checkpoint?: { path: string }): RuntimeCreateOptions {
    const runtime = rec.HostConfig.Runtime || this.d.config.defaultRuntime;
    const uidMap = spec.linux?.uidMappings?.find((m) => m.containerID === 0);
    const gidMap = spec.linux?.gidMappings?.find((m) => m.containerID === 0);
    const lc = rec.HostConfig.LogConfig?.Config ?? {};
    // With the `none` driver LogPath stays '' (nothing to read back), but the backend still gets a
    // file in the container's directory for the monitor's output.
    const log: RuntimeCreateOptions['log'] = { path: rec.LogPath || join(this.d.store.dir(rec.ID), `${rec.ID}-json.log`) };
    if (lc['max-size'] !== undefined) log.maxSize = parseSize(lc['max-size']);
    if (lc['max-file'] !== undefined) log.maxFile = Number(lc['max-file']);
    const cs = rec.HostConfig.ConsoleSize;
    return {
      id: rec.ID,
      spec,
      runtime,
      runtimeArgs: [...(this.d.config.runtimeArgs[runtime] ?? [])],
      rootUid: uidMap?.hostID ?? 0,
      rootGid: gidMap?.hostID ?? 0,
      stdio: {
        tty: !!rec.Config.Tty,
        openStdin: !!rec.Config.OpenStdin,
        stdinOnce: !!rec.Config.StdinOnce,
        ...(cs && cs[0] > 0 && cs[1] > 0 ? { consoleSize: [cs[0], cs[1]] as [number, number] } : {}),
      },
      log,
      ...(checkpoint ? { checkpoint: { path: checkpoint.path } } : {}),
      labels: { ...(rec.Config.Labels ?? {}) },
    };
  }

  /**
   * Undo exactly the completed steps, newest first. For each step: the undo steps its taps
   * registered (reverse order), then the core's undo of the step (runtime delete,
   * releaseNetwork, unmount). The failed step itself only gets its taps' undos.
   */
  private async rollback(rec: ContainerRecord, ctx: StartContext, done: StepName[], failed: StepName, backend?: RuntimeBackend): Promise<void> {
    const order: StepName[] = ['start', 'beforeStart', 'create', 'spec', 'networking', 'mount'];
    const undosOf = (step: StepName) => ctx.undos.filter((u) => STEP_OF_HOOK[u.hook as HookName] === step);
    for (const step of order) {
      const completed = done.includes(step);
      if (!completed && step !== failed) continue;
      await this.runUndos(undosOf(step));
      if (!completed) continue;
      if (step === 'create' && backend) {
        await backend.delete(rec.ID, { force: true }).then(
          () => this.inBackend.delete(rec.ID),
          (err) => this.d.logger.error('runtime delete during rollback failed', { container: rec.ID, error: errorMessage(err) }),
        );
      }
      if (step === 'networking') await this.release(rec, 'rollback', { network: true, mount: false });
      if (step === 'mount') await this.release(rec, 'rollback', { network: false, mount: true });
    }
  }

  // ---------------------------------------------------------------- exits

  private onRuntimeExit(backend: RuntimeBackend, exit: ExitInfo): void {
    if (exit.execId) {
      this.execExitListener?.(exit);
      return;
    }
    const rec = this.records.get(exit.id);
    if (!rec) return;
    if ((rec.RuntimeBackend ?? this.d.runtime.name) !== backend.name) return;
    if (this.starting.has(rec.ID)) {
      this.earlyExits.set(rec.ID, exit);
      return;
    }
    if (!isActive(rec)) return;
    this.processExit(rec, exit);
  }

  /** Set by the exec service: exits of exec processes. */
  execExitListener: ((exit: ExitInfo) => void) | undefined;

  private processExit(rec: ContainerRecord, exit: ExitInfo): void {
    const id = rec.ID;
    const prev = this.exitWork.get(id) ?? Promise.resolve();
    const work = prev.catch(() => {}).then(() => this.doExit(rec, exit));
    this.exitWork.set(id, work);
    void work.finally(() => {
      if (this.exitWork.get(id) === work) this.exitWork.delete(id);
      const listeners = this.exitDone.get(id);
      this.exitDone.delete(id);
      for (const l of listeners ?? []) l();
      if (rec.HostConfig.AutoRemove && this.records.has(id) && !rec.RemovalInProgress && !isActive(rec)) {
        this.track(this.autoRemove(rec));
      }
    }).catch(() => {});
  }

  /** AutoRemove after an exit: under the lock, and only if nothing restarted the container meanwhile. */
  private async autoRemove(rec: ContainerRecord): Promise<void> {
    await this.withLock(rec.ID, async () => {
      if (!this.records.has(rec.ID) || rec.RemovalInProgress || isActive(rec)) return;
      await this.removeLocked(rec, { force: true, volumes: true });
    }).catch((err) => {
      if (errorKind(err) !== 'NotFound' && errorKind(err) !== 'Conflict') throw err;
    });
  }

  private async doExit(rec: ContainerRecord, exit: ExitInfo): Promise<void> {
    if (!isActive(rec) || rec.State.Status === 'restarting') return;
    failpoint(FP.exitAfterSeen);
    const from = rec.State.Status;
    const finishedAt = normaliseTime(exit.exitedAt, this.now());
    const startedMs = Date.parse(rec.State.StartedAt);
    const durationMs = Number.isNaN(startedMs) ? 0 : Math.max(0, Date.parse(finishedAt) - startedMs);
    const restart = await this.decideRestart(rec, exit, durationMs);
    if (restart) setRestarting(rec, { exitCode: exit.exitCode, oomKilled: exit.oomKilled, finishedAt });
    else setStopped(rec, { exitCode: exit.exitCode, oomKilled: exit.oomKilled, finishedAt });
    // Waiters first: `docker run --rm` must return within milliseconds of the exit.
    this.resolveWaiters(rec, restart ? ['next-exit'] : ['not-running', 'next-exit']);
    if (exit.oomKilled) this.emit(rec, 'oom');
    this.emit(rec, 'die', { exitCode: String(exit.exitCode), execDuration: String(Math.round(durationMs / 1000)) });
    await this.stateChange(rec, from, restart ? 'restarting' : 'exited', 'exit');
    // Saved before the runtime's delete: until the record says exited, the runtime keeps the
    // exit code for the restore. A record that cannot be saved keeps the runtime's copy.
    failpoint(FP.exitBeforeSave);
    const saved = await this.persist(rec).then(() => true, () => false);
    failpoint(FP.exitAfterSave);
    await this.cleanupAfterExit(rec, 'exit', { deleteFromBackend: saved });
    if (restart) this.scheduleRestart(rec, durationMs);
  }

  // ---------------------------------------------------------------- restart policy

  /** dockerd's restart manager: always / unless-stopped unless stopped by hand; on-failure up to its count. */
  private policyWantsRestart(rec: ContainerRecord, exitCode: number): boolean {
    if (rec.HasBeenManuallyStopped || rec.RemovalInProgress) return false;
    if (this.shuttingDown.has(rec.ID)) return false;
    const rp = rec.HostConfig.RestartPolicy;
    switch (rp?.Name) {
      case 'always':
      case 'unless-stopped':
        return true;
      case 'on-failure': {
        const max = rp.MaximumRetryCount ?? 0;
        return exitCode !== 0 && (max === 0 || rec.RestartCount < max);
      }
      default:
        return false;
    }
  }

  private async decideRestart(rec: ContainerRecord, exit: ExitInfo, durationMs: number): Promise<boolean> {
    if (this.closed) return false;
    const policy = this.policyWantsRestart(rec, exit.exitCode);
    if (this.d.hooks.shouldRestart.taps.length === 0) return policy;
    try {
      const r = await this.d.hooks.shouldRestart.promise({
        container: structuredClone(rec),
        exitCode: exit.exitCode,
        oomKilled: exit.oomKilled,
        executionDurationMs: durationMs,
        restartCount: rec.RestartCount,
        policy,
      });
      return typeof r === 'boolean' ? r : policy;
    } catch (err) {
      this.d.logger.error('shouldRestart failed; following the restart policy', { container: rec.ID, error: errorMessage(err) });
      return policy;
    }
  }

  /** Backoff like dockerd: 100 ms, doubling up to 1 minute; back to 100 ms after a run of 10 s or more. */
  private scheduleRestart(rec: ContainerRecord, durationMs: number): void {
    const id = rec.ID;
    const prev = this.backoff.get(id);
    const delay = prev === undefined || durationMs >= 10_000 ? 100 : Math.min(prev * 2, 60_000);
    this.backoff.set(id, delay);
    const timer = setTimeout(() => {
      this.restartTimers.delete(id);
      this.track(
        this.withLock(id, async () => {
          if (!this.records.has(id) || rec.State.Status !== 'restarting' || this.closed) return;
          rec.RestartCount += 1;
          await this.startLocked(rec, {}, true);
        }).catch((err) => this.d.logger.error('restart by policy failed', { container: id, error: errorMessage(err) })),
      );
    }, delay);
    timer.unref?.();
    this.restartTimers.set(id, timer);
  }

  /**
   * Daemon shutdown without live restore (dockerd's shutdownContainer): stop every running
   * container in parallel, without marking it stopped by hand, so restart policies bring it
   * back at the next boot. Errors are logged.
   */
  async stopAll(opts: { timeout?: number } = {}): Promise<void> {
    const active = [...this.records.values()].filter(isActive);
    await Promise.all(
      active.map((rec) =>
        this.withLock(rec.ID, async () => {
          if (!isActive(rec)) return;
          try {
            await this.stopLocked(rec, { ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}) }, false);
          } finally {
            this.shuttingDown.delete(rec.ID);
          }
        }).catch((err) => this.d.logger.error('stopping container at shutdown failed', { container: rec.ID, error: errorMessage(err) })),
      ),
    );
  }

  /** A container waiting for a policy restart stops for good (stop, kill, remove, close). */
  private async cancelRestart(rec: ContainerRecord, reason: string): Promise<void> {
    const timer = this.restartTimers.get(rec.ID);
    if (timer) clearTimeout(timer);
    this.restartTimers.delete(rec.ID);
    this.backoff.delete(rec.ID);
    if (rec.State.Status !== 'restarting') return;
    setStopped(rec, { exitCode: rec.State.ExitCode, oomKilled: rec.State.OOMKilled, finishedAt: rec.State.FinishedAt });
    this.resolveWaiters(rec, ['not-running']);
    await this.persistQuietly(rec);
    await this.stateChange(rec, 'restarting', 'exited', reason);
  }

  /**
   * After an exit: the network and mount release (releaseNetwork, unmount) and the runtime
   * backend's delete run side by side; the process is gone, neither needs the other.
   */
  private async cleanupAfterExit(rec: ContainerRecord, reason: ReleaseContext['reason'], opts: { deleteFromBackend?: boolean } = {}): Promise<void> {
    const release = this.live.delete(rec.ID) ? this.release(rec, reason) : Promise.resolve();
    if (opts.deleteFromBackend === false) {
      this.d.logger.error('container state not saved after its exit; its runtime keeps it (and its exit code) until the next restart', { container: rec.ID });
      await release;
      return;
    }
    const del = this.backendOf(rec)
      .delete(rec.ID, { force: true })
      .then(
        () => {
          this.inBackend.delete(rec.ID);
        },
        (err: unknown) => {
          this.d.logger.warn('runtime delete after exit failed', { container: rec.ID, error: errorMessage(err) });
        },
      );
    await Promise.all([release, del]);
  }

  // ---------------------------------------------------------------- stop / kill

  async stop(idOrName: string, opts: StopOptions = {}): Promise<void> {
    const rec = this.resolve(idOrName);
    const signal = opts.signal !== undefined && opts.signal !== '' ? parseSignal(opts.signal) : undefined;
    if (opts.timeout !== undefined && (typeof opts.timeout !== 'number' || !Number.isFinite(opts.timeout))) {
      throw new InvalidParameterError(`invalid stop timeout: ${String(opts.timeout)}`);
    }
    await this.withLock(rec.ID, () => this.stopLocked(rec, { ...opts, signal }));
  }

  private async stopLocked(rec: ContainerRecord, opts: { timeout?: number; signal?: number }, manual = true): Promise<void> {
    if (!this.records.has(rec.ID)) throw noSuchContainer(rec.ID);
    if (!isActive(rec)) throw new NotModifiedError('Container already stopped');
    const signal = opts.signal ?? parseSignal(rec.Config.StopSignal || 'SIGTERM');
    const timeout = opts.timeout ?? rec.Config.StopTimeout ?? DEFAULT_STOP_TIMEOUT;
    const exited = this.nextExitDone(rec.ID);
    await this.d.hooks.beforeStop.promise({ container: structuredClone(rec), signal, timeout });
    // A daemon shutdown does not count as a stop by hand (unless-stopped containers come back at boot).
    if (manual) rec.HasBeenManuallyStopped = true;
    else this.shuttingDown.add(rec.ID);
    if (rec.State.Status === 'restarting') {
      await this.cancelRestart(rec, 'stop');
      this.emit(rec, 'stop');
      return;
    }
    if (isActive(rec)) {
      try {
        await this.signal(rec, signal);
      } catch (err) {
        if (!(await this.reconcileLostExit(rec))) throw err;
      }
      let gone = !isActive(rec);
      if (gone) {
        // already processed
      } else if (timeout < 0) {
        await exited;
        gone = true;
      } else {
        const t = sleep(timeout * 1000);
        gone = await Promise.race([exited.then(() => true), t.promise.then(() => false)]);
        t.cancel();
      }
      if (!gone && isActive(rec)) {
        this.d.logger.info('container did not exit within the stop timeout, sending SIGKILL', { container: rec.ID, timeout });
        await this.killAndWait(rec, exited);
      }
    }
    await this.exitWork.get(rec.ID)?.catch(() => {});
    this.emit(rec, 'stop');
  }

  /** Send a signal (resuming a paused container so it can act on it); emits `kill`. */
  private async signal(rec: ContainerRecord, signal: number): Promise<void> {
    const backend = this.backendOf(rec);
    await backend.kill(rec.ID, signal);
    this.emit(rec, 'kill', { signal: String(signal) });
    if (rec.State.Status === 'paused') {
      try {
        await backend.resume(rec.ID);
        if (rec.State.Status === 'paused') {
          setUnpaused(rec);
          await this.persistQuietly(rec);
        }
      } catch (err) {
        this.d.logger.warn('resume after signal failed', { container: rec.ID, error: errorMessage(err) });
      }
    }
  }

  /** The backend no longer runs the container but no exit came: process a synthetic (or its recorded) exit. */
  private async reconcileLostExit(rec: ContainerRecord): Promise<boolean> {
    const st = await this.backendOf(rec).state(rec.ID).catch(() => null);
    if (st && st.status !== 'stopped') return false;
    if (isActive(rec)) this.processExit(rec, st?.exit ?? { id: rec.ID, exitCode: 137, oomKilled: false, exitedAt: this.now() });
    await this.exitWork.get(rec.ID)?.catch(() => {});
    return true;
  }

  private async killAndWait(rec: ContainerRecord, exited: Promise<void>): Promise<void> {
    try {
      await this.signal(rec, SIGKILL);
    } catch (err) {
      if (await this.reconcileLostExit(rec)) return;
      throw err;
    }
    // Wait for the exit event, asking the backend's state between waits (1 s, then every 2 s):
    // one that lost the exit (e.g. its monitor was killed) says "stopped" long before the limit.
    const deadline = Date.now() + KILL_WAIT_MS;
    let gone = false;
    for (let pollMs = 1000; !gone && isActive(rec) && Date.now() < deadline; pollMs = 2000) {
      const t = sleep(Math.max(0, Math.min(pollMs, deadline - Date.now())));
      gone = await Promise.race([exited.then(() => true), t.promise.then(() => false)]);
      t.cancel();
      if (!gone && isActive(rec) && (await this.reconcileLostExit(rec))) return;
    }
    if (!gone && isActive(rec)) {
      // The backend may have lost the exit event: ask it.
      if (await this.reconcileLostExit(rec)) return;
      throw new SystemError(`tried to kill container ${rec.ID}, but did not receive an exit event`);
    }
  }

  /** Send a signal (default SIGKILL). Not serialized with the other calls, like dockerd. */
  async kill(idOrName: string, signal: string | number = 'SIGKILL'): Promise<void> {
    const rec = this.resolve(idOrName);
    const sig = parseSignal(signal === '' ? 'SIGKILL' : signal);
    if (!isActive(rec)) throw notRunning(rec.ID);
    if (rec.State.Status === 'restarting') throw new ConflictError(`Container ${rec.ID} is restarting, wait until the container is running`);
    const stopSignal = rec.Config.StopSignal ? parseSignal(rec.Config.StopSignal) : SIGTERM;
    if (sig === SIGKILL || sig === SIGTERM || sig === stopSignal) rec.HasBeenManuallyStopped = true;
    if (sig === SIGKILL) {
      const exited = this.nextExitDone(rec.ID);
      await this.killAndWait(rec, exited);
      return;
    }
    await this.backendOf(rec).kill(rec.ID, sig);
    this.emit(rec, 'kill', { signal: String(sig) });
  }

  // ---------------------------------------------------------------- wait

  async wait(idOrName: string, condition: WaitCondition = 'not-running', opts: { signal?: AbortSignal } = {}): Promise<WaitResult> {
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) {
      throw new InvalidParameterError(`invalid condition: "${condition}"`);
    }
    const rec = this.resolve(idOrName);
    if (condition === 'not-running' && !isActive(rec) && !this.starting.has(rec.ID)) {
      const r: WaitResult = { StatusCode: rec.State.ExitCode };
      if (rec.State.Error) r.Error = { Message: rec.State.Error };
      return r;
    }
    return new Promise<WaitResult>((resolve, reject) => {
      const list = this.waiters.get(rec.ID) ?? [];
      const w: Waiter = {
        condition,
        resolve: (r) => {
          opts.signal?.removeEventListener('abort', onAbort);
          resolve(r);
        },
      };
      const onAbort = () => {
        const l = this.waiters.get(rec.ID);
        if (l) {
          const i = l.indexOf(w);
          if (i >= 0) l.splice(i, 1);
          if (l.length === 0) this.waiters.delete(rec.ID);
        }
        reject(opts.signal?.reason ?? new Error('wait aborted'));
      };
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      list.push(w);
      this.waiters.set(rec.ID, list);
    });
  }

  // ---------------------------------------------------------------- remove

  async remove(idOrName: string, opts: RemoveOptions = {}): Promise<void> {
    if (this.unreadable.has(idOrName) && !this.records.has(idOrName)) {
      await this.withLock(idOrName, () => this.unreadable.remove(idOrName, opts));
      return;
    }
    const rec = this.resolve(idOrName);
    if (rec.RemovalInProgress) throw new ConflictError(`removal of container ${rec.ID} is already in progress`);
    await this.withLock(rec.ID, () => this.removeLocked(rec, opts));
  }

  private async removeLocked(rec: ContainerRecord, opts: RemoveOptions): Promise<void> {
    const id = rec.ID;
    if (!this.records.has(id)) throw noSuchContainer(id);
    if (rec.RemovalInProgress) throw new ConflictError(`removal of container ${id} is already in progress`);
    if (isActive(rec)) {
      if (!opts.force) {
        throw new ConflictError(
          `cannot remove container "${rec.Name}": container is ${rec.State.Status}: stop the container before removing or force remove`,
        );
      }
      rec.HasBeenManuallyStopped = true;
      if (rec.State.Status === 'restarting') {
        await this.cancelRestart(rec, 'remove');
      } else {
        const exited = this.nextExitDone(id);
        await this.killAndWait(rec, exited);
        await this.exitWork.get(id)?.catch(() => {});
      }
    }
    try {
      await this.d.hooks.beforeRemove.promise({ container: structuredClone(rec), force: !!opts.force, volumes: !!opts.volumes });
    } catch (err) {
      if (!opts.force) throw err;
      this.d.logger.warn('beforeRemove failed; removing anyway (force)', { container: id, error: errorMessage(err) });
    }
    const prev = setRemoving(rec);
    // After a crash from here on, the restore removes a container marked for removal, and
    // also an auto-remove container that has run: that one needs no save first.
    if (!(rec.HostConfig.AutoRemove && rec.HasBeenStartedBefore)) await this.persistQuietly(rec);
    failpoint(FP.removeAfterRemovingSave);
    await this.stateChange(rec, prev, 'removing', 'remove');
    try {
      if (this.live.delete(id)) await this.release(rec, 'remove');
      // Always (when its backend is there): it may hold leftovers this engine does not know of.
      if (this.inBackend.has(id) || !rec.RuntimeBackend || this.backends.has(rec.RuntimeBackend)) await this.backendOf(rec).delete(id, { force: true });
      this.inBackend.delete(id);
      failpoint(FP.removeAfterBackendDelete);
      await this.d.store.remove(id);
    } catch (err) {
      resetRemoving(rec, prev);
      setDead(rec, `unable to remove container: ${errorMessage(err)}`);
      await this.persistQuietly(rec);
      throw new SystemError(`unable to remove container ${id}: ${errorMessage(err)}`, { cause: err });
    }
    this.records.delete(id);
    if (this.names.get(rec.Name) === id) this.names.delete(rec.Name);
    this.d.provenance.forget(id);
    this.specs.delete(id);
    this.emit(rec, 'destroy');
    await this.stateChange(rec, 'removing', null, 'remove');
    this.resolveWaiters(rec, ['removed', 'not-running', 'next-exit']);
    this.dropExitListeners(id);
  }

  // ---------------------------------------------------------------- restart, pause, rename

  async restart(idOrName: string, opts: StopOptions = {}): Promise<void> {
    const rec = this.resolve(idOrName);
    const signal = opts.signal !== undefined && opts.signal !== '' ? parseSignal(opts.signal) : undefined;
    await this.withLock(rec.ID, async () => {
      if (isActive(rec)) {
        try {
          await this.stopLocked(rec, { timeout: opts.timeout, signal });
        } catch (err) {
          if (errorKind(err) !== 'NotModified') throw err;
        }
      }
      await this.exitWork.get(rec.ID)?.catch(() => {});
      await this.startLocked(rec, {});
      this.emit(rec, 'restart');
    });
  }

  async pause(idOrName: string): Promise<void> {
    const rec = this.resolve(idOrName);
    await this.withLock(rec.ID, async () => {
      if (!isActive(rec)) throw notRunning(rec.ID);
      if (rec.State.Status === 'paused') throw new ConflictError(`Container ${rec.ID} is already paused`);
      if (rec.State.Status === 'restarting') throw new ConflictError(`Container ${rec.ID} is restarting, wait until the container is running`);
      await this.backendOf(rec).pause(rec.ID);
      setPaused(rec);
      await this.persistQuietly(rec);
      this.emit(rec, 'pause');
      await this.stateChange(rec, 'running', 'paused', 'pause');
    });
  }

  async unpause(idOrName: string): Promise<void> {
    const rec = this.resolve(idOrName);
    await this.withLock(rec.ID, async () => {
      if (rec.State.Status !== 'paused') throw new ConflictError(`Container ${rec.ID} is not paused`);
      await this.backendOf(rec).resume(rec.ID);
      setUnpaused(rec);
      await this.persistQuietly(rec);
      this.emit(rec, 'unpause');
      await this.stateChange(rec, 'paused', 'running', 'unpause');
    });
  }

  async rename(idOrName: string, newName: string): Promise<void> {
    if (!newName) throw new InvalidParameterError('Neither old nor new names may be empty');
    const rec = this.resolve(idOrName);
    const name = normaliseName(newName);
    await this.withLock(rec.ID, async () => {
      if (!this.records.has(rec.ID)) throw noSuchContainer(idOrName);
      const old = rec.Name;
      if (name === old) throw new InvalidParameterError('Renaming a container with the same name as its current name');
      this.reserveName(name, rec.ID);
      rec.Name = name;
      try {
        await this.persist(rec);
      } catch (err) {
        rec.Name = old;
        this.names.delete(name);
        throw err;
      }
      this.names.delete(old);
      this.emit(rec, 'rename', { oldName: old });
    });
  }

  // ---------------------------------------------------------------- update

  /**
   * `docker update`: resource limits and the restart policy (dockerd's ContainerUpdate).
   * Zero/absent fields keep their value. A running container gets the new limits through its
   * backend's `update`; if that fails, nothing changes.
   */
  async update(idOrName: string, changes: HostConfig): Promise<{ Warnings: string[] }> {
    const rec = this.resolve(idOrName);
    return this.withLock(rec.ID, async () => {
      if (!this.records.has(rec.ID)) throw noSuchContainer(idOrName);
      if (rec.RemovalInProgress || rec.State.Status === 'dead') {
        throw new ConflictError(`Cannot update container ${rec.ID}: container is marked for removal and cannot be "update"`);
      }
      const cur = rec.HostConfig;
      const next: HostConfig = structuredClone(cur);
      const fail = (msg: string) => new InvalidParameterError(`Cannot update container ${rec.ID}: ${msg}`);
      const c = changes ?? {};
      verifyHostConfig(c, { mode: 'update' });
      if ((c.NanoCpus ?? 0) > 0 && (cur.CpuQuota ?? 0) > 0 && !c.CpuQuota) {
        throw fail('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
      }
      if ((c.CpuQuota ?? 0) > 0 && (cur.NanoCpus ?? 0) > 0 && !c.NanoCpus) {
        throw fail('Conflicting options: NanoCPUs cannot be updated as CPU Quota has already been set');
      }
      if (c.Memory && !c.MemorySwap && (cur.MemorySwap ?? 0) > 0 && c.Memory > (cur.MemorySwap ?? 0)) {
        throw fail('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
      }
      for (const k of UPDATABLE_NUMBERS) {
        const v = c[k];
        if (typeof v === 'number' && v !== 0) (next as Record<string, unknown>)[k] = v;
      }
      if (c.CpusetCpus) next.CpusetCpus = c.CpusetCpus;
      if (c.CpusetMems) next.CpusetMems = c.CpusetMems;
      if (c.PidsLimit !== undefined && c.PidsLimit !== null) next.PidsLimit = c.PidsLimit;
      if (c.RestartPolicy?.Name) {
        if (cur.AutoRemove && c.RestartPolicy.Name !== 'no') throw fail('Restart policy cannot be updated because AutoRemove is enabled for the container');
        next.RestartPolicy = { Name: c.RestartPolicy.Name, MaximumRetryCount: c.RestartPolicy.MaximumRetryCount ?? 0 };
      }
      let resources;
      try {
        resources = applyOpts({ ociVersion: '1.2.0' }, [withResources(next)]).linux?.resources;
      } catch (err) {
        throw fail(errorMessage(err));
      }
      if (isActive(rec) && resources) {
        const backend = this.backendOf(rec);
        if (!backend.update) throw new NotImplementedError(`Cannot update container ${rec.ID}: runtime backend ${backend.name} cannot update resources`);
        try {
          await backend.update(rec.ID, resources);
        } catch (err) {
          throw new SystemError(`Cannot update container ${rec.ID}: ${errorMessage(err)}`, { cause: err });
        }
      }
      rec.HostConfig = next;
      await this.persist(rec);
      this.emit(rec, 'update');
      return { Warnings: [] };
    });
  }

  // ---------------------------------------------------------------- exec bookkeeping hooks

  /** The OCI spec the container was last started with (in this engine's lifetime). */
  specOf(id: string): OciSpec | undefined {
    return this.specs.get(id);
  }

  /** For the exec service: a live record (not a copy). */
  liveRecord(idOrName: string): ContainerRecord {
    return this.resolve(idOrName);
  }

  /** For the exec service: persist a record change. */
  async save(rec: ContainerRecord): Promise<void> {
    await this.persist(rec);
  }

  emitEvent(rec: ContainerRecord, action: string, extra?: Record<string, string>): void {
    this.emit(rec, action, extra);
  }

  // ---------------------------------------------------------------- load, restore, close

  /**
   * Load the stored containers and reconcile them with their backends (live restore):
   * still running → running; exited meanwhile → exited with the real exit code and
   * FinishedAt; unknown to the backend → exited with 128 (or dead when its backend is gone).
   */
  async load(records: ContainerRecord[]): Promise<void> {
    for (const rec of records) {
      if (this.names.has(rec.Name)) {
        this.d.logger.error('two stored containers share a name; renaming the later one', { container: rec.ID, name: rec.Name });
        rec.Name = `/${rec.Name.replace(/^\//, '')}_${rec.ID.slice(0, 6)}`;
      }
      this.records.set(rec.ID, rec);
      this.names.set(rec.Name, rec.ID);
    }
    // Which backend holds which container, whatever the records say: a crash between the
    // runtime's create and a save leaves records that do not name their backend yet.
    this.holdings = await listHoldings([...this.backends.values()]);
    const held = holders(this.holdings);
    await Promise.all(records.map((rec) => this.withLock(rec.ID, () => this.restoreOne(rec, held.get(rec.ID))).catch((err) =>
      this.d.logger.error('restore failed', { container: rec.ID, error: errorMessage(err) }),
    )));
    for (const rec of records) {
      if (this.records.has(rec.ID) && (rec.RemovalInProgress || (rec.HostConfig.AutoRemove && !isActive(rec) && rec.HasBeenStartedBefore))) {
        rec.RemovalInProgress = false;
        if (rec.State.Status === 'removing') rec.State.Status = 'exited';
        await this.withLock(rec.ID, () => this.removeLocked(rec, { force: true, volumes: true })).catch((err) =>
          this.d.logger.error('finishing removal failed', { container: rec.ID, error: errorMessage(err) }),
        );
      }
    }
    // Restart policies at boot (dockerd's restore): always, unless-stopped not stopped by hand, on-failure.
    const boot = [...this.records.values()].filter(
      (rec) => !isActive(rec) && rec.HasBeenStartedBefore && !rec.RemovalInProgress && rec.State.Status !== 'dead' && this.policyWantsRestart(rec, rec.State.ExitCode),
    );
    // a linked container first (dockerd waits for a container's links too)
    await startAfterLinkTargets(boot, (rec) =>
      this.withLock(rec.ID, () => this.startLocked(rec, {})).catch((err) =>
        this.d.logger.error('starting container by its restart policy failed', { container: rec.ID, error: errorMessage(err) }),
      ),
    );
  }

  private async restoreOne(rec: ContainerRecord, holder?: string): Promise<void> {
    if (rec.State.Status === 'restarting') {
      // It had exited and was waiting for its policy restart: nothing runs; the boot pass restarts it.
      setStopped(rec, { exitCode: rec.State.ExitCode, oomKilled: rec.State.OOMKilled, finishedAt: rec.State.FinishedAt });
      await this.persistQuietly(rec);
      await this.d.hooks.afterRestore.promise({ container: rec, state: null, engine: this.d.info });
      return;
    }
    const wasActive = isActive(rec);
    if (!rec.RuntimeBackend && holder) rec.RuntimeBackend = holder;
    if (!wasActive && !rec.RuntimeBackend) return;
    const backend = rec.RuntimeBackend ? this.backends.get(rec.RuntimeBackend) : this.d.runtime;
    if (!backend) {
      if (wasActive) {
        const from = rec.State.Status;
        setDead(rec, `runtime backend ${rec.RuntimeBackend} is not available`);
        if (rec.State.ExitCode === 0) rec.State.ExitCode = EXIT_UNKNOWN;
        await this.persistQuietly(rec);
        await this.stateChange(rec, from, 'dead', 'restore');
      }
      return;
    }
    let st: RuntimeStateInfo | null;
    try {
      st = await backend.restore(rec.ID);
    } catch (err) {
      this.d.logger.error('runtime restore failed', { container: rec.ID, error: errorMessage(err) });
      st = null;
    }
    const from = rec.State.Status;
    if (st) this.inBackend.add(rec.ID);
    if (st && (st.status === 'running' || st.status === 'paused')) {
      this.live.add(rec.ID);
      if (!wasActive) {
        // Crashed after the runtime's start but before the state was saved: adopt it.
        setRunning(rec, st.pid, this.now());
        rec.HasBeenStartedBefore = true;
      }
      rec.State.Pid = st.pid;
      if (st.status === 'paused' && rec.State.Status !== 'paused') setPaused(rec);
      if (st.status === 'running' && rec.State.Status === 'paused') setUnpaused(rec);
      await this.persistQuietly(rec);
      if (from !== rec.State.Status) await this.stateChange(rec, from, rec.State.Status, 'restore');
    } else if (wasActive) {
      // Exited while we were down (real exit code), or the backend lost it (128).
      const exit = st?.exit;
      this.live.add(rec.ID); // its mounts/networking were set up: release them
      setStopped(rec, {
        exitCode: exit ? exit.exitCode : EXIT_UNKNOWN,
        oomKilled: exit?.oomKilled ?? false,
        finishedAt: normaliseTime(exit?.exitedAt, this.now()),
        ...(exit ? {} : { error: 'container was not found by its runtime backend after a restart' }),
      });
      this.emit(rec, 'die', { exitCode: String(rec.State.ExitCode) });
      await this.stateChange(rec, from, 'exited', 'restore');
      await this.cleanupAfterExit(rec, 'restore');
      await this.persistQuietly(rec);
    } else if (st) {
      // Created or stopped leftovers of a start that never completed, or of an exit whose
      // cleanup a crash cut short: unmount and remove them from the backend.
      await this.release(rec, 'restore');
      await backend.delete(rec.ID, { force: true }).then(
        () => this.inBackend.delete(rec.ID),
        (err) => this.d.logger.error('runtime delete at restore failed', { container: rec.ID, error: errorMessage(err) }),
      );
    }
    await this.d.hooks.afterRestore.promise({ container: rec, state: st, engine: this.d.info });
  }

  /**
   * Orphans: containers a backend holds that no record knows of — a daemon killed between
   * the backend's create and the store's write leaves one running (or created) with nobody
   * to stop it. Each is force-deleted and logged at warn. `keep` lists IDs that must be left
   * alone although no record was loaded (containers whose files are unreadable: the
   * operator decides). A failing list or delete is logged and never stops the engine.
   * Returns the IDs that were deleted.
   */
  async removeOrphans(keep: Iterable<string> = []): Promise<string[]> {
    const kept = new Set(keep);
    const removed: string[] = [];
    // What load() listed (one listing per engine start), else a fresh listing.
    const holdings = this.holdings ?? (await listHoldings([...this.backends.values()]));
    this.holdings = undefined;
    for (const backend of [...this.backends.values()]) {
      const h = holdings.get(backend.name);
      if (!h) continue;
      if ('error' in h) {
        this.d.logger.error('could not list the containers of a runtime backend; orphans not removed', { backend: backend.name, error: errorMessage(h.error) });
        continue;
      }
      const held = h.ids;
      for (const id of held) {
        if (this.records.has(id)) continue;
        if (kept.has(id)) {
          this.d.logger.warn('runtime backend holds a container whose stored state could not be loaded; left alone', { container: id, backend: backend.name });
          continue;
        }
        if (!isFullId(id)) {
          this.d.logger.warn('runtime backend holds something that is not a container ID; left alone', { entry: id, backend: backend.name });
          continue;
        }
        this.d.logger.warn('removing orphaned container unknown to the state store', { container: id, backend: backend.name });
        try {
          await this.withLock(id, async () => {
            // A record made meanwhile (a create under this ID) owns it now.
            if (this.records.has(id)) return;
            await backend.delete(id, { force: true });
          });
          if (!this.records.has(id)) removed.push(id);
        } catch (err) {
          this.d.logger.error('removing orphaned container failed', { container: id, backend: backend.name, error: errorMessage(err) });
        }
      }
    }
    return removed;
  }

  /** Stop listening to runtime events; containers keep running. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.restartTimers.values()) clearTimeout(t);
    this.restartTimers.clear();
    for (const u of this.unsubscribers.values()) u();
    this.unsubscribers.clear();
    await Promise.allSettled([...this.exitWork.values()]);
    await Promise.allSettled([...this.background]);
  }

  /** Wait for background work (auto-removes, exit processing) to settle: for tests and shutdown. */
  async idle(): Promise<void> {
    for (let i = 0; i < 10 && (this.exitWork.size || this.background.size); i++) {
      await Promise.allSettled([...this.exitWork.values(), ...this.background]);
    }
  }

  /** IDs of containers that are running, paused or restarting. */
  activeIds(): string[] {
    return [...this.records.values()].filter(isActive).map((r) => r.ID);
  }

  /** Full IDs only (for callers that must not resolve names). */
  static isFullId(s: string): boolean {
    return isFullId(s);
  }
}
