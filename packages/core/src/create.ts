/**
 * `docker create` (dockerd's ContainerCreate): the checks of Config and HostConfig with
 * dockerd's messages, the image's config merged in, a new ID and name, the record made by
 * record-factory.ts, `beforeCreate` (taps may refuse, their undo steps run if the create
 * fails), the directory and the first save. Also the HostConfig normalisation a legacy start
 * body goes through.
 */
import { isAbsolute, join } from 'node:path';
import { verifyContainerConfig } from './config-validate.js';
import { InvalidParameterError, NotFoundError, NotImplementedError, SystemError } from './errors.js';
import { failpoint, failpointArmed } from './failpoint.js';
import { CreateContext } from './hooks.js';
import { verifyHostConfig } from './hostconfig-validate.js';
import { normaliseName } from './ids.js';
import { mergeImageConfigIntoContainer } from './image.js';
import type { ContainerKernel } from './kernel.js';
import { registerLinks, type LinkContainers } from './links.js';
import { FP } from './points.js';
import { ROOTFS_LABEL, mountPointsOf, newContainerRecord, newNetworkSettings, withHostConfigDefaults, type StoredHostConfig } from './record-factory.js';
import { parseSignal } from './signals.js';
import type { ContainerConfig, ContainerRecord, EndpointSettings, HostConfig, MountPoint } from './types.js';

export interface CreateOptions {
  /** Container name, with or without the leading slash; generated when absent. */
  name?: string;
  Config: ContainerConfig;
  HostConfig?: HostConfig;
  NetworkingConfig?: { EndpointsConfig?: Record<string, EndpointSettings> | null } | null;
  /**
   * berth-only: run on this plain root filesystem directory (no image store needed). Also
   * accepted as the label `io.berth.rootfs`.
   */
  rootfs?: string;
}

export interface CreateResult {
  Id: string;
  Warnings: string[];
}

/** Create a container; `links` resolves the names HostConfig.Links names. */
export async function createContainer(k: ContainerKernel, links: LinkContainers, opts: CreateOptions): Promise<CreateResult> {
  if (k.closed) throw new SystemError('engine is closed');
  if (!opts || typeof opts !== 'object') throw new InvalidParameterError('config cannot be empty in order to create a container');
  verifyContainerConfig(opts.Config);
  let config: ContainerConfig = structuredClone(opts.Config ?? {});
  const name = opts.name ? normaliseName(opts.name) : undefined;

  const rootfs = opts.rootfs ?? config.Labels?.[ROOTFS_LABEL];
  if (rootfs !== undefined && (!rootfs || !isAbsolute(rootfs))) {
    throw new InvalidParameterError(`rootfs must be an absolute path: ${JSON.stringify(rootfs)}`);
  }
  // A plain rootfs replaces the image: Config.Image is then only a name, never looked up.
  let imageId = '';
  if (k.d.images && config.Image && rootfs === undefined) {
    const img = await k.d.images.resolve(config.Image);
    if (!img) throw new NotFoundError(`No such image: ${config.Image}`);
    imageId = img.id;
    config = mergeImageConfigIntoContainer(config, img.config);
  }
  const argv = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
  if (argv.length === 0) throw new InvalidParameterError('no command specified');
  if (config.StopSignal) parseSignal(config.StopSignal);
  if (config.StopTimeout !== undefined && config.StopTimeout !== null && !Number.isInteger(config.StopTimeout)) {
    throw new InvalidParameterError('invalid StopTimeout: must be an integer');
  }
  // Binds, Mounts and Tmpfs are checked now (dockerd refuses a bad -v at create), and listed like `docker inspect`'s Mounts.
  const { hostConfig, mounts } = normaliseHostConfig(k, opts.HostConfig ?? {});

  const id = k.index.newId();
  const finalName = name ?? k.index.newName();
  k.index.reserveName(finalName, id);

  const endpoints = opts.NetworkingConfig?.EndpointsConfig;
  const dir = k.d.store.dir(id);
  const rec = newContainerRecord({
    ID: id,
    Name: finalName,
    Created: k.now(),
    Config: config,
    HostConfig: hostConfig,
    Image: imageId,
    LogPath: hostConfig.LogConfig.Type === 'none' ? '' : join(dir, `${id}-json.log`),
    Mounts: mounts,
    ...(endpoints && Object.keys(endpoints).length ? { NetworkSettings: newNetworkSettings(structuredClone(endpoints)) } : {}),
    ...(rootfs ? { BaseFS: rootfs } : {}),
  });
  const ctx = new CreateContext(rec, k.d.info);
  try {
    registerLinks(rec, links);
    await k.d.hooks.beforeCreate.promise(ctx);
    if (!ctx.volumesResolved) refuseUnresolvedVolumes(rec);
    failpoint(FP.createAfterRootfs);
    // The first save makes the record's directory with its files (one thread-pool job with the
    // native addon; issue 18). With the point between the two armed, the directory comes first.
    if (failpointArmed(FP.createBeforeRecordSave)) {
      await k.d.store.makeDir(id);
      failpoint(FP.createBeforeRecordSave);
    }
    k.index.add(rec);
    await k.persist(rec);
    failpoint(FP.createAfterRecordSave);
  } catch (err) {
    k.index.remove(rec);
    await k.runUndos(ctx.undos);
    await k.d.store.remove(id).catch(() => {});
    throw err;
  }
  k.emit(rec, 'create');
  await k.stateChange(rec, null, 'created', 'create');
  return { Id: id, Warnings: ctx.warnings };
}

/** No volume plugin resolved the container's volumes: named/anonymous volumes and VolumesFrom are refused (501). */
function refuseUnresolvedVolumes(rec: ContainerRecord): void {
  const vol = rec.Mounts.find((m) => m.Type === 'volume');
  if (vol) {
    throw new NotImplementedError(
      `volumes are not supported by this build (${vol.Name ? `volume "${vol.Name}"` : 'anonymous volume'} at ${vol.Destination}): no volume plugin is loaded; use a bind mount`,
    );
  }
  if ((rec.HostConfig.VolumesFrom ?? []).length > 0) throw new NotImplementedError('HostConfig.VolumesFrom is not supported by this build: no volume plugin is loaded');
}

/** Validate a HostConfig and fill dockerd's defaults, as create does (also a legacy start body's). */
export function normaliseHostConfig(k: ContainerKernel, input: HostConfig): { hostConfig: StoredHostConfig; mounts: MountPoint[] } {
  const hc: HostConfig = structuredClone(input);
  verifyHostConfig(hc, { mode: 'create', ...(k.d.securityOptions ? { securityOptions: k.d.securityOptions } : {}) });
  k.d.backends.checkRuntime(hc.Runtime || k.d.config.defaultRuntime);
  return { hostConfig: withHostConfigDefaults(hc, k.d.config.defaultRuntime), mounts: mountPointsOf(hc) };
}
