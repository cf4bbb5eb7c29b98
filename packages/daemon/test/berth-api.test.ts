/**
 * berth's own API (/berth/v1): the plugin list with versions, redacted config and taps, and
 * a container's explain record, both from an in-process berthd on temp dirs. The container
 * runs on a FakeRuntime backend added by the build (no runc needed); its start goes through
 * the real built-ins (network-basic, seccomp, …), whose taps show in the explain record.
 */
import { type ContainerExplain, type PluginInfo } from '@berth/core';
import { FakeRuntime } from '@berth/testing';
import { describe, expect, it } from 'vitest';
import { berthdPerTest, unixRequest as request } from './helpers/temp-berthd.js';

const berthd = berthdPerTest('berth-api-');

/** berthd with `fake` as the backend of a plugin with a version and a config holding a secret. */
async function start(fake: FakeRuntime): Promise<string> {
  const plugin = { version: '0.0.1', config: { endpoint: 'unix:///fake.sock', apiKey: 'do-not-show' }, secretConfigKeys: ['apiKey'] };
  return (await berthd.startWithBackend(fake, {}, plugin)).sock;
}

describe('/berth/v1', () => {
  it('GET /berth/v1/plugins lists every plugin with type, version, status, redacted config and the hooks it taps', async () => {
    const sock = await start(new FakeRuntime({ name: 'fake', runtimes: ['fake'] }));
    const r = await request(sock, 'GET', '/berth/v1/plugins');
    expect(r.status).toBe(200);
    const plugins = r.json() as PluginInfo[];
    const info = (await request(sock, 'GET', '/info')).json();
    expect(plugins.map((p) => p.name)).toEqual(info.BerthPlugins.map((p: { Name: string }) => p.Name));
    expect(plugins.find((p) => p.name === 'fake-backend')).toEqual({
      name: 'fake-backend',
      type: 'io.example.runtime.v1',
      version: '0.0.1',
      status: 'loaded',
      config: { endpoint: 'unix:///fake.sock', apiKey: '<redacted>' },
      hooks: [],
    });
    expect(r.body).not.toContain('do-not-show');
    const seccomp = plugins.find((p) => p.name === 'seccomp')!;
    expect(seccomp.status).toBe('loaded');
    expect(seccomp.hooks.map((h) => h.hook)).toContain('specBuild');
    // berth's API is not part of the Docker API: not behind its version prefix.
    const versioned = await request(sock, 'GET', '/v1.44/berth/v1/plugins');
    expect(versioned.status).toBe(404);
    expect(versioned.json()).toEqual({ message: 'page not found' });
  });

  it('GET /berth/v1/containers/{id}/explain shows the start tap by tap and the spec paths each plugin set; 404 for an unknown container', async () => {
    const fake = new FakeRuntime({ name: 'fake', runtimes: ['fake'], script: { runFor: 60_000 } });
    const sock = await start(fake);
    const created = await request(sock, 'POST', '/containers/create?name=explained', { Image: 'plain', Cmd: ['true'], HostConfig: { Runtime: 'fake' } });
    expect(created.status).toBe(201);
    expect((await request(sock, 'POST', '/containers/explained/start')).status).toBe(204);

    const r = await request(sock, 'GET', '/berth/v1/containers/explained/explain');
    expect(r.status).toBe(200);
    const e = r.json() as ContainerExplain;
    expect(e).toMatchObject({ containerId: created.json().Id, name: 'explained', source: 'memory' });
    const taps = e.taps.map((x) => `${x.hook}/${x.plugin}`);
    // network-basic writes the files in networking; seccomp sets the filter in specBuild, after the core's defaults.
    expect(taps).toContain('networking/network-basic');
    expect(taps.indexOf('specBuild/core:defaults')).toBeLessThan(taps.indexOf('specBuild/seccomp'));
    expect(taps.indexOf('specBuild/seccomp')).toBeLessThan(taps.indexOf('runtime.create/fake'));
    expect(e.spec.find((o) => o.path === 'linux.seccomp')?.plugins).toEqual(['seccomp']);
    expect(e.taps.every((x) => typeof x.durationMs === 'number' && x.durationMs >= 0)).toBe(true);

    const missing = await request(sock, 'GET', '/berth/v1/containers/nope/explain');
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual({ message: 'No such container: nope' });
    await request(sock, 'POST', '/containers/explained/kill');
  });
});
