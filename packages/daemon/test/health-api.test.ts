/**
 * Health checks seen through the API over a real Engine (FakeRuntime, no root): inspect's
 * State.Health and Config.Healthcheck, `docker ps`'s Status text, the list's Health summary
 * (API ≥ 1.52 only, as dockerd) and the `health` filter — every answer checked against the swagger.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestEngine, validateResponse, type TestEngine } from '@berth/testing';
import { apiRoutes, buildApp, enginePort, openInjector, type Injector } from '../src/index.js';
import { facts } from './helpers/fake-port.js';

const MS = 1_000_000;

describe('health checks through the API', () => {
  let t: TestEngine;
  let inj: Injector;
  const create = async (name: string, extra: Record<string, unknown> = {}): Promise<string> => {
    const r = await inj.request({ method: 'POST', url: `/containers/create?name=${name}`, body: { Image: 'plain', Cmd: ['/bin/app'], Labels: { 'io.berth.rootfs': t.rootfs }, ...extra } });
    expect(r.statusCode).toBe(201);
    return r.json().Id;
  };
  const start = async (id: string) => expect((await inj.request({ method: 'POST', url: `/containers/${id}/start` })).statusCode).toBe(204);
  /** Start and wait for the container's `health_status: <status>` event. */
  const startUntil = (id: string, status: string) =>
    new Promise<void>((resolve, reject) => {
      const off = t.engine.events.subscribe((e) => {
        if (e.Actor.ID === id && e.Action === `health_status: ${status}`) {
          off();
          resolve();
        }
      });
      start(id).catch(reject);
    });
  const list = async (query: string, version = '') => {
    const r = await inj.request({ url: `${version}/containers/json?${query}` });
    expect(r.statusCode).toBe(200);
    return r.json() as Array<Record<string, any>>;
  };
  const filter = (f: Record<string, string[]>) => `all=1&filters=${encodeURIComponent(JSON.stringify(f))}`;

  beforeEach(async () => {
    t = await createTestEngine();
    inj = await openInjector(buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts() })) }));
  });
  afterEach(async () => {
    await inj.close();
    await t.dispose();
  });

  it('inspect shows Config.Healthcheck as sent and State.Health as dockerd does', async () => {
    const hc = { Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: MS, Timeout: 2 * MS, Retries: 1, StartPeriod: 0 };
    const id = await create('web', { Healthcheck: hc });
    t.fake.script(id, { execExitCode: 1, execOutput: 'missing\n' });
    await startUntil(id, 'unhealthy');
    const r = await inj.request({ url: `/containers/${id}/json` });
    expect(validateResponse('/containers/{id}/json', 'get', 200, r.json())).toBe('');
    const body = r.json();
    expect(body.Config.Healthcheck).toEqual(hc);
    expect(body.State.Health.Status).toBe('unhealthy');
    expect(body.State.Health.FailingStreak).toBeGreaterThanOrEqual(1);
    expect(body.State.Health.Log[0]).toMatchObject({ ExitCode: 1, Output: 'missing\n' });
  });

  it('docker ps: Status "(healthy)"/"(unhealthy)"/"(health: starting)", the Health summary from 1.52, and the health filter', async () => {
    const good = await create('good', { Healthcheck: { Test: ['CMD', 'true'], Interval: MS } });
    const slow = await create('slow', { Healthcheck: { Test: ['CMD', 'true'], Interval: 3_600_000 * MS } });
    const plain = await create('plain');
    await startUntil(good, 'healthy');
    await start(slow);
    await start(plain);

    const all = await list('all=1');
    expect(validateResponse('/containers/json', 'get', 200, all)).toBe('');
    const byName = (name: string) => all.find((c) => c.Names[0] === `/${name}`)!;
    expect(byName('good').Status).toMatch(/^Up .+ \(healthy\)$/);
    expect(byName('slow').Status).toMatch(/^Up .+ \(health: starting\)$/);
    expect(byName('plain').Status).toMatch(/^Up [^(]+$/);
    expect(byName('good').Health).toEqual({ Status: 'healthy', FailingStreak: 0 });
    expect(byName('plain').Health).toEqual({ Status: 'none', FailingStreak: 0 });
    expect((await list('all=1', '/v1.51')).every((c) => !('Health' in c))).toBe(true);

    const names = async (f: Record<string, string[]>) => (await list(filter(f))).map((c) => c.Names[0]).sort();
    expect(await names({ health: ['healthy'] })).toEqual(['/good']);
    expect(await names({ health: ['starting'] })).toEqual(['/slow']);
    expect(await names({ health: ['none'] })).toEqual(['/plain']);
    expect(await names({ health: ['healthy', 'none'] })).toEqual(['/good', '/plain']);
    const bad = await inj.request({ url: `/containers/json?${filter({ health: ['sick'] })}` });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toBe('Unrecognised filter value for health: sick');

    t.fake.script(good, { execExitCode: 3 });
    await new Promise<void>((resolve) => {
      const off = t.engine.events.subscribe((e) => e.Actor.ID === good && e.Action === 'health_status: unhealthy' && (off(), resolve()));
    });
    expect((await list(filter({ health: ['unhealthy'] }))).map((c) => c.Status)).toEqual([expect.stringMatching(/^Up .+ \(unhealthy\)$/)]);
  });
});
