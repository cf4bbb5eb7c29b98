/**
 * The plugin model: a plugin is a typed value (containerd's Registration shape, webpack's
 * apply): a name, a versioned type, what it requires, its config, `register` (providers
 * into the engine's DI container), `apply` (taps) and `close`. Load order follows `requires`;
 * a duplicate name, a missing requirement or a cycle fails the engine's start-up and names
 * the plugins. A plugin that throws SkipPluginError is listed as skipped and leaves nothing
 * behind. The loading itself is in plugin-loader.ts.
 */
import type { DependencyContainer, InjectionToken } from 'tsyringe';
import type { DeepReadonly, EngineInfo, PluginHooks } from './hooks.js';
import type { Logger } from './logger.js';
import type { RuntimeBackend } from './runtime.js';
import type { ContainerRecord } from './types.js';
import { PluginGraphError } from './errors.js';

/**
 * The engine's containers, read-only, for plugins: each call returns copies (changing one
 * changes nothing). Ready once the engine has started (calls from `register`/`apply` throw).
 */
export interface ContainerLookup {
  /** By full ID, name (with or without the leading '/') or unique ID prefix; NotFoundError otherwise. */
  get(ref: string): DeepReadonly<ContainerRecord>;
  /**
   * Containers, newest first: all, or those `keep` accepts — a filter that runs on the live
   * records, so only the matches are copied (a tap that runs per start or per request should
   * pass one rather than filter a copy of every container).
   */
  list(keep?: (c: DeepReadonly<ContainerRecord>) => boolean): DeepReadonly<ContainerRecord>[];
}

export interface PluginContext<C> {
  /** The plugin's config (its `config` default merged with the build's config for it). */
  readonly config: C;
  readonly engine: EngineInfo;
  /** Logger bound to the plugin's name. */
  readonly logger: Logger;
  /**
   * The plugin's own child of the engine's DI container (the same one `register` gets): it
   * resolves the engine's tokens (IStateStore, IHost, …) and what the plugin registered; what the
   * plugin registers reaches the engine's container only once the plugin has loaded.
   */
  readonly container: DependencyContainer;
  /** The engine's containers (read-only copies): use it instead of resolving names or reading the state store. */
  readonly containers: ContainerLookup;
  /** Make an alternate runtime backend known by name (live restore routes to it after a restart). */
  registerBackend(backend: RuntimeBackend): void;
  /**
   * The engine's runtime backend if one is registered by now (require its plugin to be sure),
   * so a plugin can check `features()` and skip itself early (SkipPluginError).
   */
  runtime(): RuntimeBackend | undefined;
  /**
   * Announce a security option this plugin enforces, in dockerd's `/info` SecurityOptions form
   * (`name=seccomp,profile=builtin`, `name=apparmor`, `name=userns`). Kept only when the plugin
   * loads (a plugin that skips itself announces nothing); `engine.securityOptions()` lists them.
   */
  addSecurityOption(option: string): void;
}

export interface PluginDefinition<C = Record<string, never>> {
  /** Unique name (containerd's ID), e.g. 'apparmor'. */
  name: string;
  /** Versioned type, e.g. 'io.berth.security.v1'. */
  type: string;
  /** The plugin's own version (e.g. its package's), shown by `berth plugins`. */
  version?: string;
  /**
   * Config keys whose values are secrets (dotted paths, e.g. 'token', 'registry.password'):
   * introspection (`berth plugins`, /berth/v1/plugins) shows them as "<redacted>".
   */
  secretConfigKeys?: readonly string[];
  /** Names or types of plugins that must load first. */
  requires?: readonly string[];
  /** Default config; a build may override keys. */
  config?: C;
  /**
   * Optional config check, run before `register` with the defaults merged with the build's
   * config (Engine.create's `pluginConfig`, berthd's daemon.json `plugins.config` and custom
   * flags): throw to refuse it — `PluginConfigError(key, message)` names the key, and the
   * engine's start fails with a PluginError naming the plugin.
   */
  validateConfig?(config: C): void;
  /**
   * Tokens this plugin provides to the engine. When given, `register` gets a child container
   * of its own (fastify-style encapsulation) and only these tokens reach the engine's
   * container; without it, `register` gets the engine's container itself.
   */
  provides?: readonly InjectionToken<unknown>[];
  /** Register providers. May throw SkipPluginError: what it registered is then discarded. */
  register?(container: DependencyContainer, ctx: PluginContext<C>): void | Promise<void>;
  /**
   * Tap hooks (no I/O on import; this runs at engine start): `hooks.<name>.tapPromise(…)`.
   * May throw SkipPluginError: its taps are then discarded.
   */
  apply?(hooks: PluginHooks, ctx: PluginContext<C>): void | Promise<void>;
  /**
   * Called when the engine closes (or its start fails after this plugin loaded), in reverse
   * load order, with the context `register`/`apply` got: per-engine state belongs to what
   * the plugin made for that context, never to module-level variables.
   */
  close?(ctx: PluginContext<C>): void | Promise<void>;
}

export interface Plugin<C = any> extends Readonly<PluginDefinition<C>> {
  readonly __berthPlugin: true;
}

const TYPE_RE = /^[a-z0-9]+(\.[a-z0-9-]+)*\.v\d+$/;
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.:@/-]*$/;

/** Define a plugin: checks the definition now and freezes it. */
export function definePlugin<C = Record<string, never>>(def: PluginDefinition<C>): Plugin<C> {
  if (!def || typeof def.name !== 'string' || !NAME_RE.test(def.name)) {
    throw new PluginGraphError(`invalid plugin name ${JSON.stringify(def?.name)}`, [String(def?.name)]);
  }
  if (typeof def.type !== 'string' || !TYPE_RE.test(def.type)) {
    throw new PluginGraphError(`plugin ${def.name}: invalid type ${JSON.stringify(def.type)} (want e.g. 'io.berth.security.v1')`, [def.name]);
  }
  if (def.requires && (!Array.isArray(def.requires) || def.requires.some((r) => typeof r !== 'string' || !r))) {
    throw new PluginGraphError(`plugin ${def.name}: requires must be a list of plugin names or types`, [def.name]);
  }
  return Object.freeze({ ...def, requires: Object.freeze([...(def.requires ?? [])]), __berthPlugin: true as const });
}

/**
 * Order plugins so that each comes after what it requires (a requirement names a plugin or
 * a type; a type means every plugin of that type). Stable: otherwise the given order.
 */
export function sortPlugins(plugins: readonly Plugin[]): Plugin[] {
  const byName = new Map<string, Plugin>();
  for (const p of plugins) {
    if (byName.has(p.name)) throw new PluginGraphError(`duplicate plugin name: ${p.name}`, [p.name]);
    byName.set(p.name, p);
  }
  const deps = new Map<string, string[]>();
  for (const p of plugins) {
    const list: string[] = [];
    for (const r of p.requires ?? []) {
      if (byName.has(r)) list.push(r);
      else {
        const ofType = plugins.filter((q) => q.type === r && q.name !== p.name).map((q) => q.name);
        if (ofType.length === 0) throw new PluginGraphError(`plugin ${p.name} requires ${r}, which is not loaded`, [p.name, r]);
        list.push(...ofType);
      }
    }
    deps.set(p.name, list);
  }
  const out: Plugin[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name];
      throw new PluginGraphError(`plugin dependency cycle: ${cycle.join(' -> ')}`, cycle.slice(0, -1));
    }
    state.set(name, 'visiting');
    for (const d of deps.get(name) ?? []) visit(d, [...path, name]);
    state.set(name, 'done');
    out.push(byName.get(name)!);
  };
  for (const p of plugins) visit(p.name, []);
  return out;
}

export interface PluginStatus {
  name: string;
  type: string;
  status: 'loaded' | 'skipped' | 'failed';
  reason?: string;
  /** The definition's `version`. */
  version?: string;
  /** The config the plugin got (defaults merged with the build's), secrets redacted (explain.ts redactConfig). */
  config?: unknown;
}
