/**
 * A crash at any point leaves every container managed (issue 10 item 3), with the FakeRuntime:
 * the states a daemon killed mid-operation leaves on disk and in the runtime are set up by
 * hand, then the engine restarts on them. Also: a state save that fails is retried, then
 * fails the operation loudly; `rm -f` removes what the runtime holds even when the engine
 * does not know it holds anything. test/e2e/failpoints.e2e.test.ts kills a real berthd.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import {
  FileStateStore,
  IEngineConfig,
  IStateStore,
  definePlugin,
  errorKind,
  generateId,
  type ContainerRecord,
  type PluginHooks,
  type RuntimeCreateOptions,
} from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

/** A FileStateStore whose saves can fail with ENOSPC (`failing(record)` decides). */
class FlakyStore extends FileStateStore {
  failing: (rec: ContainerRecord) => boolean = () => false;
  attempts = 0;
  override save(record: ContainerRecord): Promise<void> {
    if (this.failing(record)) {
      this.attempts++;
      const err = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return Promise.reject(err);
    }
    return super.save(record);
  }
}

/** A plugin that journals the unmount hook (what the image store's rootfs release hears). */
function unmountJournal(journal: string[]) {
  return definePlugin({
    name: 'unmount-journal',
    type: 'io.berth.test.v1',
    apply(hooks: PluginHooks) {
      hooks.unmount.tapPromise('unmount-journal', async (ctx) => void journal.push(`${ctx.reason}:${ctx.container.ID}`));
    },
  });
}

const onDisk = (te: TestEngine, id: string) =>
  JSON.parse(readFileSync(join(te.dataRoot, 'containers', id, 'config.v2.json'), 'utf8')) as ContainerRecord;

describe('restore after a crash between the runtime and the record', () => {
  it('a record saved Created with no backend while the runtime runs it: adopted as running, and stop/rm work', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'c1', Config: { Cmd: ['/bin/sleep', '100'] } });
    expect(onDisk(t, id).RuntimeBackend ?? null).toBeNull();
    // What a daemon killed after the runtime's start but before any later save leaves.
    t.fake.hold(id, { status: 'running' });

    const engine = await t.restart();

    const rec = engine.containers.get(id);
    expect(rec.State.Status).toBe('running');
    expect(rec.State.Pid).toBeGreaterThan(0);
    expect(rec.RuntimeBackend).toBe('fake');
    expect(onDisk(t, id).State.Status).toBe('running');
    await engine.containers.stop(id, { timeout: 0 });
    expect(engine.containers.get(id).State.Status).toBe('exited');
    await engine.containers.remove(id);
    expect(await t.fake.list()).toEqual([]);
  });

  it('a record saved Created with no backend while the runtime holds it created: deleted there, and start works (no 409)', async () => {
    const journal: string[] = [];
    t = await createTestEngine({ specDefaults: false, plugins: [unmountJournal(journal)] });
    const id = await t.createContainer({ name: 'c1' });
    t.fake.hold(id, { status: 'created' });

    const engine = await t.restart();

    expect(t.fake.callsOf('delete', id).map((c) => c.args[0])).toEqual([{ force: true }]);
    expect(await t.fake.list()).toEqual([]);
    expect(journal).toEqual([`restore:${id}`]);
    expect(engine.containers.get(id).State.Status).toBe('created');
    await engine.containers.start(id);
    expect(engine.containers.get(id).State.Status).toBe('running');
    await engine.containers.remove(id, { force: true });
  });

  it('a record saved exited whose exit cleanup a crash cut short: unmounted and deleted in the runtime at restore', async () => {
    const journal: string[] = [];
    t = await createTestEngine({ specDefaults: false, plugins: [unmountJournal(journal)] });
    const id = await t.createContainer({ name: 'c1' });
    await t.engine.containers.start(id);
    await t.engine.containers.stop(id, { timeout: 0 });
    journal.length = 0;
    // The runtime still holds the stopped container (its delete never ran).
    t.fake.hold(id, { status: 'stopped' });

    const engine = await t.restart();

    expect(await t.fake.list()).toEqual([]);
    expect(journal).toEqual([`restore:${id}`]);
    expect(engine.containers.get(id).State.Status).toBe('exited');
  });

  it("records the backend on disk before the runtime's create when the backend cannot list what it holds", async () => {
    let seen: string | null | undefined;
    class Probe extends FakeRuntime {
      override async create(opts: RuntimeCreateOptions) {
        seen = onDisk(t!, opts.id).RuntimeBackend;
        return super.create(opts);
      }
    }
    const unlisted = new Probe();
    Object.defineProperty(unlisted, 'list', { value: undefined });
    t = await createTestEngine({ runtime: unlisted, specDefaults: false });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    expect(seen).toBe('fake');
  });

  it("a backend that lists what it holds: the record naming it is saved beside the runtime's create, and on disk before the start goes on", async () => {
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    class Probe extends FakeRuntime {
      override async create(opts: RuntimeCreateOptions) {
        order.push(`create sees ${onDisk(t!, opts.id).RuntimeBackend ?? 'nothing'}`);
        await gate;
        return super.create(opts);
      }
      override async start(id: string) {
        order.push(`start sees ${onDisk(t!, id).RuntimeBackend ?? 'nothing'}`);
        return super.start(id);
      }
    }
    t = await createTestEngine({ runtime: new Probe(), specDefaults: false });
    const id = await t.createContainer();
    const started = t.engine.containers.start(id);
    // The runtime's create is under way while the save is still writing: let the save land first.
    await vi.waitFor(() => expect(onDisk(t!, id).RuntimeBackend).toBe('fake'));
    release();
    await started;
    expect(order).toEqual(['create sees nothing', 'start sees fake']);
  });

  it('a failed save of the backend beside a successful runtime create fails the start and deletes the container there', async () => {
    const f = await flakyEngine();
    t = f.te;
    const id = await t.createContainer();
    f.store().failing = (rec) => rec.ID === id && rec.RuntimeBackend === 'fake' && rec.State.Status === 'created';
    const err = await t.engine.containers.start(id).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('System');
    expect(await t.fake.list()).toEqual([]);
    expect(t.engine.containers.get(id).State.Status).toBe('created');
  });
});

describe('rm -f always removes what the runtime holds', () => {
  it('a created container the runtime holds although the engine never created it there', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer();
    t.fake.hold(id, { status: 'running' }); // appears after the restore looked
    await t.engine.containers.remove(id, { force: true });
    expect(t.fake.callsOf('delete', id).map((c) => c.args[0])).toEqual([{ force: true }]);
    expect(await t.fake.list()).toEqual([]);
    expect(t.engine.containers.has(id)).toBe(false);
  });
});

/** A test engine whose state store is a FlakyStore (one instance across restarts). */
async function flakyEngine(extra: Parameters<typeof createTestEngine>[0] = {}): Promise<{ te: TestEngine; store: () => FlakyStore }> {
  let store: FlakyStore | undefined;
  const te = await createTestEngine({
    specDefaults: false,
    ...extra,
    providers: (c) => {
      store ??= new FlakyStore(c.resolve(IEngineConfig).dataRoot);
      c.register(IStateStore, { useValue: store });
    },
  });
  return { te, store: () => store! };
}

/** A container of a flaky engine that ran and exited with code 3, the save of that exit failing: on disk it still runs. */
async function exitedWithFailedSave(): Promise<{ f: Awaited<ReturnType<typeof flakyEngine>>; id: string }> {
  const f = await flakyEngine();
  const id = await f.te.createContainer();
  await f.te.engine.containers.start(id);
  f.store().failing = (rec) => rec.ID === id && rec.State.Status === 'exited';
  f.te.fake.exit(id, 3);
  await f.te.engine.containers.idle();
  return { f, id };
}

describe('a state save that fails', () => {
  it('is retried: a transient ENOSPC on the running save does not fail the start', async () => {
    const f = await flakyEngine();
    t = f.te;
    const id = await t.createContainer();
    let left = 2;
    f.store().failing = (rec) => rec.ID === id && rec.State.Status === 'running' && left-- > 0;
    await t.engine.containers.start(id);
    expect(f.store().attempts).toBe(2);
    expect(onDisk(t, id).State.Status).toBe('running');
    expect(t.logger.entries.filter((e) => e.fields?.container === id && e.level === 'warn').map((e) => [e.msg, e.fields?.attempt])).toEqual([
      ['saving container state failed; trying again', 1],
      ['saving container state failed; trying again', 2],
    ]);
  });

  it('fails the start loudly when the running state cannot be saved: error to the caller, logged, nothing left running', async () => {
    const f = await flakyEngine();
    t = f.te;
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    await t.engine.containers.stop(id, { timeout: 0 });
    f.store().failing = (rec) => rec.ID === id && rec.State.Status === 'running';

    const err = await t.engine.containers.start(id).then(() => null, (e: unknown) => e);

    expect(errorKind(err)).toBe('System');
    expect(String((err as Error).message)).toMatch(/failed to save state of container .*ENOSPC/);
    expect(t.logger.entries.some((e) => e.level === 'error' && e.msg === 'failed to persist container state' && e.fields?.container === id)).toBe(true);
    expect(await t.fake.list()).toEqual([]);
    const rec = t.engine.containers.get(id);
    expect(rec.State.Status).toBe('exited');
    expect(rec.State.Running).toBe(false);
    expect(onDisk(t, id).State.Status).toBe('exited');
    // Once the disk has room again, the start works.
    f.store().failing = () => false;
    await t.engine.containers.start(id);
    expect(t.engine.containers.get(id).State.Status).toBe('running');
    await t.engine.containers.remove(id, { force: true });
  });

  it('after an exit: the runtime keeps the container and its exit code, so the next restore reports the real one', async () => {
    const { f, id } = await exitedWithFailedSave();
    t = f.te;
    expect(t.engine.containers.get(id).State.ExitCode).toBe(3);
    expect(onDisk(t, id).State.Status).toBe('running');
    expect(await t.fake.list()).toEqual([id]);
    expect(t.logger.entries.some((e) => e.level === 'error' && e.msg.startsWith('container state not saved after its exit'))).toBe(true);

    f.store().failing = () => false;
    const engine = await t.restart();
    const rec = engine.containers.get(id);
    expect([rec.State.Status, rec.State.ExitCode, rec.State.Error]).toEqual(['exited', 3, '']);
    expect(onDisk(t, id).State.ExitCode).toBe(3);
    expect(await t.fake.list()).toEqual([]);
  });
});

const notFound = (fn: () => unknown): boolean => {
  try {
    fn();
    return false;
  } catch (err) {
    return errorKind(err) === 'NotFound';
  }
};

describe('an AutoRemove container after its exit', () => {
  it('is removed without a save of its exited state first (only its removal touches the disk)', async () => {
    const f = await flakyEngine();
    t = f.te;
    const id = await t.createContainer({ HostConfig: { AutoRemove: true } });
    await t.engine.containers.start(id);
    const saved: string[] = [];
    f.store().failing = (rec) => {
      if (rec.ID === id) saved.push(rec.State.Status);
      return false;
    };
    const removed = t.engine.containers.wait(id, 'removed');
    t.fake.exit(id, 3);
    expect((await removed).StatusCode).toBe(3);
    expect(saved).toEqual([]);
    expect(notFound(() => t!.engine.containers.inspect(id))).toBe(true);
    expect(await readdir(join(t.dataRoot, 'containers'))).toEqual([]);
    expect(await t.fake.list()).toEqual([]);
  });

  it('a crash before its removal ended (on disk it still runs): the restore removes it, in the engine and in the runtime', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ HostConfig: { AutoRemove: true } });
    await t.engine.containers.start(id);
    expect(onDisk(t, id).State.Status).toBe('running');
    // What a daemon killed after the exit, before the removal, leaves: the runtime holds the stopped container.
    t.fake.exit(id, 3, { silent: true });

    const engine = await t.restart();
    await engine.containers.idle();

    expect(notFound(() => engine.containers.inspect(id))).toBe(true);
    expect(await readdir(join(t.dataRoot, 'containers'))).toEqual([]);
    expect(await t.fake.list()).toEqual([]);
  });
});

describe('interrupted creates', () => {
  it('a record dir with no config.v2.json (nothing, or only hostconfig.json) is removed at load and logged', async () => {
    t = await createTestEngine({ specDefaults: false });
    const empty = generateId();
    const hostOnly = generateId();
    await mkdir(join(t.dataRoot, 'containers', empty), { recursive: true });
    await mkdir(join(t.dataRoot, 'containers', hostOnly), { recursive: true });
    await writeFile(join(t.dataRoot, 'containers', hostOnly, 'hostconfig.json'), '{}');
    const kept = await t.createContainer({ name: 'kept' });

    const engine = await t.restart();

    expect((await readdir(join(t.dataRoot, 'containers'))).sort()).toEqual([kept]);
    expect(engine.loadProblems).toEqual([]);
    expect(t.logger.entries.filter((e) => e.msg === 'removed the directory of a create that a crash interrupted').map((e) => e.fields?.container).sort()).toEqual([empty, hostOnly].sort());
  });
});

describe('containers whose record cannot be read', () => {
  it('are named in the warnings, kept running, refused by rm without force, and removed whole by rm -f <full ID>', async () => {
    const journal: string[] = [];
    t = await createTestEngine({ specDefaults: false, plugins: [unmountJournal(journal)] });
    const id = await t.createContainer({ name: 'torn' });
    await t.engine.containers.start(id);
    const file = join(t.dataRoot, 'containers', id, 'config.v2.json');
    await writeFile(file, readFileSync(file, 'utf8').slice(0, 60)); // a torn write
    journal.length = 0;

    const engine = await t.restart();

    expect(engine.loadProblems.map((p) => [p.id, p.file])).toEqual([[id, 'config.v2.json']]);
    const warnings = engine.containers.unreadable.warnings();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(file);
    expect(warnings[0]).toContain(`docker rm -f ${id}`);
    expect(await t.fake.list()).toEqual([id]); // left running for the operator
    expect(errorKind(await engine.containers.remove(id).catch((e: unknown) => e))).toBe('Conflict');
    expect(errorKind(await engine.containers.remove(id.slice(0, 12), { force: true }).catch((e: unknown) => e))).toBe('NotFound');
    expect(await t.fake.list()).toEqual([id]);

    await engine.containers.remove(id, { force: true });

    expect(t.fake.callsOf('delete', id).map((c) => c.args[0])).toEqual([{ force: true }]);
    expect(await t.fake.list()).toEqual([]);
    expect(journal).toEqual([`remove:${id}`]);
    expect(await readdir(join(t.dataRoot, 'containers'))).toEqual([]);
    expect(engine.loadProblems).toEqual([]);
    expect(engine.containers.unreadable.warnings()).toEqual([]);
    expect(engine.events.history({}).filter((e) => e.Action === 'destroy').map((e) => e.Actor.ID)).toEqual([id]);
  });
});

describe('a start after an exit whose save failed', () => {
  it('deletes the stopped container the runtime kept, then starts (no 409)', async () => {
    const { f, id } = await exitedWithFailedSave();
    t = f.te;
    expect(await t.fake.list()).toEqual([id]);
    f.store().failing = () => false;

    await t.engine.containers.start(id);

    expect(t.engine.containers.get(id).State.Status).toBe('running');
    expect(onDisk(t, id).State.Status).toBe('running');
    expect(t.fake.callsOf('delete', id).map((c) => c.args[0])).toEqual([{ force: true }]);
    await t.engine.containers.remove(id, { force: true });
  });
});
