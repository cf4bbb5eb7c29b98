/**
 * The containerd backend as a plugin: `containerdRuntimePlugin(config)` makes a plugin (name
 * `runtime-containerd`, type `io.berth.runtime.v1`, like runtime-oci's) whose `register`
 * builds one ContainerdRuntimeBackend per engine and registers it; `apply` checks that
 * containerd answers on its socket (else the engine does not start, naming the address);
 * `close` closes that engine's backend (the tasks keep running in containerd). It serves
 * `runc` by default, so it replaces the OCI backend rather than sitting beside it.
 * Config (a build file sets it under the plugin's name):
 *   { address?: string (default /run/containerd/containerd.sock),
 *     namespace?: string (default "berth"),
 *     runtimes?: { name: { runtimeType?: string (default io.containerd.runc.v2), binaryName?: string } }
 *       (default { runc: {} }),
 *     execRoot?: string (default: the engine's exec root; FIFOs under <execRoot>/containerd) }
 */
import { InvalidParameterError, PluginConfigError, RUNTIME_PLUGIN_TYPE, definePlugin, type EngineInfo, type Plugin } from '@berth/core';
import { ContainerdRuntimeBackend, type ContainerdRuntimeConfig } from './backend.js';

export interface ContainerdRuntimePluginConfig {
  address?: string;
  namespace?: string;
  runtimes?: Record<string, ContainerdRuntimeConfig>;
  execRoot?: string;
  /** How long an exit waits for the output to reach the log (ms, default 2000). */
  drainMs?: number;
}

export const CONTAINERD_PLUGIN_NAME = 'runtime-containerd';
export const DEFAULT_CONTAINERD_ADDRESS = '/run/containerd/containerd.sock';
export const DEFAULT_CONTAINERD_NAMESPACE = 'berth';

const NAMESPACE_RE = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const KEYS = new Set(['address', 'namespace', 'runtimes', 'execRoot', 'drainMs']);

/** Checks a config, naming the key at fault (PluginConfigError). */
export function validateContainerdConfig(config: ContainerdRuntimePluginConfig): void {
  for (const k of Object.keys(config)) if (!KEYS.has(k)) throw new PluginConfigError(k, `unknown key (known: ${[...KEYS].join(', ')})`);
  if (config.address !== undefined && (typeof config.address !== 'string' || !config.address)) throw new PluginConfigError('address', 'must be the path of containerd\'s socket');
  if (config.namespace !== undefined && (typeof config.namespace !== 'string' || !NAMESPACE_RE.test(config.namespace))) {
    throw new PluginConfigError('namespace', `${JSON.stringify(config.namespace)} is not a containerd namespace name`);
  }
  if (config.execRoot !== undefined && typeof config.execRoot !== 'string') throw new PluginConfigError('execRoot', 'must be a path');
  if (config.drainMs !== undefined && !(Number.isFinite(config.drainMs) && config.drainMs >= 0)) throw new PluginConfigError('drainMs', 'must be a number of milliseconds');
  if (config.runtimes !== undefined) {
    if (!config.runtimes || typeof config.runtimes !== 'object' || Object.keys(config.runtimes).length === 0) throw new PluginConfigError('runtimes', 'must name at least one runtime');
    for (const [name, r] of Object.entries(config.runtimes)) {
      if (!r || typeof r !== 'object') throw new PluginConfigError(`runtimes.${name}`, 'must be an object');
      for (const k of ['runtimeType', 'binaryName'] as const) {
        if (r[k] !== undefined && (typeof r[k] !== 'string' || !r[k])) throw new PluginConfigError(`runtimes.${name}.${k}`, 'must be a non-empty string');
      }
    }
  }
}

/** A plugin value; each engine that loads it gets a backend of its own. */
export function containerdRuntimePlugin(defaults: ContainerdRuntimePluginConfig = {}): Plugin<ContainerdRuntimePluginConfig> {
  const backends = new WeakMap<EngineInfo, ContainerdRuntimeBackend>();
  return definePlugin<ContainerdRuntimePluginConfig>({
    name: CONTAINERD_PLUGIN_NAME,
    type: RUNTIME_PLUGIN_TYPE,
    config: defaults,
    validateConfig: validateContainerdConfig,
    register(_container, ctx) {
      const cfg = ctx.config;
      const backend = new ContainerdRuntimeBackend({
        address: cfg.address ?? DEFAULT_CONTAINERD_ADDRESS,
        namespace: cfg.namespace ?? DEFAULT_CONTAINERD_NAMESPACE,
        execRoot: cfg.execRoot ?? ctx.engine.execRoot,
        runtimes: cfg.runtimes ?? { runc: {} },
        ...(cfg.drainMs !== undefined ? { drainMs: cfg.drainMs } : {}),
        logger: ctx.logger,
      });
      backends.set(ctx.engine, backend);
      ctx.registerBackend(backend);
    },
    async apply(_hooks, ctx) {
      const backend = backends.get(ctx.engine)!;
      try {
        const version = await backend.ping();
        ctx.logger.info('containerd answers', { address: backend.client.address, version });
      } catch (err) {
        throw new InvalidParameterError(`containerd does not answer at ${backend.client.address}: ${(err as Error).message}`, { cause: err });
      }
    },
    async close(ctx) {
      const backend = backends.get(ctx.engine);
      backends.delete(ctx.engine);
      await backend?.close();
    },
  });
}
