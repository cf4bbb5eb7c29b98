/**
 * The backend as a plugin: registers an OciRuntimeBackend as the engine's IRuntime.
 * Config (plugin name 'runtime-oci'):
 *   { execRoot?: string (default: the engine's exec root),
 *     runtimes?: { name: { path, runtimeArgs? } } (default: runc from $PATH),
 *     defaultRuntime?: string (default 'runc'), conmonPath?: string }
 * Use `buildRuntimes()` to turn `--add-runtime`/daemon.json into `runtimes`.
 */
import { IRuntime, definePlugin, type Plugin } from '@berth/core';
import { OciRuntimeBackend } from './backend.js';
import { DEFAULT_RUNTIME_NAME, type RuntimeMap } from './registry.js';

export interface OciRuntimePluginConfig {
  execRoot?: string;
  runtimes?: RuntimeMap;
  defaultRuntime?: string;
  conmonPath?: string;
  logRotateAt?: number;
}

export const PLUGIN_NAME = 'runtime-oci';
export const PLUGIN_TYPE = 'io.berth.runtime.v1';

/** A plugin value with its own backend(s); one per engine build is the simple rule. */
export function createOciRuntimePlugin(defaults: OciRuntimePluginConfig = {}): Plugin<OciRuntimePluginConfig> {
  const backends = new Set<OciRuntimeBackend>();
  return definePlugin<OciRuntimePluginConfig>({
    name: PLUGIN_NAME,
    type: PLUGIN_TYPE,
    config: defaults,
    validateConfig(config) {
      const runtimes = config.runtimes ?? { [DEFAULT_RUNTIME_NAME]: { path: 'runc' } };
      const def = config.defaultRuntime ?? DEFAULT_RUNTIME_NAME;
      if (!(def in runtimes)) {
        throw new Error(`default runtime ${def} is not registered (known: ${Object.keys(runtimes).sort().join(', ')})`);
      }
    },
    register(container, ctx) {
      const cfg = ctx.config;
      const backend = new OciRuntimeBackend({
        execRoot: cfg.execRoot ?? ctx.engine.execRoot,
        runtimes: cfg.runtimes ?? { [DEFAULT_RUNTIME_NAME]: { path: 'runc' } },
        defaultRuntime: cfg.defaultRuntime ?? DEFAULT_RUNTIME_NAME,
        conmonPath: cfg.conmonPath,
        logRotateAt: cfg.logRotateAt,
        warn: (msg, err) => ctx.logger.warn(msg, err === undefined ? undefined : { error: String(err) }),
      });
      backends.add(backend);
      container.register(IRuntime, { useValue: backend });
    },
    async close() {
      for (const b of backends) await b.close();
      backends.clear();
    },
  });
}

/** The default plugin value (runc only unless configured). */
export const ociRuntimePlugin: Plugin<OciRuntimePluginConfig> = createOciRuntimePlugin();
export default ociRuntimePlugin;
