/**
 * `berth build`: a custom daemon bundle from a build file. A built-in the build file turns off
 * has no code in the bundle (a string unique to its source is absent, and present in the
 * default build), a third-party plugin by path outside the repository is bundled (its
 * @berth/core import is the daemon's own copy), and the bundle runs with plain `node`: it
 * answers /_ping, lists the build's plugins with their config from the build file, and a
 * SIGTERM shuts it down leaving no socket or pidfile. Bundles the built packages (dist).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTINS } from '@berth/daemon';
import { DEFAULT_PROFILE_NAME } from '../../../plugins/apparmor/src/profile.js';
import { afterEach, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../src/berth.js';
import { buildDaemon } from '../src/build.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
// The bundle is made from what `pnpm build` wrote (the packages' `import` exports).
const skipReason = fs.existsSync(path.join(REPO, 'packages/daemon/dist/berthd-main.js')) ? null : 'the packages are not built (pnpm build): berth build bundles their dist';
// berthd gives its socket to the docker group (chown), which only root may do.
const runSkipReason = skipReason ?? (process.getuid?.() === 0 ? null : 'running the bundled berthd needs root (it chowns its socket to the docker group)');

let dir: string | undefined;
afterEach(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A build file and a plugin module in a temp dir outside the repository. */
function project(plugins: Record<string, unknown>): { dir: string; config: string } {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-build-'));
  fs.writeFileSync(
    path.join(dir, 'hello.mjs'),
    `import { definePlugin } from '@berth/core';
export default () => definePlugin({
  name: 'hello', type: 'io.example.hello.v1', version: '1.0.0', config: { greeting: 'hello' },
  apply(hooks, ctx) {
    hooks.specBuild.tapPromise('hello-env', async (spec) => ({ ...spec, process: { ...spec.process, env: [...(spec.process?.env ?? []), 'HELLO_PLUGIN_MARKER=' + ctx.config.greeting] } }));
  },
});
`,
  );
  const config = path.join(dir, 'daemon.json');
  fs.writeFileSync(config, JSON.stringify({ plugins }));
  return { dir, config };
}

function get(sock: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: sock, path: p }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

async function waitForPing(sock: string, exited: () => boolean): Promise<void> {
  for (;;) {
    if (exited()) throw new Error('the bundled daemon exited before answering /_ping');
    const r = await get(sock, '/_ping').catch(() => null);
    if (r?.status === 200) return;
    await new Promise((res) => setTimeout(res, 100));
  }
}

describe('berth build', () => {
  it("every built-in row names the package its load imports (what a bundle without the row leaves out)", () => {
    const source = fs.readFileSync(path.join(REPO, 'packages/daemon/src/builtins.ts'), 'utf8');
    const imported = [...source.matchAll(/\bimport\('([^']+)'\)/g)].map((m) => m[1]);
    expect(BUILTINS.map((b) => b.package).sort()).toEqual([...new Set(imported)].sort());
  });

  it.skipIf(skipReason)(`leaves a built-in the build file turns off out of the bundle; bundles a third-party plugin by path${skipReason ? ` (skipped: ${skipReason})` : ''}`, async () => {
    const p = project({ builtins: { apparmor: false }, load: ['./hello.mjs'], config: { hello: { greeting: 'hi' } } });
    // The plugin's project has a copy of @berth/core of its own: the bundle must not use it.
    const ownCore = path.join(p.dir, 'node_modules/@berth/core');
    fs.mkdirSync(ownCore, { recursive: true });
    for (const f of ['package.json', 'dist']) fs.cpSync(path.join(REPO, 'packages/core', f), path.join(ownCore, f), { recursive: true });
    const without = await buildDaemon({ config: p.config, out: path.join(p.dir, 'without') });
    expect(without.builtins.leftOut).toContain('apparmor');
    const withText = fs.readFileSync(without.entry, 'utf8');
    expect(withText).not.toContain(DEFAULT_PROFILE_NAME);
    expect(withText).toContain('HELLO_PLUGIN_MARKER');
    // One copy of the core: the plugin's '@berth/core' is the daemon's, not its project's.
    expect(withText.match(/function definePlugin\(/g)).toHaveLength(1);

    // The same build with apparmor on does carry it: the marker tells.
    fs.writeFileSync(p.config, JSON.stringify({ plugins: { load: ['./hello.mjs'] } }));
    const full = await buildDaemon({ config: p.config, out: path.join(p.dir, 'full') });
    expect(full.builtins.included).toContain('apparmor');
    expect(fs.readFileSync(full.entry, 'utf8')).toContain(DEFAULT_PROFILE_NAME);
  });

  it.skipIf(runSkipReason)(`the bundle runs with plain node: /_ping, the build's plugins and config, SIGTERM leaves nothing behind${runSkipReason ? ` (skipped: ${runSkipReason})` : ''}`, async () => {
    const p = project({ builtins: { apparmor: false }, load: ['./hello.mjs'], config: { hello: { greeting: 'hi' } } });
    const out = path.join(p.dir, 'out');
    let printed = '';
    const io: CliIo = { stdout: { write: (s: string) => (printed += s) }, stderr: { write: (s: string) => (printed += s) }, env: {}, cwd: p.dir };
    expect(await main(['build', '--config', p.config, '--out', out], io)).toBe(0);
    expect(printed).toContain(`built ${path.join(out, 'berthd.mjs')}`);
    // The build file as the bundle runs it: plugins.load is in the bundle.
    expect(JSON.parse(fs.readFileSync(path.join(out, 'daemon.json'), 'utf8'))).toEqual({ plugins: { builtins: { apparmor: false }, config: { hello: { greeting: 'hi' } } } });

    // Run from a copy elsewhere: the bundle needs nothing but its own directory.
    const moved = path.join(p.dir, 'moved');
    fs.cpSync(out, moved, { recursive: true });
    const run = path.join(p.dir, 'run');
    fs.mkdirSync(run);
    const sock = path.join(run, 'berth.sock');
    const pidfile = path.join(run, 'berthd.pid');
    const args = [path.join(moved, 'berthd.mjs'), '-H', `unix://${sock}`, '--data-root', path.join(run, 'data'), '--exec-root', path.join(run, 'exec'), '--pidfile', pidfile];
    const child = spawn(process.execPath, args, { cwd: run, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    let code: number | null | undefined;
    const exited = new Promise<void>((res) => child.on('exit', (c) => ((code = c), res())));
    try {
      await waitForPing(sock, () => code !== undefined);
      const plugins = JSON.parse((await get(sock, '/berth/v1/plugins')).body) as Array<{ name: string; config: unknown; status: string }>;
      expect(plugins.map((x) => x.name)).not.toContain('apparmor');
      expect(plugins.find((x) => x.name === 'hello')).toMatchObject({ status: 'loaded', config: { greeting: 'hi' } });
      expect(stderr).not.toMatch(/native addon not used/);
    } finally {
      if (code === undefined) child.kill('SIGTERM');
      await exited;
    }
    expect(code, stderr).toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
    expect(fs.existsSync(pidfile)).toBe(false);
  }, 60_000);

  it('a bad build file is exit code 1 with the reason', async () => {
    const p = project({ builtins: { nosuch: false } });
    let err = '';
    const io: CliIo = { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) }, env: {}, cwd: p.dir };
    expect(await main(['build', '--config', p.config, '--out', path.join(p.dir, 'out')], io)).toBe(1);
    expect(err).toContain('no built-in plugin named "nosuch"');
    expect(fs.existsSync(path.join(p.dir, 'out'))).toBe(false);
  });
});
