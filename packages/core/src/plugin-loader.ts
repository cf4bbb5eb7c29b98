/**
 * Loading and closing an engine's plugins (the Engine calls these; plugin.ts has the model).
 * Each plugin, in `requires` order: its config is checked, `register` writes into a staging
 * child container of its own, `apply` taps a staged, tap-only view of the hooks. Only when
 * both succeed does what it made reach the engine: its tokens (all it registered, or just its
 * `provides`), its taps, its backends, its security options. A plugin that skips itself
 * (SkipPluginError) leaves none of them behind; any other failure closes the plugins loaded so
 * far (reverse order) and fails the load with a PluginError naming the plugin and the phase.
 */
import type { DependencyContainer, InjectionToken } from 'tsyringe';
import { PluginError, UnavailableError, errorMessage, isSkipPluginError, InvalidParameterError } from './errors.js';
import { redactConfig } from './explain.js';
import { type EngineInfo, type Hooks, stagedHooks } from './hooks.js';
import type { Logger } from './logger.js';
import { type ContainerLookup, type Plugin, type PluginContext, type PluginStatus, sortPlugins } from './plugin.js';
import type { RuntimeBackend } from './runtime.js';

/** A plugin that loaded, with the context it got (its `close` gets it back) and its own container. */
export interface LoadedPlugin {
  readonly plugin: Plugin;
  readonly ctx: PluginContext<unknown>;
  readonly container: DependencyContainer;
}

export interface PluginLoad {
  /** Every plugin in load order with its status. */
  statuses: PluginStatus[];
  loaded: LoadedPlugin[];
  /** Security options the loaded plugins announced, without repeats. */
  securityOptions: string[];
}

export interface LoadPluginsOptions {
  plugins: readonly Plugin[];
  /** Per-plugin config overrides (plugin name → partial config). */
  config: Readonly<Record<string, unknown>>;
  hooks: Hooks;
  /** The engine's DI container. */
  container: DependencyContainer;
  engine: EngineInfo;
  logger: Logger;
  /** Where the backends of a plugin that loaded go (`ctx.registerBackend`); `ctx.runtime()` asks its default. */
  backends: { register(backend: RuntimeBackend): void; default(): RuntimeBackend | undefined };
  /** The engine's containers; undefined until the engine has started. */
  containers: () => ContainerLookup | undefined;
}

const REGISTER_METHODS = new Set<PropertyKey>(['register', 'registerSingleton', 'registerType', 'registerInstance']);

/** `target`, noting the token of every registration made through it. */
function recording(target: DependencyContainer, tokens: Set<InjectionToken<unknown>>): DependencyContainer {
  return new Proxy(target, {
    get(t, key) {
      const v = Reflect.get(t, key, t) as unknown;
      if (typeof v !== 'function') return v;
      if (!REGISTER_METHODS.has(key)) return v.bind(t);
      return (token: InjectionToken<unknown>, ...rest: unknown[]) => {
        tokens.add(token);
        return (v as (...a: unknown[]) => unknown).call(t, token, ...rest);
      };
    },
  });
}

/** What introspection lists of a plugin besides its status: name, type, version, config (secrets redacted). */
function introspection(p: Plugin, config: unknown): Omit<PluginStatus, 'status'> {
  return { name: p.name, type: p.type, ...(p.version !== undefined ? { version: p.version } : {}), config: redactConfig(config, p.secretConfigKeys) };
}

/** Load the plugins; on a failure, what loaded is closed before the error is thrown. */
export async function loadPlugins(o: LoadPluginsOptions): Promise<PluginLoad> {
  const out: PluginLoad = { statuses: [], loaded: [], securityOptions: [] };
  const c = o.container;
  const containers: ContainerLookup = {
    get: (ref) => ready().get(ref),
    list: (keep) => ready().list(keep),
  };
  const ready = (): ContainerLookup => {
    const l = o.containers();
    if (!l) throw new UnavailableError('the container lookup is ready once the engine has started (use it in taps, not in register or apply)');
    return l;
  };
  try {
    for (const p of sortPlugins(o.plugins)) {
      const announced: string[] = [];
      const backends: RuntimeBackend[] = [];
      const tokens = new Set<InjectionToken<unknown>>();
      const own = c.createChildContainer();
      const staging = recording(own, tokens);
      const pluginConfig = { ...((p.config as object | undefined) ?? {}), ...((o.config[p.name] as object | undefined) ?? {}) };
      const ctx: PluginContext<unknown> = Object.freeze({
        config: pluginConfig,
        engine: o.engine,
        logger: o.logger.child({ plugin: p.name }),
        container: staging,
        containers,
        registerBackend: (b: RuntimeBackend) => void backends.push(b),
        runtime: () => o.backends.default(),
        addSecurityOption: (option: string) => {
          if (typeof option !== 'string' || !/^name=[a-z0-9]+/.test(option)) {
            throw new InvalidParameterError(`plugin ${p.name}: security option must look like name=<option>[,key=value]: ${JSON.stringify(option)}`);
          }
          announced.push(option);
        },
      });
      const staged = stagedHooks(o.hooks, p.name);
      let phase = 'validateConfig';
      try {
        p.validateConfig?.(pluginConfig);
        phase = 'register';
        await p.register?.(staging, ctx);
        for (const token of p.provides ?? []) {
          if (!own.isRegistered(token)) throw new Error(`plugin ${p.name} says it provides ${String(token)} but registered no provider for it`);
        }
        phase = 'apply';
        await p.apply?.(staged.view, ctx);
      } catch (err) {
        staged.discard();
        await Promise.resolve(own.dispose()).catch(() => {});
        if (!isSkipPluginError(err)) throw new PluginError(p.name, phase, err);
        o.logger.info('skip loading plugin', { plugin: p.name, type: p.type, reason: errorMessage(err) });
        out.statuses.push({ ...introspection(p, pluginConfig), status: 'skipped', reason: errorMessage(err) });
        continue;
      }
      // Loaded: what it made reaches the engine (with `provides`, only those tokens: encapsulation).
      try {
        for (const b of backends) o.backends.register(b);
      } catch (err) {
        await Promise.resolve(own.dispose()).catch(() => {});
        throw new PluginError(p.name, 'registerBackend', err);
      }
      for (const token of p.provides ?? tokens) c.register(token, { useFactory: () => own.resolve(token) });
      staged.commit();
      for (const opt of announced) if (!out.securityOptions.includes(opt)) out.securityOptions.push(opt);
      out.statuses.push({ ...introspection(p, pluginConfig), status: 'loaded' });
      out.loaded.push({ plugin: p, ctx, container: own });
    }
  } catch (err) {
    await closePlugins(out.loaded, o.logger);
    throw err;
  }
  return out;
}

/** Close loaded plugins in reverse load order, each with its context; a failing close is logged. */
export async function closePlugins(loaded: readonly LoadedPlugin[], logger: Logger): Promise<void> {
  for (const { plugin, ctx, container } of [...loaded].reverse()) {
    try {
      await plugin.close?.(ctx);
    } catch (err) {
      logger.error('plugin close failed', { plugin: plugin.name, error: errorMessage(err) });
    }
    await Promise.resolve(container.dispose()).catch((err: unknown) => logger.error('plugin container dispose failed', { plugin: plugin.name, error: errorMessage(err) }));
  }
}
