/**
 * GET /info tells what the engine really runs with, not what the daemon assumes: the cgroup
 * driver is the engine's spec builder's (a build choosing systemd shows systemd), and every
 * plugin of the build is listed in BerthPlugins with its status, a skipped one with its reason.
 * berthd in-process on temp dirs; no runc needed (nothing is started).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { definePlugin, SkipPluginError } from '@berth/core';
import { afterEach, describe, expect, it } from 'vitest';
import { startBerthd, type RunningDaemon } from '../src/index.js';
import { tempDaemonConfig, unixRequest } from './helpers/temp-berthd.js';

const skipping = definePlugin({
  name: 'needs-a-gpu',
  type: 'io.example.device.v1',
  register() {
    throw new SkipPluginError('no GPU on this host');
  },
});

let daemon: RunningDaemon | undefined;
let dir: string | undefined;
afterEach(async () => {
  await daemon?.shutdown('test');
  daemon = undefined;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function getJson(sock: string, p: string): Promise<Record<string, unknown>> {
  return (await unixRequest(sock, 'GET', p)).json() as Record<string, unknown>;
}

async function start(opts: Parameters<typeof startBerthd>[1]): Promise<string> {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-info-'));
  const sock = path.join(dir, 'berth.sock');
  const config = tempDaemonConfig(dir);
  daemon = await startBerthd(config, { handleSignals: false, ...opts });
  return sock;
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
