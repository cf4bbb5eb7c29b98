/**
 * Temp engines for tests: a fresh data-root/exec-root under the OS temp dir, a FakeRuntime
 * (unless you pass another backend) loaded as a runtime plugin (backendPlugin), a tiny root
 * filesystem, and `dispose()` that closes the engine and deletes everything.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine, MemoryLogger, type ContainerConfig, type CreateOptions, type EngineOptions, type HostConfig, type RuntimeBackend } from '@berth/core';
import { backendPlugin } from './backend-plugin.js';
import { FakeRuntime } from './fake-runtime.js';

export interface TestEngineOptions extends Partial<EngineOptions> {
  /** The backend, loaded as the first plugin (backendPlugin); default a new FakeRuntime. */
  runtime?: RuntimeBackend;
  /** More backends, each loaded as a plugin after it (runtimeCreate routing, HostConfig.Runtime of another backend). */
  backends?: RuntimeBackend[];
}

export interface TestEngine {
  engine: Engine;
  runtime: RuntimeBackend;
  /** The FakeRuntime when no other backend was given. */
  fake: FakeRuntime;
  logger: MemoryLogger;
  dir: string;
  dataRoot: string;
  execRoot: string;
  /** A minimal root filesystem (etc/passwd, etc/group, tmp) for containers. */
  rootfs: string;
  /** Create a container on `rootfs` with `Cmd` (default ['/bin/true']). */
  createContainer(opts?: { name?: string; Config?: ContainerConfig; HostConfig?: HostConfig } & Partial<CreateOptions>): Promise<string>;
  /** Close this engine and start a new one on the same directories and backend (a daemon restart). */
  restart(opts?: Partial<TestEngineOptions>): Promise<Engine>;
  dispose(): Promise<void>;
}

/** Write a tiny root filesystem (no binaries): enough for the spec builder's user lookup. */
export async function makeRootfs(dir: string): Promise<string> {
  await mkdir(join(dir, 'etc'), { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o1777 });
  await mkdir(join(dir, 'bin'), { recursive: true });
  await writeFile(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await writeFile(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  return dir;
}

export async function createTestEngine(opts: TestEngineOptions = {}): Promise<TestEngine> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-test-'));
  const dataRoot = join(dir, 'data');
  const execRoot = join(dir, 'exec');
  const rootfs = await makeRootfs(join(dir, 'rootfs'));
  const fake = opts.runtime instanceof FakeRuntime ? opts.runtime : new FakeRuntime();
  const runtime = opts.runtime ?? fake;
  const logger = (opts.logger as MemoryLogger | undefined) ?? new MemoryLogger();
  const build = (extra: Partial<TestEngineOptions> = {}) => {
    const { runtime: _r, backends: more, ...rest } = { ...opts, ...extra };
    const plugins = [backendPlugin(runtime), ...(more ?? []).map((b) => backendPlugin(b)), ...(rest.plugins ?? [])];
    return Engine.create({ ...rest, dataRoot, execRoot, logger, plugins });
  };
  let engine: Engine;
  try {
    engine = await build();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const t: TestEngine = {
    get engine() {
      return engine;
    },
    runtime,
    fake,
    logger,
    dir,
    dataRoot,
    execRoot,
    rootfs,
    async createContainer(c = {}) {
      const { Id } = await engine.containers.create({
        ...c,
        Config: { Cmd: ['/bin/true'], ...(c.Config ?? {}) },
        ...(c.HostConfig ? { HostConfig: c.HostConfig } : {}),
        rootfs: c.rootfs ?? rootfs,
      });
      return Id;
    },
    async restart(extra = {}) {
      await engine.close();
      engine = await build(extra);
      return engine;
    },
    async dispose() {
      try {
        await engine.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  } as TestEngine;
  return t;
}
