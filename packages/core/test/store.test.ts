import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { EXIT_CODE_UNKNOWN, FileStateStore, definePlugin, type ContainerRecord } from '../src/index.js';

let t: TestEngine | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await t?.dispose();
  t = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('state store on disk', () => {
  it('one directory per container with config.v2.json and hostconfig.json, no temp files left', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'disk', HostConfig: { Memory: 32 << 20 } });
    const dir = join(t.dataRoot, 'containers', id);
    expect((await readdir(dir)).sort()).toEqual(['config.v2.json', 'hostconfig.json']);
    const cfg = JSON.parse(await readFile(join(dir, 'config.v2.json'), 'utf8')) as ContainerRecord;
    expect(cfg.ID).toBe(id);
    expect(cfg.Name).toBe('/disk');
    expect('HostConfig' in cfg).toBe(false);
    expect(JSON.parse(await readFile(join(dir, 'hostconfig.json'), 'utf8'))).toMatchObject({ Memory: 32 << 20 });
  });

  it('a save rewrites hostconfig.json only when the HostConfig changed', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'hc', HostConfig: { Memory: 8 << 20 } });
    const dir = join(t.dataRoot, 'containers', id);
    const ino = (f: string) => statSync(join(dir, f)).ino;
    const host0 = ino('hostconfig.json');
    const cfg0 = ino('config.v2.json');
    await t.engine.containers.rename('hc', 'hc2');
    expect(ino('config.v2.json')).not.toBe(cfg0);
    expect(ino('hostconfig.json')).toBe(host0);
    expect(JSON.parse(await readFile(join(dir, 'config.v2.json'), 'utf8')).Name).toBe('/hc2');
    await t.engine.containers.update('hc2', { Memory: 16 << 20 });
    expect(ino('hostconfig.json')).not.toBe(host0);
    expect(JSON.parse(await readFile(join(dir, 'hostconfig.json'), 'utf8'))).toMatchObject({ Memory: 16 << 20 });
    // A fresh store (daemon restart) does not know what is on disk: it writes both once.
    await t.restart();
    const host1 = ino('hostconfig.json');
    await t.engine.containers.rename('hc2', 'hc3');
    expect(ino('hostconfig.json')).not.toBe(host1);
    expect(JSON.parse(await readFile(join(dir, 'hostconfig.json'), 'utf8'))).toMatchObject({ Memory: 16 << 20 });
  });

  it('reload after a crash between two writes: temp files dropped, the container loads whole', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'crashy', HostConfig: { Memory: 10 << 20 } });
    await t.engine.close();
    const dir = join(t.dataRoot, 'containers', id);
    // The crash: a newer config.v2.json landed; the hostconfig.json write died half way (only its temp exists).
    const cfg = JSON.parse(await readFile(join(dir, 'config.v2.json'), 'utf8')) as ContainerRecord;
    cfg.Config.Labels = { updated: 'yes' };
    await writeFile(join(dir, 'config.v2.json'), JSON.stringify(cfg));
    await writeFile(join(dir, '.tmp-hostconfig.json.1a2b3c4d'), '{"Memory": 20');
    await t.restart();
    const r = t.engine.containers.get('crashy');
    expect(r.Config.Labels).toEqual({ updated: 'yes' });
    expect(r.HostConfig.Memory).toBe(10 << 20);
    expect(t.engine.loadProblems).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual(['config.v2.json', 'hostconfig.json']);
  });

  it('a corrupt or half-written file skips that container only, reported; the others load', async () => {
    t = await createTestEngine({ specDefaults: false });
    const good = await t.createContainer({ name: 'good' });
    const badCfg = await t.createContainer({ name: 'badcfg' });
    const badHost = await t.createContainer({ name: 'badhost' });
    const empty = await t.createContainer({ name: 'empty' });
    await t.engine.close();
    const c = (id: string, f: string) => join(t!.dataRoot, 'containers', id, f);
    const full = await readFile(c(badCfg, 'config.v2.json'), 'utf8');
    await writeFile(c(badCfg, 'config.v2.json'), full.slice(0, full.length / 2)); // torn write (not atomic)
    await writeFile(c(badHost, 'hostconfig.json'), '{"Memory":');
    await writeFile(c(empty, 'config.v2.json'), '');
    await writeFile(join(t.dataRoot, 'containers', 'not-a-container-dir'), 'x');
    await t.restart();
    expect(t.engine.containers.list().map((r) => r.ID)).toEqual([good]);
    expect(t.engine.loadProblems.map((p) => [p.id, p.file]).sort()).toEqual(
      [
        [badCfg, 'config.v2.json'],
        [badHost, 'hostconfig.json'],
        [empty, 'config.v2.json'],
      ].sort(),
    );
    expect(t.logger.entries.filter((e) => e.msg === 'could not load container; skipped')).toHaveLength(3);
    // the broken ones are left on disk for the operator, not deleted
    expect(existsSync(c(badCfg, 'config.v2.json'))).toBe(true);
  });

  it('a missing hostconfig.json loads with defaults (as dockerd does)', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ name: 'nohost' });
    await t.engine.close();
    await rm(join(t.dataRoot, 'containers', id, 'hostconfig.json'));
    await t.restart();
    expect(t.engine.containers.get(id).HostConfig).toEqual({});
  });

  it('a save that comes after a remove does not bring the directory back', async () => {
    const d = await mkdtemp(join(tmpdir(), 'berth-store-'));
    dirs.push(d);
    const store = new FileStateStore(d);
    const rec = { ID: 'b'.repeat(64), Name: '/y', State: { Status: 'created' }, Config: {}, HostConfig: {} } as unknown as ContainerRecord;
    await store.save(rec);
    const removing = store.remove(rec.ID);
    const late = store.save(rec);
    await Promise.all([removing, late]);
    expect(existsSync(store.dir(rec.ID))).toBe(false);
    expect((await store.loadAll()).records).toEqual([]);
  });

  it('saves queued for one container land in order (the last state wins)', async () => {
    const d = await mkdtemp(join(tmpdir(), 'berth-store-'));
    dirs.push(d);
    const store = new FileStateStore(d);
    const rec = { ID: 'a'.repeat(64), Name: '/x', State: { Status: 'created' }, Config: {}, HostConfig: {} } as unknown as ContainerRecord;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      rec.Config = { Labels: { n: String(i) } };
      writes.push(store.save(rec));
    }
    await Promise.all(writes);
    const { records, problems } = await store.loadAll();
    expect(problems).toEqual([]);
    expect(records[0]!.Config.Labels).toEqual({ n: '19' });
  });
});

describe('reload and live restore', () => {
  it('names, state and records survive an engine restart', async () => {
    t = await createTestEngine({ specDefaults: false });
    const a = await t.createContainer({ name: 'keep' });
    await t.engine.containers.start(a);
    t.fake.exit(a, 9);
    await t.engine.containers.wait(a);
    const before = t.engine.containers.get(a);
    await t.restart();
    expect(t.engine.containers.get('keep')).toEqual(before);
    await expect(t.createContainer({ name: 'keep' })).rejects.toThrow('is already in use');
  });

  it('running → still running; exited meanwhile → real exit code and FinishedAt; gone without an exit status → exited 255 (dockerd\'s restore)', async () => {
    const fake = new FakeRuntime();
    t = await createTestEngine({ runtime: fake, specDefaults: false });
    const still = await t.createContainer({ name: 'still' });
    const exited = await t.createContainer({ name: 'exited' });
    const lost = await t.createContainer({ name: 'lost' });
    const paused = await t.createContainer({ name: 'paused' });
    for (const id of [still, exited, lost, paused]) await t.engine.containers.start(id);
    await t.engine.containers.pause(paused);
    await t.engine.close();
    expect(fake.listenerCount()).toBe(0);
    // While the engine is down: one exits (nobody hears it), one vanishes from the backend.
    fake.exit(exited, 3, { silent: true });
    const finishedAt = fake.containers.get(exited)!.exit!.exitedAt;
    fake.forget(lost);
    const log: string[] = [];
    await t.restart({
      plugins: [
        definePlugin({
          name: 'restore-watch',
          type: 'io.berth.test.v1',
          apply(h) {
            h.afterLiveRestore.tapPromise('w', async (ctx) => void log.push(`${ctx.container.Name}:${ctx.state?.status ?? 'null'}`));
            h.unmount.tapPromise('w', async (ctx) => void log.push(`unmount ${ctx.container.Name}:${ctx.reason}`));
          },
        }),
      ],
    });
    const c = t.engine.containers;
    expect(c.get(still).State).toMatchObject({ Status: 'running', Running: true, Pid: fake.containers.get(still)!.pid });
    expect(c.get(paused).State).toMatchObject({ Status: 'paused', Paused: true });
    expect(c.get(exited).State).toMatchObject({ Status: 'exited', ExitCode: 3, Pid: 0, FinishedAt: finishedAt });
    expect(c.get(lost).State).toMatchObject({ Status: 'exited', ExitCode: EXIT_CODE_UNKNOWN });
    expect(EXIT_CODE_UNKNOWN).toBe(255);
    expect(c.get(lost).State.Error).toContain('not found');
    expect(log.sort()).toEqual(['/exited:stopped', '/lost:null', '/paused:paused', '/still:running', 'unmount /exited:restore', 'unmount /lost:restore'].sort());
    // The restored engine hears exits of the running one and can stop it.
    await c.unpause(paused);
    await c.stop(still, { timeout: 1 });
    expect(c.get(still).State).toMatchObject({ Status: 'exited', ExitCode: 143 });
    // The exited one was deleted from the backend.
    expect(fake.containers.has(exited)).toBe(false);
  });

  it('a container whose backend is gone after a restart is marked dead', async () => {
    const alt = new FakeRuntime({ name: 'alt' });
    const p = definePlugin({
      name: 'router',
      type: 'io.berth.runtime.v1',
      register(_c, ctx) {
        ctx.registerBackend(alt);
      },
      apply(h) {
        h.runtimeCreate.tapPromise('router', async () => 'alt');
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    await t.restart({ plugins: [] });
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'dead', Dead: true, ExitCode: EXIT_CODE_UNKNOWN });
    expect(t.engine.containers.get(id).State.Error).toBe('runtime backend alt is not available');
    await t.engine.containers.remove(id);
  });

  it('AutoRemove containers that exited while the engine was down are removed on restore; interrupted removals finish', async () => {
    const fake = new FakeRuntime();
    t = await createTestEngine({ runtime: fake, specDefaults: false });
    const rm1 = await t.createContainer({ HostConfig: { AutoRemove: true } });
    const keep = await t.createContainer();
    await t.engine.containers.start(rm1);
    await t.engine.close();
    fake.exit(rm1, 0, { silent: true });
    // An interrupted removal of `keep`'s sibling: RemovalInProgress persisted.
    const half = join(t.dataRoot, 'containers', keep, 'config.v2.json');
    const rec = JSON.parse(await readFile(half, 'utf8')) as ContainerRecord;
    rec.RemovalInProgress = true;
    rec.State.Status = 'removing';
    await writeFile(half, JSON.stringify(rec));
    await t.restart();
    expect(t.engine.containers.list()).toEqual([]);
    expect(existsSync(join(t.dataRoot, 'containers', rm1))).toBe(false);
    expect(existsSync(join(t.dataRoot, 'containers', keep))).toBe(false);
  });

  it('adopts a container that was started but whose running state was never saved (crash right after start)', async () => {
    const fake = new FakeRuntime();
    t = await createTestEngine({ runtime: fake, specDefaults: false });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    await t.engine.close();
    const f = join(t.dataRoot, 'containers', id, 'config.v2.json');
    const rec = JSON.parse(await readFile(f, 'utf8')) as ContainerRecord;
    rec.State = { ...rec.State, Status: 'created', Running: false, Pid: 0 };
    await writeFile(f, JSON.stringify(rec));
    await t.restart();
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'running', Pid: fake.containers.get(id)!.pid });
  });
});
