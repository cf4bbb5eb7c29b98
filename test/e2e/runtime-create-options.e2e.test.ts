/**
 * The seed's runtime create options, seen on the runtime's own command line: a fake OCI
 * runtime CLI (test/fixtures/fake-oci-runtime, which records its argv with `--log FILE`)
 * is registered by name, and each option must reach it through conmon —
 *   - the runtime binary chosen by name (`docker run --runtime fake`, HostConfig.Runtime),
 *   - its configured args (daemon.json runtimes.fake.runtimeArgs),
 *   - `--no-pivot` when berthd runs with DOCKER_RAMDISK (dockerd's NoPivotRoot),
 *   - what a plugin's runtimeCreate tap sets (runtime, runtimeArgs, noPivotRoot).
 * Also: `docker info` lists every runtime, an unknown --runtime is dockerd's error, and
 * inspect names the backend and runtime that ran the container.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, MemoryLogger, definePlugin } from '@berth/core';
import { buildRuntimes, ociRuntimePlugin } from '@berth/runtime-oci';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { FAKE_RUNTIME, fakeRuntimeCalls as calls, forceCleanup, removeTestRootfs, runtimeSkipReason, testRootfs } from './runtime-helpers.js';

const skipBerthd = berthdSkipReason() ?? (fs.existsSync('/bin/busybox') ? null : 'busybox-static is not installed');

describe.skipIf(skipBerthd !== null)(`berthd: runtimes chosen by name, with their args and DOCKER_RAMDISK${skipBerthd ? ` (skipped: ${skipBerthd})` : ''}`, () => {
  let d: Berthd;
  let argLog = '';
  let dir = '';

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bd-'));
    argLog = path.join(dir, 'fake-argv.log');
    const configFile = path.join(dir, 'daemon.json');
    fs.writeFileSync(configFile, JSON.stringify({ runtimes: { fake: { path: FAKE_RUNTIME, runtimeArgs: ['--log', argLog] } } }));
    d = await startBerthd({ dir, args: ['--config-file', configFile], env: { DOCKER_RAMDISK: '1' } });
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'on-fake']).catch(() => undefined);
    await d?.cleanup();
    // startBerthd leaves a directory it was given; this one is the test's own
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    removeTestImageTarball();
  }, 60_000);

  it('docker info lists every runtime, the configured args with it', async () => {
    const r = await d.docker(['info', '--format', '{{json .Runtimes}}']);
    expect(r.code).toBe(0);
    const runtimes = JSON.parse(r.stdout) as Record<string, { path: string; runtimeArgs?: string[] }>;
    expect(Object.keys(runtimes).sort()).toEqual(['fake', 'runc']);
    expect(runtimes.fake).toMatchObject({ path: FAKE_RUNTIME, runtimeArgs: ['--log', argLog] });
  });

  it('docker run --runtime fake runs the fake binary with its args and --no-pivot; inspect names backend and runtime', async () => {
    const r = await d.docker(['run', '--name', 'on-fake', '--network', 'none', '--runtime', 'fake', TEST_IMAGE, 'echo', 'hello from fake']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello from fake\n');
    expect(r.code).toBe(0);
    const seen = calls(argLog);
    const create = seen.filter((c) => c.verb === 'create');
    expect(create).toHaveLength(1);
    // Global args: the backend's --root for this runtime, then daemon.json's runtimeArgs.
    expect(create[0]!.global).toEqual(['--root', path.join(d.execRoot, 'oci/state/fake'), '--log', argLog]);
    expect(create[0]!.args).toContain('--no-pivot');
    for (const c of seen) expect(c.global.slice(2)).toEqual(['--log', argLog]);
    const inspect = JSON.parse((await d.docker(['inspect', 'on-fake'])).stdout) as Array<Record<string, unknown> & { HostConfig: { Runtime: string } }>;
    expect(inspect[0]).toMatchObject({ RuntimeBackend: 'oci', RuntimeName: 'fake', HostConfig: { Runtime: 'fake' } });
  });

  it('an unknown --runtime is dockerd\'s error, and nothing is created', async () => {
    const r = await d.docker(['run', '--rm', '--runtime', 'nope', TEST_IMAGE, 'true']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('unknown or invalid runtime name: nope');
    expect((await d.docker(['ps', '-aq', '--filter', 'ancestor=' + TEST_IMAGE])).stdout.trim().split('\n').filter(Boolean)).toHaveLength(1);
  });
});

const skipEngine = runtimeSkipReason();

describe.skipIf(skipEngine !== null)(`a runtimeCreate tap's options reach the runtime's command line${skipEngine ? ` (skipped: ${skipEngine})` : ''}`, () => {
  let tmp = '';
  let engine: Engine | undefined;
  const ids: string[] = [];

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-create-opts-'));
  });
  afterAll(async () => {
    for (const id of ids) await engine?.containers.remove(id, { force: true }).catch(() => undefined);
    await engine?.close();
    forceCleanup(path.join(tmp, 'exec/oci/state/runc'), ids, [tmp]);
    removeTestRootfs();
  });

  it('a tap switches fake1 → fake2 with args of its own (--debug) and asks for no pivot_root', async () => {
    const logA = path.join(tmp, 'fake1-argv.log');
    const logB = path.join(tmp, 'fake2-argv.log');
    const { runtimes } = buildRuntimes({
      daemonJson: { fake1: { path: FAKE_RUNTIME, runtimeArgs: ['--log', logA] }, fake2: { path: FAKE_RUNTIME, runtimeArgs: ['--log', logB] } },
    });
    const router = definePlugin({
      name: 'router',
      type: 'io.berth.test.v1',
      requires: ['io.berth.runtime.v1'],
      apply(hooks) {
        hooks.runtimeCreate.tapPromise('router', async (opts) => {
          if (opts.labels?.route !== 'fake2') return undefined;
          opts.runtime = 'fake2';
          opts.runtimeArgs = ['--log', logB, '--debug'];
          opts.noPivotRoot = true;
          return undefined;
        });
      },
    });
    engine = await Engine.create({
      dataRoot: path.join(tmp, 'data'),
      execRoot: path.join(tmp, 'exec'),
      plugins: [router, ociRuntimePlugin({ runtimes })],
      logger: new MemoryLogger(),
    });
    const { Id } = await engine.containers.create({
      Config: { Cmd: ['/bin/true'], Labels: { route: 'fake2' } },
      HostConfig: { NetworkMode: 'none', Runtime: 'fake1' },
      rootfs: testRootfs(),
    });
    ids.push(Id);
    const exited = engine.containers.wait(Id, 'not-running');
    await engine.containers.start(Id);
    expect((await exited).StatusCode).toBe(0);
    // Asked for fake1; the tap sent it to fake2: fake1's binary never ran for it.
    expect(calls(logA)).toEqual([]);
    const create = calls(logB).filter((c) => c.verb === 'create');
    expect(create).toHaveLength(1);
    // The backend's --root for fake2, then the args the tap set.
    expect(create[0]!.global).toEqual(['--root', path.join(tmp, 'exec/oci/state/fake2'), '--log', logB, '--debug']);
    expect(create[0]!.args).toContain('--no-pivot');
    expect(engine.containers.get(Id)).toMatchObject({ RuntimeBackend: 'oci', RuntimeName: 'fake2', HostConfig: { Runtime: 'fake1' } });
  });
});
