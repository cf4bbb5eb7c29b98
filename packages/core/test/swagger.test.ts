/**
 * The core's Docker-shaped values checked against the Docker Engine API swagger
 * (shared/specs, found by specsDir()): State, Config, HostConfig, NetworkSettings, events,
 * wait and create responses, exec inspect.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEngine, validateDefinition, validateResponse, type TestEngine } from '../../testing/src/index.js';

type Validator = (value: unknown) => string;
const def = (name: string): Validator => (value) => validateDefinition(name, value);
const response = (route: string, method: string, code: string): Validator => (value) => validateResponse(route, method, Number(code), value);
/** Validates the JSON the API sends for `value` (bigints, e.g. an event's timeNano, become JSON integers). */
const check = (v: Validator, value: unknown) => {
  const text = JSON.stringify(value, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x));
  expect(v(JSON.parse(text)), text.slice(0, 300)).toBe('');
};

let t: TestEngine;
beforeAll(async () => {
  t = await createTestEngine();
});
afterAll(async () => {
  await t.dispose();
});

describe('Docker API shapes (swagger 1.56)', () => {
  it('records: State in every status, Config, HostConfig, NetworkSettings', async () => {
    t.fake.script('*', { execExitCode: 0 });
    const id = await t.createContainer({
      name: 'shapes',
      Config: { Cmd: ['/bin/sh'], Env: ['A=1'], Labels: { a: 'b' }, StopSignal: 'SIGTERM', StopTimeout: 3, ExposedPorts: { '80/tcp': {} } },
      HostConfig: { Memory: 64 << 20, RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 1 }, PortBindings: { '80/tcp': [{ HostPort: '8080' }] } },
    });
    const states: unknown[] = [t.engine.containers.get(id).State];
    await t.engine.containers.start(id);
    states.push(t.engine.containers.get(id).State);
    await t.engine.containers.pause(id);
    states.push(t.engine.containers.get(id).State);
    await t.engine.containers.unpause(id);
    await t.engine.containers.stop(id, { timeout: 1 });
    states.push(t.engine.containers.get(id).State);
    for (const s of states) check(def('ContainerState'), s);
    const r = t.engine.containers.get(id);
    check(def('ContainerConfig'), r.Config);
    check(def('HostConfig'), r.HostConfig);
    check(def('NetworkSettings'), r.NetworkSettings);
  });

  it('events, create and wait responses, exec inspect', async () => {
    const created = await t.engine.containers.create({ Config: { Cmd: ['x'] }, rootfs: t.rootfs });
    check(response('/containers/create', 'post', '201'), created);
    await t.engine.containers.start(created.Id);
    const { Id } = await t.engine.execs.create(created.Id, { Cmd: ['ls'], AttachStdout: true });
    // Before it runs, dockerd answers ExitCode null (a *int), which the swagger does not say; after, an integer.
    expect(t.engine.execs.inspect(Id).ExitCode).toBeNull();
    await (await t.engine.execs.start(Id)).exited;
    check(response('/exec/{id}/json', 'get', '200'), t.engine.execs.inspect(Id));
    const waiting = t.engine.containers.wait(created.Id);
    t.fake.exit(created.Id, 2);
    check(def('ContainerWaitResponse'), await waiting);
    for (const e of t.engine.events.history()) check(def('EventMessage'), e);
    expect(t.engine.events.history().length).toBeGreaterThan(10);
  });
});
