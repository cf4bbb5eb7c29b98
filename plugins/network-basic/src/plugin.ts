/**
 * The network-basic plugin: what dockerd's initializeNetworking writes for a container
 * without a network of berth's making. At each start it writes, atomically, in the
 * container's directory under the data root
 *  - `hostname`    (Config.Hostname, else the first 12 hex of the ID; the host's name for host mode),
 *  - `hosts`       (the default localhost records, or the host's /etc/hosts for host mode, + ExtraHosts,
 *                   + a record per legacy link whose container has an address),
 *  - `resolv.conf` (the host's, with Dns/DnsSearch/DnsOptions overrides; loopback nameservers
 *                   dropped in a namespace of its own, 8.8.8.8/8.8.4.4 when none is left),
 * and sets ctx.hostnamePath/hostsPath/resolvConfPath: the core records them (HostnamePath, …)
 * and its spec builder bind-mounts them at /etc/hostname, /etc/hosts, /etc/resolv.conf.
 * Every network mode is handled: none, default, bridge and user-defined networks get files of
 * their own — with a record `IP hostname` per address a networking plugin recorded in the
 * container's NetworkSettings before this tap (network-cni; alone, berth has no bridge and
 * such containers get a namespace with lo only, like none); host gets the host's hostname
 * (Config.Hostname set at create, as dockerd) and hosts file; `container:<id|name>` takes that
 * container's paths (dockerd shares them), found through the engine's container lookup
 * (ctx.containers). The plugin keeps no state of its own; the files go into a checkpoint and
 * come back at its restore (checkpoint hooks, checkpoint-state.ts).
 * ExtraHosts entries are validated at create (InvalidParameterError, dockerd's wording);
 * `host-gateway` is resolved at start from ctx.hostGatewayIP (refused there without one).
 */
import { readFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import {
  PluginConfigError,
  Stage,
  atomicWriteFiles,
  definePlugin,
  errorKind,
  linksOfStart,
  type AtomicWriteOptions,
  type ContainerLookup,
  type ContainerRecord,
  type DeepReadonly,
  type Plugin,
} from '@berth/core';
import { buildHostnameFile, buildHostsFile, buildResolvConf, linkHostEntries, parseExtraHosts, parseResolvConf, isLoopbackAddress, type HostEntry } from './files.js';
import { restoreNetworkFiles, saveNetworkFiles } from './checkpoint-state.js';

const PLUGIN_NAME = 'network-basic';
const PLUGIN_TYPE = 'io.berth.network.v1';

export interface NetworkBasicConfig {
  /** The host's hosts file (host mode). */
  hostsFile?: string;
  /** The host's resolv.conf. */
  resolvConfFile?: string;
  /**
   * systemd-resolved's upstream resolv.conf: used instead of `resolvConfFile` when that one
   * only names systemd-resolved's loopback stub (127.0.0.53), as dockerd does.
   */
  systemdResolvConfFile?: string;
  /** The host's name (host mode without Config.Hostname); default os.hostname(). */
  hostname?: string;
}

function networkMode(c: DeepReadonly<ContainerRecord>): string {
  return c.HostConfig?.NetworkMode ?? '';
}

/** The container's own hosts records: `IP hostname` per address its NetworkSettings has (the networking plugin's). */
function ownAddressEntries(rec: DeepReadonly<ContainerRecord>, hostname: string): HostEntry[] {
  const ips = new Set(Object.values(rec.NetworkSettings?.Networks ?? {}).map((e) => e.IPAddress ?? '').filter(Boolean));
  return [...ips].map((ip) => ({ ip, name: hostname }));
}

export const HOSTNAME_FILE = 'hostname';
export const HOSTS_FILE = 'hosts';
export const RESOLV_CONF_FILE = 'resolv.conf';

/**
 * How the files are written (core's atomic write): readers (and a restarted container's bind
 * mount) see the old or the new file, never half of one; 0644 whatever the umask (users of
 * the container read them). No fsync: the files are rebuilt at every start.
 */
const FILE_WRITE: AtomicWriteOptions = { mode: 0o644, fsync: false };

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The host's resolv.conf, or systemd-resolved's upstream one when the host only points at the stub. */
async function hostResolvConf(cfg: NetworkBasicConfig): Promise<string> {
  const main = (await readOptional(cfg.resolvConfFile ?? '/etc/resolv.conf')) ?? '';
  const ns = parseResolvConf(main).nameservers;
  if (ns.length > 0 && ns.every((n) => n === '127.0.0.53') && cfg.systemdResolvConfFile) {
    const upstream = await readOptional(cfg.systemdResolvConfFile);
    if (upstream !== undefined) return upstream;
  }
  return main;
}

/** The container a `container:<id|name>` mode names, if it exists (the core refuses the start otherwise). */
function sharedWith(containers: ContainerLookup, ref: string): DeepReadonly<ContainerRecord> | undefined {
  try {
    return containers.get(ref);
  } catch (err) {
    if (errorKind(err) === 'NotFound') return undefined;
    throw err;
  }
}

export function networkBasicPlugin(opts: { config?: NetworkBasicConfig } = {}): Plugin<NetworkBasicConfig> {
  return definePlugin<NetworkBasicConfig>({
    name: PLUGIN_NAME,
    type: PLUGIN_TYPE,
    config: {
      hostsFile: '/etc/hosts',
      resolvConfFile: '/etc/resolv.conf',
      systemdResolvConfFile: '/run/systemd/resolve/resolv.conf',
      ...(opts.config ?? {}),
    },
    validateConfig(config) {
      for (const k of ['hostsFile', 'resolvConfFile', 'systemdResolvConfFile'] as const) {
        const v = config[k];
        if (v !== undefined && (typeof v !== 'string' || !v.startsWith('/'))) throw new PluginConfigError(k, 'must be an absolute path');
      }
    },
    apply(hooks, ctx) {
      const cfg = ctx.config;
      hooks.beforeCreate.tapPromise({ name: PLUGIN_NAME, stage: Stage.NETWORK }, async (c) => {
        parseExtraHosts(c.container.HostConfig?.ExtraHosts, null);
        // dockerd: a host-network container without --hostname is named as the host
        if (networkMode(c.container) === 'host' && !c.container.Config.Hostname) c.container.Config.Hostname = cfg.hostname ?? osHostname();
      });

      hooks.networking.tapPromise({ name: PLUGIN_NAME, stage: Stage.NETWORK }, async (c) => {
        const rec = c.container;
        const mode = networkMode(rec);
        if (mode.startsWith('container:')) {
          // dockerd shares the other container's files (the core refuses the start if it does not run)
          const other = sharedWith(ctx.containers, mode.slice('container:'.length));
          if (other?.HostnamePath && other.HostsPath && other.ResolvConfPath) {
            c.hostnamePath ??= other.HostnamePath;
            c.hostsPath ??= other.HostsPath;
            c.resolvConfPath ??= other.ResolvConfPath;
          }
          return;
        }
        // another networking tap may have provided them already
        if (c.hostnamePath && c.hostsPath && c.resolvConfPath) return;
        const host = mode === 'host';
        // ExtraHosts, then a record per legacy link (the core resolved them before this tap)
        const dir = c.engine.containerDir(rec.ID);
        const name = rec.Config.Hostname || (host ? (cfg.hostname ?? osHostname()) : rec.ID.slice(0, 12));
        // ExtraHosts, the legacy links' records, then the container's own addresses (dockerd's order)
        const extra = [...parseExtraHosts(rec.HostConfig.ExtraHosts, c.hostGatewayIP), ...linkHostEntries(linksOfStart(c)), ...(host ? [] : ownAddressEntries(rec, name))];
        const hostHosts = host ? ((await readOptional(cfg.hostsFile ?? '/etc/hosts')) ?? '') : undefined;
        const resolv = buildResolvConf({
          host: await hostResolvConf(cfg),
          dns: rec.HostConfig.Dns,
          dnsSearch: rec.HostConfig.DnsSearch,
          dnsOptions: rec.HostConfig.DnsOptions,
          ownNetns: !host,
        });
        const files: Array<[keyof Pick<typeof c, 'hostnamePath' | 'hostsPath' | 'resolvConfPath'>, string, string]> = [
          ['hostnamePath', HOSTNAME_FILE, buildHostnameFile(name)],
          ['hostsPath', HOSTS_FILE, buildHostsFile(extra, hostHosts)],
          ['resolvConfPath', RESOLV_CONF_FILE, resolv],
        ];
        const ours = files.filter(([key]) => !c[key]);
        // the files go with the container's directory (no undo needed); one write of all of them
        // (one thread-pool job where the native addon is loaded)
        await atomicWriteFiles(
          dir,
          ours.map(([, file, content]) => [file, content]),
          FILE_WRITE,
        );
        for (const [key, file] of ours) c[key] = join(dir, file);
        if (!host && parseResolvConf(resolv).nameservers.some(isLoopbackAddress)) {
          ctx.logger.warn('container resolv.conf names a loopback nameserver unreachable from its network namespace', { container: rec.ID });
        }
      });

      // Checkpoint → restore: the files as the checkpointed process left them (checkpoint-state.ts).
      const files = [HOSTNAME_FILE, HOSTS_FILE, RESOLV_CONF_FILE] as const;
      hooks.afterCheckpoint.tapPromise({ name: PLUGIN_NAME, stage: Stage.NETWORK }, async (c) => {
        await saveNetworkFiles(c.container, c.checkpoint, c.engine, files);
      });
      hooks.beforeRestore.tapPromise({ name: PLUGIN_NAME, stage: Stage.NETWORK }, async (c) => {
        await restoreNetworkFiles(c.container, c.checkpoint, c.engine, files, FILE_WRITE);
      });

    },
  });
}
