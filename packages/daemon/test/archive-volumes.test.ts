/**
 * docker cp of a container that does not run reaches its volumes as dockerd's does: the
 * archive routes mount each volume through its driver for the request (dockerd's
 * openContainerFS: setupMounts … UnmountVolumes) and give it back after, so a driver whose data
 * only exists while mounted (a Docker volume plugin here; a tmpfs or bind-device local volume
 * in test/e2e/volumes) is read and written, never the empty place its path names when unmounted.
 * A real engine on the FakeRuntime with the volumes plugin and a test volume plugin: no root.
 */
import 'reflect-metadata';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VOLUME_SERVICE, volumesPlugin, type VolumeService } from '@berth/plugin-volumes';
import { startTestVolumePlugin, type TestVolumePlugin } from '../../../plugins/volumes/test/plugin-server.js';
import { listTar, makeTar } from './helpers/archive-table.js';
import { engineApp } from './helpers/engine-app.js';

const app = engineApp();
let plugin: TestVolumePlugin | undefined;
let pluginDir: string | undefined;
afterEach(async () => {
  await plugin?.close();
  plugin = undefined;
  if (pluginDir) fs.rmSync(pluginDir, { recursive: true, force: true });
  pluginDir = undefined;
});

/** An engine with the volumes plugin, a test volume plugin `testvol` and its volumes `names`. */
async function openWithPlugin(names: string[]) {
  pluginDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-volplugins-'));
  const { t, inj } = await app.open({ plugins: [volumesPlugin({ config: { pluginDirs: [pluginDir] } })] });
  const p = await startTestVolumePlugin(path.join(pluginDir, 'testvol.sock'), path.join(t.dir, 'plugin-data'));
  plugin = p;
  const vols = t.engine.container.resolve(VOLUME_SERVICE) as VolumeService;
  for (const n of names) await vols.create({ Name: n, Driver: 'testvol' });
  return { t, inj, plugin: p };
}

describe('docker cp and the volumes of a container that does not run', () => {
  it('PUT and GET /archive mount the volume through its driver for the request (one lease ID, Mount then Unmount) and use the path the driver gives', async () => {
    const { t, inj, plugin } = await openWithPlugin(['pv']);
    const id = await t.createContainer({ HostConfig: { Binds: ['pv:/pv'] } });
    // unmounted, the plugin names no path: the record's Source is empty
    expect((await t.engine.containers.inspect(id)).Mounts.find((m) => m.Destination === '/pv')?.Source).toBe('');

    const put = await inj.request({ method: 'PUT', url: `/containers/${id}/archive?path=/pv`, headers: { 'content-type': 'application/x-tar' }, body: await makeTar([{ name: 'hello', body: 'in the volume' }]) });
    expect(put.statusCode).toBe(200);
    const data = plugin.volumes.get('pv')!.path;
    expect(fs.readFileSync(path.join(data, 'hello'), 'utf8')).toBe('in the volume');
    // not written into the container's root filesystem under the mount point
    expect(fs.existsSync(path.join(t.rootfs, 'pv', 'hello'))).toBe(false);

    const get = await inj.request({ method: 'GET', url: `/containers/${id}/archive?path=/pv/hello` });
    expect(get.statusCode).toBe(200);
    expect(await listTar(get.body)).toEqual({ hello: 'in the volume' });

    // each request: a Mount and an Unmount with one ID of its own (not the container's), nothing left mounted
    const mounts = plugin.calls.filter((c) => c.call === 'VolumeDriver.Mount').map((c) => c.body.ID);
    const unmounts = plugin.calls.filter((c) => c.call === 'VolumeDriver.Unmount').map((c) => c.body.ID);
    expect(mounts).toHaveLength(2);
    expect(new Set(mounts).size).toBe(2);
    expect(mounts).not.toContain(id);
    expect(unmounts.sort()).toEqual([...mounts].sort());
    expect(plugin.volumes.get('pv')!.mounts.size).toBe(0);
  });

  it('a volume that fails to mount fails the request (500 with the driver\'s error) and the volumes mounted before it are given back', async () => {
    const { t, inj, plugin } = await openWithPlugin(['pv', 'pw']);
    const id = await t.createContainer({ HostConfig: { Binds: ['pv:/pv', 'pw:/pw'] } });
    // the plugin lost pw: its Mount answers an error, after pv's Mount succeeded
    plugin.volumes.delete('pw');
    const r = await inj.request({ method: 'GET', url: `/containers/${id}/archive?path=/pv` });
    expect(r.statusCode).toBe(500);
    expect(r.text).toContain('no such volume pw');
    // pv, mounted before, is given back under the ID it was mounted with
    const pvMount = plugin.calls.find((c) => c.call === 'VolumeDriver.Mount' && c.body.Name === 'pv')!;
    expect(plugin.calls.filter((c) => c.call === 'VolumeDriver.Unmount').map((c) => c.body)).toEqual([{ Name: 'pv', ID: pvMount.body.ID }]);
    expect(plugin.volumes.get('pv')!.mounts.size).toBe(0);
  });
});
