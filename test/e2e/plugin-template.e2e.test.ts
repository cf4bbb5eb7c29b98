/**
 * What a new plugin author does, following docs/plugins.md ("A plugin outside the
 * repository"), from a berth checkout whose packages are not published: `pnpm pack` berth's
 * packages, write a plugin with create-berth-plugin into a temp folder outside the repository,
 * `pnpm install` (berth from the tarballs, the rest from the registry or pnpm's store),
 * `pnpm test` as an unprivileged user (the harness needs no root), `pnpm build`, `pnpm add -D
 * @berth/cli`, then berthd from that folder with a build file (daemon.json `plugins`) that loads
 * the plugin with its config: `docker run … env` shows the plugin's variable, `berth plugins`
 * lists it loaded with its config and its tap, `berth explain` shows its specBuild tap and the
 * spec path it set, and a bad config stops berthd naming the plugin and the key.
 * The plugin resolves an @injectable class through berthd's container: that works only when
 * the plugin and berthd share one @berth/core and one tsyringe.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerExplain, PluginInfo } from '@berth/core';
import { REPO_ROOT, TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, which, type Berthd } from './helpers/berthd.js';

const NOBODY = 65534;
const PLUGIN = 'berth-plugin-hello';

function skipReason(): string | null {
  const base = berthdSkipReason();
  if (base) return base;
  if (!which('pnpm')) return 'pnpm is not on PATH';
  if (!which('setpriv')) return 'setpriv (util-linux) is not on PATH';
  if (!fs.existsSync(path.join(REPO_ROOT, 'packages/create-berth-plugin/dist/main.js'))) return 'create-berth-plugin is not built (pnpm build)';
  return null;
}
const skip = skipReason();

interface Run {
  code: number;
  out: string;
}

/** Run a command; resolves with its exit code and its stdout+stderr (never rejects on a non-zero exit). */
function run(cmd: string, args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { cwd: opts.cwd, env: { ...process.env, CI: 'true', NO_COLOR: '1', ...(opts.env ?? {}) }, maxBuffer: 64 << 20, timeout: 240_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (err && code === -1) return reject(err);
      resolve({ code, out: `${stdout}${stderr}` });
    });
    child.stdin?.end();
  });
}

/** Like run(), failing the test with the command's output when it exits non-zero. */
async function ok(cmd: string, args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<string> {
  const r = await run(cmd, args, opts);
  expect(r.code, `${cmd} ${args.join(' ')} (in ${opts.cwd}):\n${r.out}`).toBe(0);
  return r.out;
}

describe.skipIf(skip)(`a plugin from the template, outside the repository${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let work = '';
  let tarballs = '';
  let dir = '';
  const daemons: Berthd[] = [];

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-new-plugin-'));
    fs.chmodSync(work, 0o755);
    tarballs = path.join(work, 'berth-tarballs');
    dir = path.join(work, PLUGIN);
  });

  afterAll(async () => {
    for (const d of daemons) await d.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
    removeTestImageTarball();
  });

  it('packs berth, makes the plugin, installs it and passes its harness tests without root', async () => {
    await ok('pnpm', ['-r', '--filter', './packages/*', '--filter', './plugins/*', 'pack', '--pack-destination', tarballs], { cwd: REPO_ROOT });
    await ok(process.execPath, [path.join(REPO_ROOT, 'packages/create-berth-plugin/bin/create-berth-plugin.js'), PLUGIN, '--tarballs', tarballs], { cwd: work });
    expect(path.relative(REPO_ROOT, dir).startsWith('..')).toBe(true);
    await ok('pnpm', ['install'], { cwd: dir });

    // One copy each of what berthd and the plugin must share.
    const store = fs.readdirSync(path.join(dir, 'node_modules/.pnpm'));
    expect(store.filter((e) => e.startsWith('@berth+core@'))).toHaveLength(1);
    expect(store.filter((e) => e.startsWith('tsyringe@'))).toHaveLength(1);

    // The harness tests, as nobody: no root anywhere in them.
    const home = path.join(work, 'nobody-home');
    fs.mkdirSync(home);
    await ok('chown', ['-R', `${NOBODY}:${NOBODY}`, dir, home], { cwd: work });
    const tested = await ok('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'pnpm', 'test'], { cwd: dir, env: { HOME: home } });
    expect(tested).toContain('test/plugin.test.ts');
    expect(tested).toMatch(/Tests\s+4 passed/);

    await ok('pnpm', ['build'], { cwd: dir });
    expect(fs.existsSync(path.join(dir, 'dist/index.js'))).toBe(true);
  }, 300_000);

  it('berthd loads it through the build file: the container gets its variable; berth plugins and berth explain show it', async () => {
    expect(fs.existsSync(path.join(dir, 'dist/index.js')), 'the first test made the plugin').toBe(true);
    await ok('pnpm', ['add', '-D', '@berth/cli'], { cwd: dir });
    const config = path.join(dir, 'daemon.json');
    fs.writeFileSync(config, JSON.stringify({ plugins: { load: ['./dist/index.js'], config: { [PLUGIN]: { variable: 'GREETING', value: 'hi from the build file' } } } }, null, 2));

    const d = await startBerthd({ bin: path.join(dir, 'node_modules/@berth/cli/bin/berthd'), args: ['--config-file', config] });
    daemons.push(d);
    const berth = (args: string[]) => ok(process.execPath, [path.join(dir, 'node_modules/@berth/cli/bin/berth'), '-H', d.host, ...args], { cwd: dir });
    const plugins = JSON.parse(await berth(['plugins', '--format', 'json'])) as PluginInfo[];
    const mine = plugins.find((p) => p.name === PLUGIN);
    expect(mine).toMatchObject({ status: 'loaded', config: { variable: 'GREETING', value: 'hi from the build file' } });
    expect(mine!.hooks.map((h) => h.hook)).toEqual(['specBuild']);

    await d.loadTestImage();
    const r = await d.docker(['run', '--name', 'hello', TEST_IMAGE, 'env']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toContain('GREETING=hi from the build file');
    const own = await d.docker(['run', '--rm', '-e', 'GREETING=mine', TEST_IMAGE, 'env']);
    expect(own.stdout.split('\n').filter((l) => l.startsWith('GREETING='))).toEqual(['GREETING=mine']);

    // berth explain: the plugin's specBuild tap ran (not skipped) and set the container's env.
    const explain = JSON.parse(await berth(['explain', 'hello', '--format', 'json'])) as ContainerExplain;
    const taps = explain.taps.filter((t) => t.plugin === PLUGIN);
    expect(taps.map((t) => [t.hook, !!t.skipped])).toEqual([['specBuild', false]]);
    const envPaths = explain.spec.filter((f) => f.plugins.includes(PLUGIN)).map((f) => f.path);
    expect(envPaths).toHaveLength(1);
    expect(envPaths[0]).toMatch(/^process\.env\[\d+\]$/);
    expect(await berth(['explain', 'hello'])).toContain(PLUGIN);
  }, 180_000);

  it('a bad config in the build file stops berthd, naming the plugin and the key', async () => {
    expect(fs.existsSync(path.join(dir, 'node_modules/@berth/cli/bin/berthd')), 'the second test installed berthd').toBe(true);
    const config = path.join(dir, 'bad.json');
    fs.writeFileSync(config, JSON.stringify({ plugins: { load: ['./dist/index.js'], config: { [PLUGIN]: { variable: '1 bad' } } } }));
    const d = await startBerthd({ bin: path.join(dir, 'node_modules/@berth/cli/bin/berthd'), args: ['--config-file', config], expectFailure: true });
    daemons.push(d);
    const { code } = await d.exited();
    expect(code).not.toBe(0);
    expect(d.log()).toContain(`plugin ${PLUGIN} failed in hook validateConfig: config key "variable"`);
  }, 60_000);
});
