/**
 * Volumes through the engine with this plugin, on @berth/testing's FakeRuntime (no root): the
 * store (create/list/inspect/remove/prune, names), a container's volumes as inspect shows
 * them and as binds in its spec, copy-up, nocopy, VolumesFrom, `rm -v` / AutoRemove, "in use"
 * after a daemon restart, and the Docker volume-plugin protocol against a test plugin.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Stage, definePlugin, errorKind, filtersFrom, mountOf, readMountInfo, type Engine } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { ANONYMOUS_LABEL, VOLUME_SERVICE, volumesPlugin, type VolumeService } from '../src/index.js';
import { startTestVolumePlugin, type TestVolumePlugin } from './plugin-server.js';

let t: TestEngine | undefined;
let plugin: TestVolumePlugin | undefined;
let pluginDir: string | undefined;
afterEach(async () => {
  await plugin?.close();
  plugin = undefined;
  await t?.dispose();
  t = undefined;
  if (pluginDir) await rm(pluginDir, { recursive: true, force: true });
  pluginDir = undefined;
});

async function setup(): Promise<TestEngine> {
  t = await createTestEngine({ plugins: [volumesPlugin()] });
  return t;
}

/** An engine whose volume plugins are looked for in a temp dir of the test's own. */
async function setupWithPluginDir(): Promise<{ te: TestEngine; pluginDir: string }> {
  pluginDir = await mkdtemp(join(tmpdir(), 'berth-volplugins-'));
  t = await createTestEngine({ plugins: [volumesPlugin({ config: { pluginDirs: [pluginDir] } })] });
  return { te: t, pluginDir };
}

const vols = (e: Engine) => e.container.resolve(VOLUME_SERVICE) as VolumeService;
const specMounts = (te: TestEngine, id: string) => te.fake.containers.get(id)!.spec.mounts ?? [];
const f = (o: Record<string, string[]>) => filtersFrom(o, Object.keys(o));
async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return errorKind(err);
  }
  return 'resolved';
}

describe('volume store', () => {
  it('create is idempotent by name, inspect shows the local _data path, invalid names are refused 400', async () => {
    const te = await setup();
    const s = vols(te.engine);
    const a = await s.create({ Name: 'data1', Labels: { team: 'x' } });
    expect(a).toMatchObject({ Name: 'data1', Driver: 'local', Scope: 'local', Labels: { team: 'x' }, Options: {} });
    expect(a.Mountpoint).toBe(join(te.dataRoot, 'volumes', 'data1', '_data'));
    expect(statSync(a.Mountpoint).isDirectory()).toBe(true);
    expect(await s.create({ Name: 'data1', Labels: { other: 'y' } })).toEqual(a);
    for (const bad of ['../x', 'a', '.hidden', 'a/b']) expect(await kindOf(s.create({ Name: bad }))).toBe('InvalidParameter');
    expect(existsSync(join(te.dataRoot, 'x'))).toBe(false);
    expect(await kindOf(s.create({ Name: 'o1', DriverOpts: { nope: '1' } }))).toBe('InvalidParameter');
    expect(await kindOf(s.create({ Name: 'o2', Driver: 'nosuchdriver' }))).toBe('NotFound');
    expect(await kindOf(s.inspect('missing'))).toBe('NotFound');
  });

  it('list filters by name, label, driver and dangling; prune removes unused anonymous volumes, named ones only with all', async () => {
    const te = await setup();
    const s = vols(te.engine);
    await s.create({ Name: 'alpha', Labels: { tier: 'db' } });
    await s.create({ Name: 'beta' });
    const anon = await s.createAnonymous('local');
    const id = await te.createContainer({ HostConfig: { Binds: ['beta:/b'] } });
    const names = async (flt: Record<string, string[]>) => (await s.list(f(flt))).Volumes.map((v) => v.Name);
    expect(await names({ name: ['alp'] })).toEqual(['alpha']);
    expect(await names({ label: ['tier=db'] })).toEqual(['alpha']);
    expect(await names({ driver: ['local'] })).toHaveLength(3);
    expect(await names({ dangling: ['false'] })).toEqual(['beta']);
    expect((await names({ dangling: ['true'] })).sort()).toEqual([anon.Name, 'alpha'].sort());
    expect(await s.prune(undefined, false)).toEqual({ VolumesDeleted: [anon.Name], SpaceReclaimed: 0 });
    expect((await s.prune(undefined, true)).VolumesDeleted).toEqual(['alpha']);
    expect(await names({})).toEqual(['beta']);
    await te.engine.containers.remove(id, {});
  });
});

describe('containers with volumes', () => {
  it('-v name:/path:ro is resolved at create as dockerd shows it and bound read-only at start; in use → 409 naming the container, also after a restart', async () => {
    const te = await setup();
    const id = await te.createContainer({ HostConfig: { Binds: ['shared:/data:ro'] } });
    const src = join(te.dataRoot, 'volumes', 'shared', '_data');
    expect(te.engine.containers.get(id).Mounts).toEqual([{ Type: 'volume', Name: 'shared', Source: src, Destination: '/data', Driver: 'local', Mode: 'ro', RW: false, Propagation: '' }]);
    await te.engine.containers.start(id);
    expect(specMounts(te, id).filter((m) => m.destination === '/data')).toEqual([{ destination: '/data', type: 'bind', source: src, options: ['rbind', 'ro', 'rprivate'] }]);
    const events = () => te.engine.events.history().filter((e) => e.Type === 'volume').map((e) => [e.Action, e.Actor.ID, e.Actor.Attributes]);
    expect(events()).toEqual([
      ['create', 'shared', { driver: 'local' }],
      ['mount', 'shared', { container: id, destination: '/data', driver: 'local', propagation: '', 'read/write': 'false' }],
    ]);
    const err = await vols(te.engine).remove('shared').catch((e: Error) => e);
    expect(errorKind(err)).toBe('Conflict');
    expect((err as Error).message).toBe(`remove shared: volume is in use - [${id}]`);
    await te.restart();
    expect(await kindOf(vols(te.engine).remove('shared', { force: true }))).toBe('Conflict');
    await te.engine.containers.remove(id, { force: true });
    await vols(te.engine).remove('shared');
    expect(existsSync(src)).toBe(false);
    expect(te.engine.events.history().filter((e) => e.Type === 'volume').map((e) => e.Action)).toEqual(['unmount', 'destroy']);
  });

  it('an image VOLUME becomes an anonymous volume with the image content copied up (modes kept); nocopy skips it; rm -v removes anonymous volumes, never named ones', async () => {
    const te = await setup();
    mkdirSync(join(te.rootfs, 'data'), { mode: 0o750 });
    chmodSync(join(te.rootfs, 'data'), 0o750);
    writeFileSync(join(te.rootfs, 'data', 'seed.txt'), 'from the image\n', { mode: 0o640 });
    mkdirSync(join(te.rootfs, 'keep'));
    writeFileSync(join(te.rootfs, 'keep', 'x'), 'x');
    const id = await te.createContainer({ Config: { Volumes: { '/data': {} } }, HostConfig: { Binds: ['named:/keep:nocopy'] } });
    const mounts = te.engine.containers.get(id).Mounts;
    const anon = mounts.find((m) => m.Destination === '/data')!;
    expect(anon).toMatchObject({ Type: 'volume', Driver: 'local', RW: true, Mode: '' });
    expect(anon.Name).toMatch(/^[0-9a-f]{64}$/);
    expect((await vols(te.engine).inspect(anon.Name!)).Labels).toEqual({ [ANONYMOUS_LABEL]: '' });
    await te.engine.containers.start(id);
    expect(readFileSync(join(anon.Source, 'seed.txt'), 'utf8')).toBe('from the image\n');
    expect(statSync(join(anon.Source, 'seed.txt')).mode & 0o777).toBe(0o640);
    expect(statSync(anon.Source).mode & 0o777).toBe(0o750);
    expect(existsSync(join(te.dataRoot, 'volumes', 'named', '_data', 'x'))).toBe(false);
    await te.engine.containers.kill(id);
    await te.engine.containers.wait(id, 'not-running');
    await te.engine.containers.remove(id, { volumes: true });
    expect(await vols(te.engine).exists(anon.Name!)).toBe(false);
    expect(await vols(te.engine).exists('named')).toBe(true);
  });

  it('AutoRemove removes the anonymous volumes with the container; a plain rm keeps them', async () => {
    const te = await setup();
    const keep = await te.createContainer({ HostConfig: { Binds: ['/anon1'] } });
    const gone = await te.createContainer({ HostConfig: { Binds: ['/anon2'], AutoRemove: true } });
    const nameOf = (id: string) => te.engine.containers.get(id).Mounts[0]!.Name!;
    const [k, g] = [nameOf(keep), nameOf(gone)];
    await te.engine.containers.start(gone);
    await te.engine.containers.kill(gone);
    await te.engine.containers.wait(gone, 'removed');
    await te.engine.containers.remove(keep, {});
    await expect(vols(te.engine).exists(g)).resolves.toBe(false);
    await expect(vols(te.engine).exists(k)).resolves.toBe(true);
  });

  it('VolumesFrom copies the other container\'s volumes and binds (:ro makes them read-only); the user\'s own mount wins at a destination', async () => {
    const te = await setup();
    const hostDir = join(te.dir, 'hostdir');
    mkdirSync(hostDir);
    const src = await te.createContainer({ name: 'src', HostConfig: { Binds: ['v1:/v1', `${hostDir}:/h`, 'v2:/v2'] } });
    const id = await te.createContainer({ HostConfig: { VolumesFrom: ['src:ro'], Binds: ['v3:/v2'] } });
    const m = te.engine.containers.get(id).Mounts;
    expect(m.map((x) => [x.Destination, x.Name ?? '', x.RW]).sort()).toEqual([
      ['/h', '', false],
      ['/v1', 'v1', false],
      ['/v2', 'v3', true],
    ]);
    await te.engine.containers.start(id);
    const sm = specMounts(te, id);
    expect(sm.find((x) => x.destination === '/h')).toEqual({ destination: '/h', type: 'bind', source: hostDir, options: ['rbind', 'ro', 'rprivate'] });
    expect(sm.find((x) => x.destination === '/v1')!.source).toBe(join(te.dataRoot, 'volumes', 'v1', '_data'));
    expect(sm.filter((x) => x.destination === '/v2')).toHaveLength(1);
    expect(vols(te.engine).users('v1').sort()).toEqual([src, id].sort());
    expect(await kindOf(te.createContainer({ HostConfig: { VolumesFrom: ['nosuch'] } }))).toBe('NotFound');
  });
});

describe('with an ID-mapping plugin (IdMappings recorded at create, rootfs shifted at Stage.USERNS)', () => {
  /** A stand-in for the userns plugin: maps root to 100000 and, at Stage.USERNS, leaves a mark in the rootfs (as its shift would change owners). */
  const idmap = definePlugin({
    name: 'fake-idmap',
    type: 'io.berth.test.v1',
    apply(hooks) {
      hooks.beforeCreate.tapPromise('fake-idmap', async (c) => {
        const m = [{ containerID: 0, hostID: 100000, size: 65536 }];
        c.container.IdMappings = { uid: m, gid: m };
      });
      hooks.beforeMount.tapPromise({ name: 'fake-idmap', stage: Stage.USERNS }, async (start) => {
        writeFileSync(join(start.rootfsPath ?? start.container.BaseFS!, 'data', 'shifted'), 'after the shift');
      });
    },
  });

  it.skipIf(process.getuid?.() !== 0)(`copy-up runs after the shift; an empty new volume is given to the mapped root (needs root: chown)${process.getuid?.() !== 0 ? ' (skipped: chown needs root)' : ''}`, async () => {
    t = await createTestEngine({ plugins: [volumesPlugin(), idmap] });
    mkdirSync(join(t.rootfs, 'data'));
    const id = await t.createContainer({ Config: { Volumes: { '/data': {}, '/empty': {} } } });
    await t.engine.containers.start(id);
    const src = (d: string) => t!.engine.containers.get(id).Mounts.find((m) => m.Destination === d)!.Source;
    expect(readFileSync(join(src('/data'), 'shifted'), 'utf8')).toBe('after the shift');
    expect([statSync(src('/empty')).uid, statSync(src('/empty')).gid]).toEqual([100000, 100000]);
  });
});

describe('a legacy start body (API < 1.24) with volumes in its HostConfig', () => {
  it('is refused with a clear 400 (volumes are resolved at create), mounting nothing', async () => {
    const te = await setup();
    const id = await te.createContainer({});
    const err = await te.engine.containers.start(id, { hostConfig: { Binds: ['late:/late'] } }).catch((e: Error) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toMatch(/volumes are resolved at create/);
    expect(await vols(te.engine).exists('late')).toBe(false);
  });
});

describe('Docker volume-plugin protocol', () => {
  it('a plugin found by its socket serves create, mount (the start binds its Mountpoint), unmount at exit, get and remove', async () => {
    const { te, pluginDir } = await setupWithPluginDir();
    plugin = await startTestVolumePlugin(join(pluginDir, 'testvol.sock'), join(te.dir, 'plugin-data'));
    const s = vols(te.engine);
    const v = await s.create({ Name: 'pv', Driver: 'testvol', DriverOpts: { size: '1' } });
    expect(v).toMatchObject({ Name: 'pv', Driver: 'testvol', Scope: 'local', Mountpoint: '' });
    expect(plugin.calls.map((c) => c.call).slice(0, 2)).toEqual(['Plugin.Activate', 'VolumeDriver.Create']);
    expect(plugin.volumes.get('pv')!.opts).toEqual({ size: '1' });
    const id = await te.createContainer({ HostConfig: { Binds: ['pv:/pv'] } });
    await te.engine.containers.start(id);
    const path = plugin.volumes.get('pv')!.path;
    expect(specMounts(te, id).find((m) => m.destination === '/pv')!.source).toBe(path);
    expect(plugin.calls.find((c) => c.call === 'VolumeDriver.Mount')!.body).toEqual({ Name: 'pv', ID: id });
    await te.engine.containers.kill(id);
    await te.engine.containers.wait(id, 'not-running');
    await expect.poll(() => plugin!.calls.some((c) => c.call === 'VolumeDriver.Unmount')).toBe(true);
    await te.engine.containers.remove(id, {});
    await s.remove('pv');
    expect(plugin.volumes.has('pv')).toBe(false);
  });

  it('a plugin found through a .spec file; a Mount error fails the start, which leaves nothing mounted', async () => {
    const { te, pluginDir } = await setupWithPluginDir();
    const sock = join(te.dir, 'elsewhere.sock');
    plugin = await startTestVolumePlugin(sock, join(te.dir, 'plugin-data'));
    writeFileSync(join(pluginDir, 'specvol.spec'), `unix://${sock}\n`);
    const id = await te.createContainer({ HostConfig: { Mounts: [{ Type: 'volume', Source: 'sv', Target: '/sv', VolumeOptions: { DriverConfig: { Name: 'specvol' } } }] } });
    expect(te.engine.containers.get(id).Mounts[0]).toMatchObject({ Name: 'sv', Driver: 'specvol' });
    plugin.failNext('VolumeDriver.Mount', 'disk on fire');
    const err = await te.engine.containers.start(id).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/disk on fire/);
    expect(te.engine.containers.get(id).State).toMatchObject({ Running: false, ExitCode: 128 });
    expect(te.fake.containers.has(id)).toBe(false);
    expect(plugin.calls.filter((c) => c.call === 'VolumeDriver.Unmount').map((c) => c.body)).toEqual([{ Name: 'sv', ID: id }]);
  });
});

describe.skipIf(process.getuid?.() !== 0)(`a request's lease on a container's volumes (docker cp)${process.getuid?.() !== 0 ? ' (skipped: mounting a tmpfs needs root)' : ''}`, () => {
  const mountedAt = async (p: string) => mountOf(p, await readMountInfo())?.mountPoint === p;

  it('a tmpfs local volume is mounted for the lease and unmounted by the last release; a release never unmounts it under a running container', async () => {
    const te = await setup();
    const s = vols(te.engine);
    await s.create({ Name: 'tv', DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' } });
    const data = join(te.dataRoot, 'volumes', 'tv', '_data');
    try {
      const id = await te.createContainer({ HostConfig: { Binds: ['tv:/t'] } });
      const rec = te.engine.containers.get(id);
      const a = await s.leaseMounts(rec);
      expect(a.sources).toEqual(new Map([['/t', data]]));
      expect(await mountedAt(data)).toBe(true);
      const b = await s.leaseMounts(rec);
      await a.release();
      await a.release();
      expect(await mountedAt(data)).toBe(true);
      await b.release();
      expect(await mountedAt(data)).toBe(false);

      // a start while a lease holds the volume: the lease's release leaves the container's mount
      const c = await s.leaseMounts(rec);
      await te.engine.containers.start(id);
      await c.release();
      expect(await mountedAt(data)).toBe(true);
      // and the container's exit while a lease holds it leaves the lease's mount
      const d = await s.leaseMounts(te.engine.containers.get(id));
      await te.engine.containers.kill(id);
      await te.engine.containers.wait(id, 'not-running');
      await expect.poll(() => te.engine.events.history().some((e) => e.Type === 'volume' && e.Action === 'unmount' && e.Actor.Attributes.container === id)).toBe(true);
      expect(await mountedAt(data)).toBe(true);
      await d.release();
      expect(await mountedAt(data)).toBe(false);
    } finally {
      if (await mountedAt(data)) execFileSync('umount', [data]);
    }
  });

  it('a container that exits while another one using the volume is still starting (mounted, not yet running) leaves the mount to it', async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    const holdB = definePlugin({
      name: 'hold-b',
      type: 'io.berth.test.v1',
      apply(hooks) {
        hooks.beforeStart.tapPromise({ name: 'hold-b', when: (c) => c.Name === '/vol-b' }, () => gate);
      },
    });
    t = await createTestEngine({ plugins: [volumesPlugin(), holdB] });
    const te = t;
    const s = vols(te.engine);
    await s.create({ Name: 'tv', DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' } });
    const data = join(te.dataRoot, 'volumes', 'tv', '_data');
    try {
      const a = await te.createContainer({ name: 'vol-a', HostConfig: { Binds: ['tv:/t'] } });
      const b = await te.createContainer({ name: 'vol-b', HostConfig: { Binds: ['tv:/t'] } });
      await te.engine.containers.start(a);
      const startingB = te.engine.containers.start(b);
      await expect.poll(() => te.engine.events.history().filter((e) => e.Type === 'volume' && e.Action === 'mount').length).toBe(2);
      expect(te.engine.containers.get(b).State.Running).toBe(false);
      await te.engine.containers.kill(a);
      await te.engine.containers.wait(a, 'not-running');
      await expect.poll(() => te.engine.events.history().some((e) => e.Type === 'volume' && e.Action === 'unmount' && e.Actor.Attributes.container === a)).toBe(true);
      expect(await mountedAt(data)).toBe(true);
      open();
      await startingB;
      expect(await mountedAt(data)).toBe(true);
      await te.engine.containers.kill(b);
      await te.engine.containers.wait(b, 'not-running');
      await expect.poll(() => mountedAt(data)).toBe(false);
    } finally {
      open();
      if (await mountedAt(data)) execFileSync('umount', [data]);
    }
  });
});
