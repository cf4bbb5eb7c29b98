/**
 * The engine's hook points: one frozen, typed object per engine (webpack's Compiler.hooks).
 * Every tap is wrapped by a core interceptor that
 *  - turns it into a promise tap (so `tap(async …)` is awaited, not dropped),
 *  - applies its `when` selector (a tap never runs for containers it does not concern),
 *  - enforces its `timeoutMs` budget (the tap's trailing AbortSignal argument is aborted when
 *    it runs out, so the tap can stop its work) and its `onError` failure policy,
 *  - records its duration (and for specBuild the spec paths it changed) per container,
 *  - wraps its error into PluginError{plugin, hook, cause} — or, on isolated hooks
 *    (onStateChange), logs it with the plugin name and goes on.
 * A plugin's `apply` gets a staged, tap-only view of the hooks (`PluginHooks`, see stagedHooks).
 */
import { AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import type { OciMount, OciSpec } from './oci.js';
import type { RuntimeBackend, RuntimeCreateOptions, RuntimeStateInfo } from './runtime.js';
import type { CheckpointContext, CheckpointRef, CheckpointRestoreContext } from './checkpoint.js';
import type { ContainerRecord, ContainerStatus } from './types.js';
import { PluginError, SystemError, errorMessage } from './errors.js';
import type { Logger } from './logger.js';
import { type ProvenanceRecorder, diffPaths, snapshotJson } from './provenance.js';
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

/** A read-only view of a value, all the way down: what a tap gets where it must not change the record. */
export type DeepReadonly<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends ReadonlyArray<infer E>
    ? ReadonlyArray<DeepReadonly<E>>
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

/** Extra tap options every hook accepts. */
export interface TapExtra {
  /** Owning plugin (set automatically for taps made in a plugin's `apply`). */
  plugin?: string;
  /** Per-container selector: the tap runs only when this returns true. */
  when?: (container: DeepReadonly<ContainerRecord>) => boolean;
  /**
   * Time budget of one call of this tap, in milliseconds. When it runs out the operation goes
   * on as the `onError` policy says, and the tap's AbortSignal (its last argument) is aborted.
   */
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
  /**
   * Set by a volume plugin's tap once it resolved the container's volumes (named, anonymous,
   * image VOLUMEs, VolumesFrom) into `container.Mounts`; left false, the create refuses
   * volumes and VolumesFrom (501: no volume plugin in this build).
   */
  volumesResolved = false;
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
  /**
   * dockerd's host-gateway address (`--add-host NAME:host-gateway`): the host as seen from the
   * default bridge, set by a networking plugin that has one (network-cni) for the hosts file.
   */
  hostGatewayIP: string | undefined;
  /** Engine-managed /dev/shm directory to bind (IpcMode shareable / container:<id>). */
  shmPath: string | undefined;
  /**
   * Container mounts contributed by beforeMount taps (volumes, VolumesFrom): bind mounts the
   * spec builder adds like the user's own; one at the destination of a Binds/Mounts volume
   * entry stands for that entry. Release what backs them in the `unmount` hook.
   */
  readonly mounts: OciMount[] = [];
  /** The spec specBuild produced (set after specBuild). */
  spec: OciSpec | undefined;
  /** The runtime backend running this container (set after runtimeCreate; the runtime's name is `container.RuntimeName`). */
  backend: RuntimeBackend | undefined;
  /** The container's init pid (set after the runtime's create, before start). */
  pid: number | undefined;
  /** Scratch space for plugins, per start (prefer WeakMaps keyed by the context). */
  readonly data = new Map<string, unknown>();
  constructor(
    readonly container: ContainerRecord,
    readonly engine: EngineInfo,
    /** Set for a start from a checkpoint (`docker start --checkpoint`). */
    readonly checkpoint?: CheckpointRef,
  ) {
    super();
  }

  /**
   * An undo step for a specBuild, runtimeCreate or beforeStart tap. beforeMount and networking
   * taps have none: their undo is the `unmount` / `releaseNetwork` hook, which runs once on a
   * failed start (also when the step itself failed halfway), at exit and at remove.
   */
  override addUndo(fn: () => void | Promise<void>, label?: string): void {
    const hook = this.currentTap?.hook;
    if (hook === 'beforeMount' || hook === 'networking') {
      throw new SystemError(`addUndo is not available in ${hook}: release in the ${hook === 'beforeMount' ? 'unmount' : 'releaseNetwork'} hook instead`);
    }
    super.addUndo(fn, label);
  }
}

/** A copy of the record (changing it changes nothing). */
export interface StateChange {
  container: DeepReadonly<ContainerRecord>;
  /** null when the container was just created. */
  from: ContainerStatus | null;
  /** null when the container was removed. */
  to: ContainerStatus | null;
  /** What caused it: 'create', 'start', 'exit', 'stop', 'pause', 'restore', 'remove', … */
  reason: string;
}

export interface StopContext {
  /** A copy of the record. */
  container: DeepReadonly<ContainerRecord>;
  signal: number;
  /** Seconds before SIGKILL; negative = wait forever. */
  timeout: number;
}

export interface ReleaseContext {
  /** A copy of the record. */
  container: DeepReadonly<ContainerRecord>;
  /** rollback = a failed start; exit = the container exited; remove; restore = found dead after a restart. */
  reason: 'rollback' | 'exit' | 'remove' | 'restore';
  engine: EngineInfo;
}

export interface RemoveContext {
  /** A copy of the record. */
  container: DeepReadonly<ContainerRecord>;
  force: boolean;
  volumes: boolean;
}

export interface RestartDecision {
  /** A copy of the record. */
  container: DeepReadonly<ContainerRecord>;
  exitCode: number;
  oomKilled: boolean;
  /** How long the process ran, in milliseconds. */
  executionDurationMs: number;
  /** Policy restarts since the last manual start. */
  restartCount: number;
  /** What the restart policy (dockerd's restart manager) decided. */
  policy: boolean;
}

/** afterLiveRestore: a container re-attached (or found exited) after a daemon restart (dockerd's --live-restore). */
export interface LiveRestoreContext {
  /** A copy of the record. */
  container: DeepReadonly<ContainerRecord>;
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
  /**
   * start step 4: adjust the create options (runtime, runtimeArgs, noPivotRoot, …), or return
   * the name of another registered runtime backend that takes the container over.
   */
  readonly runtimeCreate: AsyncSeriesBailHook<[RuntimeCreateOptions, StartContext], string | undefined, TapExtra>;
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
  /** Engine start (live restore): after a container was reconciled with its backend (re-attach plugin state). */
  readonly afterLiveRestore: AsyncSeriesHook<[LiveRestoreContext], TapExtra>;
  /** checkpoint create: before the backend dumps the container. Throw to refuse. */
  readonly beforeCheckpoint: AsyncSeriesHook<[CheckpointContext], TapExtra>;
  /** checkpoint create: the backend dumped it, before the checkpoint is published (save plugin state here). */
  readonly afterCheckpoint: AsyncSeriesHook<[CheckpointContext], TapExtra>;
  /** start from a checkpoint: before the backend restores the container (put plugin state back). */
  readonly beforeRestore: AsyncSeriesHook<[CheckpointRestoreContext], TapExtra>;
  /** start from a checkpoint: the backend restored it (the process runs), before the start is saved. */
  readonly afterRestore: AsyncSeriesHook<[CheckpointRestoreContext], TapExtra>;
}

export type HookName = keyof Hooks;

/** Options of one tap: its name, its stage (see Stage), and the core's extras. */
export type TapOptions = { name: string; stage?: number; before?: string } & TapExtra;

/**
 * One hook as a plugin's `apply` sees it: tapping only. The tap gets the hook's arguments and,
 * last, an AbortSignal that is aborted when the tap's `timeoutMs` runs out (never otherwise).
 */
export interface PluginHook<A extends unknown[], R> {
  /** The owning plugin is always the plugin whose `apply` got the view (a `plugin` option is overridden). */
  tapPromise(options: string | Omit<TapOptions, 'plugin'>, fn: (...args: [...A, AbortSignal]) => Promise<R>): void;
}

type HookArgs<H> = H extends { promise(...args: infer A): Promise<unknown> } ? A : never;
type HookResult<H> = H extends { promise(...args: never[]): Promise<infer R> } ? R : never;

/** The hooks a plugin's `apply` gets: `tapPromise` on each, nothing else (no promise/call/intercept). */
export type PluginHooks = { readonly [K in HookName]: PluginHook<HookArgs<Hooks[K]>, HookResult<Hooks[K]>> };

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
  afterLiveRestore: 'isolated',
  beforeCheckpoint: 'series',
  afterCheckpoint: 'series',
  beforeRestore: 'series',
  afterRestore: 'series',
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
  when?: (c: DeepReadonly<ContainerRecord>) => boolean;
  timeoutMs?: number;
  onError?: 'fail' | 'ignore';
}

/** Call a tap; promise and sync taps get the AbortSignal after the hook's arguments (callback taps cannot). */
function invokeTap(tap: AnyTap, args: unknown[], signal: AbortSignal): Promise<unknown> {
  if (tap.type === 'async') {
    return new Promise((resolve, reject) => {
      tap.fn(...args, (err?: unknown, result?: unknown) => (err ? reject(err) : resolve(result)));
    });
  }
  // 'sync' taps may still return a promise (tap(async …)): await it either way.
  return Promise.resolve().then(() => tap.fn(...args, signal));
}

/**
 * The signal of the taps without a time budget: never aborted, so one serves every such tap
 * called with the same context (an AbortController costs ~5 µs, and a create calls ~9 taps;
 * issue 18). Kept with that context, so listeners a tap leaves on it go when the context goes.
 */
const neverAborted = new WeakMap<object, AbortSignal>();

function unlimitedSignal(args: unknown[]): AbortSignal {
  const key = args[0];
  if (typeof key !== 'object' || key === null) return new AbortController().signal;
  let signal = neverAborted.get(key);
  if (!signal) neverAborted.set(key, (signal = new AbortController().signal));
  return signal;
}

/**
 * Run `work` within `ms` (none: no limit, and `unlimited` is its signal); when the time runs out
 * its signal is aborted and the call fails.
 */
function withTimeout<T>(work: (signal: AbortSignal) => Promise<T>, ms: number | undefined, what: string, unlimited: () => AbortSignal): Promise<T> {
  if (!ms || ms <= 0) return work(unlimited());
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new SystemError(`${what} timed out after ${ms}ms`);
      ac.abort(err);
      reject(err);
    }, ms);
  });
  return Promise.race([work(ac.signal), t]).finally(() => clearTimeout(timer));
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
    const before = kind === 'waterfall' ? snapshotJson(args[0]) : undefined;
    const startedAt = formatRfc3339Nano(svc.clock.nowNano());
    const t0 = performance.now();
    try {
      const result = await withTimeout((signal) => invokeTap(original, args, signal), original.timeoutMs, `tap ${original.name}`, () => unlimitedSignal(args));
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
      new AsyncSeriesBailHook<[RuntimeCreateOptions, StartContext], string | undefined, TapExtra>(['options', 'ctx'], 'runtimeCreate'),
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
    afterLiveRestore: intercepted('afterLiveRestore', new AsyncSeriesHook<[LiveRestoreContext], TapExtra>(['ctx'], 'afterLiveRestore'), svc),
    beforeCheckpoint: intercepted('beforeCheckpoint', new AsyncSeriesHook<[CheckpointContext], TapExtra>(['ctx'], 'beforeCheckpoint'), svc),
    afterCheckpoint: intercepted('afterCheckpoint', new AsyncSeriesHook<[CheckpointContext], TapExtra>(['ctx'], 'afterCheckpoint'), svc),
    beforeRestore: intercepted('beforeRestore', new AsyncSeriesHook<[CheckpointRestoreContext], TapExtra>(['ctx'], 'beforeRestore'), svc),
    afterRestore: intercepted('afterRestore', new AsyncSeriesHook<[CheckpointRestoreContext], TapExtra>(['ctx'], 'afterRestore'), svc),
  });
}

/** The engine hooks behind each plugin's view (so a registry keyed by hooks sees one engine). */
const hooksOfView = new WeakMap<PluginHooks, Hooks>();

/**
 * A view of the hooks for one plugin's `apply`: `tapPromise` only, taps buffered (and stamped
 * with the plugin's name) until `commit()`, so a plugin that skips itself halfway leaves no
 * taps behind (`discard()`). After commit, taps go straight to the hooks; after discard, nowhere.
 */
export function stagedHooks(hooks: Hooks, plugin: string): { view: PluginHooks; commit(): void; discard(): void } {
  let state: 'staging' | 'committed' | 'discarded' = 'staging';
  const pending: Array<() => void> = [];
  const view: Record<string, PluginHook<unknown[], unknown>> = {};
  for (const name of Object.keys(hooks) as HookName[]) {
    const real = hooks[name] as unknown as { tapPromise(options: TapOptions, fn: unknown): void };
    view[name] = Object.freeze({
      tapPromise(options: string | Omit<TapOptions, 'plugin'>, fn: unknown): void {
        const opts: TapOptions = { ...(typeof options === 'string' ? { name: options } : options), plugin };
        if (state === 'committed') real.tapPromise(opts, fn);
        else if (state === 'staging') pending.push(() => real.tapPromise(opts, fn));
      },
    });
  }
  const frozen = Object.freeze(view) as unknown as PluginHooks;
  hooksOfView.set(frozen, hooks);
  return {
    view: frozen,
    commit() {
      state = 'committed';
      for (const p of pending.splice(0)) p();
    },
    discard() {
      state = 'discarded';
      pending.length = 0;
    },
  };
}

/**
 * Hooks of a plugin's own, attached to an engine's hooks without touching the frozen object
 * (webpack's createHooksRegistry): `const reg = createHooksRegistry(() => ({ x: new AsyncSeriesHook(['a']) }));
 * reg.get(hooks).x.tapPromise(…)` — `hooks` is `engine.hooks` or the view a plugin's `apply` got.
 */
export function createHooksRegistry<T extends object>(factory: () => T): { get(hooks: Hooks | PluginHooks): T } {
  const map = new WeakMap<Hooks, T>();
  return {
    get(hooks: Hooks | PluginHooks): T {
      const real = hooksOfView.get(hooks as PluginHooks) ?? (hooks as Hooks);
      let h = map.get(real);
      if (!h) map.set(real, (h = factory()));
      return h;
    },
  };
}
