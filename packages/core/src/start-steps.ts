/**
 * `docker start` as a table of steps, in the order of moby's containerStart
 * (daemon/start.go): mount → networking → spec → runtime create → before start → start,
 * then the running state is saved. One small loop runs them; one failure path:
 *
 * - every step that began is released, newest first, exactly once — the failed one too
 *   (its release undoes whatever part of its run got done, as moby's Cleanup does);
 * - the failure is a `StartStepError` (step, exit code, cause), and `failStart` records it
 *   as moby's deferred function does: State.Error, ExitCode 128 unless already non-zero
 *   (127/126 for an entrypoint error), Pid 0, saved, waiters woken, AutoRemove honoured.
 *
 * Undo, one way per step: mount and networking are released by their release hooks
 * (`unmount`, `releaseNetwork`: they also run at exit and remove, so a tap writes its undo
 * once); specBuild, runtimeCreate and beforeStart taps register `ctx.addUndo` steps, which
 * the step's release runs (reverse order); the runtime create's release is the backend's
 * delete.
 */
import { join } from 'node:path';
import { CHECKPOINT_FP, CheckpointRestoreContext, assertCheckpointSupported } from './checkpoint.js';
import { ConflictError, InvalidParameterError, SystemError, errorMessage } from './errors.js';
import { EXIT_START_FAILED } from './exit-codes.js';
import { failpoint } from './failpoint.js';
import type { HookName, StartContext } from './hooks.js';
import type { ContainerKernel } from './kernel.js';
import { prepareStartLinks, type LinkContainers } from './links.js';
import type { OciSpec } from './oci.js';
import { FP } from './points.js';
import type { RuntimeBackend, RuntimeCreateOptions } from './runtime.js';
import { StartStepError, translateStartError, type StartStepName } from './start-error.js';
import { setRunning, setStopped } from './state.js';
import type { ContainerRecord, ContainerStatus } from './types.js';
import { fullMessage, parseSize } from './util.js';

/** One start of one container, carried from step to step. */
export interface StartRun {
  readonly rec: ContainerRecord;
  readonly ctx: StartContext;
  /** A start by the restart policy: RestartCount and the backoff are kept. */
  readonly policy: boolean;
  /** The backend the runtimeCreate step chose. */
  backend?: RuntimeBackend;
  /** A start from a checkpoint: the restore hooks' context (its undo steps run with the runtimeCreate release). */
  restore?: CheckpointRestoreContext;
  /** The status before the container ran (set by the `save` step). */
  from?: ContainerStatus;
}

export interface StartStep {
  readonly name: StartStepName;
  /** The step's work. */
  run(r: StartRun): Promise<void>;
  /** Undo of the step's work, however far its run got; runs once, when this or a later step fails. */
  release(r: StartRun): Promise<void>;
}

/** What the steps need besides the kernel. */
export interface StartStepDeps {
  /** Link targets by name (the link variables of the start). */
  links: LinkContainers;
  /** A start by hand resets the restart manager's backoff (dockerd: ResetRestartManager). */
  resetBackoff(id: string): void;
}

/**
 * Run the steps in order. When one throws, every step that began is released, newest first,
 * and a StartStepError for the failed step is thrown (the runtime steps throw their own, with
 * moby's translated exit code).
 */
export async function runStartSteps(steps: readonly StartStep[], r: StartRun, k: ContainerKernel): Promise<void> {
  const begun: StartStep[] = [];
  for (const step of steps) {
    begun.push(step);
    try {
      await step.run(r);
    } catch (err) {
      for (const s of begun.reverse()) {
        await s.release(r).catch((e: unknown) => k.d.logger.error('releasing a start step failed', { container: r.rec.ID, step: s.name, error: errorMessage(e) }));
      }
      throw err instanceof StartStepError ? err : new StartStepError(step.name, EXIT_START_FAILED, err);
    }
  }
}

/**
 * A start failed (moby's deferred function in containerStart): the error is kept, the exit
 * code is 128 unless the container already has a non-zero one (127/126 replace it), Pid 0,
 * the state is saved, `not-running`/`next-exit` waiters wake, and AutoRemove removes the
 * container. A policy restart that failed leaves the container exited (the manager gives up).
 */
export async function failStart(
  k: ContainerKernel,
  rec: ContainerRecord,
  err: StartStepError,
  d: { forgetBackoff(id: string): void; remove(rec: ContainerRecord): Promise<void> },
): Promise<void> {
  const restarting = rec.State.Status === 'restarting';
  if (restarting) {
    setStopped(rec, { exitCode: rec.State.ExitCode, finishedAt: rec.State.FinishedAt });
    d.forgetBackoff(rec.ID);
  }
  rec.State.Error = fullMessage(err.cause);
  if (rec.State.ExitCode === 0 || err.exitCode !== EXIT_START_FAILED) rec.State.ExitCode = err.exitCode;
  rec.State.Pid = 0;
  if (restarting) await k.stateChange(rec, 'restarting', 'exited', 'start-failed');
  await k.persistQuietly(rec);
  k.waits.resolve(rec, ['not-running', 'next-exit']);
  if (rec.HostConfig.AutoRemove) {
    await d.remove(rec).catch((e: unknown) => k.d.logger.error('auto-remove after failed start failed', { container: rec.ID, error: errorMessage(e) }));
  }
}

/** The undo steps taps of `hook` registered with ctx.addUndo, newest first. */
function runTapUndos(k: ContainerKernel, ctx: StartContext, hook: HookName): Promise<void> {
  return k.runUndos(ctx.undos.filter((u) => u.hook === hook), ctx.container.ID);
}

/** Run a backend call and record it in the container's provenance (hook `runtime.<step>`, plugin = backend name). */
async function timed<T>(k: ContainerKernel, id: string, backend: RuntimeBackend, step: string, fn: () => Promise<T>): Promise<T> {
  const rec = { hook: `runtime.${step}`, plugin: backend.name, tap: step, stage: 0, startedAt: k.now() };
  const t0 = performance.now();
  try {
    const r = await fn();
    k.d.provenance.record(id, { ...rec, durationMs: performance.now() - t0 });
    return r;
  } catch (err) {
    k.d.provenance.record(id, { ...rec, durationMs: performance.now() - t0, error: errorMessage(err) });
    throw err;
  }
}

/** A runtime call of the start path: its error translated like moby's translateContainerdStartErr. */
async function runtimeCall<T>(step: StartStepName, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const t = translateStartError(err);
    throw new StartStepError(step, t.exitCode, t.error);
  }
}

/**
 * The runtime still holds a container that is not running here (its exit was not saved, so
 * its delete was skipped, or the delete failed): delete it before creating it again — never
 * one that still runs there.
 */
async function removeStoppedLeftover(k: ContainerKernel, rec: ContainerRecord): Promise<void> {
  const backend = k.backendOf(rec);
  const st = await backend.state(rec.ID).catch(() => null);
  if (st && (st.status === 'running' || st.status === 'paused')) {
    throw new ConflictError(`container ${rec.ID} is still ${st.status} in runtime backend ${backend.name}; stop or remove it first`);
  }
  if (st) await backend.delete(rec.ID, { force: true });
  k.inBackend.delete(rec.ID);
}

/** The runtime create options of a start, before the runtimeCreate taps adjust them. */
export function createOptions(k: ContainerKernel, rec: ContainerRecord, spec: OciSpec, checkpoint?: { path: string }): RuntimeCreateOptions {
  const runtime = rec.HostConfig.Runtime || k.d.config.defaultRuntime;
  const uidMap = spec.linux?.uidMappings?.find((m) => m.containerID === 0);
  const gidMap = spec.linux?.gidMappings?.find((m) => m.containerID === 0);
  const lc = rec.HostConfig.LogConfig?.Config ?? {};
  // With the `none` driver LogPath stays '' (nothing to read back), but the backend still gets a
  // file in the container's directory for the monitor's output.
  const log: RuntimeCreateOptions['log'] = { path: rec.LogPath || join(k.d.store.dir(rec.ID), `${rec.ID}-json.log`) };
  if (lc['max-size'] !== undefined) log.maxSize = parseSize(lc['max-size']);
  if (lc['max-file'] !== undefined) log.maxFile = Number(lc['max-file']);
  const cs = rec.HostConfig.ConsoleSize;
  return {
    id: rec.ID,
    spec,
    runtime,
    runtimeArgs: k.d.backends.argsOf(runtime),
    noPivotRoot: k.d.config.noPivotRoot,
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

/** The start path of moby's containerStart, one entry per step. */
export function startSteps(k: ContainerKernel, d: StartStepDeps): readonly StartStep[] {
  const { hooks } = k.d;
  return [
    {
      // conditionalMountOnStart: taps mount the rootfs and set ctx.rootfsPath, else BaseFS is used
      name: 'mount',
      async run({ rec, ctx }) {
        await hooks.beforeMount.promise(ctx);
        ctx.rootfsPath ??= rec.BaseFS;
        if (!ctx.rootfsPath) {
          throw new InvalidParameterError(`container ${rec.ID} has no root filesystem: no image store mounted one and no rootfs was given at create`);
        }
        rec.BaseFS = ctx.rootfsPath;
      },
      release: ({ rec }) => k.release(rec, 'rollback', { network: false, mount: true }),
    },
    {
      // initializeNetworking: taps prepare the netns and the hosts/resolv.conf/hostname files
      name: 'networking',
      async run({ rec, ctx }) {
        prepareStartLinks(ctx, d.links);
        await hooks.networking.promise(ctx);
        if (ctx.hostsPath !== undefined) rec.HostsPath = ctx.hostsPath;
        if (ctx.resolvConfPath !== undefined) rec.ResolvConfPath = ctx.resolvConfPath;
        if (ctx.hostnamePath !== undefined) rec.HostnamePath = ctx.hostnamePath;
      },
      release: ({ rec }) => k.release(rec, 'rollback', { network: true, mount: false }),
    },
    {
      // createSpec: a waterfall from an empty spec, core:defaults first
      name: 'spec',
      async run({ rec, ctx }) {
        const spec = await hooks.specBuild.promise({ ociVersion: '1.2.0' }, ctx);
        if (!spec || typeof spec !== 'object') throw new SystemError('specBuild produced no spec');
        ctx.spec = spec;
        k.specs.set(rec.ID, spec);
        const uid = spec.linux?.uidMappings ?? [];
        const gid = spec.linux?.gidMappings ?? [];
        if (uid.length > 0 || gid.length > 0) rec.IdMappings = { uid, gid };
        else delete rec.IdMappings;
      },
      release: ({ ctx }) => runTapUndos(k, ctx, 'specBuild'),
    },
    {
      // the runtime's create: options adjustable by taps, which may name another backend
      name: 'runtimeCreate',
      async run(r) {
        const { rec, ctx } = r;
        if (k.inBackend.has(rec.ID)) await removeStoppedLeftover(k, rec);
        const opts = createOptions(k, rec, ctx.spec!, ctx.checkpoint);
        const asked = { runtime: opts.runtime, runtimeArgs: [...opts.runtimeArgs] };
        const chosen = await hooks.runtimeCreate.promise(opts, ctx);
        const backend = k.d.backends.select(chosen, opts, asked);
        r.backend = ctx.backend = backend;
        if (ctx.checkpoint) await assertCheckpointSupported(backend, opts.runtime);
        let naming: Promise<void> | undefined;
        if (rec.RuntimeBackend !== backend.name || rec.RuntimeName !== opts.runtime) {
          // The record names its backend before the start goes on: after a crash from here on,
          // the restore asks this backend about the container. A backend that can list what it
          // holds is asked at restore whatever the records say (reconcile.ts), so there the
          // save runs beside the runtime's create; a backend without list() gets it first.
          rec.RuntimeBackend = backend.name;
          rec.RuntimeName = opts.runtime;
          naming = k.persist(rec);
          if (!backend.list) await naming;
        }
        // A start from a checkpoint: the backend's create restores the process (checkpoint.ts).
        const restore = ctx.checkpoint ? (r.restore = new CheckpointRestoreContext(structuredClone(rec), ctx.checkpoint, k.d.info)) : undefined;
        const created = (async () => {
          if (restore) await hooks.beforeRestore.promise(restore);
          return runtimeCall('runtimeCreate', () => timed(k, rec.ID, backend, 'create', () => backend.create(opts)));
        })();
        // Both settle before either outcome counts: a failed save after a created container
        // leaves it to the release below (inBackend is set), never in the runtime unknown.
        const [made, named] = await Promise.allSettled([created, naming]);
        if (made.status === 'rejected') throw made.reason;
        const proc = made.value;
        k.inBackend.add(rec.ID);
        if (named.status === 'rejected') throw named.reason;
        ctx.pid = proc.pid;
        failpoint(FP.startAfterRuntimeCreate);
        if (restore) {
          failpoint(CHECKPOINT_FP.restoreAfterRuntimeCreate);
          await hooks.afterRestore.promise(restore);
        }
      },
      async release({ rec, ctx, backend, restore }) {
        if (backend && k.inBackend.has(rec.ID)) {
          await backend.delete(rec.ID, { force: true }).then(
            () => k.inBackend.delete(rec.ID),
            (err: unknown) => k.d.logger.error('runtime delete during rollback failed', { container: rec.ID, error: errorMessage(err) }),
          );
        }
        if (restore) await k.runUndos(restore.undos, rec.ID);
        await runTapUndos(k, ctx, 'runtimeCreate');
      },
    },
    {
      // between the runtime's create and start (moby initializeCreatedTask): CNI-style attach
      name: 'beforeStart',
      run: ({ ctx }) => hooks.beforeStart.promise(ctx),
      release: ({ ctx }) => runTapUndos(k, ctx, 'beforeStart'),
    },
    {
      name: 'start',
      async run({ rec, backend }) {
        await runtimeCall('start', () => timed(k, rec.ID, backend!, 'start', () => backend!.start(rec.ID)));
        failpoint(FP.startAfterRuntimeStart);
      },
      // the runtime create's release deletes the container (with force: it stops the process)
      release: async () => {},
    },
    {
      // Running, saved before anyone is told; a record that cannot be saved fails the start.
      name: 'save',
      async run(r) {
        const { rec, ctx } = r;
        const before = { state: { ...rec.State }, started: rec.HasBeenStartedBefore, manual: rec.HasBeenManuallyStopped, count: rec.RestartCount };
        const from = rec.State.Status;
        k.live.add(rec.ID);
        setRunning(rec, ctx.pid ?? 0, k.now());
        rec.HasBeenStartedBefore = true;
        rec.HasBeenManuallyStopped = false;
        if (!r.policy) {
          rec.RestartCount = 0;
          d.resetBackoff(rec.ID);
        }
        try {
          await k.persist(rec);
        } catch (err) {
          k.live.delete(rec.ID);
          Object.assign(rec.State, before.state);
          rec.HasBeenStartedBefore = before.started;
          rec.HasBeenManuallyStopped = before.manual;
          rec.RestartCount = before.count;
          throw err;
        }
        r.from = from;
      },
      release: async () => {},
    },
  ];
}
