/**
 * Runtime backends in a berthd build: the OCI runtime is a built-in plugin (type
 * io.berth.runtime.v1) and a custom build's plugin adds another backend. /info lists every
 * runtime of every backend; HostConfig.Runtime picks the other backend's runtime by name;
 * inspect shows the backend and runtime that ran the container; DOCKER_RAMDISK reaches the
 * create options as noPivotRoot. The other backend is a FakeRuntime: no runc needed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { definePlugin, type RuntimeCreateOptions } from '@berth/core';
import { FakeRuntime } from '@berth/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { startBerthd, type RunningDaemon } from '../src/index.js';
import { tempDaemonConfig, unixRequest as request } from './helpers/temp-berthd.js';

let daemon: RunningDaemon | undefined;
let dir: string | undefined;
const ramdisk = process.env.DOCKER_RAMDISK;
afterEach(async () => {
  await daemon?.shutdown('test');
  daemon = undefined;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (ramdisk === undefined) delete process.env.DOCKER_RAMDISK;
  else process.env.DOCKER_RAMDISK = ramdisk;
});

/** berthd on temp dirs with the built-ins, daemon.json runtimes, and a plugin adding a second backend. */
async function start(kata: FakeRuntime): Promise<string> {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-backends-'));
  const sock = path.join(dir, 'berth.sock');
  fs.mkdirSync(path.join(dir, 'rootfs', 'plain', 'etc'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'rootfs', 'plain', 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const kataPlugin = definePlugin({
    name: 'kata',
    type: 'io.example.runtime.v1',
    // Loads after berthd's OCI runtime plugin, whatever the order of the list.
    requires: ['io.berth.runtime.v1'],
    register(_c, ctx) {
      ctx.registerBackend(kata);
    },
  });
  const config = tempDaemonConfig(dir, {
    rootfsDir: path.join(dir, 'rootfs'),
    runtimes: { runc: { path: 'runc' }, 'runc-debug': { path: '/usr/local/bin/runc-debug', runtimeArgs: ['--debug'] } },
  });
  daemon = await startBerthd(config, { plugins: [kataPlugin], handleSignals: false });
  return sock;
}

describe('runtime backends in a berthd build', () => {
  it('/info lists the runtimes of every backend; --runtime picks another backend\'s runtime by name; inspect shows who ran it', async () => {
    const kata = new FakeRuntime({ name: 'kata-backend', runtimes: [{ name: 'kata', path: '/opt/kata/bin/kata-runtime' }], script: { runFor: 60_000 } });
    const sock = await start(kata);
    expect(daemon!.engine.plugins.map((p) => p.name).indexOf('kata')).toBeGreaterThan(daemon!.engine.plugins.map((p) => p.name).indexOf('runtime-oci'));

    const info = (await request(sock, 'GET', '/info')).json();
    expect(Object.keys(info.Runtimes).sort()).toEqual(['kata', 'runc', 'runc-debug']);
    expect(info.Runtimes.kata).toEqual({ path: '/opt/kata/bin/kata-runtime' });
    expect(info.Runtimes['runc-debug']).toEqual({ path: '/usr/local/bin/runc-debug', runtimeArgs: ['--debug'] });
    expect(info.DefaultRuntime).toBe('runc');

    const created = await request(sock, 'POST', '/containers/create?name=kata-one', { Image: 'plain', Cmd: ['true'], HostConfig: { Runtime: 'kata', NetworkMode: 'none' } });
    expect(created.json()).toMatchObject({ Id: expect.any(String) });
    expect(created.status).toBe(201);
    const id = created.json().Id as string;
    expect((await request(sock, 'POST', `/containers/${id}/start`)).status).toBe(204);
    expect(kata.containers.get(id)?.status).toBe('running');
    expect((kata.callsOf('create', id)[0]!.args[0] as RuntimeCreateOptions).runtime).toBe('kata');
    const inspect = (await request(sock, 'GET', `/containers/${id}/json`)).json();
    expect(inspect).toMatchObject({ RuntimeBackend: 'kata-backend', RuntimeName: 'kata', HostConfig: { Runtime: 'kata' }, State: { Running: true } });
    expect((await request(sock, 'POST', `/containers/${id}/kill`)).status).toBe(204);
    expect(kata.callsOf('kill', id)).toHaveLength(1);
  });

  it('an unknown runtime is dockerd\'s 400', async () => {
    const sock = await start(new FakeRuntime({ name: 'kata-backend', runtimes: ['kata'] }));
    const r = await request(sock, 'POST', '/containers/create', { Image: 'plain', Cmd: ['true'], HostConfig: { Runtime: 'gvisor' } });
    expect(r.status).toBe(400);
    expect(r.json().message).toBe('unknown or invalid runtime name: gvisor');
  });

  it('DOCKER_RAMDISK makes every create go without pivot_root (dockerd\'s NoPivotRoot)', async () => {
    process.env.DOCKER_RAMDISK = 'true';
    const kata = new FakeRuntime({ name: 'kata-backend', runtimes: ['kata'], script: { runFor: 60_000 } });
    const sock = await start(kata);
    const id = (await request(sock, 'POST', '/containers/create', { Image: 'plain', Cmd: ['true'], HostConfig: { Runtime: 'kata', NetworkMode: 'none' } })).json().Id as string;
    expect((await request(sock, 'POST', `/containers/${id}/start`)).status).toBe(204);
    expect((kata.callsOf('create', id)[0]!.args[0] as RuntimeCreateOptions).noPivotRoot).toBe(true);
    await request(sock, 'POST', `/containers/${id}/kill`);
  });
});
