/**
 * The containerd runtime plugin without containerd: a small gRPC server on a temp unix socket
 * answers containerd's version call, so the plugin loads, registers a `containerd` backend
 * serving runc, and asks in its namespace; with nobody on the socket the engine does not
 * start and says where it looked; a bad config names the key.
 */
import 'reflect-metadata';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine, IRuntime, MemoryLogger, RUNTIME_PLUGIN_TYPE } from '@berth/core';
import { ContainerdRuntimeBackend, containerdRuntimePlugin, containerdServices, validateContainerdConfig } from '../src/index.js';

const dirs: string[] = [];
const engines: Engine[] = [];
const servers: grpc.Server[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.close().catch(() => undefined);
  for (const s of servers.splice(0)) s.forceShutdown();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctd-plugin-'));
  dirs.push(d);
  return d;
}

/** containerd's version service on `socket`; records the namespace each call came in. */
async function fakeContainerd(socket: string): Promise<string[]> {
  const namespaces: string[] = [];
  const server = new grpc.Server();
  server.addService(containerdServices().Version.service, {
    Version: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      namespaces.push(String(call.metadata.get('containerd-namespace')[0]));
      cb(null, { version: '1.6.test', revision: 'r' });
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  servers.push(server);
  return namespaces;
}

async function engineWith(dir: string, plugin: ReturnType<typeof containerdRuntimePlugin>): Promise<Engine> {
  const engine = await Engine.create({ dataRoot: path.join(dir, 'data'), execRoot: path.join(dir, 'exec'), plugins: [plugin], logger: new MemoryLogger() });
  engines.push(engine);
  return engine;
}

describe('containerdRuntimePlugin', () => {
  it('registers a containerd backend serving runc, after containerd answered in its namespace', async () => {
    const dir = tmp();
    const socket = path.join(dir, 'containerd.sock');
    const namespaces = await fakeContainerd(socket);
    const plugin = containerdRuntimePlugin({ address: socket, namespace: 'berth-test' });
    expect(plugin).toMatchObject({ name: 'runtime-containerd', type: RUNTIME_PLUGIN_TYPE });
    const engine = await engineWith(dir, plugin);
    const backend = engine.container.resolve(IRuntime);
    expect(backend).toBeInstanceOf(ContainerdRuntimeBackend);
    expect(backend.name).toBe('containerd');
    expect(engine.runtimes()).toEqual([{ name: 'runc', path: 'io.containerd.runc.v2', backend: 'containerd' }]);
    expect(namespaces).toEqual(['berth-test']);
    expect(fs.statSync(path.join(dir, 'exec', 'containerd')).isDirectory()).toBe(true);
  });

  it('with nobody on the socket the engine does not start, naming the address', async () => {
    const dir = tmp();
    const socket = path.join(dir, 'nobody.sock');
    await expect(engineWith(dir, containerdRuntimePlugin({ address: socket }))).rejects.toThrow(new RegExp(`containerd does not answer at ${socket}`));
  });

  it('a bad config names the key', () => {
    expect(() => validateContainerdConfig({ namespace: 'no spaces' })).toThrow(/config key "namespace"/);
    expect(() => validateContainerdConfig({ adress: '/x' } as never)).toThrow(/config key "adress": unknown key/);
    expect(() => validateContainerdConfig({ runtimes: { runc: { runtimeType: '' } } })).toThrow(/config key "runtimes.runc.runtimeType"/);
    expect(() => validateContainerdConfig({ runtimes: {} })).toThrow(/config key "runtimes"/);
    expect(() => validateContainerdConfig({ address: '/run/containerd/containerd.sock', namespace: 'berth', runtimes: { runc: {}, crun: { binaryName: 'crun' } } })).not.toThrow();
  });
});
