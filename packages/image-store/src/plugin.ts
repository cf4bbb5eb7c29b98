/**
 * The image-store plugin: provides the core's `IImageStore` (and `IImageService`, the full
 * service the daemon's /images routes call), prepares a container's writable layer at create,
 * mounts its root filesystem in `beforeMount` (dockerd's conditionalMountOnStart), unmounts
 * it in `unmount` (failed start, exit, remove) and deletes it when the container is removed.
 * Which containers use which image (delete conflicts, prune) it asks the engine (ctx.containers).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import {
  CONFIG_FILE,
  type InjectionToken,
  IImageStore,
  IStateStore,
  PluginConfigError,
  ROOTFS_LABEL,
  Stage,
  definePlugin,
  type ContainerLookup,
  type ContainerRecord,
  type DeepReadonly,
  type EngineInfo,
  type Plugin,
} from '@berth/core';
import type { RootfsDriver } from './rootfs.js';
import { ImageService, type ContainerImageUsage } from './service.js';

export const IImageService: InjectionToken<ImageService> = Symbol('IImageService');

const PLUGIN_NAME = 'image-store';
const PLUGIN_TYPE = 'io.berth.image-store.v1';

export interface ImageStorePluginConfig {
  /** Root filesystem driver: overlay (root + overlayfs), copy, or auto (default). */
  driver?: RootfsDriver | 'auto';
  /** Registries spoken to over plain HTTP (loopback ones always are). */
  insecureRegistries?: string[];
}

const RUNNING = new Set(['running', 'paused', 'restarting']);

/** Does the image store own this container's root filesystem? (not for plain-rootfs containers) */
function usesImage(c: DeepReadonly<ContainerRecord>): boolean {
  return !!c.Image && !c.Config.Labels?.[ROOTFS_LABEL];
}

/** Which containers use which image (delete conflicts, prune, /images Containers): the engine's containers. */
function imageUsage(containers: ContainerLookup): ContainerImageUsage[] {
  return containers.list().flatMap((c) => (c.Image ? [{ id: c.ID, image: c.Image, running: RUNNING.has(c.State.Status) }] : []));
}

/** The plugin; each engine that loads it gets an image service of its own (kept per engine, closed with it). */
export function imageStorePlugin(opts: { config?: ImageStorePluginConfig } = {}): Plugin<ImageStorePluginConfig> {
  const services = new WeakMap<EngineInfo, ImageService>();
  return definePlugin<ImageStorePluginConfig>({
    name: PLUGIN_NAME,
    type: PLUGIN_TYPE,
    provides: [IImageStore, IImageService],
    config: { driver: 'auto', insecureRegistries: [], ...(opts.config ?? {}) },
    validateConfig(config) {
      if (config.driver && !['auto', 'overlay', 'copy'].includes(config.driver)) throw new PluginConfigError('driver', `must be auto, overlay or copy (not ${String(config.driver)})`);
    },
    async register(container, ctx) {
      const svc = new ImageService({
        dataRoot: ctx.engine.dataRoot,
        rootfsDriver: ctx.config.driver ?? 'auto',
        registry: { insecureRegistries: ctx.config.insecureRegistries ?? [] },
        containers: () => imageUsage(ctx.containers),
      });
      let isContainer: ((id: string) => Promise<boolean>) | undefined;
      if (container.isRegistered(IStateStore, true)) {
        const store = container.resolve(IStateStore);
        // a container exists once its record was saved (readable or not: an unreadable one keeps its rootfs)
        isContainer = (id) => fsp.access(path.join(store.dir(id), CONFIG_FILE)).then(() => true, () => false);
      }
      await svc.init(isContainer ? { isContainer } : {});
      for (const w of svc.warnings()) ctx.logger.warn(w);
      services.set(ctx.engine, svc);
      container.register(IImageStore, { useValue: svc });
      container.register(IImageService, { useValue: svc });
      ctx.logger.info('image store ready', { root: svc.store.root, driver: svc.rootfs.driver });
    },
    apply(hooks, ctx) {
      const svc = () => {
        const service = services.get(ctx.engine);
        if (!service) throw new Error('image-store: service not registered');
        return service;
      };
      hooks.beforeCreate.tapPromise({ name: PLUGIN_NAME, stage: Stage.STORAGE, when: usesImage }, async (c) => {
        const rec = c.container;
        await svc().createRootfs(rec.ID, rec.Image, { readonly: !!rec.HostConfig.ReadonlyRootfs });
        c.addUndo(() => svc().removeRootfs(rec.ID), 'remove the container layer');
      });
      hooks.beforeMount.tapPromise({ name: PLUGIN_NAME, stage: Stage.STORAGE, when: usesImage }, async (c) => {
        const rec = c.container;
        const s = svc();
        if (!(await s.rootfs.meta(rec.ID))) await s.createRootfs(rec.ID, rec.Image, { readonly: !!rec.HostConfig.ReadonlyRootfs });
        // undone by the unmount tap below (failed start, exit, remove), never by an undo step too
        c.rootfsPath = await s.mountRootfs(rec.ID);
        rec.BaseFS = c.rootfsPath;
      });
      hooks.unmount.tapPromise({ name: PLUGIN_NAME, stage: Stage.STORAGE, when: usesImage }, async (c) => {
        await svc().unmountRootfs(c.container.ID);
      });
      hooks.onStateChange.tapPromise({ name: PLUGIN_NAME }, async (change) => {
        const rec = change.container;
        if (change.to === null && usesImage(rec)) await svc().removeRootfs(rec.ID);
      });
    },
    async close(ctx) {
      const service = services.get(ctx.engine);
      services.delete(ctx.engine);
      await service?.close();
    },
  });
}
