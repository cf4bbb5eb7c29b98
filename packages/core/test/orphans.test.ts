/**
 * Orphans after a crash: containers a runtime backend holds that the state store does not
 * know (the daemon died between the backend's create and the store's write) are
 * force-deleted when the engine starts, each logged at warn with its ID.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { definePlugin, generateId } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const warnsFor = (te: TestEngine, id: string) =>
  te.logger.entries.filter((e) => e.level === 'warn' && e.fields?.container === id).map((e) => e.msg);
const errorsFor = (te: TestEngine, id: string) =>
  te.logger.entries.filter((e) => e.level === 'error' && e.fields?.container === id).map((e) => e.msg);

describe('orphaned containers at engine start', () => {
  it('force-deletes held containers the store does not know and leaves known ones alone', async () => {
    t = await createTestEngine({ specDefaults: false });
    const running = await t.createContainer({ name: 'running' });
    await t.engine.containers.start(running);
    const created = await t.createContainer({ name: 'created' });
    const orphanRunning = generateId();
    const orphanCreated = generateId();
    t.fake.hold(orphanRunning);
    t.fake.hold(orphanCreated, { status: 'created' });
    expect(await t.fake.list()).toEqual([running, orphanRunning, orphanCreated].sort());

    const engine = await t.restart();

    expect([...t.fake.containers.keys()]).toEqual([running]);
    for (const id of [orphanRunning, orphanCreated]) {
      expect(t.fake.callsOf('delete', id).map((c) => c.args[0])).toEqual([{ force: true }]);
      expect(warnsFor(t, id)).toEqual(['removing orphaned container unknown to the state store']);
    }
    // Known containers: no delete, no warning, state as before.
    expect(t.fake.callsOf('delete', running)).toEqual([]);
    expect(t.fake.callsOf('delete', created)).toEqual([]);
    expect(warnsFor(t, running)).toEqual([]);
    expect(engine.containers.get(running).State.Status).toBe('running');
    expect(engine.containers.get(created).State.Status).toBe('created');
    expect((await t.fake.state(running))!.status).toBe('running');
    await engine.containers.stop(running, { timeout: 0 });
  });

  it('a failing delete is logged, does not stop the engine, and the other orphans still go', async () => {
    t = await createTestEngine({ specDefaults: false });
    const stuck = generateId();
    const other = generateId();
    t.fake.hold(stuck);
    t.fake.hold(other);
    t.fake.fail('delete', 'device or resource busy', { id: stuck });

    const engine = await t.restart();

    expect(t.fake.containers.has(stuck)).toBe(true);
    expect(t.fake.containers.has(other)).toBe(false);
    expect(warnsFor(t, stuck)).toEqual(['removing orphaned container unknown to the state store']);
    const failure = t.logger.entries.find((e) => e.level === 'error' && e.fields?.container === stuck);
    expect(failure?.msg).toBe('removing orphaned container failed');
    expect(failure?.fields?.error).toContain('device or resource busy');
    // The engine works.
    const id = await t.createContainer({ name: 'after' });
    await engine.containers.start(id);
    expect(engine.containers.get(id).State.Status).toBe('running');
    await engine.containers.stop(id, { timeout: 0 });
  });

  it('a failing list is logged and does not stop the engine', async () => {
    t = await createTestEngine({ specDefaults: false });
    const orphan = generateId();
    t.fake.hold(orphan);
    t.fake.fail('list', 'permission denied');
    await t.restart();
    expect(t.fake.containers.has(orphan)).toBe(true);
    const failure = t.logger.entries.find((e) => e.msg === 'could not list the containers of a runtime backend; orphans not removed');
    expect(failure?.level).toBe('error');
    expect(failure?.fields).toMatchObject({ backend: 'fake', error: 'permission denied' });
    // Next start: listed and removed.
    await t.restart();
    expect(t.fake.containers.has(orphan)).toBe(false);
  });

  it('keeps the backend container of a record that could not be loaded, and entries that are not IDs', async () => {
    t = await createTestEngine({ specDefaults: false });
    const unreadable = generateId();
    await mkdir(join(t.dataRoot, 'containers', unreadable), { recursive: true });
    await writeFile(join(t.dataRoot, 'containers', unreadable, 'config.v2.json'), '{"ID": "torn');
    t.fake.hold(unreadable);
    t.fake.hold('not-an-id');

    const engine = await t.restart();

    expect(engine.loadProblems.map((p) => p.id)).toEqual([unreadable]);
    expect(t.fake.containers.has(unreadable)).toBe(true);
    expect(t.fake.containers.has('not-an-id')).toBe(true);
    expect(t.fake.callsOf('delete')).toEqual([]);
    expect(warnsFor(t, unreadable)).toEqual(['runtime backend holds a container whose stored state could not be loaded; left alone']);
    expect(t.logger.entries.some((e) => e.level === 'warn' && e.fields?.entry === 'not-an-id')).toBe(true);
  });

  it('sweeps backends registered by plugins too, and skips backends without list()', async () => {
    const alt = new FakeRuntime({ name: 'alt' });
    const plugin = definePlugin({
      name: 'alt-backend',
      type: 'io.berth.test.v1',
      register: (_c, ctx) => ctx.registerBackend(alt),
    });
    const noList = new FakeRuntime();
    (noList as { list?: unknown }).list = undefined;
    t = await createTestEngine({ specDefaults: false, runtime: noList, plugins: [plugin] });
    const orphanAlt = generateId();
    const orphanDefault = generateId();
    alt.hold(orphanAlt);
    noList.hold(orphanDefault);

    await t.restart();

    expect(alt.containers.has(orphanAlt)).toBe(false);
    expect(alt.callsOf('delete', orphanAlt).map((c) => c.args[0])).toEqual([{ force: true }]);
    expect(t.logger.entries.find((e) => e.fields?.container === orphanAlt)?.fields?.backend).toBe('alt');
    // No list(): nothing is known, nothing is deleted.
    expect(noList.containers.has(orphanDefault)).toBe(true);
    expect(noList.callsOf('delete')).toEqual([]);
    expect(errorsFor(t, orphanDefault)).toEqual([]);
  });

  it('a container that runs through a restart is never treated as an orphan', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'policy', HostConfig: { RestartPolicy: { Name: 'always' } } });
    await t.engine.containers.start(id);
    t.fake.exit(id, 1, { silent: true }); // exited while the daemon was down
    const engine = await t.restart();
    // restored as exited, restarted by its policy at boot: held again, and known
    expect(engine.containers.get(id).State.Status).toBe('running');
    expect(t.fake.containers.get(id)?.status).toBe('running');
    expect(warnsFor(t, id)).toEqual([]);
    await engine.containers.stop(id, { timeout: 0 });
  });
});
