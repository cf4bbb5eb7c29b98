/**
 * The scaffolder: what it writes (the template with the new name, a package.json that depends
 * on berth by range and on the third-party versions berth itself uses), what it refuses, and
 * `--tarballs` (pnpm overrides from the manifests inside the tarballs).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BERTH_VERSION, CreatePluginError, TEMPLATE_NAME, THIRD_PARTY_DEV_DEPENDENCIES, createPlugin, manifestOfTarball } from '../src/index.js';
import { main } from '../src/main.js';

const REPO = resolve(import.meta.dirname, '../../..');
const dirs: string[] = [];

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'create-berth-plugin-'));
  dirs.push(d);
  return d;
}

async function readJson(file: string): Promise<Record<string, any>> {
  return JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;
}

/** An npm-style tarball (package/package.json inside) of `manifest`, in `dir`. */
async function tarball(dir: string, file: string, manifest: object): Promise<string> {
  const src = await mkdtemp(join(tmpdir(), 'create-berth-plugin-pkg-'));
  dirs.push(src);
  await mkdir(join(src, 'package'));
  await writeFile(join(src, 'package', 'package.json'), JSON.stringify(manifest));
  await writeFile(join(src, 'package', 'README.md'), 'x'.repeat(700));
  execFileSync('tar', ['czf', join(dir, file), '-C', src, 'package']);
  return join(dir, file);
}

describe('createPlugin', () => {
  it('writes the template under the new name, with a package.json on berth by range', async () => {
    const dir = join(await tempDir(), 'hello');
    const made = await createPlugin({ name: '@acme/berth-plugin-hello', dir });
    expect(made.files).toEqual(['.gitignore', 'README.md', 'package.json', 'src/index.ts', 'test/plugin.test.ts', 'tsconfig.json', 'vitest.config.ts', 'vitest.setup.ts']);
    const src = await readFile(join(dir, 'src/index.ts'), 'utf8');
    expect(src).toContain("export const PLUGIN_NAME = '@acme/berth-plugin-hello';");
    for (const f of made.files) expect(await readFile(join(dir, f), 'utf8'), f).not.toContain(TEMPLATE_NAME);
    const pkg = await readJson(join(dir, 'package.json'));
    expect(pkg.name).toBe('@acme/berth-plugin-hello');
    expect(pkg.peerDependencies).toEqual({ '@berth/core': `^${BERTH_VERSION}` });
    expect(pkg.devDependencies).toEqual({ '@berth/core': `^${BERTH_VERSION}`, '@berth/testing': `^${BERTH_VERSION}`, ...THIRD_PARTY_DEV_DEPENDENCIES });
    expect(pkg.exports).toEqual({ '.': { types: './dist/index.d.ts', import: './dist/index.js' } });
    expect(pkg).not.toHaveProperty('pnpm');
    expect(await readFile(join(dir, 'vitest.setup.ts'), 'utf8')).toContain("import 'reflect-metadata';");
    expect((await readJson(join(dir, 'tsconfig.json'))).compilerOptions.experimentalDecorators).toBe(true);
  });

  it('writes into ./<name without scope> by default', async () => {
    const cwd = process.cwd();
    const base = await tempDir();
    process.chdir(base);
    try {
      const made = await createPlugin({ name: '@acme/thing' });
      expect(made.dir).toBe(join(base, 'thing'));
      expect((await readJson(join(base, 'thing', 'package.json'))).name).toBe('@acme/thing');
    } finally {
      process.chdir(cwd);
    }
  });

  it('refuses a bad name and a folder that is not empty, writing nothing', async () => {
    const base = await tempDir();
    await expect(createPlugin({ name: 'Bad Name', dir: join(base, 'a') })).rejects.toBeInstanceOf(CreatePluginError);
    await mkdir(join(base, 'b'));
    await writeFile(join(base, 'b', 'keep'), 'mine');
    await expect(createPlugin({ name: 'ok', dir: join(base, 'b') })).rejects.toBeInstanceOf(CreatePluginError);
    expect((await readdir(base)).sort()).toEqual(['b']);
    expect(await readdir(join(base, 'b'))).toEqual(['keep']);
  });

  it('--tarballs: overrides each @berth package with its tarball, found by the manifest inside', async () => {
    const base = await tempDir();
    const tgz = join(base, 'tgz');
    await mkdir(tgz);
    const core = await tarball(tgz, 'whatever-1.tgz', { name: '@berth/core', version: '0.1.0' });
    const testing = await tarball(tgz, 'berth-testing-0.1.0.tgz', { name: '@berth/testing', version: '0.1.0' });
    await tarball(tgz, 'other-1.0.0.tgz', { name: 'left-pad', version: '1.0.0' });
    await writeFile(join(tgz, 'notes.txt'), 'not a tarball');
    await createPlugin({ name: 'p', dir: join(base, 'p'), tarballs: tgz });
    expect((await readJson(join(base, 'p', 'package.json'))).pnpm).toEqual({ overrides: { '@berth/core': `file:${core}`, '@berth/testing': `file:${testing}` } });
  });

  it('--tarballs: refuses a folder without berth core and testing', async () => {
    const base = await tempDir();
    await tarball(base, 'core.tgz', { name: '@berth/core', version: '0.1.0' });
    await expect(createPlugin({ name: 'p', dir: join(base, 'p'), tarballs: base })).rejects.toBeInstanceOf(CreatePluginError);
    await expect(createPlugin({ name: 'p', dir: join(base, 'p'), tarballs: join(base, 'missing') })).rejects.toBeInstanceOf(CreatePluginError);
  });

  it('manifestOfTarball refuses a tarball without package/package.json', async () => {
    const base = await tempDir();
    await mkdir(join(base, 'src', 'other'), { recursive: true });
    await writeFile(join(base, 'src', 'other', 'package.json'), '{"name":"x","version":"1.0.0"}');
    execFileSync('tar', ['czf', join(base, 'x.tgz'), '-C', join(base, 'src'), 'other']);
    await expect(manifestOfTarball(join(base, 'x.tgz'))).rejects.toBeInstanceOf(CreatePluginError);
  });
});

describe('versions', () => {
  it("the template's third-party ranges are berth's own (workspace catalog, root devDependencies)", async () => {
    const catalog = (parse(await readFile(join(REPO, 'pnpm-workspace.yaml'), 'utf8')) as { catalog: Record<string, string> }).catalog;
    const root = await readJson(join(REPO, 'package.json'));
    const ours: Record<string, string> = { ...catalog, ...root.devDependencies };
    for (const [name, range] of Object.entries(THIRD_PARTY_DEV_DEPENDENCIES)) expect(range, name).toBe(ours[name]);
  });

  it("berth's packages are released at the scaffolder's version (the ^ range it writes)", async () => {
    for (const p of ['packages/core', 'packages/testing', 'packages/create-berth-plugin']) expect((await readJson(join(REPO, p, 'package.json'))).version, p).toBe(BERTH_VERSION);
  });
});

describe('the command', () => {
  it('--help, a missing NAME, a refused NAME', async () => {
    const out: string[] = [];
    const err: string[] = [];
    expect(await main(['--help'], (s) => out.push(s), (s) => err.push(s))).toBe(0);
    expect(out.join('')).toContain('Usage: create-berth-plugin NAME');
    expect(await main([], (s) => out.push(s), (s) => err.push(s))).toBe(2);
    expect(await main(['Bad Name'], (s) => out.push(s), (s) => err.push(s))).toBe(1);
    expect(err.join('')).toContain('not a valid npm package name');
  });

  it('writes the plugin and prints the next steps', async () => {
    const base = await tempDir();
    const out: string[] = [];
    expect(await main(['berth-plugin-hi', '--dir', join(base, 'hi')], (s) => out.push(s))).toBe(0);
    expect(out.join('')).toContain('pnpm install');
    expect((await readJson(join(base, 'hi', 'package.json'))).name).toBe('berth-plugin-hi');
  });
});
