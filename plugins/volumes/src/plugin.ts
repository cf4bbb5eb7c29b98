/**
 * The volumes plugin: Docker volumes on the engine's hooks.
 *  - register: the VolumeService under VOLUME_SERVICE (the daemon's /volumes routes find it there).
 *  - beforeCreate (Stage.STORAGE): the container's volumes are resolved into its `Mounts` as
 *    dockerd shows them — named ones created if missing, anonymous ones (`-v /path`, image
 *    `VOLUME`s not otherwise mounted) made with a random name, `VolumesFrom` copied from the
 *    other container (`:ro`/`:rw`); the user's own mounts win at a destination. Anonymous
 *    volumes made for a create that fails are removed again.
 *  - beforeMount (just after the image store mounted the rootfs): each volume is mounted through
 *    its driver, an empty one gets the image's content (copy-up, unless nocopy), and the path is
 *    handed to the spec as a bind (`StartContext.mounts`). A driver failure fails the start; the
 *    start's rollback runs `unmount`.
 *  - unmount: every volume of the container is released through its driver.
 *  - beforeRemove/onStateChange: `docker rm -v` and `--rm` remove the container's anonymous
 *    volumes once it is gone (named ones never), when no other container uses them.
 */
import { chown, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  IEventBus,
  InvalidParameterError,
  Stage,
  cleanPath,
  definePlugin,
  mapToHost,
  errorMessage,
  parseUserMounts,
  type ContainerRecord,
  type DeepReadonly,
  type InjectionToken,
  type MountPoint,
  type Plugin,
  type PluginContext,
} from '@berth/core';
import { copyUp } from './copy-up.js';
import { DEFAULT_PLUGIN_DIRS } from './remote.js';
import { VolumeService } from './service.js';
import { ANONYMOUS_LABEL } from './types.js';

export const VOLUMES_PLUGIN_NAME = 'volumes';
export const VOLUMES_PLUGIN_TYPE = 'io.berth.volumes.v1';
/** The VolumeService in the engine's DI container (found by key: the daemon needs no import of this package). */
export const VOLUME_SERVICE: InjectionToken<VolumeService> = Symbol.for('io.berth.volumes.v1');

export interface VolumesConfig {
  /** Where Docker volume plugins are found: sockets (`<name>.sock`) and spec files (`<name>.spec|json`). */
  pluginDirs: string[];
}

type Rec = DeepReadonly<ContainerRecord>;

/** dockerd's `-v` mode default for volumes on Linux. */
const DEFAULT_VOLUME_MODE = 'z';

/** A VolumesFrom entry: `container[:ro|:rw]`. */
function parseVolumesFrom(spec: string): { ref: string; mode: '' | 'ro' | 'rw' } {
  const i = spec.lastIndexOf(':');
  if (i < 0) return { ref: spec, mode: '' };
  const mode = spec.slice(i + 1);
  if (mode !== 'ro' && mode !== 'rw') throw new InvalidParameterError(`invalid mode for volumes-from: ${mode}`);
  return { ref: spec.slice(0, i), mode };
}

/** The host IDs of the container's root when an ID-mapping plugin recorded maps (IdMappings), else undefined. */
function mappedRoot(rec: Rec): { uid: number; gid: number } | undefined {
  const m = rec.IdMappings;
  if (!m || (m.uid.length === 0 && m.gid.length === 0)) return undefined;
  const uid = mapToHost(0, m.uid as NonNullable<ContainerRecord['IdMappings']>['uid']);
  const gid = mapToHost(0, m.gid as NonNullable<ContainerRecord['IdMappings']>['gid']);
  return uid === undefined || gid === undefined ? undefined : { uid, gid };
}

const isEmptyDir = (p: string) => readdir(p).then((e) => e.length === 0, () => false);

/** Destinations that the user mounted (Binds, Mounts, Tmpfs), with what their parsing says. */
function userMountsOf(rec: Rec) {
  return new Map(parseUserMounts(rec.HostConfig as ContainerRecord['HostConfig']).map((m) => [m.destination, m]));
}

export function volumesPlugin(opts: { config?: Partial<VolumesConfig> } = {}): Plugin<VolumesConfig> {
  const removeVolumes = new Set<string>();
  return definePlugin<VolumesConfig>({
    name: VOLUMES_PLUGIN_NAME,
    type: VOLUMES_PLUGIN_TYPE,
    provides: [VOLUME_SERVICE],
    config: { pluginDirs: [...DEFAULT_PLUGIN_DIRS], ...opts.config },
    register(container, ctx: PluginContext<VolumesConfig>) {
      const service = new VolumeService({
        root: join(ctx.engine.dataRoot, 'volumes'),
        pluginDirs: ctx.config.pluginDirs,
        containers: () => ctx.containers,
        logger: ctx.logger,
        events: ctx.container.resolve(IEventBus),
      });
      container.register(VOLUME_SERVICE, { useValue: service });
    },
    apply(hooks, ctx) {
      const svc = () => ctx.container.resolve(VOLUME_SERVICE);

      hooks.beforeCreate.tapPromise({ name: VOLUMES_PLUGIN_NAME, stage: Stage.STORAGE }, async (c) => {
        const rec = c.container;
        const hc = rec.HostConfig;
        const s = svc();
        const user = userMountsOf(rec);
        const made: string[] = [];
        c.addUndo(async () => {
          for (const n of made) await s.remove(n, { force: true });
        }, 'remove the anonymous volumes of a failed create');
        const volume = async (name: string, driver: string, o: { opts?: Record<string, string>; labels?: Record<string, string> } = {}) => {
          if (name && (await s.exists(name))) return s.meta(name);
          const info = name
            ? await s.create({ Name: name, Driver: driver, DriverOpts: o.opts ?? {}, Labels: o.labels ?? {} })
            : await s.createAnonymous(driver, o.opts, o.labels);
          if (!name) made.push(info.Name);
          return s.meta(info.Name);
        };
        const mounts: MountPoint[] = [];
        for (const mp of rec.Mounts) {
          if (mp.Type !== 'volume') {
            mounts.push(mp);
            continue;
          }
          const p = user.get(mp.Destination);
          const vo = p?.volumeOptions;
          const meta = await volume(mp.Name ?? '', vo?.driver || hc.VolumeDriver || 'local', { ...(vo?.driverOpts ? { opts: vo.driverOpts } : {}), ...(vo?.labels ? { labels: vo.labels } : {}) });
          mounts.push({ ...mp, Name: meta.Name, Source: await s.pathOf(meta.Name), Driver: meta.Driver, Mode: mp.Mode || DEFAULT_VOLUME_MODE, Propagation: '' });
        }
        const taken = () => new Set(mounts.map((m) => m.Destination));
        // VolumesFrom: the other container's volumes and binds, where the user mounted nothing.
        for (const spec of hc.VolumesFrom ?? []) {
          const { ref, mode } = parseVolumesFrom(spec);
          const other = ctx.containers.get(ref);
          for (const m of other.Mounts) {
            if (taken().has(m.Destination)) continue;
            const rw = mode === '' ? m.RW : mode === 'rw';
            mounts.push({ ...(structuredClone(m) as MountPoint), RW: rw, Mode: mode || m.Mode });
          }
        }
        // Image VOLUMEs and `-v /path` given as Config.Volumes: anonymous volumes where nothing is mounted.
        for (const dest of Object.keys(rec.Config.Volumes ?? {})) {
          const d = cleanPath(dest);
          if (taken().has(d)) continue;
          const meta = await volume('', hc.VolumeDriver || 'local');
          mounts.push({ Type: 'volume', Name: meta.Name, Source: await s.pathOf(meta.Name), Destination: d, Driver: meta.Driver, Mode: '', RW: true, Propagation: '' });
        }
        rec.Mounts = mounts;
        c.volumesResolved = true;
      });

      // Volumes mounted right after the image store mounted the rootfs; their paths kept for the copy-up below.
      const mounted = new WeakMap<object, Array<{ destination: string; source: string; copy: boolean; local: boolean }>>();
      hooks.beforeMount.tapPromise({ name: VOLUMES_PLUGIN_NAME, stage: Stage.STORAGE + 10 }, async (start) => {
        const rec = start.container;
        const s = svc();
        const user = userMountsOf(rec);
        const imageVolumes = new Set(Object.keys(rec.Config.Volumes ?? {}).map(cleanPath));
        const volumes: Array<{ destination: string; source: string; copy: boolean; local: boolean }> = [];
        mounted.set(start, volumes);
        for (const mp of rec.Mounts) {
          let source = mp.Source;
          if (mp.Type === 'volume') {
            // a legacy start body's HostConfig (API < 1.24) replaces Mounts with unresolved ones
            if (!mp.Name || !mp.Driver) throw new InvalidParameterError(`volume at ${mp.Destination}: volumes are resolved at create; give them in the create's HostConfig, not the start's`);
            source = await s.mount(mp.Name, rec.ID, { destination: mp.Destination, rw: mp.RW });
            // copy-up into an empty volume: the user's volumes unless nocopy, and image VOLUMEs
            const copy = user.has(mp.Destination) ? !user.get(mp.Destination)!.noCopy : imageVolumes.has(mp.Destination);
            volumes.push({ destination: mp.Destination, source, copy, local: mp.Driver === 'local' });
          } else if (user.has(mp.Destination) || mp.Type !== 'bind') {
            continue; // the user's own binds: the spec builder's
          }
          start.mounts.push({ destination: mp.Destination, type: 'bind', source, options: ['rbind', ...(mp.RW ? [] : ['ro']), 'rprivate'] });
        }
      });

      // Copy-up after an ID-mapping plugin (Stage.USERNS) gave the rootfs to the container's
      // root, so copied files keep the owners the container sees; an empty volume that gets
      // nothing is given to the container's root, as dockerd creates volumes for a remapped root.
      hooks.beforeMount.tapPromise({ name: `${VOLUMES_PLUGIN_NAME}:copy-up`, stage: Stage.USERNS + 10 }, async (start) => {
        const rec = start.container;
        const rootfs = start.rootfsPath ?? rec.BaseFS;
        const root = mappedRoot(rec);
        for (const v of mounted.get(start) ?? []) {
          if (!(await isEmptyDir(v.source))) continue;
          const copied = v.copy && rootfs ? await copyUp(rootfs, v.destination, v.source) : false;
          if (!copied && root && v.local) await chown(v.source, root.uid, root.gid);
        }
      });

      hooks.unmount.tapPromise({ name: VOLUMES_PLUGIN_NAME, stage: Stage.STORAGE + 10 }, async (r) => {
        const s = svc();
        for (const mp of r.container.Mounts) {
          if (mp.Type !== 'volume' || !mp.Name) continue;
          await s.unmount(mp.Name, r.container.ID).catch((err: unknown) => {
            ctx.logger.warn('volume unmount failed', { container: r.container.ID, volume: mp.Name, error: errorMessage(err) });
          });
        }
      });

      hooks.beforeRemove.tapPromise({ name: VOLUMES_PLUGIN_NAME, stage: Stage.STORAGE }, async (r) => {
        if (r.volumes) removeVolumes.add(r.container.ID);
        else removeVolumes.delete(r.container.ID);
      });

      // Once the container is gone (its record no longer counts as a user): its anonymous volumes.
      hooks.onStateChange.tapPromise({ name: VOLUMES_PLUGIN_NAME }, async (ch) => {
        if (ch.to !== null || !removeVolumes.delete(ch.container.ID)) return;
        const s = svc();
        for (const mp of ch.container.Mounts) {
          if (mp.Type !== 'volume' || !mp.Name || !(await s.exists(mp.Name))) continue;
          const meta = await s.meta(mp.Name);
          if (!(ANONYMOUS_LABEL in meta.Labels) || s.users(mp.Name).length > 0) continue;
          await s.remove(mp.Name).catch((err: unknown) => ctx.logger.warn('could not remove an anonymous volume', { volume: mp.Name, error: errorMessage(err) }));
        }
      });
    },
  });
}
