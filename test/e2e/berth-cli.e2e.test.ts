/**
 * The `berth` executable against a real berthd (runc + conmon, containers run through the
 * docker CLI): `berth explain` shows the start of a real container hook by hook — network-basic
 * writing the container's files in `networking`, seccomp setting `linux.seccomp` in
 * `specBuild` (and setting nothing for `seccomp=unconfined`), the runtime's create and start —
 * and after a daemon restart reads the record back from disk. `berth build` makes a custom
 * daemon that runs containers with plain `node`: a plugin from a directory outside the
 * repository changes the container's environment, and `berth explain` shows its tap.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const BERTH_BIN = path.join(REPO_ROOT, 'packages/cli/bin/berth');

function skipReason(): string | null {
  const base = berthdSkipReason();
  if (base) return base;
  if (!fs.existsSync(path.join(REPO_ROOT, 'packages/cli/dist/berth.js'))) return 'the berth CLI is not built (pnpm build)';
  return null;
}
const skip = skipReason();

/** Run the built `berth` executable. */
function berth(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BERTH_BIN, ...args], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Explained {
  source: string;
  taps: Array<{ hook: string; plugin: string; tap: string; skipped?: boolean; changedPaths?: string[]; durationMs: number }>;
  spec: Array<{ path: string; plugins: string[] }>;
}

describe.skipIf(skip)(`berth explain of real containers${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let dir: string | undefined;
  beforeAll(async () => {
    d = await startBerthd();
    dir = d.dir;
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
    // The restarted daemon reuses the first one's dir, which its cleanup leaves in place.
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    removeTestImageTarball();
  }, 120_000);

  it('shows the seccomp and network-basic taps of a start and the spec paths they set; unconfined sets none', async () => {
    expect((await d.docker(['run', '-d', '--name', 'confined', TEST_IMAGE, 'sleep', '60'])).code).toBe(0);
    expect((await d.docker(['run', '-d', '--name', 'unconfined', '--security-opt', 'seccomp=unconfined', TEST_IMAGE, 'sleep', '60'])).code).toBe(0);

    const tree = await berth(['explain', 'confined'], { DOCKER_HOST: d.host });
    expect(tree.code, tree.stderr).toBe(0);
    expect(tree.stdout).toMatch(/^container confined \([0-9a-f]{12}\)\nlast start \S+ \(recorded by this daemon\)\n/);
    // network-basic ran in networking (other built-ins' taps there, e.g. network-cni's, may show as skipped around it)
    expect(tree.stdout).toMatch(/├─ networking\n(│ {2}├─ .*\n)*│ {2}[├└]─ network-basic {2}stage -300 {2}\S+ ms\n/);
    expect(tree.stdout).toMatch(/[├└]─ seccomp {2}stage 500 {2}\S+ ms\n[│ ]+sets spec path: linux\.seccomp\n/);

    const json = await berth(['-H', d.host, 'explain', '--format', 'json', 'confined']);
    const e = JSON.parse(json.stdout) as Explained;
    const order = e.taps.map((t) => `${t.hook}/${t.plugin}`);
    expect(order.indexOf('networking/network-basic')).toBeLessThan(order.indexOf('specBuild/seccomp'));
    expect(order.indexOf('specBuild/seccomp')).toBeLessThan(order.indexOf('runtime.create/oci'));
    expect(order.indexOf('runtime.create/oci')).toBeLessThan(order.indexOf('runtime.start/oci'));
    expect(e.spec.find((o) => o.path === 'linux.seccomp')?.plugins).toEqual(['seccomp']);
    expect(e.taps.find((t) => t.hook === 'specBuild' && t.plugin === 'seccomp')!.changedPaths).toEqual(['linux.seccomp']);
    // The spec the runtime got (the OCI backend's bundle): the path explain names is there.
    const id = (JSON.parse((await d.docker(['inspect', 'confined'])).stdout) as Array<{ Id: string }>)[0]!.Id;
    const config = JSON.parse(fs.readFileSync(path.join(d.execRoot, 'oci', id, 'config.json'), 'utf8')) as { linux?: { seccomp?: { defaultAction?: string } } };
    expect(config.linux?.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');

    const un = JSON.parse((await berth(['-H', d.host, 'explain', '--format', 'json', 'unconfined'])).stdout) as Explained;
    expect(un.taps.find((t) => t.hook === 'specBuild' && t.plugin === 'seccomp')).toMatchObject({ changedPaths: [] });
    expect(un.spec.find((o) => o.path === 'linux.seccomp')).toBeUndefined();

    const missing = await berth(['-H', d.host, 'explain', 'nope']);
    expect(missing).toMatchObject({ code: 1, stderr: 'berth: No such container: nope\n' });
    await d.docker(['rm', '-f', 'confined', 'unconfined']);
  });

  it('after a daemon restart explains the last start from disk', async () => {
    expect((await d.docker(['run', '--name', 'before-restart', TEST_IMAGE, 'true'])).code).toBe(0);
    const before = JSON.parse((await berth(['-H', d.host, 'explain', '--format', 'json', 'before-restart'])).stdout) as Explained;
    await d.stop();
    d = await startBerthd({ dir: d.dir });
    const after = JSON.parse((await berth(['-H', d.host, 'explain', '--format', 'json', 'before-restart'])).stdout) as Explained;
    expect(after.source).toBe('file');
    const startHooks = (x: Explained) => x.taps.filter((t) => ['networking', 'specBuild', 'runtime.create', 'runtime.start'].includes(t.hook)).map((t) => `${t.hook}/${t.plugin}`);
    expect(startHooks(after)).toEqual(startHooks(before));
    expect(after.spec).toEqual(before.spec);
    await d.docker(['rm', '-f', 'before-restart']);
  }, 60_000);
});

describe.skipIf(skip)(`a berth build bundle runs containers${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd | undefined;
  let project: string | undefined;
  afterAll(async () => {
    await d?.cleanup();
    if (project) fs.rmSync(project, { recursive: true, force: true });
    removeTestImageTarball();
  }, 120_000);

  it('a plugin from outside the repository, bundled with the daemon, changes the container and shows in berth explain', async () => {
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bundle-e2e-'));
    fs.writeFileSync(
      path.join(project, 'greeter.mjs'),
      `import { definePlugin, Stage } from '@berth/core';
export default definePlugin({
  name: 'greeter', type: 'io.example.greeter.v1', version: '0.1.0', config: { greeting: 'hello' },
  apply(hooks, ctx) {
    hooks.specBuild.tapPromise({ name: 'greeter-env', stage: Stage.NORMAL, when: (c) => c.Config.Labels?.greet === 'yes' }, async (spec) => ({
      ...spec, process: { ...spec.process, env: [...(spec.process?.env ?? []), 'GREETING=' + ctx.config.greeting] },
    }));
  },
});
`,
    );
    const config = path.join(project, 'daemon.json');
    fs.writeFileSync(config, JSON.stringify({ plugins: { builtins: { apparmor: false }, load: ['./greeter.mjs'], config: { greeter: { greeting: 'bonjour' } } } }));
    const out = path.join(project, 'out');
    const built = await berth(['build', '--config', config, '--out', out]);
    expect(built.code, built.stderr).toBe(0);

    d = await startBerthd({ bin: path.join(out, 'berthd.mjs') });
    await d.loadTestImage();
    const greeted = await d.docker(['run', '--name', 'greeted', '--label', 'greet=yes', TEST_IMAGE, 'sh', '-c', 'echo "[$GREETING]"']);
    expect(greeted.code, greeted.stderr).toBe(0);
    expect(greeted.stdout).toBe('[bonjour]\n');
    const plain = await d.docker(['run', '--rm', TEST_IMAGE, 'sh', '-c', 'echo "[$GREETING]"']);
    expect(plain.stdout).toBe('[]\n');

    const e = JSON.parse((await berth(['-H', d.host, 'explain', '--format', 'json', 'greeted'])).stdout) as Explained;
    const tap = e.taps.find((t) => t.tap === 'greeter-env')!;
    expect(tap).toMatchObject({ hook: 'specBuild', plugin: 'greeter' });
    expect(tap.skipped).toBeUndefined();
    expect(tap.changedPaths).toHaveLength(1);
    expect(tap.changedPaths![0]).toMatch(/^process\.env\[\d+\]$/);
    const plugins = JSON.parse((await berth(['-H', d.host, 'plugins', '--format', 'json'])).stdout) as Array<{ name: string; config: unknown }>;
    expect(plugins.map((p) => p.name)).not.toContain('apparmor');
    expect(plugins.find((p) => p.name === 'greeter')?.config).toEqual({ greeting: 'bonjour' });
    await d.docker(['rm', '-f', 'greeted']);
    // A native addon that was built is used by the bundle too (copied beside it).
    if (fs.existsSync(path.join(REPO_ROOT, 'packages/native/dist/native/berth.node'))) expect(d.log()).not.toContain('native addon not used');
  }, 120_000);
});
