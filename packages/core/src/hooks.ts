/**
 * The engine's hook points: one frozen, typed object per engine (webpack's Compiler.hooks).
 * Every tap is wrapped by a core interceptor that
 *  - turns it into a promise tap (so `tap(async …)` is awaited, not dropped),
 *  - applies its `when` selector (a tap never runs for containers it does not concern),
 *  - enforces its `timeoutMs` budget and its `onError` failure policy,
 *  - records its duration (and for specBuild the spec paths it changed) per container,
 *  - wraps its error into PluginError{plugin, hook, cause} — or, on isolated hooks
 *    (onStateChange), logs it with the plugin name and goes on.
 */
import { AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import type { OciSpec } from './oci.js';
import type { RuntimeBackend, RuntimeCreateOptions, RuntimeStateInfo } from './runtime.js';
import type { ContainerRecord, ContainerStatus } from './types.js';
import { PluginError, SystemError, errorMessage } from './errors.js';
import type { Logger } from './logger.js';
import { type ProvenanceRecorder, cloneJson, diffPaths } from './provenance.js';
import { formatRfc3339Nano, type Clock } from './clock.js';

/** Named stages: lower runs earlier (tapable `stage`). */
export const Stage = Object.freeze({
  /** Core defaults (the OCI spec builder runs here). */
  DEFAULTS: -1000,
  /** Storage: rootfs, volumes. */
  STORAGE: -500,
  /** Networking: namespaces, interfaces, hosts/resolv.conf. */
  NETWORK: -300,
  /** Ordinary taps. */
  NORMAL: 0,
  /** Resources and devices. */
  RESOURCES: 200,
  /** Security: capabilities, seccomp, AppArmor, SELinux. */
  SECURITY: 500,
  /** User-namespace ID mapping: after everything that adds mounts or paths. */
  USERNS: 700,
  /** OCI hooks (hooks.d) and other late additions. */
  OCI_HOOKS: 800,
  /** Last: validation, auditing. */
  FINAL: 1000,
});
export type StageName = keyof typeof Stage;

/** Extra tap options every hook accepts. */
export interface TapExtra {
  /** Owning plugin (set automatically for taps made in a plugin's `apply`). */
  plugin?: string;
  /** Per-container selector: the tap runs only when this returns true. */
  when?: (container: ContainerRecord) => boolean;
  /** Time budget of one call of this tap, in milliseconds. */
  timeoutMs?: number;
  /**
   * Failure policy: 'fail' (default) fails the operation with a PluginError; 'ignore' logs the
   * error with the plugin's name and goes on as if the tap had not run.
   */
  onError?: 'fail' | 'ignore';
}

/** What the engine tells taps about itself. */
export interface EngineInfo {
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly experimental: boolean;
  /** `<data-root>/containers/<id>`: the container's own directory. */
  containerDir(id: string): string;
}

export interface UndoEntry {
  plugin: string;
  hook: string;
  label?: string;
  fn: () => void | Promise<void>;
}

/** Contexts that let a tap register its own undo step. */
export abstract class UndoableContext {
  /** Undo steps registered by taps, in registration order (run in reverse on failure). */
  readonly undos: UndoEntry[] = [];
  /** The tap currently running (set by the core interceptor). */
  currentTap: { plugin: string; hook: string } | undefined;
  /** Register an undo step for the running tap: runs (in reverse order) if the operation fails later. */
  addUndo(fn: () => void | Promise<void>, label?: string): void {
    const cur = this.currentTap ?? { plugin: 'core', hook: 'unknown' };
    this.undos.push({ plugin: cur.plugin, hook: cur.hook, label, fn });
  }
}

/** beforeCreate: validate or adjust a container before it is stored. Throw to refuse. */
export class CreateContext extends UndoableContext {
  readonly warnings: string[] = [];
  constructor(
    readonly container: ContainerRecord,
    readonly engine: EngineInfo,
  ) {
    super();
  }
}

/** Everything a start carries from step to step. */
export class StartContext extends UndoableContext {
  /** Root filesystem on the host: set by beforeMount taps (defaults to container.BaseFS). */
  rootfsPath: string | undefined;
  hostsPath: string | undefined;
  resolvConfPath: string | undefined;
  hostnamePath: string | undefined;
  /** undefined = a new netns, null = host network, string = join this netns path. */
  networkNamespacePath: string | null | undefined;
  /** Engine-managed /dev/shm directory to bind (IpcMode shareable / container:<id>). */
  shmPath: string | undefined;
  /** The spec specBuild produced (set after specBuild). */
  spec: OciSpec | undefined;
  /** The backend running this container (set after runtimeCreate). */
  runtime: RuntimeBackend | undefined;
  /** The container's init pid (set after the runtime's create, before start). */
  pid: number | undefined;
  /** Scratch space for plugins, per start (prefer WeakMaps keyed by the context). */
  readonly data = new Map<string, unknown>();
  constructor(
    readonly container: ContainerRecord,
    readonly engine: EngineInfo,
    readonly checkpoint?: { name: string; path: string },
  ) {
    super();
  }
}

export interface StateChange {
  container: Readonly<ContainerRecord>;
  /** null when the container was just created. */
  from: ContainerStatus | null;
  /** null when the container was removed. */
  to: ContainerStatus | null;
  /** What caused it: 'create', 'start', 'exit', 'stop', 'pause', 'restore', 'remove', … */
  reason: string;
}

export interface StopContext {
  container: Readonly<ContainerRecord>;
  signal: number;
  /** Seconds before SIGKILL; negative = wait forever. */
  timeout: number;
}

export interface ReleaseContext {
  container: ContainerRecord;
  /** rollback = a failed start; exit = the container exited; remove; restore = found dead after a restart. */
  reason: 'rollback' | 'exit' | 'remove' | 'restore';
  engine: EngineInfo;
}

export interface RemoveContext {
  container: Readonly<ContainerRecord>;
  force: boolean;
  volumes: boolean;
}

export interface RestartDecision {
  container: Readonly<ContainerRecord>;
  exitCode: number;
  oomKilled: boolean;
  /** How long the process ran, in milliseconds. */
  executionDurationMs: number;
  /** Policy restarts since the last manual start. */
  restartCount: number;
  /** What the restart policy (dockerd's restart manager) decided. */
  policy: boolean;
}

export interface RestoreContext {
  container: ContainerRecord;
  /** What the backend reported (null: it knows nothing of the container). */
  state: RuntimeStateInfo | null;
  engine: EngineInfo;
}

export interface Hooks {
  /** create: after validation, before the record is stored. Throw to refuse the create. */
  readonly beforeCreate: AsyncSeriesHook<[CreateContext], TapExtra>;
  /** start step 1 (dockerd conditionalMountOnStart): mount rootfs and volumes; set ctx.rootfsPath. */
  readonly beforeMount: AsyncSeriesHook<[StartContext], TapExtra>;
  /** start step 2 (initializeNetworking): netns, hosts, resolv.conf, hostname. */
  readonly networking: AsyncSeriesHook<[StartContext], TapExtra>;
  /** start step 3 (createSpec): spec in, spec out. core:defaults (the spec builder) runs first. */
  readonly specBuild: AsyncSeriesWaterfallHook<[OciSpec, StartContext], OciSpec, TapExtra>;
  /** start step 4: adjust the create options, or return another backend that takes the container over. */
  readonly runtimeCreate: AsyncSeriesBailHook<[RuntimeCreateOptions, StartContext], RuntimeBackend | undefined, TapExtra>;
  /** start step 5: after the runtime's create (ctx.pid known), before its start (moby initializeCreatedTask). */
  readonly beforeStart: AsyncSeriesHook<[StartContext], TapExtra>;
  /** Every state change. Taps are isolated: errors are logged, never stop the others or the change. */
  readonly onStateChange: AsyncSeriesHook<[StateChange], TapExtra>;
  /** stop/restart: before the stop signal is sent. Throw to refuse the stop. */
  readonly beforeStop: AsyncSeriesHook<[StopContext], TapExtra>;
  /** Undo of `networking`/`beforeStart`: on a failed start, when the container exits, on remove. */
  readonly releaseNetwork: AsyncSeriesHook<[ReleaseContext], TapExtra>;
  /** Undo of `beforeMount`: on a failed start, when the container exits, on remove. */
  readonly unmount: AsyncSeriesHook<[ReleaseContext], TapExtra>;
  /** remove: before anything is deleted. Throw to refuse (ignored with force). */
  readonly beforeRemove: AsyncSeriesHook<[RemoveContext], TapExtra>;
  /** A container's process exited: return true/false to override the restart policy's decision. */
  readonly shouldRestart: AsyncSeriesBailHook<[RestartDecision], boolean | undefined, TapExtra>;
  /** Engine start: after a container was reconciled with its backend (re-attach plugin state). */
  readonly afterRestore: AsyncSeriesHook<[RestoreContext], TapExtra>;
}

export type HookName = keyof Hooks;

type HookKind = 'series' | 'waterfall' | 'bail' | 'isolated';

const HOOK_KINDS: Readonly<Record<HookName, HookKind>> = Object.freeze({
  beforeCreate: 'series',
  beforeMount: 'series',
  networking: 'series',
  specBuild: 'waterfall',
  runtimeCreate: 'bail',
  beforeStart: 'series',
  onStateChange: 'isolated',
  beforeStop: 'series',
  releaseNetwork: 'series',
  unmount: 'series',
  beforeRemove: 'series',
  shouldRestart: 'bail',
  afterRestore: 'isolated',
});

export interface HookServices {
  logger: Logger;
  provenance: ProvenanceRecorder;
  clock: Clock;
}

/** The container an invocation concerns: the first argument with `container.ID` (or an `id`). */
function containerOf(args: unknown[]): ContainerRecord | undefined {
  for (const a of args) {
    const c = (a as { container?: ContainerRecord } | null)?.container;
    if (c && typeof c.ID === 'string') return c;
  }
  return undefined;
}

function scopeOf(args: unknown[]): UndoableContext | undefined {
  for (const a of args) if (a instanceof UndoableContext) return a;
  return undefined;
}

interface AnyTap {
  type: 'sync' | 'async' | 'promise';
  fn: (...args: any[]) => any;
  name: string;
  stage?: number;
  plugin?: string;
  when?: (c: ContainerRecord) => boolean;
  timeoutMs?: number;
  onError?: 'fail' | 'ignore';
}

function invokeTap(tap: AnyTap, args: unknown[]): Promise<unknown> {
  if (tap.type === 'async') {
    return new Promise((resolve, reject) => {
      tap.fn(...args, (err?: unknown, result?: unknown) => (err ? reject(err) : resolve(result)));
    });
  }
  // 'sync' taps may still return a promise (tap(async …)): await it either way.
  return Promise.resolve().then(() => tap.fn(...args));
}

function withTimeout<T>(p: Promise<T>, ms: number | undefined, what: string): Promise<T> {
  if (!ms || ms <= 0) return p;
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SystemError(`${what} timed out after ${ms}ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function wrapTap(hook: HookName, kind: HookKind, tap: AnyTap, svc: HookServices): AnyTap {
  const plugin = tap.plugin ?? tap.name;
  const stage = tap.stage ?? 0;
  const original = tap;
  const fn = async (...args: unknown[]): Promise<unknown> => {
    const container = containerOf(args);
    if (original.when && container && !original.when(container)) {
      if (container) {
        svc.provenance.record(container.ID, {
          hook, plugin, tap: original.name, stage, startedAt: formatRfc3339Nano(svc.clock.nowNano()), durationMs: 0, skipped: true,
        });
      }
      return kind === 'waterfall' ? args[0] : undefined;
    }
    const scope = scopeOf(args);
    const prevScope = scope?.currentTap;
    if (scope) scope.currentTap = { plugin, hook };
    const before = kind === 'waterfall' ? cloneJson(args[0]) : undefined;
    const startedAt = formatRfc3339Nano(svc.clock.nowNano());
    const t0 = performance.now();
    try {
      const result = await withTimeout(invokeTap(original, args), original.timeoutMs, `tap ${original.name}`);
      const durationMs = performance.now() - t0;
      if (container) {
        const rec = { hook, plugin, tap: original.name, stage, startedAt, durationMs } as Parameters<ProvenanceRecorder['record']>[1];
        if (kind === 'waterfall') rec.changedPaths = diffPaths(before, result === undefined ? args[0] : result);
        svc.provenance.record(container.ID, rec);
      }
      return result;
    } catch (err) {
      const durationMs = performance.now() - t0;
      if (container) {
        svc.provenance.record(container.ID, { hook, plugin, tap: original.name, stage, startedAt, durationMs, error: errorMessage(err) });
      }
      if (kind === 'isolated' || original.onError === 'ignore') {
        svc.logger.error(`plugin ${plugin} failed in hook ${hook}`, { plugin, hook, tap: original.name, error: errorMessage(err), container: container?.ID });
        // A waterfall goes on with the value from before the tap (undoing in-place changes).
        return kind === 'waterfall' ? before : undefined;
      }
      if (err instanceof PluginError && err.plugin === plugin && err.hook === hook) throw err;
      throw new PluginError(plugin, hook, err);
    } finally {
      if (scope) scope.currentTap = prevScope;
    }
  };
  return { ...original, type: 'promise', fn };
}

function intercepted<H extends { intercept(i: any): void }>(name: HookName, hook: H, svc: HookServices): H {
  hook.intercept({
    name: 'berth:core',
    register: (tap: AnyTap) => wrapTap(name, HOOK_KINDS[name], tap, svc),
  });
  return hook;
}

/** The hooks of one engine, frozen. */
export function createHooks(svc: HookServices): Hooks {
  return Object.freeze({
    beforeCreate: intercepted('beforeCreate', new AsyncSeriesHook<[CreateContext], TapExtra>(['ctx'], 'beforeCreate'), svc),
    beforeMount: intercepted('beforeMount', new AsyncSeriesHook<[StartContext], TapExtra>(['ctx'], 'beforeMount'), svc),
    networking: intercepted('networking', new AsyncSeriesHook<[StartContext], TapExtra>(['ctx'], 'networking'), svc),
    specBuild: intercepted('specBuild', new AsyncSeriesWaterfallHook<[OciSpec, StartContext], OciSpec, TapExtra>(['spec', 'ctx'], 'specBuild'), svc),
    runtimeCreate: intercepted(
      'runtimeCreate',
      new AsyncSeriesBailHook<[RuntimeCreateOptions, StartContext], RuntimeBackend | undefined, TapExtra>(['options', 'ctx'], 'runtimeCreate'),
      svc,
    ),
    beforeStart: intercepted('beforeStart', new AsyncSeriesHook<[StartContext], TapExtra>(['ctx'], 'beforeStart'), svc),
    onStateChange: intercepted('onStateChange', new AsyncSeriesHook<[StateChange], TapExtra>(['change'], 'onStateChange'), svc),
    beforeStop: intercepted('beforeStop', new AsyncSeriesHook<[StopContext], TapExtra>(['ctx'], 'beforeStop'), svc),
    releaseNetwork: intercepted('releaseNetwork', new AsyncSeriesHook<[ReleaseContext], TapExtra>(['ctx'], 'releaseNetwork'), svc),
    unmount: intercepted('unmount', new AsyncSeriesHook<[ReleaseContext], TapExtra>(['ctx'], 'unmount'), svc),
    beforeRemove: intercepted('beforeRemove', new AsyncSeriesHook<[RemoveContext], TapExtra>(['ctx'], 'beforeRemove'), svc),
    shouldRestart: intercepted(
      'shouldRestart',
      new AsyncSeriesBailHook<[RestartDecision], boolean | undefined, TapExtra>(['decision'], 'shouldRestart'),
      svc,
    ),
    afterRestore: intercepted('afterRestore', new AsyncSeriesHook<[RestoreContext], TapExtra>(['ctx'], 'afterRestore'), svc),
  });
}

export const HOOK_NAMES: readonly HookName[] = Object.freeze(Object.keys(HOOK_KINDS) as HookName[]);

/**
 * Hooks of a plugin's own, attached to an engine's hooks without touching the frozen object
 * (webpack's createHooksRegistry): `const reg = createHooksRegistry(() => ({ x: new AsyncSeriesHook(['a']) }));
 * reg.get(engine.hooks).x.tapPromise(…)`.
 */
export function createHooksRegistry<T extends object>(factory: () => T): { get(hooks: Hooks): T } {
  const map = new WeakMap<Hooks, T>();
  return {
    get(hooks: Hooks): T {
      let h = map.get(hooks);
      if (!h) map.set(hooks, (h = factory()));
      return h;
    },
  };
}
