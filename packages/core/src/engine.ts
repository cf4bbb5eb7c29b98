/**
 * The engine: one tsyringe child container, one frozen hooks object, the plugins, the
 * container service, the event bus and the provenance recorder. Two engines in one process
 * share nothing.
 *
 *   const engine = await Engine.create({ dataRoot, execRoot, plugins: [ociRuntimePlugin(), ...] });
 *   const { Id } = await engine.containers.create({ name: 'x', Config: { Cmd: ['true'] }, rootfs });
 *   await engine.containers.start(Id);
 */
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { container as rootContainer, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { SystemClock, type Clock } from './clock.js';
import { InvalidParameterError, errorMessage } from './errors.js';
import { MemoryEventBus, type EventBus } from './events.js';
import { ExecService } from './exec.js';
import { type CheckpointService, ICheckpointStore } from './checkpoint.js';
import { ExecStore } from './exec-store.js';
import { HEALTH_TAP, HealthMonitor } from './health.js';
import { linksOfStart } from './links.js';
import { SystemHost } from './host.js';
import { type EngineInfo, type Hooks, Stage, createHooks } from './hooks.js';
import { ConsoleLogger, type Logger } from './logger.js';
import type { Plugin, PluginStatus } from './plugin.js';
import { type LoadedPlugin, closePlugins, loadPlugins } from './plugin-loader.js';
import { CORE_DEFAULTS_PLUGIN, type ContainerExplain, ProvenanceRecorder, explainOf } from './provenance.js';
import { type PluginInfo, loadExplainRecord, pluginInfos, saveExplainRecord } from './explain.js';
import { BackendRegistry, type RegisteredRuntime } from './backends.js';
import { ContainerService } from './service.js';
import { FileStateStore, type LoadProblem, type StateStore } from './store.js';
import {
  type EngineConfig,
  IClock,
  IEngineConfig,
  IEventBus,
  IHost,
  IImageStore,
  ILogger,
  IRuntime,
  IStateStore,
} from './tokens.js';
import { buildOciSpec, checkInitBinary, wantsInit, type JoinPaths } from './spec/index.js';
import { ConflictError } from './errors.js';
import { ATTACH_DRAIN_TAP, ContainerAttach } from './attach.js';
import { ContainerLogs } from './logs/follow.js';
import { pruneContainers, type PruneReport } from './prune.js';
import type { DockerFilters } from './docker-filters.js';
import { isActive } from './state.js';

export interface EngineOptions {
  /** dockerd's --data-root: containers/<id>/config.v2.json, hostconfig.json, logs. */
  dataRoot: string;
  /** dockerd's --exec-root: bundles, sockets, exit files. */
  execRoot: string;
  experimental?: boolean;
  plugins?: readonly Plugin[];
  /** Per-plugin config overrides (plugin name → partial config). */
  pluginConfig?: Record<string, unknown>;
  /** Register or override providers in the engine's container before the plugins load. */
  providers?: (container: DependencyContainer) => void;
  logger?: Logger;
  clock?: Clock;
  /**
   * The runtime a container runs with when HostConfig.Runtime is empty (dockerd's
   * --default-runtime); default: runc when a backend serves it, else the first backend's first.
   */
  defaultRuntime?: string;
  /** Create containers without pivot_root (dockerd's NoPivotRoot; berthd: when DOCKER_RAMDISK is set). */
  noPivotRoot?: boolean;
  liveRestore?: boolean;
  /** Past events kept for /events?since= (default 1024). */
  eventsCapacity?: number;
  /**
   * Register the OCI spec builder as the first specBuild tap ('core:defaults', default true).
   * Tests of hooks may turn it off and build specs from `{ ociVersion }` alone.
   */
  specDefaults?: boolean;
  /**
   * After a container's exit, a log follow (logs -f, attach) of a runtime backend whose log is
   * not complete at the exit stops once no entry came for this long (default 200 ms).
   */
  logDrainMs?: number;
  /** How long a removal waits for the attach sessions of the container to write its output (default 5 s). */
  attachDrainMs?: number;
  /** Parent DI container (default: tsyringe's root). The engine always works in its own child. */
  parentContainer?: DependencyContainer;
  /** Options of the spec builder (core:defaults). */
  spec?: {
    cgroupDriver?: 'cgroupfs' | 'systemd';
    /** Cgroup parent when HostConfig.CgroupParent is empty (default /berth). */
    defaultCgroupParent?: string;
    /** Host path of the init binary used for HostConfig.Init (docker-init, tini). */
    initPath?: string;
    /** daemon.json "init": containers whose HostConfig.Init is unset run under the init. */
    defaultInit?: boolean;
  };
}

/**
 * The engine itself, in its DI container once Engine.create has finished (not during the
 * plugins' register/apply): a plugin serving another API on the engine (the CRI plugin)
 * resolves it lazily from its context's container, at its first request.
 */
export const IEngine: InjectionToken<Engine> = Symbol.for('io.berth.engine.v1');

export class Engine {
  private closed = false;
  /** Health-check monitors (health.ts), stopped at close. */
  private health: HealthMonitor | undefined;

  private constructor(
    readonly container: DependencyContainer,
    readonly hooks: Hooks,
    readonly events: EventBus,
    readonly containers: ContainerService,
    readonly execs: ExecService,
    readonly config: EngineConfig,
    readonly logger: Logger,
    private readonly provenanceRecorder: ProvenanceRecorder,
    private readonly pluginStatuses: readonly PluginStatus[],
    private readonly loadedPlugins: readonly LoadedPlugin[],
    private readonly announcedSecurityOptions: readonly string[],
    /** A container's log: `docker logs` (-f) and an attach session's output (logs/follow.ts). */
    readonly logs: ContainerLogs,
    /** Attach sessions: log replay, live output, stdin (attach.ts). */
    readonly attach: ContainerAttach,
    private readonly backendRegistry: BackendRegistry,
  ) {}

  /**
   * Plugins in load order: status (loaded / skipped, with the reason), type, version, config
   * (secrets redacted) and the hooks each taps (`berth plugins`, /info BerthPlugins).
   */
  get plugins(): PluginInfo[] {
    return pluginInfos(this.pluginStatuses, this.hooks);
  }

  /**
   * What a container's last start did (`berth explain`): each tap in order with its duration
   * and whether its selector skipped it, the spec paths each plugin set, the undo steps a
   * failed start ran. Recorded by this engine, else read back from the container's directory.
   */
  async explain(idOrName: string): Promise<ContainerExplain> {
    const rec = this.containers.get(idOrName);
    const recorder = this.provenanceRecorder;
    if (recorder.sourceOf(rec.ID) === 'none') {
      const saved = await loadExplainRecord(join(this.config.dataRoot, 'containers', rec.ID));
      if (saved && recorder.sourceOf(rec.ID) === 'none') recorder.adopt(rec.ID, saved);
    }
    return explainOf(rec.ID, rec.Name, recorder.snapshot(rec.ID), recorder.sourceOf(rec.ID));
  }

  /** Checkpoints of containers (checkpoint.ts): `available` only when a plugin stores them. */
  get checkpoints(): CheckpointService {
    return this.containers.checkpoints;
  }

  /** Every OCI runtime of every registered backend, by name, with its backend (/info's Runtimes). */
  runtimes(): RegisteredRuntime[] {
    return this.backendRegistry.runtimes();
  }

  /** `docker container prune`: remove the containers that do not run and pass the filters (prune.ts). */
  pruneContainers(filters: DockerFilters): Promise<PruneReport> {
    const images = this.container.isRegistered(IImageStore, true) ? this.container.resolve(IImageStore) : undefined;
    return pruneContainers(this.containers, images, filters);
  }

  /** The security options the loaded plugins announced (`PluginContext.addSecurityOption`), for /info. */
  securityOptions(): string[] {
    return [...this.announcedSecurityOptions];
  }

  /** Containers whose record could not be read at start-up and that are not removed yet (reported and skipped). */
  get loadProblems(): readonly LoadProblem[] {
    return this.containers.unreadable.list();
  }

  static async create(opts: EngineOptions): Promise<Engine> {
    if (!opts?.dataRoot || !opts.execRoot) throw new InvalidParameterError('dataRoot and execRoot are required');
    const dataRoot = resolve(opts.dataRoot);
    const execRoot = resolve(opts.execRoot);
    if (!isAbsolute(dataRoot) || !isAbsolute(execRoot)) throw new InvalidParameterError('dataRoot and execRoot must be absolute');
    await mkdir(join(dataRoot, 'containers'), { recursive: true, mode: 0o710 });
    await mkdir(execRoot, { recursive: true, mode: 0o700 });

    const c = (opts.parentContainer ?? rootContainer).createChildContainer();
    const logger = opts.logger ?? new ConsoleLogger('warn');
    const clock = opts.clock ?? new SystemClock();
    // Frozen once the plugins have registered their backends (they decide the default runtime).
    const config: { -readonly [K in keyof EngineConfig]: EngineConfig[K] } = {
      dataRoot,
      execRoot,
      experimental: !!opts.experimental,
      defaultRuntime: opts.defaultRuntime ?? 'runc',
      noPivotRoot: !!opts.noPivotRoot,
      liveRestore: !!opts.liveRestore,
      cgroupDriver: opts.spec?.cgroupDriver ?? 'cgroupfs',
      plugins: Object.freeze({ ...(opts.pluginConfig ?? {}) }),
    };
    const events = new MemoryEventBus(clock, opts.eventsCapacity ?? 1024, (err) =>
      logger.error('event listener failed', { error: errorMessage(err) }),
    );
    c.register(IEngineConfig, { useValue: config });
    c.register(ILogger, { useValue: logger });
    c.register(IClock, { useValue: clock });
    c.register(IEventBus, { useValue: events });
    c.register(IStateStore, { useValue: new FileStateStore(dataRoot) });
    c.register(IHost, { useValue: new SystemHost() });
    opts.providers?.(c);

    // Each start's record is written beside the container's state (explain.ts): `berth explain` after a restart.
    const provenance = new ProvenanceRecorder((id, rec) =>
      saveExplainRecord(join(dataRoot, 'containers', id), rec).catch((err: unknown) => logger.debug('could not save the explain record', { container: id, error: errorMessage(err) })),
    );
    const hooks = createHooks({ logger, provenance, clock });
    const info: EngineInfo = Object.freeze({
      dataRoot,
      execRoot,
      experimental: config.experimental,
      containerDir: (id: string) => join(dataRoot, 'containers', id),
    });

    const late: { service?: ContainerService; attach?: ContainerAttach; health?: HealthMonitor } = {};
    // Health checks (health.ts): monitors follow the container's state, and come back after a restart.
    hooks.onStateChange.tapPromise({ name: HEALTH_TAP, plugin: HEALTH_TAP }, async (change) => {
      await late.health?.onStateChange(change);
    });
    hooks.afterLiveRestore.tapPromise({ name: HEALTH_TAP, plugin: HEALTH_TAP }, async (ctx) => {
      await late.health?.onLiveRestore(ctx);
    });
    // An auto-removed container keeps its log until its attach sessions have written it.
    hooks.beforeRemove.tapPromise({ name: ATTACH_DRAIN_TAP, plugin: ATTACH_DRAIN_TAP }, async (ctx) => {
      await late.attach?.drain(ctx.container.ID, opts.attachDrainMs ?? 5000);
    });
    if (opts.specDefaults !== false) {
      const specOpts = opts.spec ?? {};
      hooks.specBuild.tapPromise({ name: CORE_DEFAULTS_PLUGIN, plugin: CORE_DEFAULTS_PLUGIN, stage: Stage.DEFAULTS }, async (_spec, ctx) => {
        const hc = ctx.container.HostConfig;
        // container:<id> modes join the namespaces of that (running) container.
        const nsOf = (mode: string | undefined, what: string, ns: string): string | undefined => {
          if (!mode?.startsWith('container:')) return undefined;
          const other = late.service!.liveRecord(mode.slice('container:'.length));
          if (!isActive(other) || !other.State.Pid) {
            throw new ConflictError(`cannot join ${what} of a non running container: ${other.ID}`);
          }
          return `/proc/${other.State.Pid}/ns/${ns}`;
        };
        const join: JoinPaths = {};
        const pid = nsOf(hc.PidMode, 'PID namespace', 'pid');
        const ipc = nsOf(hc.IpcMode, 'IPC', 'ipc');
        const uts = nsOf(hc.UTSMode, 'UTS namespace', 'uts');
        if (pid) join.pid = pid;
        if (ipc) join.ipc = ipc;
        if (uts) join.uts = uts;
        if (ctx.networkNamespacePath === undefined) {
          const net = nsOf(hc.NetworkMode, 'network', 'net');
          if (net) ctx.networkNamespacePath = net;
          else if (hc.NetworkMode === 'host') ctx.networkNamespacePath = null;
        }
        if (specOpts.initPath && wantsInit(hc, specOpts.defaultInit)) await checkInitBinary(specOpts.initPath);
        return buildOciSpec({
          container: ctx.container,
          rootfsPath: ctx.rootfsPath!,
          ...(ctx.hostsPath ? { hostsPath: ctx.hostsPath } : {}),
          ...(ctx.resolvConfPath ? { resolvConfPath: ctx.resolvConfPath } : {}),
          ...(ctx.hostnamePath ? { hostnamePath: ctx.hostnamePath } : {}),
          ...(ctx.networkNamespacePath !== undefined ? { networkNamespacePath: ctx.networkNamespacePath } : {}),
          ...(ctx.shmPath ? { shmPath: ctx.shmPath } : {}),
          ...(ctx.mounts.length ? { contributedMounts: ctx.mounts } : {}),
          ...(specOpts.initPath ? { initPath: specOpts.initPath } : {}),
          ...(specOpts.defaultInit ? { defaultInit: true } : {}),
          // Legacy links (HostConfig.Links), resolved by the container service for this start.
          linkEnv: linksOfStart(ctx).flatMap((l) => l.env),
          ...(Object.keys(join).length ? { namespacePaths: join } : {}),
          ...(specOpts.cgroupDriver ? { cgroupDriver: specOpts.cgroupDriver } : {}),
          ...(specOpts.defaultCgroupParent ? { defaultCgroupParent: specOpts.defaultCgroupParent } : {}),
          experimental: config.experimental,
        });
      });
    }

    // Plugins (plugin-loader.ts): only a plugin that loads leaves providers, taps, backends behind.
    // A failed load has closed what loaded; the engine's container goes with it.
    const backends = new BackendRegistry();
    const { statuses, loaded, securityOptions } = await loadPlugins({
      plugins: opts.plugins ?? [],
      config: config.plugins,
      hooks,
      container: c,
      engine: info,
      logger,
      backends,
      containers: () => late.service,
    }).catch(async (err: unknown) => {
      await Promise.resolve(c.dispose()).catch(() => {});
      throw err;
    });

    // From here on a failure must undo what the plugins set up.
    let service: ContainerService | undefined;
    let execs: ExecService | undefined;
    try {
      config.defaultRuntime = backends.seal(opts.defaultRuntime);
      // The token resolves to the backend of the default runtime (plugins register backends with ctx.registerBackend).
      c.register(IRuntime, { useValue: backends.default()! });
      Object.freeze(config);
      const store: StateStore = c.resolve(IStateStore);
      const images = c.isRegistered(IImageStore, true) ? c.resolve(IImageStore) : undefined;
      // Checkpoint storage comes from a plugin (@berth/plugin-checkpoint); without it the build has no checkpoints.
      const checkpointStore = c.isRegistered(ICheckpointStore, true) ? c.resolve(ICheckpointStore) : undefined;
      service = new ContainerService({
        hooks,
        backends,
        store,
        events,
        logger,
        clock,
        config,
        info,
        provenance,
        // create refuses apparmor=/seccomp= options that no loaded plugin enforces
        securityOptions,
        ...(images ? { images } : {}),
        ...(checkpointStore ? { checkpointStore } : {}),
      });
      late.service = service;
      const logs = new ContainerLogs(service, { ...(opts.logDrainMs !== undefined ? { drainMs: opts.logDrainMs } : {}) });
      late.attach = new ContainerAttach(service, logs);
      execs = new ExecService(service, events, logger, new ExecStore((id) => store.dir(id), logger));
      late.health = new HealthMonitor(service, execs, clock, logger);

      const { records, problems, interrupted } = await store.loadAll();
      for (const pr of problems) logger.error('could not load container; skipped', { container: pr.id, file: pr.file, error: pr.error });
      for (const id of interrupted ?? []) {
        await store.remove(id);
        logger.warn('removed the directory of a create that a crash interrupted', { container: id });
      }
      service.unreadable.set(problems);
      // The exec records first: exits of execs that the restore finds go to them.
      await execs.load(records);
      await service.load(records);
      await execs.restored();
      // Containers a backend holds but no record knows (a crash between the backend's create and
      // the store's write): force-delete them. Unreadable records keep theirs (the operator decides).
      await service.removeOrphans(problems.map((pr) => pr.id));
      const engine = new Engine(c, hooks, events, service, execs, config, logger, provenance, Object.freeze(statuses), loaded, Object.freeze(securityOptions), logs, late.attach, backends);
      engine.health = late.health;
      c.register(IEngine, { useValue: engine });
      return engine;
    } catch (err) {
      await late.health?.close();
      await service?.close().catch(() => {});
      await execs?.close().catch(() => {});
      await closePlugins(loaded, logger);
      await Promise.resolve(c.dispose()).catch(() => {});
      throw err;
    }
  }

  /**
   * Daemon shutdown: with live restore, containers keep running; without, they are stopped
   * (StopSignal, then SIGKILL after `timeout`) without counting as stopped by hand, as dockerd
   * does. Then `close()`.
   */
  async shutdown(opts: { liveRestore?: boolean; timeout?: number } = {}): Promise<void> {
    if (this.closed) return;
    if (!(opts.liveRestore ?? this.config.liveRestore)) await this.containers.stopAll({ ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}) });
    await this.close();
  }

  /** Stop listening to runtime events and close the plugins (reverse order). Containers keep running. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.health?.close();
    await this.containers.close();
    await this.execs.close();
    await closePlugins(this.loadedPlugins, this.logger);
    await this.container.dispose();
  }
}
