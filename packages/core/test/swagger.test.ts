/**
 * The core's Docker-shaped values checked against the Docker Engine API swagger
 * (shared/specs, found by specsDir()): State, Config, HostConfig, NetworkSettings, events,
 * wait and create responses, exec inspect.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEngine, specsDir, type TestEngine } from '../../testing/src/index.js';

const swaggerFile = path.join(specsDir(), 'docker-engine-api/swagger.yaml');

/** Swagger 2.0 → JSON schema: `x-nullable: true` means the value may also be null. */
function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!node || typeof node !== 'object') return node;
  const src = node as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) if (k !== 'example') out[k] = toJsonSchema(v);
  if (src['x-nullable'] === true) {
    if (typeof out.type === 'string') return { ...out, type: [out.type, 'null'] };
    return { anyOf: [out, { type: 'null' }] };
  }
  return out;
}

const spec = YAML.parse(readFileSync(swaggerFile, 'utf8')) as {
  definitions: Record<string, unknown>;
  paths: Record<string, Record<string, { responses: Record<string, { schema?: unknown }> }>>;
};
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ $id: 'swagger.json', definitions: toJsonSchema(spec.definitions) });
const def = (name: string): ValidateFunction => ajv.getSchema(`swagger.json#/definitions/${name}`)!;
const response = (route: string, method: string, code: string): ValidateFunction => {
  const schema = JSON.parse(JSON.stringify(toJsonSchema(spec.paths[route]![method]!.responses[code]!.schema)).replaceAll('"#/definitions/', '"swagger.json#/definitions/'));
  return ajv.compile(schema);
};
const check = (v: ValidateFunction, value: unknown) => {
  const ok = v(value);
  expect(ok ? '' : ajv.errorsText(v.errors), JSON.stringify(value).slice(0, 300)).toBe('');
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
