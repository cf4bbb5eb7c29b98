/**
 * The network-cni plugin (`network-cni`, io.berth.network.v1): containers on the default
 * bridge and on user-defined networks get a network namespace of their own, kept as a file
 * `<exec-root>/netns/<id>` made before the runtime runs, with lo and one interface per network
 * (eth0, eth1, …) from CNI (attach.ts), and their NetworkSettings as dockerd fills them.
 *  - beforeCreate: the container's networks exist, --ip/--network-alias only on user networks,
 *    a well-formed MAC; the `default` network key becomes `bridge` (as dockerd stores it).
 *  - networking (before network-basic's tap, which writes /etc/hosts with the addresses
 *    recorded here): netns (lo up), one ADD per network, NetworkSettings, SandboxKey,
 *    ctx.networkNamespacePath and ctx.hostGatewayIP (the default bridge's gateway).
 *  - releaseNetwork (failed start, exit, remove, found dead after a restart): DEL of every
 *    attachment the CNI result cache holds for the container, then the netns is removed;
 *    idempotent.
 * Modes none, host and container:<id> are left to network-basic (and the core). The plugin
 * registers the NetworkService (service.ts) under INetworkService: the daemon's /networks routes.
 * It skips itself (SkipPluginError) without root, `unshare`/`nsenter`/`ip`, or the CNI plugins it runs.
 */
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import {
  NotFoundError,
  PluginConfigError,
  IEngine,
  IEventBus,
  SkipPluginError,
  Stage,
  definePlugin,
  type ContainerRecord,
  type DeepReadonly,
  type EndpointSettings,
  type EngineInfo,
  type InjectionToken,
  type Plugin,
} from '@berth/core';
import { Attacher, type EndpointRequest } from './attach.js';
import { CniRunner, type CniExec } from './cni.js';
import type { AddressPool } from './ipam.js';
import { bindNetns, createNetns, removeNetns } from './netns.js';
import { NetworkService } from './service.js';
import { addHostsRecords } from './hosts.js';
import { applyPublishing, closePublishing, publishingOf, type PublishingOptions } from './publish.js';
import { pointResolvConf } from './resolv.js';
import { NetworkStore, type NetworkRecord } from './store.js';

export const PLUGIN_NAME = 'network-cni';
/** StartContext.data key: this start attaches in beforeStart (a user-namespaced container). */
const DEFERRED = 'network-cni:deferred-attach';
const PLUGIN_TYPE = 'io.berth.network.v1';

/** The plugin's service in the engine's DI container (the daemon's /networks routes resolve it by this key). */
export const INetworkService: InjectionToken<NetworkService> = Symbol.for('io.berth.networks.v1');

export interface NetworkCniConfig {
  /** Directories of CNI plugin binaries (CNI_PATH), in order. */
  binDirs?: string[];
  /** Conflists of custom drivers (`docker network create -d <type>`). */
  confDir?: string;
  /** The default bridge's Linux bridge (default berth0). */
  bridge?: string;
  /** dockerd's --bip. */
  bip?: string;
  /** dockerd's --fixed-cidr. */
  fixedCidr?: string;
  /** dockerd's --mtu (the default bridge's). */
  mtu?: number;
  /** daemon.json default-address-pools ([{base, size}]). */
  defaultAddressPools?: AddressPool[];
  /** dockerd's --ip-masq: masquerade the default bridge's traffic leaving the machine (default false here; dockerd's true). */
  ipMasq?: boolean;
}

/** How namespaces are made (tests without root replace it). */
export interface NetnsOps {
  create(file: string): Promise<void>;
  /** Keep the namespace at `source` (a /proc/<pid>/ns/net) at `file`. */
  bind(file: string, source: string): Promise<void>;
  remove(file: string): Promise<void>;
}

export interface NetworkCniOptions {
  config?: NetworkCniConfig;
  /** Tests: run plugin binaries differently, make namespaces differently, skip the root check, read another route table. */
  exec?: CniExec;
  netns?: NetnsOps;
  skipHostChecks?: boolean;
  routesFile?: string;
  /** Published ports and DNS (tests: another resolv.conf, DNS port, port range file). */
  publishing?: PublishingOptions;
}

/**
 * Modes this plugin attaches: the default bridge (when there is one: not with bridge `none`)
 * and user-defined networks.
 */
export function attachesContainer(c: DeepReadonly<ContainerRecord>, hasDefaultBridge = true): boolean {
  const mode = c.HostConfig?.NetworkMode ?? '';
  if (mode === '' || mode === 'default' || mode === 'bridge') return hasDefaultBridge;
  return mode !== 'none' && mode !== 'host' && !mode.startsWith('container:');
}

/** The networks a container is on, its NetworkMode's first (dockerd's `default` is `bridge`). */
export function networksOf(c: DeepReadonly<ContainerRecord>): string[] {
  const mode = c.HostConfig?.NetworkMode || 'bridge';
  const primary = mode === 'default' ? 'bridge' : mode;
  const keys = Object.keys(c.NetworkSettings?.Networks ?? {}).map((k) => (k === 'default' ? 'bridge' : k));
  return [primary, ...keys.filter((k) => k !== primary).sort()];
}

async function hostCheck(binDirs: string[]): Promise<void> {
  if (process.getuid?.() !== 0) throw new SkipPluginError('needs root (network namespaces, bridges, veths)');
  for (const type of ['bridge', 'host-local']) {
    const found = await Promise.any(binDirs.map((d) => access(join(d, type), constants.X_OK))).then(() => true, () => false);
    if (!found) throw new SkipPluginError(`the CNI plugin ${type} is not in ${binDirs.join(':')} (apt-get install containernetworking-plugins)`);
  }
  const path = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  // netns.ts: unshare/nsenter (util-linux) make and enter namespaces, ip (iproute2) brings lo up
  for (const [tool, pkg] of [['unshare', 'util-linux'], ['nsenter', 'util-linux'], ['ip', 'iproute2']]) {
    const found = await Promise.any(path.map((d) => access(join(d, tool), constants.X_OK))).then(() => true, () => false);
    if (!found) throw new SkipPluginError(`${tool} (${pkg}) is not installed`);
  }
}

/**
 * A running container connected to a user network: the network's DNS server (publish.ts) runs
 * on its gateway; a container that had no user network until now gets that server in its
 * resolv.conf (in place: it is bind-mounted), as at a start on that network.
 */
async function joinedUserNetwork(engine: EngineInfo, rec: DeepReadonly<ContainerRecord>, net: NetworkRecord, ep: EndpointSettings): Promise<void> {
  const pub = publishingOf(engine);
  if (!pub || net.berth.builtin || !ep.Gateway) return;
  await pub.ensureDns(net.Id, ep.Gateway);
  if (rec.ResolvConfPath) await pointResolvConf(rec.ResolvConfPath, pub.serversOf(rec, networksOf(rec)));
}

/**
 * A running container disconnected from a network: DNS servers no running container uses
 * close; a resolv.conf naming the server of the network it left names another of its user
 * networks' now, or the host's resolvers with none left.
 */
async function leftNetwork(engine: EngineInfo, rec: DeepReadonly<ContainerRecord>): Promise<void> {
  const pub = publishingOf(engine);
  if (!pub) return;
  await pub.closeUnusedDns('');
  if (rec.ResolvConfPath) await pointResolvConf(rec.ResolvConfPath, pub.serversOf(rec, networksOf(rec)));
}

/** Whether published ports can be DNATed: the portmap plugin in `binDirs` and iptables (which it runs) on PATH. */
async function dnatUsable(binDirs: string[]): Promise<boolean> {
  const path = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  const any = (paths: string[]) => Promise.any(paths.map((p) => access(p, constants.X_OK))).then(() => true, () => false);
  return (await any(binDirs.map((d) => join(d, 'portmap')))) && (await any(path.map((d) => join(d, 'iptables'))));
}

export function networkCniPlugin(opts: NetworkCniOptions = {}): Plugin<NetworkCniConfig> {
  const services = new WeakMap<EngineInfo, NetworkService>();
  const netnsOps: NetnsOps = opts.netns ?? { create: createNetns, bind: bindNetns, remove: removeNetns };
  return definePlugin<NetworkCniConfig>({
    name: PLUGIN_NAME,
    type: PLUGIN_TYPE,
    provides: [INetworkService],
    config: { binDirs: ['/usr/lib/cni', '/opt/cni/bin'], confDir: '/etc/cni/net.d', bridge: 'berth0', ...(opts.config ?? {}) },
    validateConfig(c) {
      if (!Array.isArray(c.binDirs) || c.binDirs.some((d) => typeof d !== 'string' || !d.startsWith('/'))) throw new PluginConfigError('binDirs', 'must be a list of absolute paths');
      if (typeof c.confDir !== 'string' || !c.confDir.startsWith('/')) throw new PluginConfigError('confDir', 'must be an absolute path');
      if (typeof c.bridge !== 'string' || !/^[a-zA-Z0-9_.-]{1,15}$/.test(c.bridge)) throw new PluginConfigError('bridge', 'must be an interface name (at most 15 of [a-zA-Z0-9_.-])');
      if (c.mtu !== undefined && (!Number.isInteger(c.mtu) || c.mtu < 68 || c.mtu > 65535)) throw new PluginConfigError('mtu', 'must be an integer between 68 and 65535');
      if (c.ipMasq !== undefined && typeof c.ipMasq !== 'boolean') throw new PluginConfigError('ipMasq', 'must be a boolean');
      for (const k of ['bip', 'fixedCidr'] as const) if (c[k] !== undefined && typeof c[k] !== 'string') throw new PluginConfigError(k, 'must be a string');
      if (c.defaultAddressPools !== undefined && (!Array.isArray(c.defaultAddressPools) || c.defaultAddressPools.some((p) => typeof p?.base !== 'string' || typeof p?.size !== 'number'))) {
        throw new PluginConfigError('defaultAddressPools', 'must be a list of {base: "a.b.c.d/n", size: n}');
      }
    },
    async register(container, ctx) {
      const c = ctx.config;
      if (!opts.skipHostChecks) await hostCheck(c.binDirs!);
      const root = join(ctx.engine.dataRoot, 'network-cni');
      const ipamDir = join(root, 'ipam');
      const runner = new CniRunner({ binDirs: c.binDirs!, cacheDir: join(root, 'results'), ...(opts.exec ? { exec: opts.exec } : {}) });
      const svc = new NetworkService(
        {
          store: new NetworkStore(join(root, 'networks')),
          attacher: new Attacher(runner, { ipamDir }),
          containers: ctx.containers,
          logger: ctx.logger,
          ipamDir,
          events: ctx.container.resolve(IEventBus),
          joined: (rec, net, ep) => joinedUserNetwork(ctx.engine, rec, net, ep),
          left: (rec) => leftNetwork(ctx.engine, rec),
        },
        {
          bridgeName: c.bridge!,
          confDir: c.confDir!,
          ...(c.bip ? { bip: c.bip } : {}),
          ...(c.fixedCidr ? { fixedCidr: c.fixedCidr } : {}),
          ...(c.mtu ? { mtu: c.mtu } : {}),
          ...(c.defaultAddressPools ? { defaultAddressPools: c.defaultAddressPools } : {}),
          ...(c.ipMasq ? { ipMasq: true } : {}),
          ...(opts.routesFile ? { routesFile: opts.routesFile } : {}),
        },
      );
      try {
        await svc.init();
      } catch (err) {
        throw new PluginConfigError('bip', (err as Error).message);
      }
      services.set(ctx.engine, svc);
      container.register(INetworkService, { useValue: svc });
    },
    async close(ctx) {
      await closePublishing(ctx.engine);
    },
    apply(hooks, ctx) {
      const svc = (): NetworkService => {
        const s = services.get(ctx.engine);
        if (!s) throw new Error('network-cni: service not registered');
        return s;
      };
      const netnsPath = (id: string) => join(ctx.engine.execRoot, 'netns', id);
      const attaches = (r: DeepReadonly<ContainerRecord>) => attachesContainer(r, !!svc().find('bridge'));
      // a user namespace (the userns plugin's remap, unless --userns=host): known from its /info security option
      const usernsActive = (r: DeepReadonly<ContainerRecord>) =>
        r.HostConfig?.UsernsMode !== 'host' && ctx.container.isRegistered(IEngine, true) && ctx.container.resolve(IEngine).securityOptions().some((o) => o.startsWith('name=userns'));

      /** One ADD per network in the namespace at `file` (lo is up already: netns.ts); NetworkSettings as dockerd fills them. */
      const attachAll = async (rec: ContainerRecord, file: string): Promise<void> => {
        const s = svc();
        rec.NetworkSettings.SandboxKey = file;
        rec.NetworkSettings.SandboxID = rec.ID;
        const out: Record<string, NonNullable<ContainerRecord['NetworkSettings']['Networks'][string]>> = {};
        for (const [i, ref] of networksOf(rec).entries()) {
          let net;
          try {
            net = s.get(ref);
          } catch (err) {
            if (err instanceof NotFoundError) throw new NotFoundError(`failed to set up container networking: network ${ref} not found`);
            throw err;
          }
          const req: EndpointRequest = { ...((rec.NetworkSettings.Networks[ref] ?? {}) as EndpointRequest) };
          if (i === 0 && !req.MacAddress && rec.Config.MacAddress) req.MacAddress = rec.Config.MacAddress;
          out[net.Name] = await s.attach(rec, net, file, `eth${i}`, {
            ...(req.IPAMConfig ? { IPAMConfig: req.IPAMConfig } : {}),
            ...(req.Aliases ? { Aliases: req.Aliases } : {}),
            ...(req.MacAddress ? { MacAddress: req.MacAddress } : {}),
            ...(req.DriverOpts ? { DriverOpts: req.DriverOpts } : {}),
            ...(req.Links ? { Links: req.Links } : {}),
            // the ports publish.ts reserved for this start: DNAT towards the first network's address
            ...(i === 0 ? publishing.forAttach(rec.ID) : {}),
          });
        }
        rec.NetworkSettings.Networks = out;
        // the legacy container-wide fields: the default bridge's endpoint (as dockerd)
        const b = out.bridge;
        Object.assign(rec.NetworkSettings, {
          Bridge: '',
          EndpointID: b?.EndpointID ?? '',
          Gateway: b?.Gateway ?? '',
          IPAddress: b?.IPAddress ?? '',
          IPPrefixLen: b?.IPPrefixLen ?? 0,
          MacAddress: b?.MacAddress ?? '',
        });
      };
      // published ports and DNS on user networks (publish.ts)
      // (DNAT through portmap unless it or iptables is missing; the host checks are off in tests, whose fake CNI has portmap)
      const dnat = opts.skipHostChecks ? {} : { dnat: () => dnatUsable(ctx.config.binDirs!) };
      const publishing = applyPublishing(hooks, ctx, svc, { attaches, networksOf, opts: { ...(opts.publishing ?? {}), ...dnat } });

      hooks.beforeCreate.tapPromise({ name: PLUGIN_NAME, stage: Stage.NETWORK - 10, when: attaches }, async (c) => {
        const ns = c.container.NetworkSettings;
        if (ns.Networks.default) {
          ns.Networks.bridge ??= ns.Networks.default;
          delete ns.Networks.default;
        }
        for (const name of networksOf(c.container)) {
          const net = svc().get(name);
          svc().checkRequest(net, ns.Networks[name] as EndpointRequest | undefined);
        }
        const mac = c.container.Config.MacAddress;
        if (mac) svc().checkRequest(svc().get(networksOf(c.container)[0]), { MacAddress: mac });
      });

      // containers it attaches, and those whose --add-host names host-gateway (network-basic writes that)
      const needsGateway = (r: DeepReadonly<ContainerRecord>) => (r.HostConfig?.ExtraHosts ?? []).some((h) => /[=:]host-gateway$/.test(h));
      hooks.networking.tapPromise({ name: PLUGIN_NAME, stage: Stage.NETWORK - 10, when: (r) => attaches(r) || needsGateway(r) }, async (c) => {
        const rec = c.container;
        const s = svc();
        // --add-host X:host-gateway (network-basic writes it) in every mode: the default bridge's gateway
        const gw = s.hostGateway();
        if (gw) c.hostGatewayIP = gw;
        if (!attaches(rec)) return;
        if (usernsActive(rec)) {
          // A container in a user namespace must own its network namespace (else it cannot mount
          // /sys): the runtime makes it, the attach runs in beforeStart (dockerd does the same).
          c.data.set(DEFERRED, true);
          return;
        }
        const file = netnsPath(rec.ID);
        await netnsOps.remove(file); // a namespace left by a daemon killed mid-start
        await netnsOps.create(file);
        c.networkNamespacePath = file;
        await attachAll(rec, file);
      });

      // the deferred attach of a user-namespaced container: its runtime made the namespace
      hooks.beforeStart.tapPromise({ name: PLUGIN_NAME, stage: Stage.NETWORK - 10, when: attaches }, async (c) => {
        if (!c.data.get(DEFERRED)) return;
        if (!c.pid) throw new Error(`network-cni: container ${c.container.ID} has no process to attach its network to`);
        const rec = c.container;
        const file = netnsPath(rec.ID);
        await netnsOps.remove(file);
        await netnsOps.bind(file, `/proc/${c.pid}/ns/net`);
        await attachAll(rec, file);
        // network-basic wrote the hosts file before the addresses existed: add them in place (it is bind-mounted already)
        const ips = [...new Set(Object.values(rec.NetworkSettings.Networks).map((e) => e.IPAddress ?? '').filter(Boolean))];
        if (c.hostsPath) await addHostsRecords(c.hostsPath, rec, ips);
      });

      hooks.releaseNetwork.tapPromise({ name: PLUGIN_NAME, stage: Stage.NETWORK - 10, when: (r) => attachesContainer(r) }, async (c) => {
        let first: unknown;
        await svc()
          .releaseAll(c.container.ID)
          .catch((err: unknown) => (first = err));
        await netnsOps.remove(netnsPath(c.container.ID));
        if (first) throw first;
      });
    },
  });
}

