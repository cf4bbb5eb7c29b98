/**
 * The build file (daemon.json's `plugins` section, build-file.ts) through berthd's own parser
 * and an in-process berthd on temp dirs: built-ins turned off leave /info BerthPlugins, a
 * third-party plugin loads by path and by npm package name with its config from the file, a
 * refused config key names the plugin and the key, and a bad section stops the start before
 * anything is touched. No runc needed (nothing is started).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeRuntime, backendPlugin } from '@berth/testing';
import { describe, expect, it } from 'vitest';
import { BUILTINS, UsageError, parseBerthdArgs, startBerthd, usage, type DaemonConfig } from '../src/index.js';
import { berthdPerTest, unixRequest as request } from './helpers/temp-berthd.js';

const CORE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../core');

// A third-party plugin as a user writes it: labels every container with its `level` config key.
const AUDIT_PLUGIN = `
import { definePlugin, PluginConfigError, Stage } from '@berth/core';
export default () => definePlugin({
  name: 'audit',
  type: 'io.example.audit.v1',
  config: { level: 'info' },
  validateConfig(c) {
    if (!['info', 'debug'].includes(c.level)) throw new PluginConfigError('level', 'must be "info" or "debug"');
  },
  apply(hooks, ctx) {
    hooks.beforeCreate.tapPromise({ name: 'audit', stage: Stage.DEFAULTS }, async (c) => {
      c.container.Config.Labels = { ...c.container.Config.Labels, 'audit.level': ctx.config.level };
    });
  },
});
`;

const berthd = berthdPerTest('berth-build-');

/** A temp dir where `@berth/core` resolves (a node_modules link, as an installed plugin has it), the plugin file and a rootfs. */
function workspace(): string {
  const dir = berthd.dir();
  fs.mkdirSync(path.join(dir, 'node_modules/@berth'), { recursive: true });
  fs.symlinkSync(CORE, path.join(dir, 'node_modules/@berth/core'));
  fs.writeFileSync(path.join(dir, 'audit.mjs'), AUDIT_PLUGIN);
  fs.mkdirSync(path.join(dir, 'rootfs/plain'), { recursive: true });
  return dir;
}

/** berthd's parse of a daemon.json in `dir` with every path under `dir`. */
function parse(dir: string, json: object, extra: string[] = []): DaemonConfig {
  const file = path.join(dir, 'daemon.json');
  const daemonJson = { hosts: [`unix://${dir}/berth.sock`], 'data-root': `${dir}/data`, 'exec-root': `${dir}/exec`, pidfile: `${dir}/berthd.pid`, 'log-level': 'error', 'berth-rootfs-dir': `${dir}/rootfs`, ...json };
  fs.writeFileSync(file, JSON.stringify(daemonJson));
  return parseBerthdArgs(['--config-file', file, ...extra]).config;
}

async function plugins(dir: string): Promise<Array<{ Name: string; Status: string }>> {
  return (await request(path.join(dir, 'berth.sock'), 'GET', '/info')).json().BerthPlugins;
}

describe('the build file (daemon.json "plugins")', () => {
  it('without the section: the batteries-included build', async () => {
    const dir = workspace();
    await berthd.start(parse(dir, {}));
    expect((await plugins(dir)).map((p) => p.Name)).toEqual(BUILTINS.filter((b) => b.enabled).map((b) => b.name));
  });

  it('a built-in turned off is not in the build (/info BerthPlugins)', async () => {
    const dir = workspace();
    await berthd.start(parse(dir, { plugins: { builtins: { apparmor: false, userns: false } } }));
    const names = (await plugins(dir)).map((p) => p.Name);
    expect(names).toContain('seccomp');
    expect(names).not.toContain('apparmor');
    expect(names).not.toContain('userns');
  });

  it('loads a third-party plugin by path (relative to daemon.json) with its config from the file', async () => {
    const dir = workspace();
    await berthd.start(parse(dir, { plugins: { load: ['./audit.mjs'], config: { audit: { level: 'debug' } } } }));
    expect(await plugins(dir)).toContainEqual(expect.objectContaining({ Name: 'audit', Status: 'loaded' }));
    const sock = path.join(dir, 'berth.sock');
    const created = await request(sock, 'POST', '/containers/create', { Image: 'plain', Cmd: ['true'] });
    expect(created.status).toBe(201);
    const inspect = (await request(sock, 'GET', `/containers/${created.json().Id}/json`)).json();
    expect(inspect.Config.Labels['audit.level']).toBe('debug');
  });

  it('loads a third-party plugin by npm package name from plugins.paths (package exports, import condition)', async () => {
    const dir = workspace();
    // Linked into node_modules as pnpm links packages (a real node_modules copy would be imported
    // natively here, where vitest's workers resolve @berth/core to its TypeScript sources).
    const pkg = path.join(dir, 'acme-audit');
    fs.mkdirSync(path.join(pkg, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: '@acme/berth-plugin-audit', type: 'module', exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } } }));
    fs.renameSync(path.join(dir, 'audit.mjs'), path.join(pkg, 'dist/index.js'));
    fs.mkdirSync(path.join(dir, 'site/node_modules/@acme'), { recursive: true });
    fs.symlinkSync(pkg, path.join(dir, 'site/node_modules/@acme/berth-plugin-audit'));
    await berthd.start(parse(dir, { plugins: { paths: ['./site'], load: ['@acme/berth-plugin-audit'] } }));
    expect(await plugins(dir)).toContainEqual(expect.objectContaining({ Name: 'audit', Status: 'loaded' }));
  });

  it('a config key the plugin refuses stops the start with an error naming the plugin and the key; nothing is left behind', async () => {
    const dir = workspace();
    const config = parse(dir, { plugins: { load: ['./audit.mjs'], config: { audit: { level: 'loud' } } } });
    await expect(startBerthd(config, { handleSignals: false })).rejects.toThrow('plugin audit failed in hook validateConfig: config key "level": must be "info" or "debug"');
    expect(fs.existsSync(path.join(dir, 'berth.sock'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'berthd.pid'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'data/berthd.lock'))).toBe(false);
  });

  it('configures a built-in from the file too: a bad key names the built-in and the key', async () => {
    const dir = workspace();
    await expect(startBerthd(parse(dir, { plugins: { config: { seccomp: { arch: '' } } } }), { handleSignals: false })).rejects.toThrow('plugin seccomp failed in hook validateConfig: config key "arch": must be a non-empty string');
    await expect(startBerthd(parse(dir, { plugins: { config: { 'image-store': { driver: 'zfs' } } } }), { handleSignals: false })).rejects.toThrow('plugin image-store failed in hook validateConfig: config key "driver"');
  });

  it('refuses a bad section: unknown keys, unknown built-ins, config for a plugin the build lacks, a missing package, a backend it lacks', async () => {
    const dir = workspace();
    const bad = (plugins: object) => () => parse(dir, { plugins });
    expect(bad({ extras: [] })).toThrow(/unknown keys in "plugins": extras/);
    expect(bad({ builtins: { apparmour: false } })).toThrow(/no built-in plugin named "apparmour"/);
    expect(bad({ builtins: { apparmor: 'no' } })).toThrow(/"plugins.builtins.apparmor" must be true or false/);
    expect(bad({ load: ['Not A Name'] })).toThrow(UsageError);
    expect(bad({ load: ['@acme/x/../../../etc/evil.js'] })).toThrow(/neither an npm package name nor a path/);
    expect(bad({ config: { audit: 'debug' } })).toThrow(/"plugins.config.audit" must be an object/);
    await expect(startBerthd(parse(dir, { plugins: { config: { audit: { level: 'info' } } } }), { handleSignals: false })).rejects.toThrow(/plugins.config: no plugin named audit in this build/);
    await expect(startBerthd(parse(dir, { plugins: { load: ['@acme/missing'] } }), { handleSignals: false })).rejects.toThrow(/cannot find package @acme\/missing/);
    await expect(startBerthd(parse(dir, { plugins: { backend: 'kata' } }), { handleSignals: false })).rejects.toThrow(/no runtime backend plugin named kata/);
    expect(fs.existsSync(path.join(dir, 'data'))).toBe(false);
  });

  it('plugins.backend swaps the runtime backend: the built-in OCI backend is left out', async () => {
    const dir = workspace();
    const config = parse(dir, { plugins: { backend: 'backend-fake' } });
    await berthd.start(config, { plugins: [backendPlugin(new FakeRuntime())] });
    const info = (await request(path.join(dir, 'berth.sock'), 'GET', '/info')).json();
    const names = info.BerthPlugins.map((p: { Name: string }) => p.Name);
    expect(names).toContain('backend-fake');
    expect(names).not.toContain('runtime-oci');
    expect(Object.keys(info.Runtimes)).not.toContain('runc');
  });

  it('a custom build\'s flag sets the same plugin config key as plugins.config (not both), and is listed by --help', async () => {
    const flags = { 'audit-level': { plugin: 'audit', key: 'level', type: 'string', description: 'How much the audit plugin says' } } as const;
    const dir = workspace();
    const file = path.join(dir, 'daemon.json');
    fs.writeFileSync(file, JSON.stringify({ plugins: { load: ['./audit.mjs'] } }));
    expect(parseBerthdArgs(['--config-file', file, '--audit-level', 'debug'], undefined, flags).config.build.config).toEqual({ audit: { level: 'debug' } });
    fs.writeFileSync(file, JSON.stringify({ plugins: { load: ['./audit.mjs'], config: { audit: { level: 'info' } } } }));
    expect(() => parseBerthdArgs(['--config-file', file, '--audit-level', 'debug'], undefined, flags)).toThrow(/specified both as a flag and in the configuration file: plugins.config.audit.level/);
    expect(() => parseBerthdArgs(['--audit-level', 'debug'], () => null)).toThrow(/Unknown option '--audit-level'/);
    expect(usage(flags)).toMatch(/Options of this build:\n {6}--audit-level string +How much the audit plugin says \(plugin audit: level\)\n$/);
    expect(usage()).not.toContain('Options of this build');
    expect(() => parseBerthdArgs([], () => null, { 'data-root': flags['audit-level'] })).toThrow(/one of berthd's own/);
  });
});
