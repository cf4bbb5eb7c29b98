/**
 * create-berth-plugin: writes a new berth plugin package from the template in ../template
 * (an example plugin with a specBuild tap and config validation, a harness test on
 * @berth/testing, a vitest config that loads reflect-metadata, a tsconfig with the decorator
 * settings berth needs) plus a package.json that depends on berth by version range.
 * `pnpm create berth-plugin NAME` runs it through bin/create-berth-plugin.js.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreatePluginError } from './errors.js';
import { manifestOfTarball } from './tarball.js';

export { CreatePluginError } from './errors.js';
export { manifestOfTarball } from './tarball.js';

/** The template's folder (the same path from src/ and dist/). */
export const TEMPLATE_DIR = fileURLToPath(new URL('../template/', import.meta.url));

/** The name the template's files use for the plugin; replaced by the new package's name. */
export const TEMPLATE_NAME = 'berth-plugin-example';

/** This package's version: berth's packages are released together, the plugin depends on `^` it. */
export const BERTH_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The new plugin's third-party dev dependencies: the ranges berth itself builds and tests with
 * (its workspace catalog and root devDependencies; a test keeps them equal).
 */
export const THIRD_PARTY_DEV_DEPENDENCIES: Readonly<Record<string, string>> = Object.freeze({
  'reflect-metadata': '^0.2.2',
  tapable: '^2.3.0',
  tsyringe: '^4.10.0',
  typescript: '5.9.3',
  vitest: '^4.1.0',
});

/** Template files whose name npm would not ship as they are (npm drops `.gitignore` from packages). */
const RENAMED: Readonly<Record<string, string>> = { gitignore: '.gitignore' };

const NPM_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

export interface CreatePluginOptions {
  /** The npm package name, also the plugin's name (`definePlugin({ name })`). */
  name: string;
  /** Where to write it; default `./<name without its scope>`. Must not exist or be empty. */
  dir?: string;
  /**
   * A folder of berth package tarballs (`pnpm pack` from a berth checkout, before they are
   * published): the package.json then overrides every @berth package found there with its
   * tarball (`pnpm.overrides`), so `pnpm install` takes berth from them and the rest from the registry.
   */
  tarballs?: string;
}

export interface CreatedPlugin {
  dir: string;
  /** Paths written, relative to `dir`. */
  files: string[];
}

async function templateFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await templateFiles(dir, p)));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/** `pnpm.overrides` for the @berth packages whose tarballs are in `dir`. */
async function tarballOverrides(dir: string): Promise<Record<string, string>> {
  const abs = resolve(dir);
  const names = (await readdir(abs).catch(() => {
    throw new CreatePluginError(`--tarballs ${dir}: no such folder`);
  })).filter((f) => f.endsWith('.tgz'));
  const out: Record<string, string> = {};
  for (const f of names.sort()) {
    const m = await manifestOfTarball(join(abs, f));
    if (m.name.startsWith('@berth/')) out[m.name] = `file:${join(abs, f)}`;
  }
  if (!out['@berth/core'] || !out['@berth/testing']) throw new CreatePluginError(`--tarballs ${dir}: want at least the tarballs of @berth/core and @berth/testing (pnpm pack)`);
  return out;
}

/** The new plugin's package.json. */
export function pluginManifest(name: string, overrides?: Record<string, string>): Record<string, unknown> {
  const berth = `^${BERTH_VERSION}`;
  return {
    name,
    version: '0.1.0',
    description: `A berth plugin: ${name}`,
    type: 'module',
    keywords: ['berth', 'berth-plugin'],
    main: './dist/index.js',
    types: './dist/index.d.ts',
    exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } },
    files: ['dist'],
    engines: { node: '>=20.19' },
    scripts: { build: 'tsc', test: 'vitest run', prepack: 'tsc' },
    // berth's core is the daemon's: a plugin shares it (one copy of its DI tokens and of tsyringe).
    peerDependencies: { '@berth/core': berth },
    devDependencies: { '@berth/core': berth, '@berth/testing': berth, ...THIRD_PARTY_DEV_DEPENDENCIES },
    ...(overrides ? { pnpm: { overrides } } : {}),
  };
}

/** Write a new plugin package. */
export async function createPlugin(opts: CreatePluginOptions): Promise<CreatedPlugin> {
  const { name } = opts;
  if (!NPM_NAME.test(name) || name.length > 214) throw new CreatePluginError(`not a valid npm package name: ${JSON.stringify(name)}`);
  const dir = resolve(opts.dir ?? basename(name));
  const existing = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (existing.length > 0) throw new CreatePluginError(`${dir} exists and is not empty`);
  const overrides = opts.tarballs === undefined ? undefined : await tarballOverrides(opts.tarballs);

  const files: string[] = [];
  for (const rel of await templateFiles(TEMPLATE_DIR)) {
    const text = (await readFile(join(TEMPLATE_DIR, rel), 'utf8')).replaceAll(TEMPLATE_NAME, name);
    const out = rel.split('/').map((part) => RENAMED[part] ?? part).join('/');
    await mkdir(join(dir, out, '..'), { recursive: true });
    await writeFile(join(dir, out), text);
    files.push(out);
  }
  await writeFile(join(dir, 'package.json'), `${JSON.stringify(pluginManifest(name, overrides), null, 2)}\n`);
  files.push('package.json');
  return { dir, files: files.sort() };
}
