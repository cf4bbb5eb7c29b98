/**
 * Contract tests: the container and exec routes over a real Engine (FakeRuntime, no root),
 * every answer validated against the Docker Engine API swagger and its status codes.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTestEngine, documentedStatuses, validateDefinition, validateResponse, type TestEngine } from '@berth/testing';
import { apiRoutes, buildApp, enginePort, openInjector, type Injector } from '../src/index.js';
import { facts } from './helpers/fake-port.js';

function demux(buf: Buffer): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let off = 0; off + 8 <= buf.length; ) {
    const len = buf.readUInt32BE(off + 4);
    out.push([buf[off], buf.subarray(off + 8, off + 8 + len).toString()]);
    off += 8 + len;
  }
  return out;
}

describe('container routes over the engine (swagger contract)', () => {
  let t: TestEngine;
  let inj: Injector;
  const create = (name: string, extra: Record<string, unknown> = {}) =>
    inj.request({ method: 'POST', url: `/v1.44/containers/create?name=${name}`, body: { Image: 'plain', Cmd: ['/bin/app'], Labels: { 'io.berth.rootfs': t.rootfs, tier: 'web' }, ...extra } });

  beforeEach(async () => {
    t = await createTestEngine({ logDrainMs: 50 });
    const backend = enginePort(t.engine, { facts: facts() });
    inj = await openInjector(buildApp({ routes: apiRoutes(backend), minApiVersion: '1.12' }));
  });
  afterEach(async () => {
    await inj.close();
    await t.dispose();
  });

  const expectDocumented = (route: string, method: string, status: number) => expect(documentedStatuses(route, method)).toContain(status);

  it('create: 201 ContainerCreateResponse, 409 on a name in use, 404 on an unknown image', async () => {
    const r = await create('web');
    expect(r.statusCode).toBe(201);
    expect(validateResponse('/containers/create', 'post', 201, r.json())).toBe('');
    const dup = await create('web');
    expect(dup.statusCode).toBe(409);
    expectDocumented('/containers/create', 'post', 409);
    expect(dup.json().message).toBe(`Conflict. The container name "/web" is already in use by container "${r.json().Id}". You have to remove (or rename) that container to be able to reuse that name.`);
    const miss = await inj.request({ method: 'POST', url: '/containers/create', body: { Image: 'nothing:here', Cmd: ['x'] } });
    expect(miss.statusCode).toBe(404);
    expect(miss.json()).toEqual({ message: 'No such image: nothing:here' });
  });

  it('list and inspect match ContainerSummary and ContainerInspectResponse', async () => {
    const id = (await create('web')).json().Id;
    await create('db', { Labels: { 'io.berth.rootfs': t.rootfs, tier: 'db' } });
    expect((await inj.request({ method: 'POST', url: `/containers/${id}/start` })).statusCode).toBe(204);
    const all = await inj.request({ url: '/v1.44/containers/json?all=1' });
    expect(all.statusCode).toBe(200);
    expect(validateResponse('/containers/json', 'get', 200, all.json())).toBe('');
    expect(all.json()).toHaveLength(2);
    const running = (await inj.request({ url: '/containers/json' })).json();
    expect(running.map((c: { Names: string[] }) => c.Names[0])).toEqual(['/web']);
    expect(running[0].State).toBe('running');
    expect(running[0].Status).toMatch(/^Up /);
    const byLabel = (await inj.request({ url: '/containers/json?all=1&filters=' + encodeURIComponent(JSON.stringify({ label: ['tier=db'] })) })).json();
    expect(byLabel.map((c: { Names: string[] }) => c.Names[0])).toEqual(['/db']);
    const created = (await inj.request({ url: '/containers/json?filters=' + encodeURIComponent(JSON.stringify({ status: ['created'] })) })).json();
    expect(created.map((c: { Names: string[] }) => c.Names[0])).toEqual(['/db']);
    const before = (await inj.request({ url: '/containers/json?all=1&filters=' + encodeURIComponent(JSON.stringify({ before: ['db'] })) })).json();
    expect(before.map((c: { Names: string[] }) => c.Names[0])).toEqual(['/web']);
    const i = await inj.request({ url: `/v1.44/containers/web/json` });
    expect(i.statusCode).toBe(200);
    expect(validateDefinition('ContainerInspectResponse', i.json())).toBe('');
    expect(i.json().Id).toBe(id);
    expect(i.json().State.Running).toBe(true);
    expect((await inj.request({ url: '/containers/nope/json' })).json()).toEqual({ message: 'No such container: nope' });
  });

  it('start: 204, then 304 with an empty body; body refused on API >= 1.24, accepted (JSON only) before', async () => {
    const id = (await create('web')).json().Id;
    const withBody = await inj.request({ method: 'POST', url: `/v1.24/containers/${id}/start`, body: { Memory: 1 << 26 } });
    expect(withBody.statusCode).toBe(400);
    expect(withBody.json().message).toBe('starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24');
    const empty = await inj.request({ method: 'POST', url: `/v1.44/containers/${id}/start`, body: {} });
    expect(empty.statusCode).toBe(204);
    const again = await inj.request({ method: 'POST', url: `/v1.44/containers/${id}/start` });
    expect(again.statusCode).toBe(304);
    expect(again.body.length).toBe(0);
    expectDocumented('/containers/{id}/start', 'post', 304);

    const id2 = (await create('old')).json().Id;
    const wrongType = await inj.request({ method: 'POST', url: `/v1.23/containers/${id2}/start`, body: '{"Memory": 67108864}', headers: { 'Content-Type': 'text/plain' } });
    expect(wrongType.statusCode).toBe(400);
    const old = await inj.request({ method: 'POST', url: `/v1.23/containers/${id2}/start`, body: { Memory: 67108864 } });
    expect(old.statusCode).toBe(204);
    expect((await inj.request({ url: `/containers/${id2}/json` })).json().HostConfig.Memory).toBe(67108864);

    const cp = await inj.request({ method: 'POST', url: `/containers/${id2}/start?checkpoint=c1` });
    expect(cp.statusCode).toBe(400);
    expect(cp.json().message).toBe('checkpoint is only supported in experimental mode');
  });

  it('stop (304 when stopped), kill (409 when not running), restart, wait, remove', async () => {
    const id = (await create('web')).json().Id;
    await inj.request({ method: 'POST', url: `/containers/${id}/start` });
    const waiting = inj.request({ method: 'POST', url: `/v1.44/containers/${id}/wait?condition=next-exit` });
    await new Promise((r) => setTimeout(r, 50));
    expect((await inj.request({ method: 'POST', url: `/containers/${id}/stop?t=1&signal=SIGTERM` })).statusCode).toBe(204);
    const w = await waiting;
    expect(w.statusCode).toBe(200);
    expect(validateResponse('/containers/{id}/wait', 'post', 200, w.json())).toBe('');
    expect((await inj.request({ method: 'POST', url: `/containers/${id}/stop` })).statusCode).toBe(304);
    const k = await inj.request({ method: 'POST', url: `/containers/${id}/kill` });
    expect(k.statusCode).toBe(409);
    expectDocumented('/containers/{id}/kill', 'post', 409);
    expect((await inj.request({ method: 'POST', url: `/containers/${id}/restart?t=0` })).statusCode).toBe(204);
    const busy = await inj.request({ method: 'DELETE', url: `/containers/${id}` });
    expect(busy.statusCode).toBe(409);
    expect((await inj.request({ method: 'DELETE', url: `/containers/${id}?force=1&v=1` })).statusCode).toBe(204);
    expect((await inj.request({ method: 'DELETE', url: `/containers/${id}` })).statusCode).toBe(404);
  });

  it('rename, pause/unpause, update, resize, prune', async () => {
    const id = (await create('web')).json().Id;
    await create('other');
    await inj.request({ method: 'POST', url: `/containers/${id}/start` });
    expect((await inj.request({ method: 'POST', url: `/containers/web/rename?name=other` })).statusCode).toBe(409);
    expect((await inj.request({ method: 'POST', url: `/containers/web/rename?name=web2` })).statusCode).toBe(204);
    expect((await inj.request({ url: `/containers/${id}/json` })).json().Name).toBe('/web2');
    expect((await inj.request({ method: 'POST', url: `/containers/${id}/pause` })).statusCode).toBe(204);
    expect((await inj.request({ url: `/containers/${id}/json` })).json().State.Status).toBe('paused');
    expect((await inj.request({ method: 'POST', url: `/containers/${id}/unpause` })).statusCode).toBe(204);
    const up = await inj.request({ method: 'POST', url: `/containers/${id}/update`, body: { Memory: 1 << 27, RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } } });
    expect(up.statusCode).toBe(200);
    expect(validateResponse('/containers/{id}/update', 'post', 200, up.json())).toBe('');
    expect((await inj.request({ method: 'POST', url: `/containers/${id}/resize?h=40&w=120` })).statusCode).toBe(200);
    const pr = await inj.request({ method: 'POST', url: '/containers/prune' });
    expect(pr.statusCode).toBe(200);
    expect(validateResponse('/containers/prune', 'post', 200, pr.json())).toBe('');
    expect(pr.json().ContainersDeleted).toHaveLength(1);
  });

  it('logs: multiplexed frames, stream selection, tail, timestamps', async () => {
    const c = await create('web');
    const rec = t.engine.containers.get(c.json().Id);
    mkdirSync(path.dirname(rec.LogPath), { recursive: true });
    writeFileSync(
      rec.LogPath,
      [
        { log: 'one\n', stream: 'stdout', time: '2026-01-01T00:00:01.000000001Z' },
        { log: 'oops\n', stream: 'stderr', time: '2026-01-01T00:00:02.000000002Z' },
        { log: 'two\n', stream: 'stdout', time: '2026-01-01T00:00:03.000000003Z' },
      ]
        .map((l) => JSON.stringify(l))
        .join('\n') + '\n',
    );
    const r = await inj.request({ url: '/v1.44/containers/web/logs?stdout=1&stderr=1' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/vnd.docker.multiplexed-stream');
    expect(demux(r.body)).toEqual([[1, 'one\n'], [2, 'oops\n'], [1, 'two\n']]);
    const out = await inj.request({ url: '/containers/web/logs?stdout=1&tail=1&timestamps=1' });
    expect(demux(out.body)).toEqual([[1, '2026-01-01T00:00:03.000000003Z two\n']]);
    const since = await inj.request({ url: '/containers/web/logs?stderr=1&stdout=1&since=1767225602' });
    expect(demux(since.body).map((f) => f[1])).toEqual(['oops\n', 'two\n']);
  });

  it('exec create and inspect; stats one-shot; events', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = (await create('web')).json().Id;
    const noexec = await inj.request({ method: 'POST', url: `/containers/${id}/exec`, body: { Cmd: ['ls'] } });
    expect(noexec.statusCode).toBe(409);
    await inj.request({ method: 'POST', url: `/containers/${id}/start` });
    const e = await inj.request({ method: 'POST', url: `/v1.44/containers/${id}/exec`, body: { Cmd: ['ls', '-l'], AttachStdout: true } });
    expect(e.statusCode).toBe(201);
    expect(validateResponse('/containers/{id}/exec', 'post', 201, e.json())).toBe('');
    const ei = await inj.request({ url: `/exec/${e.json().Id}/json` });
    expect(ei.statusCode).toBe(200);
    // dockerd answers ExitCode null until the exec has exited (a *int in moby); the swagger types it integer.
    expect(ei.json().ExitCode).toBeNull();
    expect(validateResponse('/exec/{id}/json', 'get', 200, { ...(ei.json() as object), ExitCode: 0 })).toBe('');
    expect(ei.json().ProcessConfig).toMatchObject({ entrypoint: 'ls', arguments: ['-l'] });
    expect((await inj.request({ url: '/exec/nope/json' })).statusCode).toBe(404);
    const st = await inj.request({ url: `/v1.44/containers/${id}/stats?stream=false&one-shot=true` });
    expect(st.statusCode).toBe(200);
    expect(validateResponse('/containers/{id}/stats', 'get', 200, st.json())).toBe('');
    expect(st.json().id).toBe(id);
    const ev = await inj.request({ url: `/events?since=${since}&until=${Math.floor(Date.now() / 1000) + 1}&filters=${encodeURIComponent(JSON.stringify({ container: ['web'], event: ['create', 'start'] }))}` });
    const lines = ev.text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.Action)).toEqual(['create', 'start']);
    for (const l of lines) expect(validateDefinition('EventMessage', l)).toBe('');
  });
});
