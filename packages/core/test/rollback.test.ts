import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { ConflictError, InvalidParameterError, NotModifiedError, StartStepError, definePlugin, errorKind, type PluginHooks } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

type FailAt = 'beforeMount' | 'networking' | 'specBuild' | 'runtimeCreate' | 'runtime.create' | 'beforeStart' | 'runtime.start';

/**
 * A plugin whose taps record what they did and what was undone, and that can make one
 * point of the start path fail.
 */
function tracker(journal: string[], failAt: { at?: FailAt }) {
  const maybeFail = (at: FailAt) => {
    if (failAt.at === at) throw new Error(`injected failure at ${at}`);
  };
  return definePlugin({
    name: 'tracker',
    type: 'io.berth.test.v1',
    apply(hooks: PluginHooks) {
      // mount and networking are undone by their release hooks (unmount, releaseNetwork) only
      hooks.beforeMount.tapPromise('tracker', async () => {
        journal.push('mount');
        maybeFail('beforeMount');
      });
      hooks.networking.tapPromise('tracker', async () => {
        journal.push('network');
        maybeFail('networking');
      });
      hooks.specBuild.tapPromise('tracker', async (spec, ctx) => {
        journal.push('spec');
        ctx.addUndo(() => void journal.push('undo:spec-tap'));
        maybeFail('specBuild');
        return spec;
      });
      hooks.runtimeCreate.tapPromise('tracker', async (_opts, ctx) => {
        journal.push('runtimeCreate');
        ctx.addUndo(() => void journal.push('undo:runtimeCreate-tap'));
        maybeFail('runtimeCreate');
        return undefined;
      });
      hooks.beforeStart.tapPromise('tracker', async (ctx) => {
        journal.push('beforeStart');
        ctx.addUndo(() => void journal.push('undo:beforeStart-tap'));
        maybeFail('beforeStart');
      });
      hooks.releaseNetwork.tapPromise('tracker', async (ctx) => void journal.push(`releaseNetwork:${ctx.reason}`));
      hooks.unmount.tapPromise('tracker', async (ctx) => void journal.push(`unmount:${ctx.reason}`));
    },
  });
}

const CASES: Array<{ at: FailAt; undo: string[] }> = [
  // Every step that began is released once, newest first — the failing one too (its release
  // undoes whatever part of it got done: a release hook, or the undo steps of its taps that ran).
  { at: 'beforeMount', undo: ['unmount:rollback'] },
  { at: 'networking', undo: ['releaseNetwork:rollback', 'unmount:rollback'] },
  { at: 'specBuild', undo: ['undo:spec-tap', 'releaseNetwork:rollback', 'unmount:rollback'] },
  { at: 'runtimeCreate', undo: ['undo:runtimeCreate-tap', 'undo:spec-tap', 'releaseNetwork:rollback', 'unmount:rollback'] },
  { at: 'runtime.create', undo: ['undo:runtimeCreate-tap', 'undo:spec-tap', 'releaseNetwork:rollback', 'unmount:rollback'] },
  {
    at: 'beforeStart',
    undo: ['undo:beforeStart-tap', 'runtime.delete', 'undo:runtimeCreate-tap', 'undo:spec-tap', 'releaseNetwork:rollback', 'unmount:rollback'],
  },
  {
    at: 'runtime.start',
    undo: ['undo:beforeStart-tap', 'runtime.delete', 'undo:runtimeCreate-tap', 'undo:spec-tap', 'releaseNetwork:rollback', 'unmount:rollback'],
  },
];

async function setup(at: FailAt, extra: { AutoRemove?: boolean } = {}) {
  const journal: string[] = [];
  const failAt: { at?: FailAt } = { at };
  const fake = new FakeRuntime();
  if (at === 'runtime.create') fake.fail('create', 'injected failure at runtime.create');
  if (at === 'runtime.start') fake.fail('start', 'injected failure at runtime.start');
  t = await createTestEngine({ runtime: fake, specDefaults: false, plugins: [tracker(journal, failAt)] });
  // Journal the backend's delete as part of the rollback order.
  const del = fake.delete.bind(fake);
  fake.delete = async (id, o) => {
    journal.push('runtime.delete');
    return del(id, o);
  };
  const id = await t.createContainer({ name: 'victim', HostConfig: { AutoRemove: !!extra.AutoRemove } });
  return { journal, failAt, fake, id };
}

describe('start rollback: a failure at each step undoes exactly the completed steps, in reverse', () => {
  for (const c of CASES) {
    it(`fails at ${c.at}`, async () => {
      const { journal, fake, id } = await setup(c.at);
      const err = await t!.engine.containers.start(id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(`injected failure at ${c.at}`);
      const failIdx = journal.findIndex((j) => j.startsWith('undo:') || j.includes(':rollback') || j === 'runtime.delete');
      expect(journal.slice(failIdx)).toEqual(c.undo);
      const rec = t!.engine.containers.get(id);
      // dockerd: the error is kept, exit code 128, state saved; the container never ran.
      expect(rec.State).toMatchObject({ Status: 'created', Running: false, Pid: 0, ExitCode: 128 });
      expect(rec.State.Error).toContain(`injected failure at ${c.at}`);
      expect(fake.containers.has(id)).toBe(false);
      // Persisted: a new engine on the same data root sees the same.
      await t!.restart();
      expect(t!.engine.containers.get(id).State).toMatchObject({ Status: 'created', ExitCode: 128 });
      expect(t!.engine.containers.get(id).State.Error).toContain(`injected failure at ${c.at}`);
    });

    it(`fails at ${c.at} with AutoRemove: the container is removed after the cleanup`, async () => {
      const { journal, id } = await setup(c.at, { AutoRemove: true });
      const events: string[] = [];
      t!.engine.events.subscribe((e) => events.push(e.Action));
      await expect(t!.engine.containers.start(id)).rejects.toThrow(`injected failure at ${c.at}`);
      expect(() => t!.engine.containers.get(id)).toThrow(/No such container/);
      expect(events).toContain('destroy');
      expect(journal.filter((j) => j.includes(':rollback'))).toEqual(c.undo.filter((j) => j.includes(':rollback')));
      // release hooks are not run twice by the removal
      expect(journal.filter((j) => j.includes(':remove'))).toEqual([]);
    });
  }

  it('a second start after a failed one works and resets ExitCode/Error', async () => {
    const { failAt, id } = await setup('networking');
    await expect(t!.engine.containers.start(id)).rejects.toThrow();
    failAt.at = undefined;
    await t!.engine.containers.start(id);
    expect(t!.engine.containers.get(id).State).toMatchObject({ Status: 'running', ExitCode: 0, Error: '' });
  });

  it('keeps the exit code of an earlier run when it is not 0 (dockerd sets 128 only when still 0)', async () => {
    const { failAt, fake, id } = await setup('networking');
    failAt.at = undefined;
    await t!.engine.containers.start(id);
    fake.exit(id, 7);
    await t!.engine.containers.wait(id);
    failAt.at = 'networking';
    await expect(t!.engine.containers.start(id)).rejects.toThrow();
    expect(t!.engine.containers.get(id).State).toMatchObject({ Status: 'exited', ExitCode: 7 });
  });
});

describe('entrypoint errors from the runtime are translated like dockerd (127 / 126)', () => {
  const cases = [
    { msg: 'runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH', code: 127 },
    { msg: 'runc create failed: unable to start container process: exec: "/bin/nope": stat /bin/nope: no such file or directory', code: 127 },
    { msg: 'runc create failed: unable to start container process: exec: "/etc/passwd": permission denied', code: 126 },
  ];
  for (const c of cases) {
    it(`exit code ${c.code} for: ${c.msg.slice(-40)}`, async () => {
      const fake = new FakeRuntime();
      fake.fail('create', c.msg);
      t = await createTestEngine({ runtime: fake, specDefaults: false });
      const id = await t.createContainer();
      const err = await t.engine.containers.start(id).catch((e: unknown) => e);
      // one typed failure: the step, the exit code, and the cause that decides the HTTP status
      expect(err).toBeInstanceOf(StartStepError);
      expect(err).toMatchObject({ step: 'runtimeCreate', exitCode: c.code });
      expect((err as StartStepError).cause).toBeInstanceOf(InvalidParameterError);
      expect(errorKind(err)).toBe('InvalidParameter');
      expect((err as Error).message).toContain(c.msg);
      expect(t.engine.containers.get(id).State).toMatchObject({ ExitCode: c.code, Status: 'created' });
      expect(t.engine.containers.get(id).State.Error).toContain(c.msg);
    });
  }

  it('other runtime errors stay what they were, with exit code 128', async () => {
    const fake = new FakeRuntime();
    fake.fail('start', 'cgroup: device or resource busy');
    t = await createTestEngine({ runtime: fake, specDefaults: false });
    const id = await t.createContainer();
    const err = await t.engine.containers.start(id).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('System');
    expect(t.engine.containers.get(id).State.ExitCode).toBe(128);
  });
});

describe('one undo for mount and networking: the release hook', () => {
  for (const hook of ['beforeMount', 'networking'] as const) {
    it(`a ${hook} tap cannot add an undo step (it would run beside the release hook); the release hooks still run once`, async () => {
      const journal: string[] = [];
      const p = definePlugin({
        name: 'undoer',
        type: 'io.berth.test.v1',
        apply(hooks: PluginHooks) {
          hooks[hook].tapPromise('undoer', async (ctx) => ctx.addUndo(() => void journal.push('undo')));
          hooks.releaseNetwork.tapPromise('undoer', async (ctx) => void journal.push(`releaseNetwork:${ctx.reason}`));
          hooks.unmount.tapPromise('undoer', async (ctx) => void journal.push(`unmount:${ctx.reason}`));
        },
      });
      t = await createTestEngine({ specDefaults: false, plugins: [p] });
      const id = await t.createContainer();
      const err = await t.engine.containers.start(id).catch((e: unknown) => e);
      expect(err).toMatchObject({ step: hook === 'beforeMount' ? 'mount' : 'networking' });
      expect((err as Error).message).toContain(`addUndo is not available in ${hook}`);
      expect(journal).toEqual(hook === 'beforeMount' ? ['unmount:rollback'] : ['releaseNetwork:rollback', 'unmount:rollback']);
    });
  }
});

describe('start preconditions', () => {
  it('already running → NotModifiedError (API 304)', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    const err = await t.engine.containers.start(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotModifiedError);
    expect((err as NotModifiedError).status).toBe(304);
  });

  it('dead or being removed → 409 "container is marked for removal and cannot be started"', async () => {
    const fake = new FakeRuntime();
    t = await createTestEngine({ runtime: fake, specDefaults: false });
    const id = await t.createContainer();
    // A removal that fails midway leaves the container dead (dockerd).
    await t.engine.containers.start(id);
    fake.fail('delete', 'device busy', { times: 5 });
    await t.engine.containers.stop(id, { timeout: 1 });
    await expect(t.engine.containers.remove(id)).rejects.toThrow(/device busy/);
    expect(t.engine.containers.get(id).State.Status).toBe('dead');
    const err = await t.engine.containers.start(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toBe('container is marked for removal and cannot be started');
  });

  it('checkpoint without experimental mode → 400 "checkpoint is only supported in experimental mode"', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer();
    const err = await t.engine.containers.start(id, { checkpoint: 'cp1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidParameterError);
    expect((err as Error).message).toBe('checkpoint is only supported in experimental mode');
  });

  it('a start from a checkpoint in a build without checkpoint storage (no checkpoint plugin) is a 501; nothing reaches the backend', async () => {
    t = await createTestEngine({ specDefaults: false, experimental: true });
    expect(t.engine.checkpoints.available).toBe(false);
    const id = await t.createContainer();
    const err = await t.engine.containers.start(id, { checkpoint: 'cp1' }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('NotImplemented');
    expect(t.fake.callsOf('create', id)).toHaveLength(0);
    expect(t.engine.containers.get(id).State.Status).toBe('created');
    expect(errorKind(await t.engine.checkpoints.list(id).catch((e: unknown) => e))).toBe('NotImplemented');
  });

  it('a HostConfig given to start (API < 1.24) replaces the stored one, validated like create', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ HostConfig: { Memory: 10 << 20 } });
    await expect(t.engine.containers.start(id, { hostConfig: { RestartPolicy: { Name: 'bogus' as never } } })).rejects.toThrow("invalid restart policy: unknown policy 'bogus'");
    expect(t.engine.containers.get(id).HostConfig.Memory).toBe(10 << 20);
    await t.engine.containers.start(id, { hostConfig: { Memory: 20 << 20, Binds: [`${t.rootfs}/tmp:/tmp`] } });
    const r = t.engine.containers.get(id);
    expect(r.HostConfig).toMatchObject({ Memory: 20 << 20, Runtime: 'fake', NetworkMode: 'bridge' });
    expect(r.Mounts.map((m) => m.Destination)).toEqual(['/tmp']);
    await t.restart();
    expect(t.engine.containers.get(id).HostConfig.Memory).toBe(20 << 20);
  });

  it('no rootfs at all → a clear InvalidParameter error, state saved', async () => {
    t = await createTestEngine({ specDefaults: false });
    const { Id } = await t.engine.containers.create({ Config: { Cmd: ['x'] } });
    await expect(t.engine.containers.start(Id)).rejects.toThrow(/has no root filesystem/);
    expect(t.engine.containers.get(Id).State.ExitCode).toBe(128);
  });
});
