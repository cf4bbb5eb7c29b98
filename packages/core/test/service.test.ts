import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import {
  ConflictError,
  FileStateStore,
  IEngineConfig,
  IImageStore,
  IStateStore,
  InvalidParameterError,
  NotFoundError,
  NotModifiedError,
  ZERO_TIME,
  definePlugin,
  errorKind,
  parseRfc3339Nano,
  type ContainerRecord,
} from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const RFC3339NANO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

describe('create: IDs, names, validation', () => {
  it('gives 64-hex IDs, Docker-shaped records, generated names', async () => {
    t = await createTestEngine({ specDefaults: false });
    const { Id, Warnings } = await t.engine.containers.create({ Config: { Image: 'busybox', Entrypoint: ['/bin/sh'], Cmd: ['-c', 'exit 3'] }, rootfs: t.rootfs });
    expect(Id).toMatch(/^[0-9a-f]{64}$/);
    expect(Warnings).toEqual([]);
    const r = t.engine.containers.get(Id);
    expect(r.Name).toMatch(/^\/[a-z]+_[a-z]+$/);
    expect(r.Path).toBe('/bin/sh');
    expect(r.Args).toEqual(['-c', 'exit 3']);
    expect(r.Created).toMatch(RFC3339NANO);
    expect(r.State).toEqual({
      Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
      Pid: 0, ExitCode: 0, Error: '', StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME,
    });
    expect(r.HostConfig).toMatchObject({ Runtime: 'fake', NetworkMode: 'bridge', LogConfig: { Type: 'json-file', Config: {} }, RestartPolicy: { Name: 'no', MaximumRetryCount: 0 } });
    expect(r.NetworkSettings.Networks).toEqual({ bridge: {} });
    expect(r.LogPath).toBe(`${t.dataRoot}/containers/${Id}/${Id}-json.log`);
    expect(r.BaseFS).toBe(t.rootfs);
  });

  it('refuses a name in use with Docker\'s conflict message', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'web' });
    const err = await t.createContainer({ name: '/web' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe(
      `Conflict. The container name "/web" is already in use by container "${id}". You have to remove (or rename) that container to be able to reuse that name.`,
    );
    expect(t.engine.containers.list()).toHaveLength(1);
  });

  it('validates names like Docker', async () => {
    t = await createTestEngine({ specDefaults: false });
    for (const bad of ['a', '-x', 'has space', 'x/y', '_lead', 'ümlaut']) {
      const err = await t.createContainer({ name: bad }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidParameterError);
      expect((err as Error).message).toBe(`Invalid container name (${bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    for (const good of ['ab', '/with-slash', 'a.b_c-d', '9lives']) await t.createContainer({ name: good });
    expect(t.engine.containers.list().map((c) => c.Name).sort()).toEqual(['/9lives', '/a.b_c-d', '/ab', '/with-slash']);
  });

  it('validates the command, restart policy, AutoRemove, log config, stop signal', async () => {
    t = await createTestEngine({ specDefaults: false });
    const c = (Config: object, HostConfig: object = {}) => t!.engine.containers.create({ Config: Config as never, HostConfig: HostConfig as never, rootfs: t!.rootfs });
    await expect(c({})).rejects.toThrow('no command specified');
    await expect(c({ Cmd: ['x'] }, { RestartPolicy: { Name: 'sometimes' } })).rejects.toThrow("invalid restart policy: unknown policy 'sometimes'");
    await expect(c({ Cmd: ['x'] }, { AutoRemove: true, RestartPolicy: { Name: 'always' } })).rejects.toThrow("can't create 'AutoRemove' container with restart policy");
    await expect(c({ Cmd: ['x'] }, { LogConfig: { Type: 'syslog' } })).rejects.toThrow('error looking up logging plugin syslog: plugin "syslog" not found');
    await expect(c({ Cmd: ['x'] }, { LogConfig: { Type: 'json-file', Config: { 'max-size': 'lots' } } })).rejects.toThrow("invalid size: 'lots'");
    await expect(c({ Cmd: ['x'], StopSignal: 'SIGNOPE' })).rejects.toThrow('Invalid signal: SIGNOPE');
    await expect(c({ Cmd: ['x'] }, { RestartPolicy: { Name: 'always', MaximumRetryCount: 3 } })).rejects.toBeInstanceOf(InvalidParameterError);
    expect(t.engine.containers.list()).toEqual([]);
  });

  it('checks Binds/Mounts at create and lists them like docker inspect', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({
      HostConfig: {
        Binds: [`${t.rootfs}/etc:/host-etc:ro,z`, `${t.rootfs}/tmp:/scratch`],
        Mounts: [{ Type: 'bind', Source: `${t.rootfs}/bin`, Target: '/tools', ReadOnly: true }, { Type: 'tmpfs', Target: '/cache' }],
        Tmpfs: { '/run': 'size=1m' },
      },
    });
    expect(t.engine.containers.get(id).Mounts).toEqual([
      { Type: 'bind', Source: `${t.rootfs}/etc`, Destination: '/host-etc', Mode: 'ro,z', RW: false, Propagation: 'rprivate' },
      { Type: 'bind', Source: `${t.rootfs}/tmp`, Destination: '/scratch', Mode: '', RW: true, Propagation: 'rprivate' },
      { Type: 'bind', Source: `${t.rootfs}/bin`, Destination: '/tools', Mode: '', RW: false, Propagation: 'rprivate' },
      { Type: 'tmpfs', Source: '', Destination: '/cache', Mode: '', RW: true, Propagation: '' },
    ]);
    await expect(t.createContainer({ HostConfig: { Binds: ['/a:/b:/c:/d'] } })).rejects.toBeInstanceOf(InvalidParameterError);
    await expect(t.createContainer({ HostConfig: { Binds: ['/a:relative'] } })).rejects.toBeInstanceOf(InvalidParameterError);
    await expect(t.createContainer({ HostConfig: { Binds: ['/a:/x', '/b:/x'] } })).rejects.toThrow('Duplicate mount point: /x');
    const vol = await t.createContainer({ HostConfig: { Binds: ['data:/data'] } }).catch((e: unknown) => e);
    expect(errorKind(vol)).toBe('NotImplemented');
    expect(t.engine.containers.list()).toHaveLength(1);
  });

  it('validates HostConfig.Runtime against the runtimes of the registered backends (dockerd\'s 400)', async () => {
    t = await createTestEngine({ specDefaults: false, runtime: new FakeRuntime({ runtimes: ['runc', 'crun'] }), defaultRuntime: 'runc' });
    const err = await t.createContainer({ HostConfig: { Runtime: 'kata' } }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toBe('unknown or invalid runtime name: kata');
    const id = await t.createContainer({ HostConfig: { Runtime: 'crun' } });
    expect(t.engine.containers.get(id).HostConfig.Runtime).toBe('crun');
    const id2 = await t.createContainer();
    expect(t.engine.containers.get(id2).HostConfig.Runtime).toBe('runc');
  });

  it('the default runtime name: explicit, else runc when the backend lists it, else its first, else the backend name', async () => {
    t = await createTestEngine({ specDefaults: false, runtime: new FakeRuntime({ runtimes: ['crun', 'runc'] }) });
    expect(t.engine.config.defaultRuntime).toBe('runc');
    await t.dispose();
    t = await createTestEngine({ specDefaults: false, runtime: new FakeRuntime({ runtimes: ['youki', 'crun'] }) });
    expect(t.engine.config.defaultRuntime).toBe('youki');
    expect(Object.isFrozen(t.engine.config)).toBe(true);
    await t.dispose();
    t = await createTestEngine({ specDefaults: false, runtime: new FakeRuntime({ runtimes: ['youki', 'crun'] }), defaultRuntime: 'crun' });
    expect(t.engine.config.defaultRuntime).toBe('crun');
    await t.dispose();
    t = await createTestEngine({ specDefaults: false });
    expect(t.engine.config.defaultRuntime).toBe('fake');
  });

  it('beforeCreate taps can refuse a create (nothing stored) or add warnings', async () => {
    const p = definePlugin({
      name: 'policy',
      type: 'io.berth.authz.v1',
      apply(hooks) {
        hooks.beforeCreate.tapPromise('policy', async (ctx) => {
          if (ctx.container.HostConfig.Privileged) throw new InvalidParameterError('privileged containers are not allowed here');
          ctx.warnings.push('policy: checked');
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    await expect(t.createContainer({ name: 'priv', HostConfig: { Privileged: true } })).rejects.toMatchObject({ plugin: 'policy', hook: 'beforeCreate' });
    const { Warnings } = await t.engine.containers.create({ name: 'priv', Config: { Cmd: ['x'] }, rootfs: t.rootfs });
    expect(Warnings).toEqual(['policy: checked']);
  });

  it('resolves images through the image store token and merges the image config', async () => {
    t = await createTestEngine({
      specDefaults: false,
      providers: (c) =>
        c.register(IImageStore, {
          useValue: {
            async resolve(ref: string) {
              return ref === 'busybox' ? { id: 'sha256:' + 'ab'.repeat(32), config: { Cmd: ['sh'], Env: ['PATH=/bin', 'A=1'], WorkingDir: '/w', StopSignal: 'SIGQUIT' } } : null;
            },
          },
        }),
    });
    await expect(t.engine.containers.create({ Config: { Image: 'nope' } })).rejects.toMatchObject({ message: 'No such image: nope', kind: 'NotFound' });
    const { Id } = await t.engine.containers.create({ Config: { Image: 'busybox', Env: ['A=2'] } });
    const r = t.engine.containers.get(Id);
    expect(r.Image).toBe('sha256:' + 'ab'.repeat(32));
    // dockerd's merge: the container's Env first, then the image's variables it does not set.
    expect(r.Config).toMatchObject({ Cmd: ['sh'], Env: ['A=2', 'PATH=/bin'], WorkingDir: '/w', StopSignal: 'SIGQUIT' });
    expect(r.Path).toBe('sh');
  });
});

describe('create: plain root filesystem (berth-only)', () => {
  const imageStore = (asked: string[]) => (c: import('tsyringe').DependencyContainer) =>
    c.register(IImageStore, {
      useValue: {
        async resolve(ref: string) {
          asked.push(ref);
          return ref === 'busybox' ? { id: 'sha256:' + 'ab'.repeat(32), config: { Cmd: ['sh'], Env: ['PATH=/bin'] } } : null;
        },
      },
    });

  it('skips the image store for the rootfs option and the io.berth.rootfs label, and starts on that directory', async () => {
    const asked: string[] = [];
    t = await createTestEngine({ providers: imageStore(asked) });
    const a = await t.engine.containers.create({ Config: { Image: 'not-in-store', Cmd: ['/bin/true'] }, rootfs: t.rootfs });
    const b = await t.engine.containers.create({ Config: { Image: 'busybox', Cmd: ['/bin/true'], Labels: { 'io.berth.rootfs': t.rootfs } } });
    expect(asked).toEqual([]);
    for (const id of [a.Id, b.Id]) {
      const r = t.engine.containers.get(id);
      expect(r.Image).toBe('');
      expect(r.BaseFS).toBe(t.rootfs);
      // the image's config is not merged: the named image was not used
      expect(r.Config.Env).toBeUndefined();
      expect(r.Path).toBe('/bin/true');
    }
    expect(t.engine.containers.get(a.Id).Config.Image).toBe('not-in-store');
    await t.engine.containers.start(a.Id);
    const created = t.fake.callsOf('create', a.Id);
    expect(created).toHaveLength(1);
    expect((created[0]!.args[0] as { spec: { root?: { path: string } } }).spec.root?.path).toBe(t.rootfs);
    // without a rootfs the image store is still asked, and a missing image is still NotFound
    await expect(t.engine.containers.create({ Config: { Image: 'not-in-store', Cmd: ['/bin/true'] } })).rejects.toMatchObject({ message: 'No such image: not-in-store', kind: 'NotFound' });
    expect(asked).toEqual(['not-in-store']);
  });

  it('still refuses a relative rootfs before any image lookup', async () => {
    const asked: string[] = [];
    t = await createTestEngine({ specDefaults: false, providers: imageStore(asked) });
    await expect(t.engine.containers.create({ Config: { Image: 'busybox', Cmd: ['x'] }, rootfs: 'rel/dir' })).rejects.toMatchObject({ kind: 'InvalidParameter' });
    await expect(t.engine.containers.create({ Config: { Image: 'busybox', Cmd: ['x'], Labels: { 'io.berth.rootfs': '' } } })).rejects.toMatchObject({ kind: 'InvalidParameter' });
    expect(asked).toEqual([]);
  });
});

describe('list', () => {
  it('is newest first by time (RFC3339Nano text order is not time order)', async () => {
    const times = [1_700_000_000_000_000_000n, 1_700_000_000_500_000_000n, 1_700_000_000_120_000_000n, 1_700_000_000_100_000_000n];
    let i = 0;
    t = await createTestEngine({ specDefaults: false, clock: { nowNano: () => times[Math.min(i++, times.length - 1)]! } });
    const ids: string[] = [];
    for (let n = 0; n < 4; n++) {
      i = n;
      ids.push(await t.createContainer());
    }
    expect(t.engine.containers.get(ids[0]!).Created).toBe('2023-11-14T22:13:20Z');
    expect(t.engine.containers.list().map((r) => ids.indexOf(r.ID))).toEqual([1, 2, 3, 0]);
  });
});

describe('lookup', () => {
  it('by full ID, by name with or without slash, by unique prefix; ambiguous prefix is an error', async () => {
    t = await createTestEngine({ specDefaults: false });
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await t.createContainer({ name: `name-${i}` }));
    const id = ids[0]!;
    expect(t.engine.containers.get(id).ID).toBe(id);
    expect(t.engine.containers.get('name-0').ID).toBe(id);
    expect(t.engine.containers.get('/name-0').ID).toBe(id);
    // the shortest prefix unique among the 40
    let n = 1;
    while (ids.filter((x) => x.startsWith(id.slice(0, n))).length > 1) n++;
    expect(t.engine.containers.get(id.slice(0, n)).ID).toBe(id);
    // a one-character prefix shared by two IDs (40 IDs over 16 hex digits: some digit repeats)
    const shared = '0123456789abcdef'.split('').find((ch) => ids.filter((x) => x.startsWith(ch)).length > 1)!;
    const err = (() => {
      try {
        t.engine.containers.get(shared);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidParameterError);
    expect((err as Error).message).toBe(`multiple IDs found with provided prefix: ${shared}`);
    expect(() => t!.engine.containers.get('nothing-here')).toThrow(NotFoundError);
    expect(() => t!.engine.containers.get('nothing-here')).toThrow('No such container: nothing-here');
  });

  it('a name wins over an ID prefix', async () => {
    t = await createTestEngine({ specDefaults: false });
    const a = await t.createContainer();
    const prefix = a.slice(0, 4);
    const b = await t.createContainer({ name: prefix.replace(/^[^a-z0-9]/, 'x') });
    expect(t.engine.containers.get(prefix).ID).toBe(/^[a-z0-9]/.test(prefix) ? b : a);
  });
});

describe('stop, kill, wait', () => {
  it('stop uses StopSignal, then SIGKILL after the timeout; events kill, kill, die, stop', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { ignoreSignals: [15] });
    const id = await t.createContainer({ name: 'stubborn', Config: { Cmd: ['x'], StopTimeout: 1 } });
    await t.engine.containers.start(id);
    const actions: string[] = [];
    const attrs: Record<string, string>[] = [];
    t.engine.events.subscribe((e) => {
      actions.push(e.Action);
      attrs.push(e.Actor.Attributes);
    });
    const t0 = Date.now();
    await t.engine.containers.stop(id);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(3000);
    expect(t.fake.callsOf('kill', id).map((c) => c.args[0])).toEqual([15, 9]);
    expect(actions).toEqual(['kill', 'kill', 'die', 'stop']);
    expect(attrs[0]).toMatchObject({ signal: '15', name: 'stubborn' });
    expect(attrs[1]).toMatchObject({ signal: '9' });
    expect(attrs[2]).toMatchObject({ exitCode: '137' });
    const st = t.engine.containers.get(id).State;
    expect(st).toMatchObject({ Status: 'exited', ExitCode: 137, Running: false, Pid: 0 });
    expect(st.FinishedAt).toMatch(RFC3339NANO);
    expect(t.engine.containers.get(id).HasBeenManuallyStopped).toBe(true);
  });

  it('stop defaults: Config.StopTimeout else 10, Config.StopSignal else SIGTERM; explicit options win', async () => {
    const seen: Array<{ signal: number; timeout: number }> = [];
    const p = definePlugin({
      name: 'watch',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.beforeStop.tapPromise('watch', async (ctx) => void seen.push({ signal: ctx.signal, timeout: ctx.timeout }));
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const a = await t.createContainer();
    const b = await t.createContainer({ Config: { Cmd: ['x'], StopSignal: 'QUIT', StopTimeout: 2 } });
    for (const id of [a, b]) await t.engine.containers.start(id);
    await t.engine.containers.stop(a);
    await t.engine.containers.stop(b);
    await t.engine.containers.start(b);
    await t.engine.containers.stop(b, { signal: 'SIGINT', timeout: 5 });
    expect(seen).toEqual([{ signal: 15, timeout: 10 }, { signal: 3, timeout: 2 }, { signal: 2, timeout: 5 }]);
    await expect(t.engine.containers.stop(a)).rejects.toBeInstanceOf(NotModifiedError);
  });

  it('kill accepts names and numbers with or without SIG; a bad signal is an invalid parameter', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { ignoreSignals: [1, 10, 12, 28] });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    for (const s of ['HUP', 'SIGUSR1', 'usr2', '28']) await t.engine.containers.kill(id, s);
    expect(t.fake.callsOf('kill', id).map((c) => c.args[0])).toEqual([1, 10, 12, 28]);
    for (const bad of ['SIGNOPE', '0', '-1', '65', 'KILLL', '']) {
      if (bad === '') continue; // '' means the default (SIGKILL), like dockerd
      const err = await t.engine.containers.kill(id, bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidParameterError);
      expect((err as Error).message).toBe(`Invalid signal: ${bad}`);
    }
    await t.engine.containers.kill(id);
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'exited', ExitCode: 137 });
    const err = await t.engine.containers.kill(id, 'TERM').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe(`Container ${id} is not running`);
  });

  it('wait: not-running returns at once when not running; next-exit waits; resolves within milliseconds of the exit', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer();
    await expect(t.engine.containers.wait(id, 'not-running')).resolves.toEqual({ StatusCode: 0 });
    const next = t.engine.containers.wait(id, 'next-exit');
    await t.engine.containers.start(id);
    const notRunning = t.engine.containers.wait(id);
    let exitedAt = 0;
    const timing = notRunning.then(() => Date.now() - exitedAt);
    await new Promise((r) => setTimeout(r, 30));
    exitedAt = Date.now();
    t.fake.exit(id, 42);
    expect(await next).toEqual({ StatusCode: 42 });
    expect(await notRunning).toEqual({ StatusCode: 42 });
    expect(await timing).toBeLessThan(50);
    await expect(t.engine.containers.wait(id, 'bogus' as never)).rejects.toBeInstanceOf(InvalidParameterError);
  });

  it('wait removed resolves when the container is removed; a wait can be aborted', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    const removed = t.engine.containers.wait(id, 'removed');
    const ac = new AbortController();
    const aborted = t.engine.containers.wait(id, 'next-exit', { signal: ac.signal });
    ac.abort(new Error('client went away'));
    await expect(aborted).rejects.toThrow('client went away');
    t.fake.exit(id, 5);
    await t.engine.containers.wait(id);
    let done = false;
    void removed.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(done).toBe(false);
    await t.engine.containers.remove(id);
    expect(await removed).toEqual({ StatusCode: 5 });
  });

  it('an exit while the start is still being saved and announced is processed after it: start always precedes die', async () => {
    const fake = new FakeRuntime();
    class RacyStore extends FileStateStore {
      override async save(rec: ContainerRecord): Promise<void> {
        if (rec.State.Status === 'running' && fake.containers.get(rec.ID)?.status === 'running') {
          fake.exit(rec.ID, 7); // the process dies while its running state is being written
          await new Promise((r) => setTimeout(r, 20));
        }
        return super.save(rec);
      }
    }
    t = await createTestEngine({
      runtime: fake,
      specDefaults: false,
      providers: (c) => c.register(IStateStore, { useFactory: (dc) => new RacyStore(dc.resolve(IEngineConfig).dataRoot) }),
    });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    expect(await t.engine.containers.wait(id)).toEqual({ StatusCode: 7 });
    expect(t.engine.events.history().map((e) => e.Action)).toEqual(['create', 'start', 'die']);
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'exited', ExitCode: 7 });
  });

  it('OOM kills are recorded and announced', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    const actions: string[] = [];
    t.engine.events.subscribe((e) => actions.push(e.Action));
    t.fake.exit(id, 137, { oomKilled: true });
    await t.engine.containers.wait(id);
    expect(t.engine.containers.get(id).State).toMatchObject({ OOMKilled: true, ExitCode: 137 });
    expect(actions).toEqual(['oom', 'die']);
  });
});

describe('remove', () => {
  it('running without force → Docker\'s conflict; force kills and removes; files are gone', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'busy' });
    await t.engine.containers.start(id);
    const err = await t.engine.containers.remove(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe('cannot remove container "/busy": container is running: stop the container before removing or force remove');
    const actions: string[] = [];
    t.engine.events.subscribe((e) => actions.push(e.Action));
    await t.engine.containers.remove('busy', { force: true });
    expect(actions).toEqual(['kill', 'die', 'destroy']);
    expect(() => t!.engine.containers.get(id)).toThrow(NotFoundError);
    const { existsSync } = await import('node:fs');
    expect(existsSync(`${t.dataRoot}/containers/${id}`)).toBe(false);
    expect(t.fake.containers.has(id)).toBe(false);
    // the name is free again
    await t.createContainer({ name: 'busy' });
  });

  it('a second remove while one is in progress is refused', async () => {
    const slow = definePlugin({
      name: 'slow-cleanup',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.onStateChange.tapPromise('slow', async (c) => {
          if (c.to === 'removing') await new Promise((r) => setTimeout(r, 100));
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [slow] });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    await t.engine.containers.stop(id, { timeout: 1 });
    const first = t.engine.containers.remove(id);
    await new Promise((r) => setTimeout(r, 20));
    expect(t.engine.containers.get(id).State.Status).toBe('removing');
    const err = await t.engine.containers.remove(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe(`removal of container ${id} is already in progress`);
    await first;
  });

  it('AutoRemove: the container is removed after it exits', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { runFor: 10, exitCode: 0 });
    const id = await t.createContainer({ HostConfig: { AutoRemove: true } });
    const removed = t.engine.containers.wait(id, 'removed');
    await t.engine.containers.start(id);
    expect(await removed).toEqual({ StatusCode: 0 });
    expect(t.engine.containers.has(id)).toBe(false);
  });
});

describe('per-container lock', () => {
  it('concurrent start/stop/remove on one container serialize into a consistent result', async () => {
    const fake = new FakeRuntime({ delays: { create: 30, start: 30, kill: 10, delete: 10 } });
    t = await createTestEngine({ runtime: fake, specDefaults: false });
    const id = await t.createContainer();
    const results = await Promise.allSettled([
      t.engine.containers.start(id),
      t.engine.containers.stop(id, { timeout: 1 }),
      t.engine.containers.start(id),
      t.engine.containers.remove(id, { force: true }),
      t.engine.containers.start(id),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    expect(errorKind((results[4] as PromiseRejectedResult).reason)).toBe('NotFound');
    // The backend saw whole operations, never interleaved: create,start | kill,delete | create,start | kill,delete,delete
    // (rm always force-deletes in the backend too, for leftovers the engine does not know of)
    expect(fake.calls.filter((c) => c.method !== 'onExit' && c.method !== 'state' && c.method !== 'list').map((c) => c.method)).toEqual([
      'create', 'start', 'kill', 'delete', 'create', 'start', 'kill', 'delete', 'delete',
    ]);
    expect(t.engine.containers.has(id)).toBe(false);
  });

  it('calls on different containers run in parallel', async () => {
    const fake = new FakeRuntime({ delays: { create: 300 } });
    t = await createTestEngine({ runtime: fake, specDefaults: false });
    const ids = await Promise.all([1, 2, 3, 4].map(() => t!.createContainer()));
    const t0 = Date.now();
    await Promise.all(ids.map((id) => t!.engine.containers.start(id)));
    expect(Date.now() - t0).toBeLessThan(900); // serialized, it would take 1200 ms
    // while the same four starts on ONE container serialize (the 3 others are no-ops → 304)
    const id = await t.createContainer();
    const t1 = Date.now();
    const r = await Promise.allSettled([1, 2, 3].map(() => t!.engine.containers.start(id)));
    expect(Date.now() - t1).toBeGreaterThanOrEqual(290);
    expect(r.filter((x) => x.status === 'rejected').map((x) => errorKind((x as PromiseRejectedResult).reason))).toEqual(['NotModified', 'NotModified']);
  });
});

describe('restart, pause/unpause, rename', () => {
  it('restart stops then starts; events die, stop, start, restart', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    const first = t.engine.containers.get(id).State;
    const actions: string[] = [];
    t.engine.events.subscribe((e) => actions.push(e.Action));
    await new Promise((r) => setTimeout(r, 5));
    await t.engine.containers.restart(id, { timeout: 1 });
    expect(actions).toEqual(['kill', 'die', 'stop', 'start', 'restart']);
    const st = t.engine.containers.get(id).State;
    expect(st.Status).toBe('running');
    expect(parseRfc3339Nano(st.StartedAt)! > parseRfc3339Nano(first.StartedAt)!).toBe(true);
    expect(st.Pid).not.toBe(first.Pid);
    // restart of a stopped container starts it
    await t.engine.containers.stop(id);
    await t.engine.containers.restart(id);
    expect(t.engine.containers.get(id).State.Status).toBe('running');
  });

  it('pause / unpause with Docker\'s conflicts', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer();
    await expect(t.engine.containers.pause(id)).rejects.toThrow(`Container ${id} is not running`);
    await t.engine.containers.start(id);
    await expect(t.engine.containers.unpause(id)).rejects.toThrow(`Container ${id} is not paused`);
    await t.engine.containers.pause(id);
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'paused', Paused: true, Running: true });
    await expect(t.engine.containers.pause(id)).rejects.toThrow(`Container ${id} is already paused`);
    await t.engine.containers.unpause(id);
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'running', Paused: false, Running: true });
    // stop of a paused container: signal, resume, exit
    await t.engine.containers.pause(id);
    const t0 = Date.now();
    await t.engine.containers.stop(id, { timeout: 5 });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(t.fake.callsOf('kill', id).map((c) => c.args[0])).toEqual([15]);
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'exited', Paused: false, ExitCode: 143 });
    expect(t.engine.events.history().map((e) => e.Action)).toEqual(expect.arrayContaining(['pause', 'unpause']));
  });

  it('rename: validation, conflict, event with oldName, the old name is free', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'old' });
    await t.createContainer({ name: 'taken' });
    await expect(t.engine.containers.rename(id, 'taken')).rejects.toThrow('Conflict. The container name "/taken" is already in use');
    await expect(t.engine.containers.rename(id, 'old')).rejects.toThrow('Renaming a container with the same name as its current name');
    await expect(t.engine.containers.rename(id, 'b@d')).rejects.toThrow('Invalid container name (b@d)');
    await t.engine.containers.rename('old', 'new');
    expect(t.engine.containers.get('new').ID).toBe(id);
    expect(() => t!.engine.containers.get('old')).toThrow(NotFoundError);
    const ev = t.engine.events.history().at(-1)!;
    expect(ev).toMatchObject({ Action: 'rename', Actor: { ID: id, Attributes: { name: 'new', oldName: '/old' } } });
    await t.createContainer({ name: 'old' });
  });
});

describe('update', () => {
  it('changes limits and restart policy, pushes them to a running container, refuses dockerd\'s conflicts', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ HostConfig: { Memory: 64 << 20, MemorySwap: 128 << 20, CpuShares: 512 } });
    await t.engine.containers.update(id, { CpuShares: 1024, PidsLimit: 50, RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } });
    expect(t.engine.containers.get(id).HostConfig).toMatchObject({ CpuShares: 1024, PidsLimit: 50, Memory: 64 << 20, RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } });
    expect(t.fake.callsOf('update')).toHaveLength(0); // not running: stored only
    await t.engine.containers.start(id);
    await t.engine.containers.update(id, { Memory: 100 << 20 });
    const res = t.fake.callsOf('update', id)[0]!.args[0] as { memory: { limit: number; swap: number }; cpu: { shares: number }; pids: { limit: number } };
    expect(res.memory).toMatchObject({ limit: 100 << 20, swap: 128 << 20 });
    expect(res.cpu.shares).toBe(1024);
    expect(res.pids).toEqual({ limit: 50 });
    await expect(t.engine.containers.update(id, { Memory: 200 << 20 })).rejects.toThrow(
      `Cannot update container ${id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time`,
    );
    await expect(t.engine.containers.update(id, { Memory: 1024 })).rejects.toThrow('Minimum memory limit allowed is 6MB');
    t.fake.fail('update', 'cgroup write failed');
    await expect(t.engine.containers.update(id, { CpuShares: 2 })).rejects.toThrow(`Cannot update container ${id}: cgroup write failed`);
    expect(t.engine.containers.get(id).HostConfig.CpuShares).toBe(1024);
    const rm = await t.createContainer({ HostConfig: { AutoRemove: true } });
    await expect(t.engine.containers.update(rm, { RestartPolicy: { Name: 'always' } })).rejects.toThrow('Restart policy cannot be updated because AutoRemove is enabled for the container');
    expect(t.engine.events.history().filter((e) => e.Action === 'update')).toHaveLength(2);
    await t.restart();
    expect(t.engine.containers.get(id).HostConfig.Memory).toBe(100 << 20);
  });
});

describe('events', () => {
  it('have Docker\'s shape and carry labels, image and name', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'evt', Config: { Cmd: ['x'], Image: 'busybox:latest', Labels: { team: 'core' } } });
    const e = t.engine.events.history()[0]!;
    expect(e).toEqual({
      Type: 'container',
      Action: 'create',
      Actor: { ID: id, Attributes: { team: 'core', image: 'busybox:latest', name: 'evt' } },
      scope: 'local',
      time: Number(e.timeNano / 1_000_000_000n),
      timeNano: e.timeNano,
    });
    expect(Math.abs(e.time * 1000 - Date.now())).toBeLessThan(5000);
  });
});

describe('exec bookkeeping', () => {
  it('create, start, inspect, exit code, ExecIDs, events', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { execExitCode: 3, execRunFor: 10 });
    const id = await t.createContainer({ Config: { Cmd: ['x'], Env: ['A=1'] } });
    await expect(t.engine.execs.create(id, { Cmd: ['ls'] })).rejects.toThrow(`Container ${id} is not running`);
    await t.engine.containers.start(id);
    await expect(t.engine.execs.create(id, { Cmd: [] })).rejects.toThrow('No exec command specified');
    const { Id } = await t.engine.execs.create(id, { Cmd: ['ls', '-l'], Env: ['B=2'], AttachStdout: true, User: 'nobody' });
    expect(t.engine.containers.get(id).ExecIDs).toEqual([Id]);
    expect(t.engine.execs.inspect(Id)).toMatchObject({ ID: Id, ContainerID: id, Running: false, ExitCode: null, ProcessConfig: { entrypoint: 'ls', arguments: ['-l'] } });
    const session = await t.engine.execs.start(Id);
    expect(t.engine.execs.inspect(Id).Running).toBe(true);
    const opts = t.fake.callsOf('exec', id)[0]!.args[0] as { process: { args: string[]; env: string[]; user: { uid: number } } };
    expect(opts.process.args).toEqual(['ls', '-l']);
    expect(opts.process.env).toContain('B=2');
    expect(opts.process.user.uid).toBe(65534);
    expect((opts.process as unknown as { capabilities: { bounding: string[] } }).capabilities.bounding).toContain('CAP_CHOWN');
    expect((opts.process as unknown as { capabilities: { bounding: string[] } }).capabilities.bounding).not.toContain('CAP_SYS_ADMIN');
    expect(await session.exited).toBe(3);
    const priv = await t.engine.execs.create(id, { Cmd: ['id'], Privileged: true });
    await (await t.engine.execs.start(priv.Id)).exited;
    const privOpts = t.fake.callsOf('exec', id)[1]!.args[0] as { process: { capabilities: { bounding: string[] }; env: string[] } };
    expect(privOpts.process.capabilities.bounding).toContain('CAP_SYS_ADMIN');
    expect(privOpts.process.env).toContain('A=1');
    await new Promise((r) => setTimeout(r, 5));
    expect(t.engine.execs.inspect(Id)).toMatchObject({ Running: false, ExitCode: 3 });
    expect(t.engine.containers.get(id).ExecIDs).toBeNull();
    await expect(t.engine.execs.start(Id)).rejects.toBeInstanceOf(ConflictError);
    expect(() => t!.engine.execs.inspect('nope')).toThrow('No such exec instance: nope');
    const actions = t.engine.events.history().map((e) => e.Action);
    expect(actions).toEqual(expect.arrayContaining(['exec_create: ls -l', 'exec_start: ls -l', 'exec_die']));
    await t.engine.containers.remove(id, { force: true });
    expect(() => t!.engine.execs.inspect(Id)).toThrow(`No such exec instance: ${Id}`);
  });
});
