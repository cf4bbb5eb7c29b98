/**
 * The userns plugin: dockerd's `--userns-remap` for berth. With `remap` set ('default' or
 * 'USER[:GROUP]'), every container runs in a user namespace whose root is the remap user's
 * first subordinate ID:
 *  - register: the remap user and its ID maps are resolved (for 'default' the `berthremap`
 *    user is created); a missing or malformed entry fails the engine's start, naming the file
 *    and line (a plain error, not a skip: the operator asked for the remap);
 *  - beforeCreate: `HostConfig.UsernsMode` must be '', 'host' or 'auto'; `--privileged`
 *    needs `--userns=host` (as dockerd); 'auto' gets its own 65536-ID slice (AutoAllocator),
 *    freed when the container is removed (or when the create fails); the container's maps are
 *    recorded (`IdMappings`) so docker cp into it maps owners before its first start;
 *  - beforeMount (Stage.USERNS, after the image store mounted the rootfs): the rootfs is given
 *    to the mapped root by the strategy a start-up probe chose — idmapped lower layers under
 *    the container's overlay (idmap.ts, nothing copied), else the chown shift (ownership.ts);
 *    `unmount` drops what it mounted;
 *  - networking (Stage.USERNS): the hostname/hosts/resolv.conf files the engine wrote in the
 *    container's directory are chowned to the mapped root;
 *  - specBuild (Stage.USERNS, after everything that adds mounts): a `user` namespace with the
 *    maps; the core hands the mapped root to the backend (rootUid/rootGid) from them, so the
 *    bundle is owned by it.
 * `UsernsMode=host` opts a container out (no namespace, rootfs shifted back if needed).
 * Without `remap` the plugin skips itself. It announces `name=userns,rootfs=<strategy>` for /info.
 */
import { chmod, lchown, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidParameterError, PluginConfigError, SkipPluginError, Stage, definePlugin, mapToHost, type ContainerRecord, type DeepReadonly, type OciSpec, type Plugin } from '@berth/core';
import { AutoAllocator } from './auto.js';
import { probeIdmap } from './idmap.js';
import { IDENTITY, chownStrategy, type RootfsStrategy } from './ownership.js';
import { HOST_ID_FILES, ensureDefaultRemapUser, remapIdMaps, resolveRemapIdentity, runCommand, type IdFiles, type IdMaps, type RemapIdentity, type RunCommand } from './subid.js';

const PLUGIN_NAME = 'userns';
const PLUGIN_TYPE = 'io.berth.security.v1';
/** The UsernsMode values berth accepts ('' = the daemon's remap). */
export const USERNS_MODES = ['', 'host', 'auto'] as const;
/** Under the data root: the auto slices. */
export const AUTO_FILE = join('userns', 'auto.json');

export interface UsernsConfig {
  /** dockerd's --userns-remap: 'default' (the berthremap user) or USER[:GROUP]; unset → the plugin skips itself. */
  remap?: string;
  /** The passwd/group/subuid/subgid files (default: /etc's). */
  files?: Partial<IdFiles>;
}

/** What one engine's plugin resolved (kept per context). */
export interface UsernsState {
  identity: RemapIdentity;
  maps: IdMaps;
  auto: AutoAllocator;
  rootfs: RootfsStrategy;
  close(): void;
}

/** The maps a container runs with: none for UsernsMode=host, its slice for auto, else the remap user's. */
export async function mapsFor(state: UsernsState, c: DeepReadonly<ContainerRecord>): Promise<IdMaps> {
  const mode = c.HostConfig?.UsernsMode ?? '';
  if (mode === 'host') return IDENTITY;
  if (mode === 'auto') return state.auto.allocate(c.ID);
  return state.maps;
}

const PING_GROUP_RANGE = 'net.ipv4.ping_group_range';

/**
 * The spec with a user namespace and the maps (unchanged for identity maps). The default
 * `net.ipv4.ping_group_range` ("0 2147483647", set for a container with its own network
 * namespace) names groups the namespace does not map, which the kernel refuses (EINVAL at
 * runc's init): it becomes "0 <highest mapped gid>" unless the container set it itself.
 */
export function withUserNamespace(spec: OciSpec, maps: IdMaps, own: Readonly<Record<string, string>> = {}): OciSpec {
  if (maps.uidMappings.length === 0) return spec;
  const namespaces = (spec.linux?.namespaces ?? []).filter((n) => n.type !== 'user');
  const linux = { ...(spec.linux ?? {}), namespaces: [...namespaces, { type: 'user' as const }], uidMappings: maps.uidMappings, gidMappings: maps.gidMappings };
  if (linux.sysctl?.[PING_GROUP_RANGE] !== undefined && own[PING_GROUP_RANGE] === undefined) {
    const top = maps.gidMappings.reduce((n, m) => Math.max(n, m.containerID + m.size - 1), 0);
    linux.sysctl = { ...linux.sysctl, [PING_GROUP_RANGE]: `0 ${top}` };
  }
  return { ...spec, linux };
}

function rootOf(maps: IdMaps): { uid: number; gid: number } {
  return { uid: mapToHost(0, maps.uidMappings) ?? 0, gid: mapToHost(0, maps.gidMappings) ?? 0 };
}

/**
 * The directories from the data root down to `p` must let the mapped root through (runc's
 * init looks the rootfs up inside the namespace): give `o+x` to those the engine made 0700.
 * Outside the data root, dockerd's rule: refuse to start when an ancestor blocks it.
 */
async function openPathTo(p: string, dataRoot: string): Promise<void> {
  for (let d = dirname(p); d.startsWith(dataRoot) && d.length >= dataRoot.length; d = dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0) await chmod(d, (st.mode & 0o7777) | 0o001);
    if (d === dataRoot) break;
  }
}

/**
 * `run`: how useradd/usermod run (tests: a fake); `rootfs`: how a container's rootfs is given to
 * its mapped root (default: idmapped layers where the start-up probe succeeds, else chown).
 */
export function usernsPlugin(opts: { config?: UsernsConfig; run?: RunCommand; rootfs?: RootfsStrategy } = {}): Plugin<UsernsConfig> {
  const states = new WeakMap<object, UsernsState>();
  return definePlugin<UsernsConfig>({
    name: PLUGIN_NAME,
    type: PLUGIN_TYPE,
    config: { ...(opts.config ?? {}) },
    validateConfig(config) {
      if (config.remap !== undefined && (typeof config.remap !== 'string' || config.remap === '')) throw new PluginConfigError('remap', 'must be "default" or USER[:GROUP]');
    },
    async register(_c, ctx) {
      const remap = ctx.config.remap;
      if (remap === undefined) throw new SkipPluginError('no --userns-remap: containers share the host user namespace');
      const files: IdFiles = { ...HOST_ID_FILES, ...(ctx.config.files ?? {}) };
      const identity = remap === 'default' ? await ensureDefaultRemapUser(files, opts.run ?? runCommand) : resolveRemapIdentity(remap, files);
      const maps = remapIdMaps(identity, files);
      let rootfs = opts.rootfs;
      let close = (): void => {};
      let why: string | undefined;
      if (!rootfs) {
        const probe = await probeIdmap(join(ctx.engine.dataRoot, 'userns', 'probe'));
        if ('strategy' in probe) ({ strategy: rootfs, close } = probe);
        else ({ reason: why } = probe);
        rootfs ??= chownStrategy();
      }
      await rootfs.check?.(ctx.engine.dataRoot);
      states.set(ctx, { identity, maps, auto: new AutoAllocator(join(ctx.engine.dataRoot, AUTO_FILE), maps), rootfs, close });
      const root = rootOf(maps);
      ctx.logger.info('user namespaces: containers run as the remap user', {
        user: identity.user,
        group: identity.group,
        rootUid: root.uid,
        rootGid: root.gid,
        rootfs: rootfs.name,
        ...(why ? { noIdmap: why } : {}),
      });
    },
    async apply(hooks, ctx) {
      const state = states.get(ctx)!;
      // dockerd's `name=userns`, plus how the rootfs is given to the mapped root (docker info shows "Rootfs: idmap")
      ctx.addSecurityOption(`name=userns,rootfs=${state.rootfs.name}`);

      hooks.beforeCreate.tapPromise({ name: PLUGIN_NAME, stage: Stage.USERNS }, async (c) => {
        const hc = c.container.HostConfig;
        const mode = hc.UsernsMode ?? '';
        if (!(USERNS_MODES as readonly string[]).includes(mode)) {
          throw new InvalidParameterError(`invalid UsernsMode ${JSON.stringify(mode)}: expected "host" or "auto" (or nothing, for the daemon's --userns-remap)`);
        }
        if (hc.Privileged === true && mode !== 'host') {
          throw new InvalidParameterError('privileged mode is incompatible with user namespaces: run the container with --userns=host to use --privileged');
        }
        if (mode === 'auto') {
          await state.auto.allocate(c.container.ID);
          c.addUndo(() => state.auto.free(c.container.ID), 'free the UsernsMode=auto range');
        }
        // Known from the create on (as dockerd's daemon-wide maps are): docker cp into a
        // container never started maps owners; each start records the final spec's maps again.
        const maps = await mapsFor(state, c.container);
        if (maps.uidMappings.length > 0) c.container.IdMappings = { uid: [...maps.uidMappings], gid: [...maps.gidMappings] };
      });

      hooks.beforeMount.tapPromise({ name: PLUGIN_NAME, stage: Stage.USERNS }, async (start) => {
        const rootfs = start.rootfsPath ?? start.container.BaseFS;
        if (!rootfs) return;
        const maps = await mapsFor(state, start.container);
        await state.rootfs.prepare(rootfs, maps, start.engine.containerDir(start.container.ID));
        if (maps.uidMappings.length > 0) await openPathTo(rootfs, ctx.engine.dataRoot);
      });

      hooks.networking.tapPromise({ name: PLUGIN_NAME, stage: Stage.USERNS }, async (start) => {
        // files in another container's directory (--network container:…) are that one's
        const maps = await mapsFor(state, start.container);
        const { uid, gid } = rootOf(maps);
        const dir = start.engine.containerDir(start.container.ID);
        for (const f of [start.hostnamePath, start.hostsPath, start.resolvConfPath]) {
          if (f !== undefined && dirname(f) === dir) await lchown(f, uid, gid);
        }
      });

      hooks.specBuild.tapPromise({ name: PLUGIN_NAME, stage: Stage.USERNS }, async (spec, start) =>
        withUserNamespace(spec, await mapsFor(state, start.container), start.container.HostConfig.Sysctls ?? {}),
      );

      hooks.unmount.tapPromise({ name: PLUGIN_NAME, stage: Stage.USERNS }, async (r) => {
        await state.rootfs.release?.(r.engine.containerDir(r.container.ID));
      });

      hooks.onStateChange.tapPromise({ name: PLUGIN_NAME, when: (c) => c.HostConfig?.UsernsMode === 'auto' }, async (change) => {
        if (change.to === null) await state.auto.free(change.container.ID);
      });
    },
    close(ctx) {
      states.get(ctx)?.close();
    },
  });
}
