import { afterEach, describe, expect, it } from 'vitest';
import { AsyncSeriesHook } from 'tapable';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import {
  InvalidParameterError,
  MemoryLogger,
  PluginError,
  ProvenanceRecorder,
  SkipPluginError,
  Stage,
  SystemClock,
  StartContext,
  StartStepError,
  createHooks,
  createHooksRegistry,
  definePlugin,
  errorKind,
  httpStatus,
  type ContainerRecord,
  type DeepReadonly,
  type Hooks,
  type OciSpec,
} from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

type Entry = { hook: string; detail: Record<string, unknown> };

/** A plugin that taps every hook and records when it is called and with what. */
function recorder(log: Entry[], runtime?: FakeRuntime) {
  // Engine-level calls (exit subscription, the orphan sweep's list at start) are not per container.
  const calls = () => (runtime ? runtime.calls.map((c) => c.method).filter((m) => m !== 'onExit' && m !== 'list') : []);
  return definePlugin({
    name: 'recorder',
    type: 'io.berth.test.v1',
    apply(hooks) {
      hooks.beforeCreate.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'beforeCreate', detail: { name: ctx.container.Name, status: ctx.container.State.Status } });
      });
      hooks.beforeMount.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'beforeMount', detail: { status: ctx.container.State.Status, rootfs: ctx.rootfsPath, runtimeCalls: calls() } });
      });
      hooks.networking.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'networking', detail: { rootfs: ctx.rootfsPath } });
        ctx.hostsPath = '/tmp/hosts-of-test';
      });
      hooks.specBuild.tapPromise('recorder', async (spec, ctx) => {
        log.push({ hook: 'specBuild', detail: { ociVersion: spec.ociVersion, hosts: ctx.hostsPath } });
        return spec;
      });
      hooks.runtimeCreate.tapPromise('recorder', async (opts, ctx) => {
        log.push({ hook: 'runtimeCreate', detail: { id: opts.id, runtime: opts.runtime, log: opts.log.path, spec: opts.spec === ctx.spec, runtimeCalls: calls() } });
        return undefined;
      });
      hooks.beforeStart.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'beforeStart', detail: { pid: ctx.pid, runtimeCalls: calls() } });
      });
      hooks.onStateChange.tapPromise('recorder', async (c) => {
        log.push({ hook: 'onStateChange', detail: { from: c.from, to: c.to, reason: c.reason, status: c.container.State.Status } });
      });
      hooks.beforeStop.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'beforeStop', detail: { signal: ctx.signal, timeout: ctx.timeout, status: ctx.container.State.Status } });
      });
      hooks.releaseNetwork.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'releaseNetwork', detail: { reason: ctx.reason, status: ctx.container.State.Status } });
      });
      hooks.unmount.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'unmount', detail: { reason: ctx.reason, status: ctx.container.State.Status } });
      });
      hooks.beforeRemove.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'beforeRemove', detail: { force: ctx.force, volumes: ctx.volumes, status: ctx.container.State.Status } });
      });
      hooks.afterLiveRestore.tapPromise('recorder', async (ctx) => {
        log.push({ hook: 'afterLiveRestore', detail: { status: ctx.state?.status ?? null } });
      });
    },
  });
}

describe('hooks: when each is called, in what order, with what', () => {
  it('follows create → start → stop → remove in dockerd order', async () => {
    const log: Entry[] = [];
    const fake = new FakeRuntime();
    t = await createTestEngine({ runtime: fake, specDefaults: false, plugins: [recorder(log, fake)] });
    const id = await t.createContainer({ name: 'web', Config: { Cmd: ['/bin/sleep', '100'], StopSignal: 'SIGUSR1', StopTimeout: 3 } });
    await t.engine.containers.start(id);
    await t.engine.containers.stop(id);
    await t.engine.containers.remove(id, { volumes: true });

    expect(log.map((e) => e.hook)).toEqual([
      'beforeCreate',
      'onStateChange', // null → created
      'beforeMount',
      'networking',
      'specBuild',
      'runtimeCreate',
      'beforeStart',
      'onStateChange', // created → running
      'beforeStop',
      'onStateChange', // running → exited
      'releaseNetwork',
      'unmount',
      'beforeRemove',
      'onStateChange', // exited → removing
      'onStateChange', // removing → null
    ]);
    const d = (hook: string, i = 0) => log.filter((e) => e.hook === hook)[i]!.detail;
    expect(d('beforeCreate')).toEqual({ name: '/web', status: 'created' });
    expect(d('beforeMount')).toEqual({ status: 'created', rootfs: undefined, runtimeCalls: [] });
    expect(d('networking')).toEqual({ rootfs: t.rootfs });
    expect(d('specBuild')).toEqual({ ociVersion: '1.2.0', hosts: '/tmp/hosts-of-test' });
    expect(d('runtimeCreate')).toMatchObject({ id, runtime: 'fake', runtimeCalls: [] });
    expect(d('runtimeCreate').log).toBe(`${t.dataRoot}/containers/${id}/${id}-json.log`);
    expect(d('beforeStart')).toEqual({ pid: 1000, runtimeCalls: ['create'] });
    expect(d('onStateChange', 0)).toEqual({ from: null, to: 'created', reason: 'create', status: 'created' });
    expect(d('onStateChange', 1)).toEqual({ from: 'created', to: 'running', reason: 'start', status: 'running' });
    expect(d('beforeStop')).toEqual({ signal: 10, timeout: 3, status: 'running' });
    expect(d('onStateChange', 2)).toEqual({ from: 'running', to: 'exited', reason: 'exit', status: 'exited' });
    expect(d('releaseNetwork')).toEqual({ reason: 'exit', status: 'exited' });
    expect(d('unmount')).toEqual({ reason: 'exit', status: 'exited' });
    expect(d('beforeRemove')).toEqual({ force: false, volumes: true, status: 'exited' });
    expect(d('onStateChange', 3)).toEqual({ from: 'exited', to: 'removing', reason: 'remove', status: 'removing' });
    expect(d('onStateChange', 4)).toEqual({ from: 'removing', to: null, reason: 'remove', status: 'removing' });
    // The runtime saw create, start, kill with the StopSignal, delete after the exit, and the
    // forced delete of rm (which frees leftovers the engine may not know of; a no-op here).
    expect(fake.calls.filter((c) => c.method !== 'onExit' && c.method !== 'list').map((c) => c.method)).toEqual(['create', 'start', 'kill', 'delete', 'delete']);
    expect(fake.callsOf('kill')[0]!.args[0]).toBe(10);
    // The record kept the networking tap's paths.
  });

  it('release hooks run on remove -f of a running container, and afterLiveRestore after an engine restart', async () => {
    const log: Entry[] = [];
    t = await createTestEngine({ specDefaults: false, plugins: [recorder(log)] });
    const a = await t.createContainer({ name: 'aa' });
    const b = await t.createContainer({ name: 'bb' });
    await t.engine.containers.start(a);
    await t.engine.containers.start(b);
    log.length = 0;
    await t.engine.containers.remove(a, { force: true });
    expect(log.map((e) => `${e.hook}${e.detail.reason ? ':' + e.detail.reason : ''}`)).toEqual([
      'onStateChange:exit',
      'releaseNetwork:exit',
      'unmount:exit',
      'beforeRemove',
      'onStateChange:remove',
      'onStateChange:remove',
    ]);
    log.length = 0;
    await t.restart();
    expect(log).toEqual([{ hook: 'afterLiveRestore', detail: { status: 'running' } }]);
    expect(t.engine.containers.get(b).State.Status).toBe('running');
  });

  it('taps that must not change the record get copies (DeepReadonly): changing one changes nothing', async () => {
    const ran = new Set<string>();
    const vandalize = (hook: string) => async (ctx: { container: DeepReadonly<ContainerRecord> }) => {
      ran.add(hook);
      const c = ctx.container as ContainerRecord;
      c.Config.Labels = { ...c.Config.Labels, vandal: hook };
      c.Name = `/${hook}`;
    };
    const p = definePlugin({
      name: 'vandal',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.onStateChange.tapPromise('vandal', vandalize('onStateChange'));
        hooks.beforeStop.tapPromise('vandal', vandalize('beforeStop'));
        hooks.releaseNetwork.tapPromise('vandal', vandalize('releaseNetwork'));
        hooks.unmount.tapPromise('vandal', vandalize('unmount'));
        hooks.afterLiveRestore.tapPromise('vandal', vandalize('afterLiveRestore'));
        hooks.shouldRestart.tapPromise('vandal', async (d) => {
          await vandalize('shouldRestart')(d);
          return undefined;
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer({ name: 'kept' });
    const unchanged = () => {
      const rec = t!.engine.containers.get(id);
      expect(rec.Name).toBe('/kept');
      expect(rec.Config.Labels?.vandal).toBeUndefined();
    };
    await t.engine.containers.start(id);
    unchanged();
    await t.restart();
    unchanged();
    await t.engine.containers.stop(id, { timeout: 0 });
    unchanged();
    await t.engine.containers.start(id);
    t.fake.exit(id, 3);
    await t.engine.containers.wait(id);
    unchanged();
    expect([...ran].sort()).toEqual(['afterLiveRestore', 'beforeStop', 'onStateChange', 'releaseNetwork', 'shouldRestart', 'unmount']);
  });

  it('every tap error becomes PluginError{plugin, hook, cause} that keeps the cause kind', async () => {
    const p = definePlugin({
      name: 'picky',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.networking.tapPromise('picky-net', async () => {
          throw new InvalidParameterError('port 99999 is out of range');
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer();
    const failed = await t.engine.containers.start(id).catch((e: unknown) => e);
    // a failed start is a StartStepError; its cause is the tap's PluginError, whose kind it keeps
    expect(failed).toBeInstanceOf(StartStepError);
    expect(failed).toMatchObject({ step: 'networking' });
    const err = (failed as StartStepError).cause;
    expect(err).toBeInstanceOf(PluginError);
    expect(err).toMatchObject({ plugin: 'picky', hook: 'networking' });
    expect((err as PluginError).cause).toBeInstanceOf(InvalidParameterError);
    expect(errorKind(failed)).toBe('InvalidParameter');
    expect(httpStatus(failed)).toBe(400);
    expect((failed as Error).message).toContain('port 99999 is out of range');
  });

  it('onStateChange taps are isolated: an error is logged with the plugin name, later taps and the change still happen', async () => {
    const seen: string[] = [];
    const p1 = definePlugin({
      name: 'broken-metrics',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.onStateChange.tapPromise({ name: 'metrics', stage: -10 }, async () => {
          throw new Error('metrics backend down');
        });
      },
    });
    const p2 = definePlugin({
      name: 'audit',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.onStateChange.tapPromise('audit', async (c) => {
          seen.push(`${c.from}->${c.to}`);
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p1, p2] });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    expect(t.engine.containers.get(id).State.Status).toBe('running');
    expect(seen).toEqual(['null->created', 'created->running']);
    const errors = t.logger.entries.filter((e) => e.level === 'error' && e.fields.hook === 'onStateChange');
    expect(errors).toHaveLength(2);
    expect(errors[0]!.fields.plugin).toBe('broken-metrics');
    expect(errors[0]!.msg).toContain('broken-metrics');
    expect(errors[0]!.fields.error).toBe('metrics backend down');
  });

  it('orders taps by named stage, not by registration order; tap(async) is awaited', async () => {
    const order: string[] = [];
    const p = definePlugin({
      name: 'stages',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.specBuild.tapPromise({ name: 'sec', stage: Stage.SECURITY }, async (spec) => {
          order.push('SECURITY');
          return { ...spec, annotations: { ...spec.annotations, sec: '1' } };
        });
        hooks.specBuild.tapPromise({ name: 'defaults2', stage: Stage.DEFAULTS }, async (spec) => {
          order.push('DEFAULTS');
          return { ...spec, annotations: { first: '1' } };
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    // A misuse STYLE.md warns about, possible on engine.hooks (a plugin's view has tapPromise only):
    // tap(async …). The core interceptor awaits it anyway.
    t.engine.hooks.specBuild.tap({ name: 'userns', stage: Stage.USERNS }, (async (spec: OciSpec) => {
      await new Promise((r) => setTimeout(r, 5));
      order.push('USERNS');
      return { ...spec, annotations: { ...spec.annotations, userns: '1' } };
    }) as unknown as (spec: OciSpec) => OciSpec);
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    expect(order).toEqual(['DEFAULTS', 'SECURITY', 'USERNS']);
    expect(t.fake.containers.get(id)!.spec.annotations).toEqual({ first: '1', sec: '1', userns: '1' });
    expect(Stage.DEFAULTS).toBeLessThan(Stage.SECURITY);
    expect(Object.isFrozen(t.engine.hooks)).toBe(true);
    expect(Object.isFrozen(Stage)).toBe(true);
  });

  it('a `when` selector keeps a tap away from containers it does not concern', async () => {
    const ran: string[] = [];
    const p = definePlugin({
      name: 'gpu',
      type: 'io.berth.devices.v1',
      apply(hooks) {
        hooks.beforeMount.tapPromise({ name: 'gpu', when: (c) => c.Config.Labels?.gpu === 'yes' }, async (ctx) => {
          ran.push(ctx.container.Name);
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const a = await t.createContainer({ name: 'with-gpu', Config: { Cmd: ['x'], Labels: { gpu: 'yes' } } });
    const b = await t.createContainer({ name: 'plain' });
    await t.engine.containers.start(a);
    await t.engine.containers.start(b);
    expect(ran).toEqual(['/with-gpu']);
    expect((await t.engine.explain(b)).taps.find((x) => x.plugin === 'gpu')).toMatchObject({ skipped: true });
  });

  it('a tap over its time budget fails the hook with a PluginError', async () => {
    const p = definePlugin({
      name: 'slow',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.beforeMount.tapPromise({ name: 'slow', timeoutMs: 20 }, () => new Promise((r) => setTimeout(r, 500)));
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer();
    await expect(t.engine.containers.start(id)).rejects.toMatchObject({ step: 'mount', cause: { plugin: 'slow', hook: 'beforeMount', message: expect.stringContaining('timed out after 20ms') } });
  });

  it('a tap that times out sees its AbortSignal aborted (and can stop its work); other taps\' signals are not', async () => {
    let stopped: ((why: unknown) => void) | undefined;
    const stoppedWith = new Promise<unknown>((resolve) => (stopped = resolve));
    const signals: AbortSignal[] = [];
    const p = definePlugin({
      name: 'slow',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.beforeMount.tapPromise({ name: 'quick', timeoutMs: 60_000 }, async (_ctx, signal) => void signals.push(signal));
        // Works until told to stop: only the abort ends it (a signal that never aborts hangs the test).
        hooks.networking.tapPromise({ name: 'slow', timeoutMs: 20 }, (_ctx, signal) => {
          signals.push(signal);
          return new Promise<void>((_resolve, reject) => {
            signal.addEventListener('abort', () => {
              stopped!(signal.reason);
              reject(signal.reason as Error);
            });
          });
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer();
    await expect(t.engine.containers.start(id)).rejects.toMatchObject({ step: 'networking', cause: { plugin: 'slow', hook: 'networking' } });
    const reason = await stoppedWith;
    expect(reason).toBeInstanceOf(Error);
    expect(errorKind(reason)).toBe('System');
    expect(signals.map((s) => s.aborted)).toEqual([false, true]);
  });

  it('taps without a time budget share one never-aborted signal per context (no AbortController each); a budgeted tap has its own', async () => {
    const seen: { tap: string; container: string; signal: AbortSignal }[] = [];
    const p = definePlugin({
      name: 'signals',
      type: 'io.berth.test.v1',
      apply(hooks) {
        for (const tap of ['a', 'b']) hooks.beforeCreate.tapPromise({ name: tap }, async (ctx, signal) => void seen.push({ tap, container: ctx.container.Name, signal }));
        hooks.beforeCreate.tapPromise({ name: 'budgeted', timeoutMs: 60_000 }, async (ctx, signal) => void seen.push({ tap: 'budgeted', container: ctx.container.Name, signal }));
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    await t.createContainer({ name: 'one' });
    await t.createContainer({ name: 'two' });
    const of = (tap: string, container: string) => seen.find((s) => s.tap === tap && s.container === `/${container}`)!.signal;
    expect(of('a', 'one')).toBe(of('b', 'one'));
    expect(of('a', 'one')).not.toBe(of('a', 'two'));
    expect(of('budgeted', 'one')).not.toBe(of('a', 'one'));
    expect(seen.map((s) => s.signal.aborted)).toEqual(Array(6).fill(false));
  });

  it("a tap with onError: 'ignore' is logged and skipped; the start goes on", async () => {
    const p = definePlugin({
      name: 'best-effort',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.specBuild.tapPromise({ name: 'hint', onError: 'ignore' }, async (spec) => {
          spec.hostname = 'half-done';
          throw new Error('hint service unreachable');
        });
        hooks.beforeMount.tapPromise({ name: 'probe', onError: 'ignore', timeoutMs: 10 }, () => new Promise((r) => setTimeout(r, 200)));
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    expect(t.engine.containers.get(id).State.Status).toBe('running');
    expect(t.fake.containers.get(id)!.spec.hostname).toBeUndefined();
    const errs = t.logger.entries.filter((e) => e.level === 'error' && e.fields.plugin === 'best-effort');
    expect(errs.map((e) => e.fields.hook)).toEqual(['beforeMount', 'specBuild']);
    expect((await t.engine.explain(id)).taps.filter((x) => x.error).map((x) => x.tap)).toEqual(['probe', 'hint']);
  });

  it('runtimeCreate taps can adjust the create options', async () => {
    const p = definePlugin({
      name: 'args',
      type: 'io.berth.runtime.v1',
      apply(hooks) {
        hooks.runtimeCreate.tapPromise('args', async (opts) => {
          opts.runtimeArgs.push('--debug');
          opts.labels = { ...opts.labels, picked: 'by-args' };
          return undefined;
        });
      },
    });
    // The runtime's configured arguments (daemon.json runtimeArgs) come from the backend's runtimes().
    const runtime = new FakeRuntime({ runtimes: [{ name: 'fake', runtimeArgs: ['--root', '/x'] }] });
    t = await createTestEngine({ specDefaults: false, plugins: [p], runtime });
    const id = await t.createContainer({ HostConfig: { LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } } } });
    await t.engine.containers.start(id);
    const opts = t.fake.callsOf('create', id)[0]!.args[0] as { runtimeArgs: string[]; labels: Record<string, string>; log: unknown };
    expect(opts.runtimeArgs).toEqual(['--root', '/x', '--debug']);
    expect(opts.labels.picked).toBe('by-args');
    expect(opts.log).toEqual({ path: `${t.dataRoot}/containers/${id}/${id}-json.log`, maxSize: 10 * 1024 * 1024, maxFile: 3 });
    expect(t.engine.containers.get(id).LogPath).toBe(`${t.dataRoot}/containers/${id}/${id}-json.log`);
  });

  it('runtimeCreate taps can return the name of another registered backend, which takes the container over', async () => {
    const alt = new FakeRuntime({ name: 'alt', runtimes: ['alt-a', 'alt-b'] });
    const p = definePlugin({
      name: 'router',
      type: 'io.berth.test.v1',
      register(_c, ctx) {
        ctx.registerBackend(alt);
      },
      apply(hooks) {
        hooks.runtimeCreate.tapPromise('router', async (opts) => (opts.labels?.runtime === 'alt' ? 'alt' : undefined));
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const a = await t.createContainer({ Config: { Cmd: ['x'], Labels: { runtime: 'alt' } } });
    const b = await t.createContainer();
    await t.engine.containers.start(a);
    await t.engine.containers.start(b);
    expect(t.engine.containers.get(a).RuntimeBackend).toBe('alt');
    expect(t.engine.containers.get(b).RuntimeBackend).toBe('fake');
    // The runtime asked for (the default, 'fake') is not one of alt's: alt's first runtime runs it.
    expect(t.engine.containers.get(a)).toMatchObject({ RuntimeName: 'alt-a', HostConfig: { Runtime: 'fake' } });
    expect((alt.callsOf('create', a)[0]!.args[0] as { runtime: string }).runtime).toBe('alt-a');
    expect(alt.containers.has(a)).toBe(true);
    expect(t.fake.containers.has(a)).toBe(false);
    // Exits of the alternate backend reach the engine; its kill goes to the alternate.
    await t.engine.containers.stop(a, { timeout: 1 });
    expect(alt.callsOf('kill', a)).toHaveLength(1);
    expect(t.engine.containers.get(a).State).toMatchObject({ Status: 'exited', ExitCode: 143 });
    // After a restart, live restore asks the alternate backend (registered by the plugin) about its container.
    await t.engine.containers.start(a);
    await t.restart({ plugins: [definePlugin({ name: 'router', type: 'io.berth.runtime.v1', register(_c, ctx) { ctx.registerBackend(alt); } })] });
    expect(alt.callsOf('restore', a)).toHaveLength(1);
    expect(t.engine.containers.get(a).State.Status).toBe('running');
  });

  it('per-tap undo steps run in reverse order when a later step fails', async () => {
    const undone: string[] = [];
    const p = definePlugin({
      name: 'undoer',
      type: 'io.berth.test.v1',
      apply(hooks) {
        // (beforeMount and networking have no undo steps: their release hooks undo them)
        hooks.specBuild.tapPromise('s1', async (spec, ctx) => (ctx.addUndo(() => void undone.push('s1')), spec));
        hooks.specBuild.tapPromise('s2', async (spec, ctx) => (ctx.addUndo(() => void undone.push('s2')), spec));
        hooks.runtimeCreate.tapPromise('r1', async (_opts, ctx) => void ctx.addUndo(async () => void undone.push('r1')));
        hooks.beforeStart.tapPromise('boom', async () => {
          throw new Error('cni attach failed');
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer();
    await expect(t.engine.containers.start(id)).rejects.toThrow(/cni attach failed/);
    expect(undone).toEqual(['r1', 's2', 's1']);
  });
});

describe('hooks object', () => {
  it('is frozen, one per engine; two engines share nothing', async () => {
    const t1 = await createTestEngine({ specDefaults: false });
    const t2 = await createTestEngine({ specDefaults: false });
    try {
      expect(t1.engine.hooks).not.toBe(t2.engine.hooks);
      expect(t1.engine.container).not.toBe(t2.engine.container);
      const a = await t1.createContainer({ name: 'same' });
      const b = await t2.createContainer({ name: 'same' });
      expect(a).not.toBe(b);
      expect(t1.engine.containers.list().map((c) => c.ID)).toEqual([a]);
      expect(t2.engine.events.history().map((e) => e.Actor.ID)).toEqual([b]);
    } finally {
      await t1.dispose();
      await t2.dispose();
    }
  });

  it('wraps taps made directly on a bare hooks object too', async () => {
    expect.assertions(3);
    const hooks: Hooks = createHooks({ logger: new MemoryLogger(), provenance: new ProvenanceRecorder(), clock: new SystemClock() });
    hooks.beforeMount.tapAsync('cb', (_ctx, cb) => cb(new Error('callback style failure')));
    const ctx = new StartContext({ ID: 'x' } as never, { dataRoot: '/d', execRoot: '/e', experimental: false, containerDir: (id) => id });
    const err = await hooks.beforeMount.promise(ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).plugin).toBe('cb');
    expect((err as PluginError).hook).toBe('beforeMount');
  });

  it('plugins get hooks of their own through a registry, never by changing the frozen object', async () => {
    const reg = createHooksRegistry(() => ({ beforeSnapshot: new AsyncSeriesHook<[string]>(['id']) }));
    t = await createTestEngine({ specDefaults: false });
    const own = reg.get(t.engine.hooks);
    expect(reg.get(t.engine.hooks)).toBe(own);
    const seen: string[] = [];
    own.beforeSnapshot.tapPromise('x', async (id) => void seen.push(id));
    await own.beforeSnapshot.promise('abc');
    expect(seen).toEqual(['abc']);
    expect(Object.keys(t.engine.hooks)).not.toContain('beforeSnapshot');
  });

  it('the hooks a plugin gets in apply expose tapping only: no promise, call, intercept or taps of the real hooks', async () => {
    let view: Record<string, Record<string, unknown>> | undefined;
    let ctxOf: ((id: string) => Promise<void>) | undefined;
    const reg = createHooksRegistry(() => ({ beforeCheckpoint: new AsyncSeriesHook<[string]>(['id']) }));
    const p = definePlugin({
      name: 'curious',
      type: 'io.berth.test.v1',
      apply(hooks) {
        view = hooks as unknown as Record<string, Record<string, unknown>>;
        ctxOf = reg.get(hooks).beforeCheckpoint.promise.bind(reg.get(hooks).beforeCheckpoint);
        hooks.specBuild.tapPromise('curious', async (spec) => spec);
        // a tap is always stamped with its own plugin's name
        hooks.beforeMount.tapPromise({ name: 'impostor', plugin: 'core:defaults' } as never, async () => undefined);
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const spec = view!.specBuild!;
    for (const m of ['promise', 'callAsync', 'call', 'intercept', 'tap', 'tapAsync', 'taps', 'interceptors', 'withOptions']) {
      expect(spec[m], m).toBeUndefined();
    }
    expect(Object.getPrototypeOf(spec)).toBe(Object.prototype);
    expect(Object.keys(spec)).toEqual(['tapPromise']);
    expect(Object.keys(view!).sort()).toEqual(Object.keys(t.engine.hooks).sort());
    // its tap reached the engine's hook; a registry keyed by the view is the engine's
    expect(t.engine.hooks.specBuild.taps.map((x) => x.name)).toContain('curious');
    expect(t.engine.hooks.beforeMount.taps.find((x) => x.name === 'impostor')).toMatchObject({ plugin: 'curious' });
    expect(reg.get(t.engine.hooks).beforeCheckpoint.promise).toBeDefined();
    const seen: string[] = [];
    reg.get(t.engine.hooks).beforeCheckpoint.tapPromise('x', async (id) => void seen.push(id));
    await ctxOf!('abc');
    expect(seen).toEqual(['abc']);
  });

  it('a plugin that skips itself halfway through apply leaves no taps behind', async () => {
    const p = definePlugin({
      name: 'apparmor',
      type: 'io.berth.security.v1',
      apply(hooks) {
        hooks.specBuild.tapPromise('apparmor', async (s) => ({ ...s, process: { cwd: '/', user: { uid: 0, gid: 0 }, apparmorProfile: 'x' } }));
        throw new SkipPluginError('AppArmor is not enabled on this host');
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    expect(t.engine.plugins.find((x) => x.name === 'apparmor')).toMatchObject({ name: 'apparmor', type: 'io.berth.security.v1', status: 'skipped', reason: 'AppArmor is not enabled on this host' });
    expect(t.engine.hooks.specBuild.taps.map((x) => x.name)).toEqual([]);
  });
});
