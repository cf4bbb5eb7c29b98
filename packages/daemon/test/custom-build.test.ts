/**
 * The custom build of docs/composing.md, as it is written there: berthd's built-ins plus a
 * third-party plugin, started in-process on temp dirs; the plugin's tap runs at create and
 * the API serves. No runc needed (nothing is started).
 */
import fs from 'node:fs';
import path from 'node:path';
import { definePlugin, InvalidParameterError, Stage } from '@berth/core';
import { describe, expect, it } from 'vitest';
import { startBerthd } from '../src/index.js';
import { berthdPerTest, tempDaemonConfig, unixRequest as request } from './helpers/temp-berthd.js';

const requireTeam = definePlugin({
  name: 'require-team-label',
  type: 'io.example.policy.v1',
  apply(hooks) {
    hooks.beforeCreate.tapPromise({ name: 'require-team-label', stage: Stage.SECURITY }, async (ctx) => {
      if (!ctx.container.Config.Labels?.team) throw new InvalidParameterError('label "team" is required');
    });
  },
});

const berthd = berthdPerTest('berth-custom-');

describe('a custom build (docs/composing.md)', () => {
  it('loads a third-party plugin beside the built-ins; its tap refuses a create with 400', async () => {
    const dir = berthd.dir();
    const sock = path.join(dir, 'berth.sock');
    fs.mkdirSync(path.join(dir, 'rootfs', 'plain'), { recursive: true });
    const config = tempDaemonConfig(dir, { rootfsDir: path.join(dir, 'rootfs') });
    const daemon = await berthd.start(config, { plugins: [requireTeam] });
    const loaded = daemon.engine.plugins.filter((p) => p.status === 'loaded').map((p) => p.name);
    expect(loaded).toEqual(expect.arrayContaining(['require-team-label']));
    expect((await request(sock, 'GET', '/_ping')).body).toBe('OK');
    const refused = await request(sock, 'POST', '/containers/create', { Image: 'plain', Cmd: ['true'] });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body).message).toContain('label "team" is required');
    const ok = await request(sock, 'POST', '/containers/create', { Image: 'plain', Cmd: ['true'], Labels: { team: 'infra' } });
    expect(ok.status).toBe(201);
  });

  it('shutdown releases what keeps an embedding process alive: the listener and the runtime backend\'s watcher', async () => {
    const dir = berthd.dir();
    const sock = path.join(dir, 'berth.sock');
    const config = tempDaemonConfig(dir);
    const watchers = () => (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles().filter((h) => h.constructor.name === 'FSWatcher').length;
    await new Promise((r) => setTimeout(r, 20)); // the previous test's handles finish closing
    const before = watchers();
    const d = await startBerthd(config, { handleSignals: false });
    expect(watchers()).toBeGreaterThan(before); // the OCI backend watches its exits dir
    await d.shutdown('test');
    await new Promise((r) => setTimeout(r, 20)); // handles finish closing on a later turn
    expect(watchers()).toBe(before);
    expect(fs.existsSync(sock)).toBe(false);
  });
});
