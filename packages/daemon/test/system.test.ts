import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp, openInjector, apiRoutes, type Injector } from '../src/index.js';
import { fakePort, record } from './helpers/fake-port.js';
import { validateDefinition, validateResponse } from '@berth/testing';

describe('system routes', () => {
  let inj: Injector;
  const port = fakePort([
    record('a'.repeat(64), 'one', 'running'),
    record('b'.repeat(64), 'two', 'paused'),
    record('c'.repeat(64), 'three', 'exited'),
    record('d'.repeat(64), 'four', 'created'),
  ], { experimental: true });
  beforeEach(async () => {
    inj = await openInjector(buildApp({ routes: apiRoutes(port), experimental: true }));
  });
  afterEach(async () => {
    await inj.close();
  });

  it('GET /_ping answers OK with the negotiation headers', async () => {
    const r = await inj.request({ url: '/_ping' });
    expect(r.statusCode).toBe(200);
    expect(r.text).toBe('OK');
    expect(r.headers['api-version']).toBe('1.56');
    expect(r.headers['docker-experimental']).toBe('true');
    expect(r.headers['ostype']).toBe('linux');
    expect(r.headers['cache-control']).toBe('no-cache, no-store, must-revalidate');
  });

  it('HEAD /_ping answers the headers and no body', async () => {
    const r = await inj.request({ method: 'HEAD', url: '/v1.40/_ping' });
    expect(r.statusCode).toBe(200);
    expect(r.body.length).toBe(0);
    expect(r.headers['api-version']).toBe('1.56');
  });

  it('GET /version matches SystemVersion', async () => {
    const r = await inj.request({ url: '/v1.44/version' });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(validateDefinition('SystemVersion', body)).toBe('');
    expect(body.ApiVersion).toBe('1.56');
    expect(body.MinAPIVersion).toBe('1.24');
    expect(body.Os).toBe('linux');
    expect(body.Experimental).toBe(true);
  });

  it('GET /info counts containers by state and matches SystemInfo', async () => {
    const r = await inj.request({ url: '/info' });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(validateDefinition('SystemInfo', body)).toBe('');
    expect(body.Containers).toBe(4);
    expect(body.ContainersRunning).toBe(1);
    expect(body.ContainersPaused).toBe(1);
    expect(body.ContainersStopped).toBe(2);
    expect(body.Images).toBe(3);
    expect(body.DefaultRuntime).toBe('runc');
    expect(body.Runtimes.runc.path).toBe('/usr/sbin/runc');
    expect(body.NCPU).toBeGreaterThan(0);
    expect(body.MemTotal).toBeGreaterThan(0);
    expect(body.KernelVersion).not.toBe('');
    expect(body.SecurityOptions).toContain('name=seccomp,profile=builtin');
  });

  it('refuses versions outside 1.24..1.56 with Docker\'s messages', async () => {
    const old = await inj.request({ url: '/v1.23/info' });
    expect(old.statusCode).toBe(400);
    expect(old.json().message).toBe('client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version');
    expect(validateDefinition('ErrorResponse', old.json())).toBe('');
    const neu = await inj.request({ url: '/v1.99/version' });
    expect(neu.statusCode).toBe(400);
    expect(neu.json().message).toBe('client version 1.99 is too new. Maximum supported API version is 1.56');
    const ok = await inj.request({ url: '/v1.24/version' });
    expect(ok.statusCode).toBe(200);
  });

  it('answers unknown routes with 404 page not found', async () => {
    const r = await inj.request({ url: '/v1.44/nothing/here' });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ message: 'page not found' });
  });

  it('streams events filtered by type and ends at until', async () => {
    const now = Date.now();
    const base = { scope: 'local' as const, Actor: { ID: 'a'.repeat(64), Attributes: { name: 'one', image: 'busybox' } } };
    port.emit({ ...base, Type: 'container', Action: 'start', time: Math.floor(now / 1000), timeNano: BigInt(now) * 1_000_000n });
    port.emit({ ...base, Type: 'network', Action: 'connect', time: Math.floor(now / 1000), timeNano: BigInt(now) * 1_000_000n + 1n });
    const since = Math.floor(now / 1000) - 1;
    const until = ((now + 300) / 1000).toFixed(3);
    const filters = encodeURIComponent(JSON.stringify({ type: ['container'] }));
    const r = await inj.request({ url: `/events?since=${since}&until=${until}&filters=${filters}` });
    expect(r.statusCode).toBe(200);
    const lines = r.text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0].Action).toBe('start');
    expect(validateResponse('/events', 'get', 200, lines[0])).toBe('');
  });
});
