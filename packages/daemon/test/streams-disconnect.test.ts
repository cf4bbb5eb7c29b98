/**
 * Issue 10 item 1, in process with the FakeRuntime: clients that go away at random (seeded)
 * points of every streaming endpoint the engine serves without an image store — attach (with
 * stdin, the detach keys and input after them), exec start, logs -f, events, stats, archive
 * GET/PUT, export — never end the process, and once they are gone nothing is left: no request
 * in flight, no events subscription, file descriptors back to the baseline. The image
 * endpoints and real runc are driven in test/e2e/daemon-disconnect.e2e.test.ts.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEngine, FakeRuntime, type TestEngine } from '@berth/testing';
import { apiRoutes, buildApp, enginePort, openInjector, type App, type Injector } from '../src/index.js';
import { facts } from './helpers/fake-port.js';
import { containerEndpoints, disconnectLoop, openFds, settles, tarOf } from './helpers/disconnect.js';

const SEED = Number(process.env.BERTH_DISCONNECT_SEED ?? 20261206);
const ITERATIONS = 90;

describe('clients that go away mid-stream (FakeRuntime)', () => {
  let t: TestEngine;
  let inj: Injector;
  let app: App;
  let id: string;
  let body: Buffer;

  beforeAll(async () => {
    const fake = new FakeRuntime({ script: { output: Array.from({ length: 2000 }, (_, i) => `line ${i} ${'x'.repeat(100)}`), execRunFor: 50 } });
    t = await createTestEngine({ runtime: fake, logDrainMs: 50 });
    // something worth streaming: a 4 MiB file in the container's root
    writeFileSync(path.join(t.rootfs, 'big'), Buffer.alloc(4 * 1024 * 1024, 7));
    app = buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts() })) });
    inj = await openInjector(app);
    const r = await inj.request({
      method: 'POST',
      url: '/v1.44/containers/create?name=chaos',
      body: { Image: 'none', Cmd: ['/bin/loop'], OpenStdin: true, AttachStdin: true, AttachStdout: true, Labels: { 'io.berth.rootfs': t.rootfs } },
    });
    expect(r.statusCode, r.text).toBe(201);
    id = r.json().Id;
    expect((await inj.request({ method: 'POST', url: `/containers/${id}/start` })).statusCode).toBe(204);
    body = await tarOf({ 'a.bin': Buffer.alloc(2 * 1024 * 1024, 1), 'b.txt': Buffer.from('b\n') });
  });
  afterAll(async () => {
    await inj?.close();
    await t?.dispose();
  });

  const createExec = async () => {
    const r = await inj.request({ method: 'POST', url: `/v1.44/containers/${id}/exec`, body: { Cmd: ['cat'], AttachStdin: true, AttachStdout: true, AttachStderr: true } });
    return r.json().Id as string;
  };
  const endpoints = () => containerEndpoints(id, createExec, body);

  it(`every streaming endpoint, ${ITERATIONS} abandoned requests (seed ${SEED}): the daemon answers and leaks nothing`, { timeout: 120_000 }, async () => {
    // a clean round first, so that what is opened once and kept (lazily) is in the baseline
    await disconnectLoop({ socketPath: inj.socketPath, endpoints: endpoints(), iterations: 8, seed: 1, parallel: 1 });
    await settles(() => app.inflight(), (n) => n === 0);
    const baseline = openFds().length;

    const uncaught: Error[] = [];
    const onUncaught = (err: Error) => uncaught.push(err);
    process.prependListener('uncaughtException', onUncaught);
    let runs;
    try {
      runs = await disconnectLoop({ socketPath: inj.socketPath, endpoints: endpoints(), iterations: ITERATIONS, seed: SEED });
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught.map((e) => e.message)).toEqual([]);
    expect(new Set(runs.map((r) => r.endpoint)).size).toBe(endpoints().length);

    expect((await inj.request({ url: '/_ping' })).text).toBe('OK');
    expect(await settles(() => app.inflight(), (n) => n === 0)).toBe(0);
    const info = await settles(
      async () => (await inj.request({ url: '/info' })).json(),
      (i) => i.NEventsListener === 0,
    );
    expect(info.NEventsListener).toBe(0);
    const fds = await settles(() => openFds(), (f) => f.length <= baseline + 2);
    expect(fds.length, fds.join('\n')).toBeLessThanOrEqual(baseline + 2);
    // the container is still running and still attachable
    expect((await inj.request({ url: `/containers/${id}/json` })).json().State.Running).toBe(true);
  });
});
