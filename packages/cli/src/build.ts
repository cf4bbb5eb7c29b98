/**
 * `berth build --config FILE --out DIR`: a custom daemon as one esbuild bundle, runnable with
 * plain `node DIR/berthd.mjs` (berthd's flags, lock, pidfile, sockets, signals: berthdMain).
 * The build file is a daemon.json with a `plugins` section (build-file.ts of @berth/daemon):
 *  - built-ins the section leaves out are left out of the bundle: their packages are loaded
 *    only through the built-ins table's lazy `import()`, which resolves to a stub here;
 *  - `plugins.load` entries are bundled statically and handed to berthdMain as its plugins;
 *    DIR/daemon.json is the build file without `load`/`paths` (nothing is loaded twice);
 *  - @berth/*, tsyringe, tapable and reflect-metadata resolve to the daemon's own copies
 *    whoever imports them (one DI container, one set of hook classes);
 *  - files a module reads next to itself (`new URL('…', import.meta.url)`: the native addon,
 *    the seccomp profile, proto files) are copied under DIR/assets and the URL points there;
 *  - packages that must stay files (node-unix-socket's prebuilt binary; tar-stream, whose
 *    PAX decoder image-store patches by path) are copied into DIR/node_modules.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTINS, isModulePath, parseBuildSection, resolvePackage, selectBuiltins } from '@berth/daemon';
import * as esbuild from 'esbuild';
import { CliError } from './client.js';

/** Packages kept as files beside the bundle (see the file comment). */
const EXTERNAL = ['node-unix-socket', 'tar-stream'] as const;
/** Packages every module of the bundle gets from the daemon (never a plugin's own copy). */
const SHARED_RE = /^(@berth\/[^/]+|tsyringe|tapable|reflect-metadata)(\/.*)?$/;
const ASSET_URL_RE = /new URL\((['"])([^'"]+)\1,\s*import\.meta\.url\)/g;

export interface BuildOptions {
  /** The build file (daemon.json with a `plugins` section). */
  config: string;
  /** The output directory (created; berthd.mjs, daemon.json, assets/, node_modules/). */
  out: string;
  /** Where npm package names in `plugins.load` resolve from besides `plugins.paths` (default: the working directory). */
  cwd?: string;
}

export interface BuildResult {
  /** DIR/berthd.mjs */
  entry: string;
  /** Built-ins in the bundle, and those left out (with their packages). */
  builtins: { included: string[]; leftOut: string[] };
  /** `plugins.load` entries bundled, as files. */
  plugins: string[];
  /** Files and directories copied beside the bundle (assets, externals), relative to DIR. */
  copied: string[];
}

/** The directory of this package (packages/cli), from src/ or dist/. */
const CLI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `node_modules/<name>` from `from` upwards, as its real directory; undefined when absent. */
function packageDir(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const p = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(p, 'package.json'))) return realpathSync(p);
    if (path.dirname(dir) === dir) return undefined;
  }
}

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** Copy a package and what it depends on (optional ones when present) into a flat `node_modules`. */
function copyPackageTree(name: string, fromDirs: readonly string[], dest: string, seen: Set<string>, optional = false): void {
  if (seen.has(name)) return;
  const dir = fromDirs.map((d) => packageDir(name, d)).find((d) => d !== undefined);
  if (!dir) {
    if (optional) return;
    throw new CliError(`berth build: cannot find package ${name} (needed beside the bundle) from ${fromDirs.join(', ')}`);
  }
  seen.add(name);
  cpSync(dir, path.join(dest, name), { recursive: true, dereference: true, filter: (src) => path.basename(src) !== 'node_modules' });
  const pkg = readJson(path.join(dir, 'package.json')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  for (const dep of Object.keys(pkg.dependencies ?? {})) copyPackageTree(dep, [dir, ...fromDirs], dest, seen);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) copyPackageTree(dep, [dir, ...fromDirs], dest, seen, true);
}

/** The nearest package.json's directory and name of a file. */
function owningPackage(file: string): { dir: string; name: string } {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      const name = readJson(manifest).name;
      if (typeof name === 'string') return { dir, name };
    }
    if (path.dirname(dir) === dir) return { dir: path.dirname(file), name: '_' };
  }
}

/** The entry module: berthdMain with the bundled `plugins.load` entries, DIR/daemon.json unless --config-file is given. */
function entrySource(pluginFiles: readonly string[]): string {
  const imports = pluginFiles.map((f, i) => `import * as plugin${i} from ${JSON.stringify(f)};`).join('\n');
  return `import 'reflect-metadata';
import { fileURLToPath } from 'node:url';
import { berthdMain } from '@berth/daemon';
${imports}

// A plugin module's default export: a plugin, or a function of no arguments returning one (as daemon.json's plugins.load).
const modules = [${pluginFiles.map((f, i) => `[${JSON.stringify(f)}, plugin${i}]`).join(', ')}];
const plugins = modules.map(([file, mod]) => {
  const d = mod.default;
  const p = typeof d === 'function' && d.__berthPlugin !== true ? d() : d;
  if (!p || p.__berthPlugin !== true) throw new Error(file + ': the default export must be a plugin (definePlugin) or a function returning one');
  return p;
});
const argv = process.argv.slice(2);
const ownConfig = argv.some((a) => a === '--config-file' || a.startsWith('--config-file='));
const buildFile = fileURLToPath(new URL('./daemon.json', import.meta.url));
berthdMain(ownConfig ? argv : ['--config-file', buildFile, ...argv], { plugins }).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write('berthd: ' + (err && err.stack ? err.stack : String(err)) + '\\n');
    process.exit(1);
  },
);
`;
}

export async function buildDaemon(opts: BuildOptions): Promise<BuildResult> {
  const configFile = path.resolve(opts.config);
  const out = path.resolve(opts.out);
  let file: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(readFileSync(configFile, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('it must hold a JSON object');
    file = parsed as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`berth build: cannot read the build file ${configFile}: ${(err as Error).message}`);
  }
  let build;
  try {
    build = parseBuildSection(file.plugins ?? {}, configFile);
  } catch (err) {
    throw new CliError(`berth build: ${configFile}: ${(err as Error).message}`);
  }
  const kept = new Set(selectBuiltins(build).map((b) => b.name));
  const leftOut = BUILTINS.filter((b) => !kept.has(b.name));
  const leftOutPackages = new Map(leftOut.map((b) => [b.package, b.name]));
  let pluginFiles: string[];
  try {
    pluginFiles = build.load.map((ref) => (isModulePath(ref) ? ref : resolvePackage(ref, [...build.paths, opts.cwd ?? process.cwd()])));
  } catch (err) {
    throw new CliError(`berth build: ${(err as Error).message}`);
  }
  for (const f of pluginFiles) if (!existsSync(f)) throw new CliError(`berth build: plugins.load: no such file ${f}`);

  const daemonDir = packageDir('@berth/daemon', CLI_DIR);
  if (!daemonDir) throw new CliError(`berth build: cannot find @berth/daemon from ${CLI_DIR}`);
  const daemonPkg = readJson(path.join(daemonDir, 'package.json')) as { dependencies?: Record<string, string> };
  // Where the externals are found: the daemon and the packages it depends on.
  const fromDirs = [daemonDir, ...Object.keys(daemonPkg.dependencies ?? {}).map((d) => packageDir(d, daemonDir)).filter((d): d is string => d !== undefined)];

  mkdirSync(out, { recursive: true });
  const copies = new Map<string, string>();
  const assets: esbuild.Plugin = {
    name: 'berth-assets',
    setup(b) {
      b.onLoad({ filter: /\.m?js$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.url') || !ASSET_URL_RE.test(text)) return undefined;
        ASSET_URL_RE.lastIndex = 0;
        const owner = owningPackage(args.path);
        const contents = text.replace(ASSET_URL_RE, (_m, q: string, rel: string) => {
          const abs = path.resolve(path.dirname(args.path), rel);
          const target = path.posix.join('assets', owner.name, path.relative(owner.dir, abs).split(path.sep).join('/'));
          copies.set(abs, target);
          return `new URL(${q}./${target}${rel.endsWith('/') ? '/' : ''}${q}, import.meta.url)`;
        });
        return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
      });
    },
  };
  const resolution: esbuild.Plugin = {
    name: 'berth-resolution',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if ((args.pluginData as { berth?: boolean } | undefined)?.berth) return undefined;
        const leftOutName = args.kind === 'dynamic-import' ? leftOutPackages.get(args.path) : undefined;
        if (leftOutName !== undefined) return { path: args.path, namespace: 'berth-left-out', pluginData: { name: leftOutName } };
        if (!SHARED_RE.test(args.path)) return undefined;
        const r = await b.resolve(args.path, { kind: args.kind, resolveDir: daemonDir, pluginData: { berth: true } });
        return r.errors.length === 0 ? r : undefined;
      });
      b.onLoad({ filter: /.*/, namespace: 'berth-left-out' }, (args) => ({
        contents: `throw new Error(${JSON.stringify(`the built-in ${(args.pluginData as { name: string }).name} is not in this build (berth build left out ${args.path})`)});`,
        loader: 'js',
      }));
    },
  };
  const entry = path.join(out, 'berthd.mjs');
  try {
    await esbuild.build({
      stdin: { contents: entrySource(pluginFiles), resolveDir: CLI_DIR, sourcefile: 'berthd-entry.mjs', loader: 'js' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: entry,
      keepNames: true,
      external: [...EXTERNAL],
      logLevel: 'silent',
      banner: { js: "import { createRequire as __berthCreateRequire } from 'node:module';\nconst require = __berthCreateRequire(import.meta.url);" },
      plugins: [resolution, assets],
    });
  } catch (err) {
    const errors = (err as { errors?: esbuild.Message[] }).errors;
    const text = errors?.length ? errors.map((e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`).join('\n') : (err as Error).message;
    throw new CliError(`berth build: bundling failed:\n${text}`);
  }

  const copied: string[] = [];
  for (const [abs, target] of copies) {
    if (!existsSync(abs)) continue; // e.g. a native addon that was not built: its loader falls back and says why
    cpSync(abs, path.join(out, target), { recursive: statSync(abs).isDirectory(), dereference: true });
    copied.push(target);
  }
  const seen = new Set<string>();
  for (const name of EXTERNAL) copyPackageTree(name, fromDirs, path.join(out, 'node_modules'), seen);
  copied.push(...[...seen].map((n) => `node_modules/${n}`));
  // The build file as the bundle runs it: its plugins.load entries are in the bundle, no paths to resolve from.
  const { load: _load, paths: _paths, ...section } = (file.plugins ?? {}) as Record<string, unknown>;
  writeFileSync(path.join(out, 'daemon.json'), JSON.stringify({ ...file, ...(file.plugins !== undefined ? { plugins: section } : {}) }, null, 2) + '\n');
  return { entry, builtins: { included: [...kept], leftOut: leftOut.map((b) => b.name) }, plugins: pluginFiles, copied };
}
