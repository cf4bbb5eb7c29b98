/**
 * dockerd's experimental checkpoint API over HTTP (routes/checkpoints.ts and the start route's
 * `checkpoint`/`checkpoint-dir`): an in-process berthd on temp dirs whose build adds a
 * FakeRuntime backend that can checkpoint (no runc, no CRIU). Without --experimental the routes
 * answer dockerd's 501; a build without the checkpoint plugin has no such routes.
 */
import path from 'node:path';
import { FakeRuntime } from '@berth/testing';
import { describe, expect, it } from 'vitest';
import { EXPERIMENTAL_DISABLED } from '../src/routes/checkpoints.js';
import { emptyBuild, type DaemonConfig } from '../src/index.js';
import { berthdPerTest, unixRequest as request } from './helpers/temp-berthd.js';

const berthd = berthdPerTest('berth-cp-');

async function start(extra: Partial<DaemonConfig>): Promise<{ sock: string; fake: FakeRuntime }> {
  const fake = new FakeRuntime({ name: 'fake', runtimes: ['fake'], features: { checkpoint: true } });
  return { sock: (await berthd.startWithBackend(fake, extra)).sock, fake };
}

async function runningContainer(sock: string, name: string): Promise<string> {
  const c = await request(sock, 'POST', `/containers/create?name=${name}`, { Image: 'plain', Cmd: ['sleep', '100'], HostConfig: { Runtime: 'fake' } });
  expect(c.status).toBe(201);
  const id = c.json().Id as string;
  expect((await request(sock, 'POST', `/containers/${id}/start`)).status).toBe(204);
  return id;
}

describe('checkpoint routes', () => {
  it('with --experimental: create (201), ls ([{Name}]), start --checkpoint (204, running), rm (204), as the docker CLI calls them', async () => {
    const { sock, fake } = await start({ experimental: true });
    const id = await runningContainer(sock, 'web');
    expect((await request(sock, 'GET', '/containers/web/checkpoints')).json()).toEqual([]);
    const made = await request(sock, 'POST', '/containers/web/checkpoints', { CheckpointID: 'cp1', Exit: true });
    expect(made.status).toBe(201);
    expect(made.body).toBe('');
    const inspect = (await request(sock, 'GET', '/containers/web/json')).json();
    expect(inspect.State).toMatchObject({ Status: 'exited', Running: false, ExitCode: 137 });
    const ls = await request(sock, 'GET', '/containers/web/checkpoints');
    expect(ls.status).toBe(200);
    expect(ls.json()).toEqual([{ Name: 'cp1' }]);

    expect((await request(sock, 'POST', '/containers/web/start?checkpoint=cp1')).status).toBe(204);
    expect(fake.callsOf('create').at(-1)!.args[0]).toMatchObject({ id, checkpoint: { path: expect.stringContaining(path.join(id, 'checkpoints', 'cp1')) } });
    expect((await request(sock, 'GET', '/containers/web/json')).json().State.Status).toBe('running');

    const rm = await request(sock, 'DELETE', '/containers/web/checkpoints/cp1');
    expect(rm.status).toBe(204);
    expect((await request(sock, 'GET', '/containers/web/checkpoints')).json()).toEqual([]);
  });

  it('errors with dockerd’s statuses: bad name 400, in use 409, not running 409, unknown 404, missing dir 404, bad body 400', async () => {
    const { sock } = await start({ experimental: true });
    await runningContainer(sock, 'web');
    const bad = await request(sock, 'POST', '/containers/web/checkpoints', { CheckpointID: '../outside', Exit: false });
    expect(bad.status).toBe(400);
    expect(bad.json().message).toBe('invalid checkpoint ID "../outside", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed');
    // dockerd's integration test TestCheckpointInvalidID: the start refuses the name before looking for the container
    const invalid = await request(sock, 'POST', '/containers/missing/start?checkpoint=..%2Foutside');
    expect(invalid.status).toBe(400);
    expect(invalid.json().message).toContain('invalid checkpoint ID "../outside"');
    expect((await request(sock, 'POST', '/containers/web/checkpoints', { CheckpointID: 'cp1', Exit: false })).status).toBe(201);
    const again = await request(sock, 'POST', '/containers/web/checkpoints', { CheckpointID: 'cp1', Exit: false });
    expect(again.status).toBe(409);
    expect((await request(sock, 'POST', '/containers/web/checkpoints', { CheckpointID: 'cp2', Exit: 'yes' })).status).toBe(400);
    expect((await request(sock, 'DELETE', '/containers/web/checkpoints/nope')).status).toBe(404);
    expect((await request(sock, 'GET', '/containers/web/checkpoints?dir=/nonexistent-berth-dir')).status).toBe(404);
    expect((await request(sock, 'GET', '/containers/nobody/checkpoints')).status).toBe(404);
    const idle = await request(sock, 'POST', '/containers/create?name=idle', { Image: 'plain', Cmd: ['true'], HostConfig: { Runtime: 'fake' } });
    const notRunning = await request(sock, 'POST', '/containers/idle/checkpoints', { CheckpointID: 'cp1', Exit: true });
    expect(notRunning.status).toBe(409);
    expect(notRunning.json().message).toBe(`Container ${idle.json().Id} is not running`);
    const noSuch = await request(sock, 'POST', '/containers/idle/start?checkpoint=nope');
    expect(noSuch.status).toBe(404);
    expect(noSuch.json().message).toBe('checkpoint nope does not exist for container idle');
  });

  it("without --experimental: dockerd's 501 on every checkpoint route, and a start with a checkpoint is a 400", async () => {
    const { sock } = await start({ experimental: false });
    await runningContainer(sock, 'web');
    for (const [method, p, body] of [
      ['POST', '/containers/web/checkpoints', { CheckpointID: 'cp1' }],
      ['GET', '/containers/web/checkpoints', undefined],
      ['DELETE', '/containers/web/checkpoints/cp1', undefined],
    ] as const) {
      const r = await request(sock, method, p, body);
      expect(r.status, `${method} ${p}`).toBe(501);
      expect(r.json().message).toBe(EXPERIMENTAL_DISABLED);
    }
    const st = await request(sock, 'POST', '/containers/web/start?checkpoint=cp1');
    expect(st.status).toBe(400);
    expect(st.json().message).toBe('checkpoint is only supported in experimental mode');
    expect((await request(sock, 'GET', '/info')).json().ExperimentalBuild).toBe(false);
  });

  it('a build without the checkpoint plugin has no checkpoint API: no routes (405), and a start from a checkpoint is a 501', async () => {
    const { sock } = await start({ experimental: true, build: { ...emptyBuild(), builtins: { checkpoint: false } } });
    await runningContainer(sock, 'web');
    // no checkpoint route: the path is only DELETE /containers/{id:.*}'s (links), so the router's 405
    expect((await request(sock, 'GET', '/containers/web/checkpoints')).status).toBe(405);
    expect((await request(sock, 'POST', '/containers/web/checkpoints', { CheckpointID: 'cp1' })).status).toBe(405);
    expect((await request(sock, 'POST', '/containers/web/stop?t=0')).status).toBe(204);
    const st = await request(sock, 'POST', '/containers/web/start?checkpoint=cp1');
    expect(st.status).toBe(501);
    expect((await request(sock, 'GET', '/info')).json().ExperimentalBuild).toBe(true);
    expect((await request(sock, 'GET', '/version')).json().Experimental).toBe(true);
  });
});
