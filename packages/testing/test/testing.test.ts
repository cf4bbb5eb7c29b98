import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine } from '../src/index.js';

describe('FakeRuntime', () => {
  it('runs scripted containers, records calls, fails on demand, reports exits', async () => {
    const rt = new FakeRuntime({ script: { runFor: 5, exitCode: 4 } });
    const exits: number[] = [];
    const off = rt.onExit((e) => exits.push(e.exitCode));
    const spec = { ociVersion: '1.2.0' };
    const base = { spec, runtime: 'fake', runtimeArgs: [], rootUid: 0, rootGid: 0, stdio: { tty: false, openStdin: false, stdinOnce: false }, log: { path: '/dev/null' } };
    const p = await rt.create({ id: 'a', ...base });
    expect(p.pid).toBeGreaterThan(0);
    await rt.start('a');
    expect((await rt.state('a'))!.status).toBe('running');
    await new Promise((r) => setTimeout(r, 20));
    expect(exits).toEqual([4]);
    expect((await rt.state('a'))!.exit!.exitCode).toBe(4);
    rt.fail('create', 'no space left on device', { id: 'b' });
    await expect(rt.create({ id: 'b', ...base })).rejects.toThrow('no space left on device');
    await rt.create({ id: 'b', ...base }); // failed once only
    rt.script('b', { ignoreSignals: [15], runFor: undefined });
    await rt.start('b');
    await rt.kill('b', 15);
    await new Promise((r) => setTimeout(r, 5));
    expect((await rt.state('b'))!.status).toBe('running');
    await rt.kill('b', 9);
    await new Promise((r) => setTimeout(r, 5));
    expect(exits).toEqual([4, 137]);
    expect(rt.callsOf('kill', 'b').map((c) => c.args[0])).toEqual([15, 9]);
    await rt.delete('b');
    expect(await rt.restore('b')).toBeNull();
    off();
    expect(rt.listenerCount()).toBe(0);
  });

  it('lists what it holds, including containers held by hand (orphans), and list can fail', async () => {
    const rt = new FakeRuntime();
    const spec = { ociVersion: '1.2.0' };
    await rt.create({ id: 'b', spec, runtime: 'fake', runtimeArgs: [], rootUid: 0, rootGid: 0, stdio: { tty: false, openStdin: false, stdinOnce: false }, log: { path: '/dev/null' } });
    rt.hold('a');
    rt.hold('c', { status: 'stopped' });
    expect(await rt.list()).toEqual(['a', 'b', 'c']);
    expect((await rt.state('a'))!.status).toBe('running');
    expect((await rt.state('c'))!).toMatchObject({ status: 'stopped', pid: 0 });
    expect(() => rt.hold('a')).toThrow('already exists');
    await rt.delete('a', { force: true });
    expect(await rt.list()).toEqual(['b', 'c']);
    rt.fail('list', 'EACCES');
    await expect(rt.list()).rejects.toThrow('EACCES');
    expect(rt.callsOf('list')).toHaveLength(3);
  });

  it('delays steps', async () => {
    const rt = new FakeRuntime({ delays: { state: 40 } });
    const t0 = Date.now();
    await rt.state('x');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(35);
  });
});

describe('createTestEngine', () => {
  it('gives a working engine on temp dirs and removes them on dispose', async () => {
    const t = await createTestEngine({ specDefaults: false });
    expect(existsSync(t.dataRoot)).toBe(true);
    expect(existsSync(`${t.rootfs}/etc/passwd`)).toBe(true);
    t.fake.script('*', { runFor: 1, exitCode: 2 });
    const id = await t.createContainer({ name: 'kit' });
    await t.engine.containers.start(id);
    expect(await t.engine.containers.wait(id)).toEqual({ StatusCode: 2 });
    const e2 = await t.restart();
    expect(e2.containers.get('kit').State.ExitCode).toBe(2);
    await t.dispose();
    expect(existsSync(t.dir)).toBe(false);
  });

  it('works with the real spec builder', async () => {
    const t = await createTestEngine();
    try {
      const id = await t.createContainer({ Config: { Cmd: ['/bin/echo', 'hi'], User: 'nobody' } });
      await t.engine.containers.start(id);
      const spec = t.fake.containers.get(id)!.spec;
      expect(spec.process!.args).toEqual(['/bin/echo', 'hi']);
      expect(spec.process!.user).toMatchObject({ uid: 65534, gid: 65534 });
    } finally {
      await t.dispose();
    }
  });
});

describe('fakes for plugin unit tests', () => {
  it("makeContainer builds core's record (newContainerRecord) with overrides", async () => {
    const { initialState, withHostConfigDefaults } = await import('@berth/core');
    const { makeContainer } = await import('../src/index.js');
    const rec = makeContainer({ Name: '/kit', Config: { Cmd: ['sh', '-c', 'true'] }, HostConfig: { NetworkMode: 'host' }, State: { Status: 'exited', ExitCode: 2 } });
    expect(rec.ID).toMatch(/^[0-9a-f]{64}$/);
    expect([rec.Name, rec.Path, rec.Args, rec.Created]).toEqual(['/kit', 'sh', ['-c', 'true'], '2026-01-01T00:00:00Z']);
    expect(rec.HostConfig).toEqual(withHostConfigDefaults({ NetworkMode: 'host' }, 'runc'));
    expect(rec.NetworkSettings.Networks).toEqual({ host: {} });
    expect(rec.State).toEqual({ ...initialState(), Status: 'exited', ExitCode: 2 });
    expect(makeContainer().NetworkSettings.Networks).toEqual({ bridge: {} });
  });


  it('FakeHost drives a plugin skip; makeContainer and startContext call a hook without starting anything', async () => {
    const { definePlugin, IHost, SkipPluginError, Stage } = await import('@berth/core');
    const { FakeHost, makeContainer, startContext } = await import('../src/index.js');
    const apparmor = definePlugin({
      name: 'apparmor',
      type: 'io.berth.security.v1',
      async apply(hooks, ctx) {
        const host = ctx.container.resolve(IHost);
        if (!(await host.features()).apparmor) throw new SkipPluginError('AppArmor is not enabled on this host');
        hooks.specBuild.tapPromise({ name: 'apparmor', stage: Stage.SECURITY }, async (spec) => ({
          ...spec,
          process: { ...(spec.process ?? { cwd: '/', user: { uid: 0, gid: 0 } }), apparmorProfile: 'berth-default' },
        }));
      },
    });
    const off = await createTestEngine({ specDefaults: false, plugins: [apparmor], providers: (c) => c.register(IHost, { useValue: new FakeHost() }) });
    expect(off.engine.plugins.find((p) => p.name === 'apparmor')!.status).toBe('skipped'); // after the FakeRuntime's plugin
    await off.dispose();
    const on = await createTestEngine({ specDefaults: false, plugins: [apparmor], providers: (c) => c.register(IHost, { useValue: new FakeHost({ apparmor: true }) }) });
    try {
      const rec = makeContainer({ Config: { Cmd: ['sh'] } });
      expect(rec.ID).toMatch(/^[0-9a-f]{64}$/);
      expect(rec.Path).toBe('sh');
      const spec = await on.engine.hooks.specBuild.promise({ ociVersion: '1.2.0' }, startContext(rec, { rootfsPath: '/r' }));
      expect(spec.process!.apparmorProfile).toBe('berth-default');
    } finally {
      await on.dispose();
    }
  });
});
