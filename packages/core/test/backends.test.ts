/**
 * Runtime backends chosen by name (core/src/backends.ts and the runtimeCreate step): every
 * backend comes from a plugin; HostConfig.Runtime picks whichever backend serves that runtime;
 * a runtimeCreate tap names a registered backend; /info's list covers every backend; a plugin
 * that skips itself leaves no backend; the seed's create options (runtime, its args,
 * noPivotRoot) reach the backend per container.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, backendPlugin, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { Engine, MemoryLogger, SkipPluginError, definePlugin, errorKind, type RuntimeCreateOptions } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const createOpts = (b: FakeRuntime, id: string) => b.callsOf('create', id)[0]!.args[0] as RuntimeCreateOptions;

describe('runtime backends chosen by name', () => {
  it('HostConfig.Runtime selects the runtime of a backend another plugin registered, without any tap', async () => {
    const kata = new FakeRuntime({ name: 'kata-backend', runtimes: [{ name: 'kata', path: '/opt/kata/bin/kata-runtime', runtimeArgs: ['--log-level', 'debug'] }] });
    t = await createTestEngine({ specDefaults: false, backends: [kata] });
    const id = await t.createContainer({ HostConfig: { Runtime: 'kata' } });
    const other = await t.createContainer();
    await t.engine.containers.start(id);
    await t.engine.containers.start(other);
    expect(kata.containers.has(id)).toBe(true);
    expect(t.fake.containers.has(id)).toBe(false);
    expect(createOpts(kata, id)).toMatchObject({ runtime: 'kata', runtimeArgs: ['--log-level', 'debug'] });
    expect(t.engine.containers.get(id)).toMatchObject({ RuntimeBackend: 'kata-backend', RuntimeName: 'kata', HostConfig: { Runtime: 'kata' } });
    // The other one runs on the default runtime's backend.
    expect(t.engine.containers.get(other)).toMatchObject({ RuntimeBackend: 'fake', RuntimeName: 'fake', HostConfig: { Runtime: 'fake' } });
    // Calls after the start go to the container's backend.
    await t.engine.containers.stop(id, { timeout: 1 });
    expect(kata.callsOf('kill', id)).toHaveLength(1);
    expect(t.fake.callsOf('kill', id)).toHaveLength(0);
  });

  it('lists every runtime of every backend, with the backend that serves it', async () => {
    const kata = new FakeRuntime({ name: 'kata-backend', runtimes: [{ name: 'kata', path: '/opt/kata' }, 'kata-qemu'] });
    t = await createTestEngine({ specDefaults: false, runtime: new FakeRuntime({ runtimes: ['runc', 'crun'] }), backends: [kata] });
    expect(t.engine.runtimes()).toEqual([
      { name: 'crun', backend: 'fake' },
      { name: 'kata', path: '/opt/kata', backend: 'kata-backend' },
      { name: 'kata-qemu', backend: 'kata-backend' },
      { name: 'runc', backend: 'fake' },
    ]);
    // dockerd's default when nobody says: runc, whichever backend serves it.
    expect(t.engine.config.defaultRuntime).toBe('runc');
  });

  it('an unknown runtime is dockerd\'s 400 at create, whichever backends are loaded', async () => {
    t = await createTestEngine({ specDefaults: false, backends: [new FakeRuntime({ name: 'kata-backend', runtimes: ['kata'] })] });
    const err = await t.createContainer({ HostConfig: { Runtime: 'gvisor' } }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toBe('unknown or invalid runtime name: gvisor');
    expect(t.engine.containers.list()).toEqual([]);
  });

  it('a runtimeCreate tap that names an unregistered backend fails the start with a clear error; the start is rolled back', async () => {
    const journal: string[] = [];
    const p = definePlugin({
      name: 'router',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.networking.tapPromise('router', async () => void journal.push('network'));
        hooks.releaseNetwork.tapPromise('router', async () => void journal.push('releaseNetwork'));
        hooks.runtimeCreate.tapPromise('router', async () => 'nowhere');
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer();
    const err = (await t.engine.containers.start(id).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(errorKind(err)).toBe('System');
    expect(err.message).toMatch(/runtimeCreate tap chose runtime backend "nowhere", which is not registered \(registered: fake\)/);
    // Nothing was created in any backend; networking was released; the container is down with the error.
    expect(t.fake.callsOf('create', id)).toHaveLength(0);
    expect(journal).toEqual(['network', 'releaseNetwork']);
    const rec = t.engine.containers.get(id);
    expect(rec.State).toMatchObject({ Status: 'created', Running: false, ExitCode: 128 });
    expect(rec.State.Error).toMatch(/not registered/);
    expect(rec.RuntimeBackend).toBeUndefined();
  });

  it('a tap that returns a backend object instead of a name is refused the same way', async () => {
    const alt = new FakeRuntime({ name: 'alt' });
    const p = definePlugin({
      name: 'old-style',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.runtimeCreate.tapPromise('old-style', async () => alt as unknown as string);
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer();
    await expect(t.engine.containers.start(id)).rejects.toThrow(/return a backend's name/);
    expect(alt.calls).toHaveLength(0);
  });

  it('runtime arguments a tap left alone follow the runtime the tap switched to; arguments it set stay', async () => {
    const fake = new FakeRuntime({ runtimes: [{ name: 'runc', runtimeArgs: ['--systemd-cgroup'] }, { name: 'crun', runtimeArgs: ['--cgroup-manager', 'cgroupfs'] }] });
    const p = definePlugin({
      name: 'switch',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.runtimeCreate.tapPromise('switch', async (opts) => {
          opts.runtime = 'crun';
          if (opts.labels?.args) opts.runtimeArgs = [opts.labels.args];
          return undefined;
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, runtime: fake, plugins: [p] });
    const a = await t.createContainer();
    const b = await t.createContainer({ Config: { Cmd: ['x'], Labels: { args: '--debug' } } });
    await t.engine.containers.start(a);
    await t.engine.containers.start(b);
    expect(createOpts(fake, a)).toMatchObject({ runtime: 'crun', runtimeArgs: ['--cgroup-manager', 'cgroupfs'] });
    expect(createOpts(fake, b)).toMatchObject({ runtime: 'crun', runtimeArgs: ['--debug'] });
    expect(t.engine.containers.get(a)).toMatchObject({ RuntimeName: 'crun', HostConfig: { Runtime: 'runc' } });
  });

  it('noPivotRoot reaches every container\'s create options (dockerd\'s NoPivotRoot)', async () => {
    t = await createTestEngine({ specDefaults: false, noPivotRoot: true });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    expect(createOpts(t.fake, id).noPivotRoot).toBe(true);
    await t.engine.containers.stop(id, { timeout: 1 });
    await t.restart({ noPivotRoot: false });
    await t.engine.containers.start(id);
    expect(t.fake.callsOf('create', id).map((c) => (c.args[0] as RuntimeCreateOptions).noPivotRoot)).toEqual([true, false]);
  });
});

describe('backends and the plugin lifecycle', () => {
  it('a plugin that skips itself after registering a backend leaves no backend behind', async () => {
    const kata = new FakeRuntime({ name: 'kata-backend', runtimes: ['kata'] });
    const p = definePlugin({
      name: 'kata',
      type: 'io.berth.runtime.v1',
      register(_c, ctx) {
        ctx.registerBackend(kata);
        throw new SkipPluginError('no KVM on this host');
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    expect(t.engine.plugins.find((s) => s.name === 'kata')).toMatchObject({ status: 'skipped' });
    expect(t.engine.runtimes().map((r) => r.backend)).toEqual(['fake']);
    const err = (await t.createContainer({ HostConfig: { Runtime: 'kata' } }).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe('unknown or invalid runtime name: kata');
  });

  it('two backends serving one runtime name fail the engine start, naming the plugin and both backends', async () => {
    const p = backendPlugin(new FakeRuntime({ name: 'other', runtimes: ['fake'] }));
    const err = (await createTestEngine({ specDefaults: false, plugins: [p] }).catch((e: unknown) => e)) as Error & { plugin?: string };
    expect(err.plugin).toBe('backend-other');
    expect(err.message).toMatch(/runtime fake is served by two runtime backends: fake and other/);
  });

  it('the default runtime must be served by some backend', async () => {
    const err = (await createTestEngine({ specDefaults: false, defaultRuntime: 'kata' }).catch((e: unknown) => e)) as Error;
    expect(errorKind(err)).toBe('InvalidParameter');
    expect(err.message).toBe('default runtime kata is not registered (known: fake)');
  });

  it('requires: [io.berth.runtime.v1] orders a plugin after the backend plugin, whose backend it sees in register', async () => {
    let seen: string | undefined;
    const p = definePlugin({
      name: 'needs-runtime',
      type: 'io.berth.test.v1',
      requires: ['io.berth.runtime.v1'],
      register(_c, ctx) {
        seen = ctx.runtime()?.name;
      },
    });
    // Listed first: the requirement still puts it after the FakeRuntime's plugin.
    const dir = await mkdtemp(join(tmpdir(), 'berth-backends-'));
    try {
      const engine = await Engine.create({ dataRoot: join(dir, 'data'), execRoot: join(dir, 'exec'), specDefaults: false, plugins: [p, backendPlugin(new FakeRuntime())], logger: new MemoryLogger() });
      await engine.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(seen).toBe('fake');
  });
});
