/**
 * The checkpoint plugin: gives a build checkpoints (`docker checkpoint create/ls/rm`,
 * `docker start --checkpoint`). The engine does the operation (core checkpoint.ts: the lock, the
 * runtime's dump and restore, the checkpoint hooks); this plugin provides where checkpoints
 * live (`ICheckpointStore`: FileCheckpointStore, dockerd's layout, published only when
 * complete) and sweeps the half-written ones a crash left, at the next start. A build without
 * it has no checkpoint API: the engine's `checkpoints.available` is false and berthd mounts no
 * checkpoint routes. As in dockerd the API answers only in experimental mode (`--experimental`).
 */
import { ICheckpointStore, definePlugin, errorMessage, type EngineInfo, type Plugin } from '@berth/core';
import { FileCheckpointStore } from './store.js';

export const CHECKPOINT_PLUGIN_NAME = 'checkpoint';
export const CHECKPOINT_PLUGIN_TYPE = 'io.berth.checkpoint.v1';

export function checkpointPlugin(): Plugin {
  // One store per engine (keyed by the engine's info object, which register and apply share).
  const stores = new WeakMap<EngineInfo, FileCheckpointStore>();
  return definePlugin({
    name: CHECKPOINT_PLUGIN_NAME,
    type: CHECKPOINT_PLUGIN_TYPE,
    register(container, ctx) {
      const store = new FileCheckpointStore(ctx.engine);
      stores.set(ctx.engine, store);
      container.register(ICheckpointStore, { useValue: store });
    },
    apply(hooks, ctx) {
      // Every stored container passes here at engine start: a checkpoint a crash cut short is deleted.
      hooks.afterLiveRestore.tapPromise(CHECKPOINT_PLUGIN_NAME, async (c) => {
        const store = stores.get(ctx.engine);
        const removed = await store!.sweep(c.container.ID).catch((err: unknown) => {
          ctx.logger.warn('could not sweep half-written checkpoints', { container: c.container.ID, error: errorMessage(err) });
          return [];
        });
        if (removed.length > 0) ctx.logger.info('removed half-written checkpoints a crash left', { container: c.container.ID, entries: removed });
      });
    },
  });
}
