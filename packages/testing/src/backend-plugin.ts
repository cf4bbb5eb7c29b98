/**
 * backendPlugin(): a runtime backend you built yourself (a FakeRuntime, a second backend for
 * routing tests) as a plugin of type `io.berth.runtime.v1`, registered the one way the engine
 * knows backends — `ctx.registerBackend` — so tests load backends as berthd does.
 */
import { RUNTIME_PLUGIN_TYPE, definePlugin, type Plugin, type RuntimeBackend } from '@berth/core';

export function backendPlugin(backend: RuntimeBackend, opts: { name?: string } = {}): Plugin {
  return definePlugin({
    name: opts.name ?? `backend-${backend.name}`,
    type: RUNTIME_PLUGIN_TYPE,
    register(_container, ctx) {
      ctx.registerBackend(backend);
    },
  });
}
