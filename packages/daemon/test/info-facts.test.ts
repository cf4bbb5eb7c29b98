/**
 * GET /info tells what the engine really runs with, not what the daemon assumes: the cgroup
 * driver is the engine's spec builder's (a build choosing systemd shows systemd), and every
 * plugin of the build is listed in BerthPlugins with its status, a skipped one with its reason.
 * berthd in-process on temp dirs; no runc needed (nothing is started).
 */
import path from 'node:path';
import { definePlugin, SkipPluginError } from '@berth/core';
import { describe, expect, it } from 'vitest';
import type { RunningDaemon, StartBerthdOptions } from '../src/index.js';
import { berthdPerTest, tempDaemonConfig, unixRequest } from './helpers/temp-berthd.js';

const skipping = definePlugin({
  name: 'needs-a-gpu',
  type: 'io.example.device.v1',
  register() {
    throw new SkipPluginError('no GPU on this host');
  },
});

const berthd = berthdPerTest('berth-info-');
let daemon: RunningDaemon | undefined;

async function getJson(sock: string, p: string): Promise<Record<string, unknown>> {
  return (await unixRequest(sock, 'GET', p)).json() as Record<string, unknown>;
}

async function start(opts: StartBerthdOptions): Promise<string> {
  const dir = berthd.dir();
  daemon = await berthd.start(tempDaemonConfig(dir), opts);
  return path.join(dir, 'berth.sock');
}

describe('/info from the engine', () => {
  it('CgroupDriver is the spec builder\'s: systemd when the build chose it', async () => {
    const sock = await start({ spec: { cgroupDriver: 'systemd' } });
    expect(daemon!.engine.config.cgroupDriver).toBe('systemd');
    expect((await getJson(sock, '/v1.44/info')).CgroupDriver).toBe('systemd');
  });

  it('CgroupDriver defaults to cgroupfs, as the spec builder does', async () => {
    const sock = await start({});
    expect((await getJson(sock, '/v1.44/info')).CgroupDriver).toBe('cgroupfs');
  });

  it('BerthPlugins lists every plugin of the build; a skipped one with its reason', async () => {
    const sock = await start({ plugins: [skipping] });
    const info = await getJson(sock, '/v1.44/info');
    const listed = info.BerthPlugins as Array<{ Name: string; Type: string; Status: string; Reason?: string }>;
    expect(listed.map((p) => p.Name)).toEqual(daemon!.engine.plugins.map((p) => p.name));
    expect(listed.find((p) => p.Name === 'needs-a-gpu')).toEqual({ Name: 'needs-a-gpu', Type: 'io.example.device.v1', Status: 'skipped', Reason: 'no GPU on this host' });
    for (const p of listed.filter((x) => x.Status === 'loaded')) expect(p.Reason).toBeUndefined();
    // the Docker-shaped Plugins field stays as dockerd has it
    expect(Object.keys(info.Plugins as object).sort()).toEqual(['Authorization', 'Log', 'Network', 'Volume']);
  });
});
