/**
 * Bad requests: each gets the right 4xx with Docker's {"message"} body, and the daemon
 * keeps serving (a /_ping after every one, and the engine was never reached).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { buildApp, openInjector, apiRoutes, type Injector, type InjectRequest } from '../src/index.js';
import { fakeBackend, record } from './helpers/fake-backend.js';
import { validateDefinition } from './helpers/swagger.js';

const ID = 'a'.repeat(64);
const calls: string[] = [];
const backend = fakeBackend([record(ID, 'web', 'running', { Config: { Image: 'busybox', OpenStdin: false, Labels: {} } })]);
for (const k of ['create', 'start', 'stop', 'restart', 'kill', 'wait', 'remove'] as const) {
  (backend.containers as unknown as Record<string, unknown>)[k] = async () => {
    calls.push(k);
    throw new Error('the engine must not be reached by a bad request');
  };
}

const json = (body: unknown): Pick<InjectRequest, 'body' | 'headers'> => ({ body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });

const cases: Array<[string, InjectRequest, number]> = [
  ['malformed JSON', { method: 'POST', url: '/containers/create', ...{ body: '{"Image": "busybox",', headers: { 'Content-Type': 'application/json' } } }, 400],
  ['JSON array body', { method: 'POST', url: '/containers/create', ...json(['busybox']) }, 400],
  ['JSON scalar body', { method: 'POST', url: '/containers/create', ...json(42) }, 400],
  ['empty create body', { method: 'POST', url: '/containers/create', headers: { 'Content-Type': 'application/json' } }, 400],
  ['wrong Content-Type', { method: 'POST', url: '/containers/create', body: '{"Image":"busybox"}', headers: { 'Content-Type': 'text/plain' } }, 400],
  ['Image of the wrong type', { method: 'POST', url: '/containers/create', ...json({ Image: 42 }) }, 400],
  ['Env not a list', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Env: 'A=B' }) }, 400],
  ['Cmd with a number', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Cmd: ['sh', 1] }) }, 400],
  ['Labels with a non-string value', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Labels: { a: 1 } }) }, 400],
  ['Tty as a string', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Tty: 'yes' }) }, 400],
  ['HostConfig as a string', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', HostConfig: 'none' }) }, 400],
  ['negative Memory', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', HostConfig: { Memory: -5 } }) }, 400],
  ['unknown restart policy', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', HostConfig: { RestartPolicy: { Name: 'sometimes' } } }) }, 400],
  ['empty Env entry', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Env: ['=x'] }) }, 400],
  ['no Image', { method: 'POST', url: '/containers/create', ...json({ Cmd: ['true'] }) }, 400],
  ['invalid name', { method: 'POST', url: '/containers/create?name=bad%20name!', ...json({ Image: 'busybox' }) }, 400],
  ['one-character name', { method: 'POST', url: '/containers/create?name=a', ...json({ Image: 'busybox' }) }, 400],
  ['name with a slash inside', { method: 'POST', url: '/containers/create?name=a/b', ...json({ Image: 'busybox' }) }, 400],
  ['huge body', { method: 'POST', url: '/containers/create', body: Buffer.alloc(5 * 1024 * 1024, 0x20), headers: { 'Content-Type': 'application/json' } }, 413],
  ['start with a body on API 1.44', { method: 'POST', url: '/v1.44/containers/web/start', ...json({ Binds: ['/:/host'] }) }, 400],
  ['bad signal name on kill', { method: 'POST', url: '/containers/web/kill?signal=SIGNOPE' }, 400],
  ['signal number out of range', { method: 'POST', url: '/containers/web/kill?signal=99' }, 400],
  ['bad signal on stop', { method: 'POST', url: '/containers/web/stop?signal=bogus' }, 400],
  ['negative timeout', { method: 'POST', url: '/containers/web/stop?t=-5' }, 400],
  ['non-numeric timeout', { method: 'POST', url: '/containers/web/restart?t=soon' }, 400],
  ['bad wait condition', { method: 'POST', url: '/containers/web/wait?condition=forever' }, 400],
  ['unknown API version (too new)', { url: '/v1.99/containers/json' }, 400],
  ['unknown API version (too old)', { url: '/v1.12/containers/json' }, 400],
  ['unknown route', { url: '/containers/web/teleport' }, 404],
  ['unknown top-level route', { url: '/v1.44/flux-capacitor' }, 404],
  ['wrong method', { method: 'PUT', url: '/containers/json' }, 405],
  ['malformed filters', { url: '/containers/json?filters=%7Bnot-json' }, 400],
  ['unknown filter key', { url: '/containers/json?filters=' + encodeURIComponent('{"colour":["red"]}') }, 400],
  ['bad status filter', { url: '/containers/json?filters=' + encodeURIComponent('{"status":["sleeping"]}') }, 400],
  ['bad exited filter', { url: '/containers/json?all=1&filters=' + encodeURIComponent('{"exited":["zero"]}') }, 400],
  ['non-numeric limit', { url: '/containers/json?limit=ten' }, 400],
  ['logs without streams', { url: '/containers/web/logs' }, 400],
  ['logs with a bad tail', { url: '/containers/web/logs?stdout=1&tail=lots' }, 400],
  ['logs with a bad since', { url: '/containers/web/logs?stdout=1&since=yesterday' }, 400],
  ['events until before since', { url: '/events?since=200&until=100' }, 400],
  ['events with a bad filter', { url: '/events?filters=' + encodeURIComponent('{"type":"container"}') }, 400],
  ['rename to an invalid name', { method: 'POST', url: '/containers/web/rename?name=no%20way' }, 400],
  ['resize with negative size', { method: 'POST', url: '/containers/web/resize?h=-1&w=80' }, 400],
  ['exec without Cmd', { method: 'POST', url: '/containers/web/exec', ...json({ AttachStdout: true }) }, 400],
  ['exec with bad detach keys', { method: 'POST', url: '/containers/web/exec', ...json({ Cmd: ['sh'], DetachKeys: 'ctrl-' }) }, 400],
  ['attach with bad detach keys', { method: 'POST', url: '/containers/web/attach?stream=1&detachKeys=ctrl-%C3%A9' }, 400],
  ['unknown container', { url: '/containers/nothing-here/json' }, 404],
  ['path traversal in the route', { url: '/containers/..%2F..%2Fetc%2Fpasswd/json' }, 404],
  ['malformed percent-encoding', { url: '/containers/%E0%A4%A/json' }, 404],
  ['invalid platform', { method: 'POST', url: '/containers/create?platform=windows/amd64', ...json({ Image: 'busybox' }) }, 400],
];

describe('bad input', () => {
  let inj: Injector;
  beforeAll(async () => {
    inj = await openInjector(buildApp({ routes: apiRoutes(backend) }));
  });
  afterAll(async () => {
    await inj.close();
  });

  it('has at least 30 kinds of bad requests', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases)('%s → %s', async (_name, req, status) => {
    const r = await inj.request(req);
    expect(r.statusCode).toBe(status);
    const body = r.json();
    expect(validateDefinition('ErrorResponse', body)).toBe('');
    expect(typeof body.message).toBe('string');
    expect(body.message.length).toBeGreaterThan(0);
    const ping = await inj.request({ url: '/_ping' });
    expect(ping.statusCode).toBe(200);
    expect(calls).toEqual([]);
  });

  it('answers garbage that is not HTTP with a 400 and keeps serving', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(inj.socketPath);
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('end', () => resolve(out));
      s.on('error', reject);
      s.write('\x00\x01\x02 NOT HTTP AT ALL\r\n\r\n');
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await inj.request({ url: '/_ping' })).statusCode).toBe(200);
  });

  it('frees a streaming request when the client disconnects mid-stream', async () => {
    const app = buildApp({ routes: apiRoutes(backend) });
    const inj2 = await openInjector(app);
    try {
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(inj2.socketPath);
        s.on('error', reject);
        s.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
        s.once('data', () => {
          expect(app.inflight()).toBe(1);
          s.destroy();
          resolve();
        });
      });
      for (let i = 0; i < 50 && app.inflight() > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(app.inflight()).toBe(0);
    } finally {
      await inj2.close();
    }
  });
});
