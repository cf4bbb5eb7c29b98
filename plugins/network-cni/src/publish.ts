/**
 * network-cni's taps for published ports and DNS (the plugin's apply() calls applyPublishing):
 *  - networking, before the CNI attachments (Stage.NETWORK - 15): the container's published
 *    ports are reserved by binding their proxy listeners (proxy.ts), NetworkSettings.Ports is
 *    filled as dockerd fills it, and the ports DNAT serves wait for the first network's ADD
 *    (plugin.ts asks forAttach: portmap's portMappings, conflist.ts); a port that cannot be had
 *    fails the start (which runs releaseNetwork: nothing is left).
 *  - networking, after the attachments (Stage.NETWORK - 5; beforeStart for a container whose
 *    attach is deferred): the listeners relay to the first network's address from then on.
 *    Each user network the container is on gets its DNS server (dns.ts) on the network's gateway.
 *    A server answers the container asking (known by its address on that network) the names of
 *    every network that container is on, as dockerd's embedded DNS does: the network the query
 *    came in on first, then the container's other networks in order; `name.network` only on
 *    that network. A name of a network the asker is not on is relayed (isolation) — to the
 *    asker's --dns servers when it has some (dockerd's ExtServers), else the host's resolvers.
 *  - networking, after network-basic wrote resolv.conf (Stage.NETWORK + 10; beforeStart for a
 *    deferred attach): on a user network the container's resolv.conf names the DNS server of
 *    its first user network (resolv.ts) instead of the host's resolvers (which the server
 *    relays to), with `options ndots:0` as dockerd writes. A connect or disconnect of a running
 *    container moves it to another of its user networks' servers, or back to the host's
 *    resolvers with none left (plugin.ts `joined`/`left` → pointResolvConf).
 *  - releaseNetwork: the listeners close (portmap's rules go with the CNI DEL, from the result
 *    cache); a network's DNS server closes with its last running container.
 *  - afterLiveRestore: a container still running after a daemon restart gets its listeners back
 *    on the very host ports its record names, and its networks their DNS servers.
 */
import { Stage, SystemError, type ContainerRecord, type DeepReadonly, type EngineInfo, type Logger, type PluginContext, type PluginHooks } from '@berth/core';
import { newEndpointId } from './attach.js';
import { DnsServer, hostResolvers, type Upstream } from './dns.js';
import { boundFromRecord, ephemeralRange, hasPorts, portMappings, portRequests, portsMap, type BoundPort, type CniPortMapping } from './ports.js';
import { PortProxy } from './proxy.js';
import { pointResolvConf } from './resolv.js';
import type { NetworkService } from './service.js';

const TAP = 'network-cni';
/** How many upstreams a DNS server tries for one question (dockerd's maxExtDNS; resolv.conf's MAXNS). */
const MAX_UPSTREAMS = 3;

export interface PublishingOptions {
  /** The host's resolv.conf the DNS servers relay to (tests). */
  resolvConf?: string;
  /** The port the DNS servers listen on (tests; 53). */
  dnsPort?: number;
  /** The port the DNS servers relay to on the upstreams (a container's --dns servers, the host's resolvers) (tests; 53). */
  upstreamPort?: number;
  /** The ephemeral port range file (tests). */
  portRangeFile?: string;
  /**
   * Whether portmap's DNAT can serve published ports (asked once, at the first publish: the
   * plugin checks the portmap binary and iptables); without it the proxy serves every client.
   * Absent: it can.
   */
  dnat?: () => Promise<boolean>;
}

/** What the taps keep per engine: the proxy and the DNS servers by network ID. */
export class Publishing {
  readonly proxy: PortProxy;
  readonly dns = new Map<string, { server: DnsServer; address: string }>();
  /** Ports reserved by a start whose first attach has not run yet: the endpoint ID it gets, what DNAT serves. */
  private readonly reserved = new Map<string, { endpointId: string; mappings: CniPortMapping[] }>();
  /** Where a container's listeners relay to (its first network's address), once it has one. */
  private readonly targets = new Map<string, string>();
  private dnat: Promise<boolean> | undefined;

  constructor(
    private readonly containers: PluginContext<unknown>['containers'],
    private readonly logger: Logger,
    private readonly opts: PublishingOptions = {},
  ) {
    this.proxy = new PortProxy({ range: () => ephemeralRange(opts.portRangeFile) });
  }

  /** What the first network's attach of a start gets: the endpoint ID and portmap's portMappings (none: {}). */
  forAttach(containerId: string): { endpointId?: string; portMappings?: CniPortMapping[] } {
    const r = this.reserved.get(containerId);
    if (!r) return {};
    return { endpointId: r.endpointId, ...(r.mappings.length ? { portMappings: r.mappings } : {}) };
  }

  /**
   * Reserve the container's published ports (bind the listeners, relaying nowhere yet); a port
   * that cannot be had → dockerd's error naming the endpoint the first network's attach would get.
   */
  async reserve(rec: DeepReadonly<ContainerRecord>): Promise<BoundPort[]> {
    const endpointId = newEndpointId();
    const bound = await this.proxy.publish(rec.ID, portRequests(rec), this.relay(rec.ID)).catch((err: unknown) => {
      if (!(err instanceof SystemError)) throw err;
      throw new SystemError(`driver failed programming external connectivity on endpoint ${rec.Name.replace(/^\//, '')} (${endpointId}): ${err.message}`);
    });
    this.reserved.set(rec.ID, { endpointId, mappings: (await this.dnatUsable()) ? portMappings(bound) : [] });
    return bound;
  }

  /** Whether DNAT serves published ports (checked once; a warning when not: the proxy serves all). */
  private dnatUsable(): Promise<boolean> {
    this.dnat ??= (this.opts.dnat?.() ?? Promise.resolve(true)).then((ok) => {
      if (!ok) this.logger.warn('published ports: the CNI plugin portmap or iptables is missing, so no DNAT; the userland proxy serves every client (the container sees the bridge gateway as the peer)');
      return ok;
    });
    return this.dnat;
  }

  /** The address a container's listeners relay to, asked per connection ('' until it has one). */
  relay(containerId: string): () => string {
    return () => this.targets.get(containerId) ?? '';
  }

  /** The listeners relay to `address` from now on; the reservation is done with. */
  relayTo(containerId: string, address: string): void {
    this.reserved.delete(containerId);
    if (address) this.targets.set(containerId, address);
  }

  /** Close the container's listeners and forget its reservation and address. */
  async release(containerId: string): Promise<void> {
    this.reserved.delete(containerId);
    this.targets.delete(containerId);
    await this.proxy.release(containerId);
  }

  /**
   * What the DNS server of network `netId` answers the asker at address `from` for `name`:
   * the asker (the running container with that address on `netId`) resolves the names of all
   * its networks, `netId`'s first, then its others in their order; `name.<network>` resolves
   * `name` on that one of its networks only. An asker berth does not know resolves `netId`'s.
   */
  resolve(netId: string, name: string, from: string): string[] | undefined {
    const asker = this.askerOf(netId, from);
    const nets = Object.entries(asker?.NetworkSettings?.Networks ?? {}).flatMap(([key, ep]) => (ep?.NetworkID ? [{ key: key.toLowerCase(), id: ep.NetworkID }] : []));
    const ids = [netId, ...nets.map((n) => n.id).filter((id) => id !== netId)];
    for (const id of ids) {
      const ips = this.lookup(id, name);
      if (ips) return ips;
    }
    for (const n of nets) {
      if (name.endsWith(`.${n.key}`) && name.length > n.key.length + 1) {
        const ips = this.lookup(n.id, name.slice(0, -n.key.length - 1));
        if (ips) return ips;
      }
    }
    return undefined;
  }

  /**
   * Where the DNS server of network `netId` relays what it does not answer the asker at address
   * `from`: the asker's --dns servers (HostConfig.Dns) when it has some, as dockerd's embedded
   * DNS relays to a container's ExtServers, else the host's resolvers; the first 3, in order.
   */
  async upstreams(netId: string, from: string): Promise<Upstream[]> {
    const own = this.askerOf(netId, from)?.HostConfig?.Dns ?? [];
    const servers = own.length ? own.map((host) => ({ host, port: 53 })) : await hostResolvers(this.opts.resolvConf);
    const port = this.opts.upstreamPort;
    const first = servers.slice(0, MAX_UPSTREAMS);
    return port === undefined ? first : first.map((s) => ({ ...s, port }));
  }

  /** The running container with address `from` on network `netId` (undefined: none berth knows). */
  private askerOf(netId: string, from: string): DeepReadonly<ContainerRecord> | undefined {
    if (!from) return undefined;
    return this.containers.list((r) => r.State.Running && Object.values(r.NetworkSettings?.Networks ?? {}).some((ep) => ep?.NetworkID === netId && ep.IPAddress === from))[0];
  }

  /** The names of the running containers on network `netId` → their addresses there. */
  lookup(netId: string, name: string): string[] | undefined {
    const ips: string[] = [];
    for (const c of this.containers.list((r) => r.State.Running && onNetwork(r, netId))) {
      for (const ep of Object.values(c.NetworkSettings?.Networks ?? {})) {
        if (ep?.NetworkID !== netId || !ep.IPAddress) continue;
        if ((ep.DNSNames ?? []).some((n) => n.toLowerCase() === name)) ips.push(ep.IPAddress);
      }
    }
    return ips.length ? ips : undefined;
  }

  /** The network's DNS server on `address` (started once; a failure to bind is logged, not fatal). */
  async ensureDns(netId: string, address: string): Promise<void> {
    const cur = this.dns.get(netId);
    if (cur?.address === address) return;
    if (cur) await this.closeDns(netId);
    const upstreams = (from: string): Promise<Upstream[]> => this.upstreams(netId, from);
    const server = new DnsServer({
      address,
      port: this.opts.dnsPort ?? 53,
      upstreams,
      lookup: (name, from) => this.resolve(netId, name, from),
      onError: (err) => this.logger.debug('DNS server: a question could not be answered', { network: netId, error: (err as Error)?.message ?? String(err) }),
    });
    try {
      await server.start();
      this.dns.set(netId, { server, address });
    } catch (err) {
      this.logger.warn('DNS server for a user network could not start: names will not resolve there', { network: netId, address, error: (err as Error).message });
    }
  }

  async closeDns(netId: string): Promise<void> {
    const cur = this.dns.get(netId);
    this.dns.delete(netId);
    await cur?.server.close();
  }

  /** The DNS servers (gateways) of the container's user networks, in `order` (network names). */
  serversOf(rec: DeepReadonly<ContainerRecord>, order: readonly string[]): string[] {
    return order.flatMap((name) => {
      const ep = rec.NetworkSettings?.Networks?.[name];
      const served = ep?.NetworkID ? this.dns.get(ep.NetworkID) : undefined;
      return served && served.address === ep?.Gateway ? [served.address] : [];
    });
  }

  /** Close the DNS servers no running container other than `leaving` still uses. */
  async closeUnusedDns(leaving: string): Promise<void> {
    const used = new Set<string>();
    for (const c of this.containers.list((r) => r.State.Running && r.ID !== leaving)) {
      for (const ep of Object.values(c.NetworkSettings?.Networks ?? {})) if (ep?.NetworkID) used.add(ep.NetworkID);
    }
    for (const id of [...this.dns.keys()]) if (!used.has(id)) await this.closeDns(id);
  }

  async close(): Promise<void> {
    this.reserved.clear();
    this.targets.clear();
    await this.proxy.closeAll();
    await Promise.all([...this.dns.keys()].map((id) => this.closeDns(id)));
  }
}

/** Whether the container has an endpoint on network `netId`. */
function onNetwork(rec: DeepReadonly<ContainerRecord>, netId: string): boolean {
  return Object.values(rec.NetworkSettings?.Networks ?? {}).some((ep) => ep?.NetworkID === netId);
}

/** The address published ports relay to: the container's first network's. */
function targetOf(rec: DeepReadonly<ContainerRecord>, first: string): string {
  const nets = rec.NetworkSettings?.Networks ?? {};
  return nets[first]?.IPAddress || Object.values(nets).find((e) => e?.IPAddress)?.IPAddress || '';
}

const byEngine = new WeakMap<EngineInfo, Publishing>();

/** The engine's Publishing (tests, leak counts). */
export function publishingOf(engine: EngineInfo): Publishing | undefined {
  return byEngine.get(engine);
}

export async function closePublishing(engine: EngineInfo): Promise<void> {
  await byEngine.get(engine)?.close();
  byEngine.delete(engine);
}

export function applyPublishing(
  hooks: PluginHooks,
  ctx: PluginContext<unknown>,
  svc: () => NetworkService,
  deps: { attaches: (c: DeepReadonly<ContainerRecord>) => boolean; networksOf: (c: DeepReadonly<ContainerRecord>) => string[]; opts?: PublishingOptions },
): Publishing {
  const pub = new Publishing(ctx.containers, ctx.logger, deps.opts);
  byEngine.set(ctx.engine, pub);
  const userNets = (rec: DeepReadonly<ContainerRecord>) =>
    deps.networksOf(rec).flatMap((name) => {
      const ep = rec.NetworkSettings?.Networks?.[name];
      let builtin = true;
      try {
        builtin = !!svc().get(name).berth.builtin;
      } catch {
        // a network removed meanwhile
      }
      return !builtin && ep?.NetworkID && ep.Gateway ? [{ id: ep.NetworkID, gateway: ep.Gateway }] : [];
    });

  // before the attachments (plugin.ts, NETWORK - 10): the ports are had, or the start fails with no ADD run
  hooks.networking.tapPromise({ name: `${TAP}-ports`, stage: Stage.NETWORK - 15, when: deps.attaches }, async (c) => {
    const rec = c.container;
    if (hasPorts(rec)) rec.NetworkSettings.Ports = portsMap(rec, await pub.reserve(rec));
  });

  hooks.networking.tapPromise({ name: TAP, stage: Stage.NETWORK - 5, when: deps.attaches }, async (c) => {
    const rec = c.container;
    pub.relayTo(rec.ID, targetOf(rec, deps.networksOf(rec)[0]));
    for (const n of userNets(rec)) await pub.ensureDns(n.id, n.gateway);
  });

  // a container whose attach was deferred to beforeStart (plugin.ts, NETWORK - 10) has its addresses now:
  // its networks' DNS servers, and its resolv.conf naming the first (network-basic wrote it at networking)
  hooks.beforeStart.tapPromise({ name: TAP, stage: Stage.NETWORK - 5, when: deps.attaches }, async (c) => {
    const rec = c.container;
    pub.relayTo(rec.ID, targetOf(rec, deps.networksOf(rec)[0]));
    for (const n of userNets(rec)) await pub.ensureDns(n.id, n.gateway);
    const servers = pub.serversOf(rec, deps.networksOf(rec));
    if (c.resolvConfPath && servers.length) await pointResolvConf(c.resolvConfPath, servers);
  });

  hooks.networking.tapPromise({ name: `${TAP}-dns`, stage: Stage.NETWORK + 10, when: deps.attaches }, async (c) => {
    const servers = pub.serversOf(c.container, deps.networksOf(c.container));
    if (c.resolvConfPath && servers.length) await pointResolvConf(c.resolvConfPath, servers);
  });

  hooks.releaseNetwork.tapPromise({ name: TAP, stage: Stage.NETWORK - 5, when: deps.attaches }, async (c) => {
    await pub.release(c.container.ID);
    await pub.closeUnusedDns(c.container.ID);
  });

  hooks.afterLiveRestore.tapPromise({ name: TAP, when: deps.attaches }, async (c) => {
    const rec = c.container;
    if (c.state?.status !== 'running') return;
    const bound: BoundPort[] = boundFromRecord(rec);
    if (bound.length) {
      const requests = bound.map((b) => ({ containerPort: b.containerPort, proto: b.proto, hostIp: b.hostIp, hostPorts: [b.hostPort, b.hostPort] as [number, number] }));
      pub.relayTo(rec.ID, targetOf(rec, deps.networksOf(rec)[0]));
      await pub.proxy.publish(rec.ID, requests, pub.relay(rec.ID));
    }
    for (const n of userNets(rec)) await pub.ensureDns(n.id, n.gateway);
  });
  return pub;
}
