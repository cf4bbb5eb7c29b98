/**
 * The OCI runtime plugin — the one way an engine gets the OCI backend: it registers a backend
 * of its own per engine (no state shared between engines through the plugin value), serving
 * the runtimes of its config by name; closing an engine closes that engine's backend only.
 * No runc needed: nothing is started.
 */
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Engine, IRuntime, MemoryLogger, RUNTIME_PLUGIN_TYPE as PLUGIN_TYPE, definePlugin } from '@berth/core';
import { OciRuntimeBackend, ociRuntimePlugin } from '../src/index.js';

const dirs: string[] = [];
const engines: Engine[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.close().catch(() => undefined);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function engineWith(plugins: Parameters<typeof Engine.create>[0]['plugins']): Promise<Engine> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-oci-plugin-'));
  dirs.push(dir);
  const engine = await Engine.create({ dataRoot: join(dir, 'data'), execRoot: join(dir, 'exec'), plugins, logger: new MemoryLogger() });
  engines.push(engine);
  return engine;
}

describe('ociRuntimePlugin', () => {
  it('registers an OCI backend serving the configured runtimes by name, with their paths and args', async () => {
    const plugin = ociRuntimePlugin({ runtimes: { runc: { path: '/usr/sbin/runc' }, crun: { path: '/usr/bin/crun', runtimeArgs: ['--cgroup-manager', 'cgroupfs'] } } });
    expect(plugin).toMatchObject({ name: 'runtime-oci', type: PLUGIN_TYPE });
    const engine = await engineWith([plugin]);
    expect(engine.container.resolve(IRuntime)).toBeInstanceOf(OciRuntimeBackend);
    expect(engine.runtimes()).toEqual([
      { name: 'crun', path: '/usr/bin/crun', runtimeArgs: ['--cgroup-manager', 'cgroupfs'], backend: 'oci' },
      { name: 'runc', path: '/usr/sbin/runc', backend: 'oci' },
    ]);
    expect(engine.config.defaultRuntime).toBe('runc');
  });

  it('one plugin value, two engines: a backend each, under each engine\'s exec root; closing one engine closes only its backend', async () => {
    const plugin = ociRuntimePlugin();
    const a = await engineWith([plugin]);
    const b = await engineWith([plugin]);
    const ba = a.container.resolve(IRuntime) as OciRuntimeBackend;
    const bb = b.container.resolve(IRuntime) as OciRuntimeBackend;
    expect(ba).not.toBe(bb);
    const closeA = vi.spyOn(ba, 'close');
    const closeB = vi.spyOn(bb, 'close');
    await a.close();
    expect(closeA).toHaveBeenCalledTimes(1);
    expect(closeB).not.toHaveBeenCalled();
    await b.close();
    expect(closeB).toHaveBeenCalledTimes(1);
  });

  it('a plugin that requires io.berth.runtime.v1 loads after it and sees its backend', async () => {
    let seen: unknown;
    const needs = definePlugin({
      name: 'needs-runtime',
      type: 'io.berth.test.v1',
      requires: [PLUGIN_TYPE],
      register(_c, ctx) {
        seen = ctx.runtime();
      },
    });
    const engine = await engineWith([needs, ociRuntimePlugin()]);
    expect(engine.plugins.map((p) => p.name)).toEqual(['runtime-oci', 'needs-runtime']);
    expect(seen).toBe(engine.container.resolve(IRuntime));
  });

  it('refuses a default runtime its runtimes do not have', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-oci-plugin-'));
    dirs.push(dir);
    const plugin = ociRuntimePlugin({ runtimes: { runc: { path: 'runc' } }, defaultRuntime: 'crun' });
    await expect(Engine.create({ dataRoot: join(dir, 'data'), execRoot: join(dir, 'exec'), plugins: [plugin], logger: new MemoryLogger() })).rejects.toThrow(
      /default runtime crun is not registered \(known: runc\)/,
    );
  });
});
