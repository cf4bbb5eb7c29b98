/**
 * The composition root: berthd's built-in plugins, as one explicit table (no registration by
 * import side effect). Each row is loaded lazily (`await import(…)` inside `load`), so a build
 * that leaves a built-in out never loads its code, and a bundler can leave its package out
 * (`berth build`). The default runtime backend is one of them — the OCI runtime plugin, serving
 * runc plus the runtimes of --add-runtime / daemon.json — so a plugin may
 * `requires: ['io.berth.runtime.v1']`. daemon.json's `plugins` section (build-file.ts) turns
 * rows on and off by name and picks the backend; a custom build adds its own plugins through
 * berthdMain() / startBerthd().
 */
import type { Plugin } from '@berth/core';
import type { DaemonConfig } from './config.js';
import { sample } from './stats.js';

export interface BuiltinOptions {
  /** The OCI backend makes this process a child subreaper (berthd's own process only). */
  subreaper?: boolean;
}

export interface BuiltinPlugin {
  /** The plugin's name (the name it is listed under in /info BerthPlugins and daemon.json). */
  readonly name: string;
  /** In the build unless daemon.json's `plugins.builtins` says otherwise. */
  readonly enabled: boolean;
  /** A runtime backend (type io.berth.runtime.v1): daemon.json's `plugins.backend` picks one. */
  readonly backend?: boolean;
  /** The package `load` imports (and nothing else imports): `berth build` leaves it out of a bundle without this row. */
  readonly package: string;
  /** Make the plugin (imports its package only now). */
  load(config: DaemonConfig, opts: BuiltinOptions): Promise<Plugin>;
}

export const BUILTINS: readonly BuiltinPlugin[] = Object.freeze([
  {
    name: 'runtime-oci',
    enabled: true,
    backend: true,
    package: '@berth/runtime-oci',
    async load(config, opts) {
      const { buildRuntimes, findExecutable, ociRuntimePlugin } = await import('@berth/runtime-oci');
      const extra: Record<string, { path: string; runtimeArgs?: string[] }> = {};
      for (const [name, r] of Object.entries(config.runtimes)) if (name !== 'runc') extra[name] = r;
      // The daemon's --default-runtime is the engine's (any backend's runtime); this backend's own default stays runc.
      const { runtimes, defaultRuntime } = buildRuntimes({
        daemonJson: extra,
        runcPath: findExecutable(config.runtimes.runc?.path ?? 'runc') ?? config.runtimes.runc?.path ?? 'runc',
      });
      return ociRuntimePlugin({ execRoot: config.execRoot, runtimes, defaultRuntime, subreaper: opts.subreaper ?? false });
    },
  },
  // containerd (gRPC) instead of runc+conmon: `"plugins": { "backend": "runtime-containerd" }`; serves runc too.
  {
    name: 'runtime-containerd',
    enabled: false,
    backend: true,
    package: '@berth/runtime-containerd',
    load: async (config) => (await import('@berth/runtime-containerd')).containerdRuntimePlugin({ execRoot: config.execRoot }),
  },
  { name: 'image-store', enabled: true, package: '@berth/image-store', load: async () => (await import('@berth/image-store')).imageStorePlugin() },
  // Docker's networks on CNI (default bridge berth0, user networks, /networks); skips itself without root or the CNI plugins.
  {
    name: 'network-cni',
    enabled: true,
    package: '@berth/plugin-network-cni',
    async load(config) {
      // dockerd's default-bridge flags (options.ts); daemon.json plugins.config["network-cni"] sets the rest (binDirs, confDir)
      const { bridge, bip, fixedCidr, mtu, defaultAddressPools, ipMasq } = config.network;
      const c = {
        ...(bridge !== undefined ? { bridge } : {}),
        ...(bip ? { bip } : {}),
        ...(fixedCidr ? { fixedCidr } : {}),
        ...(mtu ? { mtu } : {}),
        ...(defaultAddressPools ? { defaultAddressPools } : {}),
        ...(ipMasq !== undefined ? { ipMasq } : {}),
      };
      // BERTH_DNS_RESOLV_CONF: another resolv.conf than the host's for what the user networks' DNS servers relay (tests: nothing leaves the machine)
      const resolvConf = process.env.BERTH_DNS_RESOLV_CONF;
      return (await import('@berth/plugin-network-cni')).networkCniPlugin({ config: c, ...(resolvConf ? { publishing: { resolvConf } } : {}) });
    },
  },
  { name: 'network-basic', enabled: true, package: '@berth/plugin-network-basic', load: async () => (await import('@berth/plugin-network-basic')).networkBasicPlugin() },
  {
    name: 'seccomp',
    enabled: true,
    package: '@berth/plugin-seccomp',
    // --seccomp-profile / "seccomp-profile": the default for containers that name none
    load: async (config) => (await import('@berth/plugin-seccomp')).seccompPlugin({ config: config.seccompProfile !== undefined ? { profile: config.seccompProfile } : {} }),
  },
  { name: 'apparmor', enabled: true, package: '@berth/plugin-apparmor', load: async () => (await import('@berth/plugin-apparmor')).apparmorPlugin() },
  // Checkpoint storage (docker checkpoint create/ls/rm, start --checkpoint); the API answers only with --experimental.
  { name: 'checkpoint', enabled: true, package: '@berth/plugin-checkpoint', load: async () => (await import('@berth/plugin-checkpoint')).checkpointPlugin() },
  // OCI hooks from hooks.d (Podman's and CRI-O's dirs; daemon.json plugins.config["oci-hooks"].dirs), added to matching containers' specs.
  { name: 'oci-hooks', enabled: true, package: '@berth/plugin-oci-hooks', load: async () => (await import('@berth/plugin-oci-hooks')).ociHooksPlugin() },
  // Kubernetes' CRI on a unix socket (plugins.config.cri.socket, default /run/berth/cri.sock); off unless plugins.builtins.cri is true.
  {
    name: 'cri',
    enabled: false,
    package: '@berth/plugin-cri',
    async load() {
      const { criPlugin } = await import('@berth/plugin-cri');
      // The CRI stats calls read the same cgroup numbers as GET /containers/{id}/stats (stats.ts).
      return criPlugin({
        stats: async (pid) => {
          const s = await sample(pid);
          const cpu = (s.cpu_stats.cpu_usage as { total_usage?: number } | undefined)?.total_usage;
          const mem = s.memory_stats as { usage?: number; stats?: Record<string, number> };
          const inactive = mem.stats?.inactive_file ?? mem.stats?.total_inactive_file ?? 0;
          return { ...(cpu !== undefined ? { cpuNs: cpu } : {}), ...(mem.usage ? { memory: mem.usage, workingSet: Math.max(0, mem.usage - inactive) } : {}) };
        },
      });
    },
  },
  // Docker volumes (-v name:/path, anonymous, VolumesFrom, /volumes): local driver + Docker volume plugins (plugins.config.volumes.pluginDirs).
  { name: 'volumes', enabled: true, package: '@berth/plugin-volumes', load: async () => (await import('@berth/plugin-volumes')).volumesPlugin() },
  {
    name: 'userns',
    enabled: true,
    package: '@berth/plugin-userns',
    async load(config) {
      const { idFilesFromEnv, usernsPlugin } = await import('@berth/plugin-userns');
      // --userns-remap (without it the userns plugin skips itself); BERTH_USERNS_* env: other files than /etc's (tests).
      return usernsPlugin({ config: { ...(config.usernsRemap !== undefined ? { remap: config.usernsRemap } : {}), files: idFilesFromEnv(process.env) } });
    },
  },
] satisfies BuiltinPlugin[]);
