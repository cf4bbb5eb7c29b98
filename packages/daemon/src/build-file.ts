/**
 * The build file: daemon.json's `plugins` section. It names third-party plugins (npm package
 * names resolved from `paths` and the daemon's working directory, or module paths relative to
 * the daemon.json), turns built-ins on and off by name, picks the runtime backend, and gives
 * each plugin its config (checked by the plugin's own `validateConfig`). Without the section
 * berthd is the batteries-included build of builtins.ts. `plugins.md` documents the format.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { errorMessage, type Plugin } from '@berth/core';
import { BUILTINS, type BuiltinOptions, type BuiltinPlugin } from './builtins.js';
import { UsageError, type DaemonConfig, type PluginBuild } from './config.js';

const KEYS = ['paths', 'load', 'builtins', 'backend', 'config'] as const;
const RUNTIME_TYPE = 'io.berth.runtime.v1';
// npm's package name rules (scoped or not), with an optional subpath.
const PACKAGE_RE = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(\/[^/]+)*$/;

function fail(message: string): never {
  throw new UsageError(`invalid daemon.json: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(v: unknown, key: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) fail(`"${key}" must be a list of non-empty strings`);
  return v as string[];
}

/** A `load` entry that is a path (else an npm package name). */
export function isModulePath(ref: string): boolean {
  return ref.startsWith('/') || ref.startsWith('./') || ref.startsWith('../');
}

/** Parse daemon.json's `plugins` value; relative paths are taken from the daemon.json's directory. */
export function parseBuildSection(value: unknown, configFile: string): PluginBuild {
  if (!isObject(value)) fail('"plugins" must be an object');
  const unknown = Object.keys(value).filter((k) => !(KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) fail(`unknown keys in "plugins": ${unknown.join(', ')} (known: ${KEYS.join(', ')})`);
  const base = path.dirname(path.resolve(configFile));
  const build: PluginBuild = { paths: [], load: [], builtins: {}, config: {} };
  if ('paths' in value) build.paths = strings(value.paths, 'plugins.paths').map((p) => path.resolve(base, p));
  if ('load' in value) {
    for (const ref of strings(value.load, 'plugins.load')) {
      if (isModulePath(ref)) build.load.push(path.resolve(base, ref));
      else if (PACKAGE_RE.test(ref) && !ref.split('/').some((seg) => seg === '.' || seg === '..')) build.load.push(ref);
      else fail(`"plugins.load": ${JSON.stringify(ref)} is neither an npm package name nor a path (start a path with ./, ../ or /)`);
    }
  }
  if ('builtins' in value) {
    if (!isObject(value.builtins)) fail('"plugins.builtins" must be an object of built-in plugin names to true or false');
    for (const [name, on] of Object.entries(value.builtins)) {
      if (!BUILTINS.some((b) => b.name === name)) fail(`"plugins.builtins": no built-in plugin named ${JSON.stringify(name)} (built-ins: ${BUILTINS.map((b) => b.name).join(', ')})`);
      if (typeof on !== 'boolean') fail(`"plugins.builtins.${name}" must be true or false`);
      build.builtins[name] = on;
    }
  }
  if ('backend' in value) {
    if (typeof value.backend !== 'string' || !value.backend) fail('"plugins.backend" must be the name of a runtime backend plugin');
    build.backend = value.backend;
  }
  if ('config' in value) {
    if (!isObject(value.config)) fail('"plugins.config" must be an object of plugin names to their config');
    for (const [name, c] of Object.entries(value.config)) {
      if (!isObject(c)) fail(`"plugins.config.${name}" must be an object`);
      build.config[name] = { ...c };
    }
  }
  return build;
}

/** The built-in rows this build keeps: enabled ones, with `plugins.backend` replacing the built-in backends. */
export function selectBuiltins(build: PluginBuild): BuiltinPlugin[] {
  return BUILTINS.filter((b) => {
    if (build.backend !== undefined && b.backend) return b.name === build.backend && build.builtins[b.name] !== false;
    return build.builtins[b.name] ?? b.enabled;
  });
}

/** `exports` of a package.json: the target for `subpath` under the import/node/default conditions. */
function exportTarget(exp: unknown, subpath: string): string | undefined {
  const pick = (v: unknown): string | undefined => {
    if (typeof v === 'string') return v;
    if (Array.isArray(v)) {
      for (const x of v) {
        const t = pick(x);
        if (t) return t;
      }
      return undefined;
    }
    if (isObject(v)) {
      // The first condition that applies and resolves (a nested one without a match falls through, as in Node).
      for (const [cond, t] of Object.entries(v)) {
        if (cond !== 'import' && cond !== 'node' && cond !== 'default') continue;
        const target = pick(t);
        if (target) return target;
      }
    }
    return undefined;
  };
  if (isObject(exp) && Object.keys(exp).some((k) => k.startsWith('.'))) return pick(exp[subpath]);
  return subpath === '.' ? pick(exp) : undefined;
}

/** The file an npm package name stands for, looked up in `node_modules` from each of `dirs` and their parents. */
export function resolvePackage(ref: string, dirs: readonly string[]): string {
  const parts = ref.split('/');
  const nameLen = ref.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameLen).join('/');
  const subpath = parts.length > nameLen ? `./${parts.slice(nameLen).join('/')}` : '.';
  for (const start of dirs) {
    for (let dir = start; ; dir = path.dirname(dir)) {
      const pkgDir = path.join(dir, 'node_modules', name);
      const manifest = path.join(pkgDir, 'package.json');
      if (existsSync(manifest)) {
        const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { exports?: unknown; main?: string };
        const target = pkg.exports !== undefined ? exportTarget(pkg.exports, subpath) : subpath === '.' ? (pkg.main ?? 'index.js') : subpath;
        if (!target) throw new UsageError(`plugins.load: package ${name} (${pkgDir}) exports no ${subpath === '.' ? 'main entry' : subpath} for import`);
        // Its real path, as Node resolves (a linked package imports from where it really is).
        const file = path.resolve(pkgDir, target);
        return existsSync(file) ? realpathSync(file) : file;
      }
      if (path.dirname(dir) === dir) break;
    }
  }
  throw new UsageError(`plugins.load: cannot find package ${ref} (looked in node_modules from ${dirs.join(', ')} and their parents)`);
}

function isPlugin(v: unknown): v is Plugin {
  return isObject(v) && (v as { __berthPlugin?: unknown }).__berthPlugin === true;
}

/** Import one `load` entry: its default export is a plugin, or a function of no arguments returning one. */
export async function importPlugin(ref: string, paths: readonly string[], cwd = process.cwd()): Promise<Plugin> {
  const file = isModulePath(ref) ? ref : resolvePackage(ref, [...paths, cwd]);
  if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`plugins.load: ${ref}: no such file ${file}`);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new UsageError(`plugins.load: ${ref}: cannot import ${file}: ${errorMessage(err)}`);
  }
  const exported = mod.default;
  const plugin = typeof exported === 'function' && !isPlugin(exported) ? (exported as () => unknown)() : exported;
  if (!isPlugin(plugin)) throw new UsageError(`plugins.load: ${ref} (${file}): the default export must be a plugin (definePlugin) or a function returning one`);
  return plugin;
}

/**
 * Every plugin of this build, in order: the selected built-ins, the `load` entries, then
 * `extra` (a custom build's own). Refuses a `backend` no plugin of the build provides and
 * config for a plugin the build does not have.
 */
export async function buildPlugins(config: DaemonConfig, opts: BuiltinOptions & { extra?: readonly Plugin[] } = {}): Promise<Plugin[]> {
  const build = config.build;
  const plugins: Plugin[] = [];
  for (const b of selectBuiltins(build)) plugins.push(await b.load(config, opts));
  for (const ref of build.load) plugins.push(await importPlugin(ref, build.paths));
  plugins.push(...(opts.extra ?? []));
  if (build.backend !== undefined) {
    const chosen = plugins.find((p) => p.name === build.backend);
    if (!chosen || chosen.type !== RUNTIME_TYPE) {
      const backends = [...BUILTINS.filter((b) => b.backend).map((b) => b.name), ...plugins.filter((p) => p.type === RUNTIME_TYPE && !BUILTINS.some((b) => b.name === p.name)).map((p) => p.name)];
      throw new UsageError(`plugins.backend: no runtime backend plugin named ${build.backend} in this build (backends: ${[...new Set(backends)].join(', ')}; a third-party one must also be in plugins.load)`);
    }
  }
  const names = new Set(plugins.map((p) => p.name));
  const stray = Object.keys(build.config).filter((n) => !names.has(n));
  if (stray.length > 0) throw new UsageError(`plugins.config: no plugin named ${stray.join(', ')} in this build (plugins: ${[...names].join(', ')})`);
  return plugins;
}
