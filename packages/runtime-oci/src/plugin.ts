/**
 * The OCI runtime backend as a plugin — the one way an engine gets it (berthd's built-ins
 * load it first): `ociRuntimePlugin(config)` makes a plugin (name `runtime-oci`, type
 * `io.berth.runtime.v1`, so other plugins may `requires: ['io.berth.runtime.v1']`) whose
 * `register` builds one OciRuntimeBackend per engine and registers it with
 * `ctx.registerBackend`, serving the runtimes of its config; `close` closes that engine's
 * backend. Config (a build may override keys under the plugin's name):
 *   { execRoot?: string (default: the engine's exec root),
 *     runtimes?: { name: { path, runtimeArgs? } } (default: runc from $PATH),
 *     defaultRuntime?: string (default 'runc'), conmonPath?, logRotateAt?, fastStart?, timings?,
 *     subreaper?: boolean (default false; berthd: true — makes the host process a child subreaper, reaper.ts) }
 * Use `buildRuntimes()` to turn `--add-runtime`/daemon.json into `runtimes`.
 */
import { RUNTIME_PLUGIN_TYPE, definePlugin, type EngineInfo, type Plugin } from '@berth/core';
import { OciRuntimeBackend, type OciBackendOptions } from './backend.js';
import { DEFAULT_RUNTIME_NAME } from './registry.js';

export type OciRuntimePluginConfig = Partial<Omit<OciBackendOptions, 'logger'>>;

const PLUGIN_NAME = 'runtime-oci';

/** A plugin value; each engine that loads it gets a backend of its own. */
export function ociRuntimePlugin(defaults: OciRuntimePluginConfig = {}): Plugin<OciRuntimePluginConfig> {
  // Per engine (keyed by the engine's info object): the backend its register made.
  const backends = new WeakMap<EngineInfo, OciRuntimeBackend>();
  return definePlugin<OciRuntimePluginConfig>({
    name: PLUGIN_NAME,
    type: RUNTIME_PLUGIN_TYPE,
    config: defaults,
    validateConfig(config) {
      const runtimes = config.runtimes ?? { [DEFAULT_RUNTIME_NAME]: { path: 'runc' } };
      const def = config.defaultRuntime ?? DEFAULT_RUNTIME_NAME;
      if (!(def in runtimes)) {
        throw new Error(`default runtime ${def} is not registered (known: ${Object.keys(runtimes).sort().join(', ')})`);
      }
    },
    async register(_container, ctx) {
      const cfg = ctx.config;
      const backend = new OciRuntimeBackend({
        ...cfg,
        execRoot: cfg.execRoot ?? ctx.engine.execRoot,
        runtimes: cfg.runtimes ?? { [DEFAULT_RUNTIME_NAME]: { path: 'runc' } },
        defaultRuntime: cfg.defaultRuntime ?? DEFAULT_RUNTIME_NAME,
        logger: ctx.logger,
      });
      backends.set(ctx.engine, backend);
      ctx.registerBackend(backend);
      // Every runtime's features document read before the engine starts, so that
      // features(runtime).checkpoint is settled for runtimes that need no CRIU probe.
      await backend.ready();
    },
    async close(ctx) {
      const backend = backends.get(ctx.engine);
      backends.delete(ctx.engine);
      await backend?.close();
    },
  });
}
