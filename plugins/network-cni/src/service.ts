/**
 * Docker's networks on CNI: what the /networks routes and the plugin's start/release taps call.
 *  - the predefined networks (bridge = the Linux bridge `berth0` by default, host, none) made
 *    at start: the default bridge's subnet from `bip`, else the one it had, else dockerd's rule
 *    (172.17.0.0/16 unless a host route or another network overlaps it; then the next of the
 *    default address pools);
 *  - create / list (filters) / inspect (Containers: the active endpoints) / remove / prune;
 *  - connect / disconnect (a running container gets or loses an interface at once, its
 *    /etc/hosts record and its DNS server: hosts.ts, the plugin's `joined`/`left`);
 *  - `network` events as dockerd logs them (create, destroy, connect, disconnect, prune);
 *  - attachAll / releaseAll for a start and its release (the plugin's taps).
 * Active endpoints are the CNI result cache's attachments (attach.ts), the addresses are the
 * containers' NetworkSettings (the records).
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ConflictError,
  ForbiddenError,
  InvalidParameterError,
  NotFoundError,
  checkFilterNames,
  matchLabels,
  matchNoLabel,
  parseDockerTimeMs,
  type ContainerLookup,
  type ContainerRecord,
  type DeepReadonly,
  type DockerFilters,
  type EndpointSettings,
  type EventBus,
  type Logger,
} from '@berth/core';
import { randomBytes } from 'node:crypto';
import { Attacher, newEndpointId, type EndpointRequest } from './attach.js';
import { parseConfList, type CniConfList } from './cni.js';
import { OPT_MASQ, parseGoBool } from './conflist.js';
import { addHostsRecords, removeHostsRecords } from './hosts.js';
import { DEFAULT_POOLS, contains, firstHost, formatCidr, hostRoutes, overlaps, parseBip, parseCidr, pickSubnet, rangeWithin, type AddressPool, type Cidr } from './ipam.js';
import { PREDEFINED, type IpamPoolConfig, type NetworkRecord, type NetworkStore } from './store.js';

const execFileP = promisify(execFile);

export interface NetworkOptions {
  /** The default bridge's Linux bridge (dockerd's docker0). */
  bridgeName: string;
  /** `--bip`: the default bridge's address with prefix. */
  bip?: string;
  /** `--fixed-cidr`: the part of the default bridge's subnet containers get addresses from. */
  fixedCidr?: string;
  /** `--mtu`: the default bridge's MTU. */
  mtu?: number;
  /** daemon.json default-address-pools. */
  defaultAddressPools?: AddressPool[];
  /** `--ip-masq`: the default bridge masquerades traffic leaving the machine (berth's default: no). */
  ipMasq?: boolean;
  /** Where conflists of custom drivers are (`docker network create -d <type>`). */
  confDir: string;
  /** The host's route table (tests give their own). */
  routesFile?: string;
}

/** The body of POST /networks/create. */
export interface NetworkCreateRequest {
  Name?: string;
  Driver?: string;
  Scope?: string;
  Internal?: boolean;
  Attachable?: boolean;
  Ingress?: boolean;
  ConfigOnly?: boolean;
  ConfigFrom?: { Network?: string } | null;
  EnableIPv6?: boolean;
  EnableIPv4?: boolean;
  CheckDuplicate?: boolean;
  IPAM?: { Driver?: string; Options?: Record<string, string> | null; Config?: Array<IpamPoolConfig & { AuxiliaryAddresses?: Record<string, string> | null }> | null } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

/** A network as the API shows it. */
export type NetworkResource = Omit<NetworkRecord, 'berth'> & { Containers: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }> };

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'label!', 'name', 'scope', 'type'];
const PRUNE_FILTERS = ['label', 'label!', 'until'];
const OPT_BRIDGE = 'com.docker.network.bridge.name';
const OPT_MTU = 'com.docker.network.driver.mtu';

export interface ServiceDeps {
  store: NetworkStore;
  attacher: Attacher;
  containers: ContainerLookup;
  logger: Logger;
  /** host-local's dataDir (one directory per network ID). */
  ipamDir: string;
  /** Where `network` events go (dockerd's create, destroy, connect, disconnect, prune). */
  events?: Pick<EventBus, 'publish'>;
  /** A running container joined `net` through connect (its DNS server, resolv.conf: the plugin's publishing). */
  joined?: (rec: DeepReadonly<ContainerRecord>, net: NetworkRecord, ep: EndpointSettings) => Promise<void>;
  /** A running container left a network through disconnect. */
  left?: (rec: DeepReadonly<ContainerRecord>) => Promise<void>;
}

export class NetworkService {
  /** create/remove/prune one at a time: two creates must not pick the same free subnet or name. */
  private queue: Promise<unknown> = Promise.resolve();
  constructor(
    private readonly d: ServiceDeps,
    private readonly opts: NetworkOptions,
  ) {}

  /** Load the store and make or update the predefined networks (no default bridge with bridge name `none`, as dockerd's -b none). */
  async init(): Promise<void> {
    await this.d.store.load();
    for (const [name, driver] of [['host', 'host'], ['none', 'null']] as const) {
      if (!this.d.store.find(name)) {
        const n = this.newRecord(undefined, name, driver);
        n.berth = { builtin: true };
        await this.d.store.save(n);
      }
    }
    const bridge = this.d.store.find('bridge');
    if (this.opts.bridgeName === 'none') {
      if (bridge?.berth.builtin) await this.d.store.remove(bridge.Id);
      return;
    }
    let subnet: Cidr;
    let gateway: string;
    if (this.opts.bip) ({ subnet, gateway } = parseBip(this.opts.bip));
    else if (bridge?.IPAM.Config[0] && bridge.berth.bridge === this.opts.bridgeName) {
      subnet = parseCidr(bridge.IPAM.Config[0].Subnet);
      gateway = bridge.IPAM.Config[0].Gateway ?? firstHost(subnet);
    } else {
      subnet = pickSubnet(this.opts.defaultAddressPools ?? DEFAULT_POOLS, await this.taken(bridge?.Id));
      gateway = firstHost(subnet);
    }
    if (this.opts.fixedCidr) rangeWithin(subnet, this.opts.fixedCidr, 'fixed-cidr');
    const def = this.newRecord(bridge?.Id, 'bridge', 'bridge', bridge?.Created);
    def.IPAM.Config = [{ Subnet: formatCidr(subnet), Gateway: gateway }];
    def.Options = {
      'com.docker.network.bridge.default_bridge': 'true',
      'com.docker.network.bridge.enable_icc': 'true',
      [OPT_MASQ]: String(this.opts.ipMasq === true),
      'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
      [OPT_BRIDGE]: this.opts.bridgeName,
      [OPT_MTU]: String(this.opts.mtu ?? 1500),
    };
    def.berth = { bridge: this.opts.bridgeName, builtin: true, ...(this.opts.mtu ? { mtu: this.opts.mtu } : {}), ...(this.opts.fixedCidr ? { fixedCidr: this.opts.fixedCidr } : {}) };
    if (JSON.stringify(def) !== JSON.stringify(bridge)) await this.d.store.save(def);
  }

  private newRecord(id: string | undefined, name: string, driver: string, created?: string): NetworkRecord {
    return {
      Name: name,
      Id: id ?? randomBytes(32).toString('hex'),
      Created: created ?? new Date().toISOString(),
      Scope: 'local',
      Driver: driver,
      EnableIPv4: true,
      EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: [] },
      Internal: false,
      Attachable: false,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Options: {},
      Labels: {},
      berth: {},
    };
  }

  /** Subnets in use: the networks' (but `except`'s) and the host's routes not on berth's own bridges. */
  private async taken(except?: string): Promise<Cidr[]> {
    const nets = this.d.store.list().filter((n) => n.Id !== except);
    const ours = new Set(nets.map((n) => n.berth.bridge).filter(Boolean));
    ours.add(this.opts.bridgeName);
    const routes = (await hostRoutes(this.opts.routesFile)).filter((r) => !ours.has(r.iface));
    return [...nets.flatMap((n) => n.IPAM.Config.map((c) => parseCidr(c.Subnet))), ...routes];
  }

  /** The default bridge's gateway: dockerd's host-gateway address. */
  hostGateway(): string | undefined {
    return this.d.store.find('bridge')?.IPAM.Config[0]?.Gateway;
  }

  get(ref: string): NetworkRecord {
    return this.d.store.get(ref);
  }

  find(ref: string): NetworkRecord | undefined {
    return this.d.store.find(ref);
  }

  /** A `network` event as dockerd logs it: the network's ID, its name and driver (+ the container's ID). */
  private event(n: NetworkRecord, action: 'create' | 'destroy' | 'connect' | 'disconnect', containerId?: string): void {
    this.d.events?.publish('network', action, n.Id, { ...(containerId ? { container: containerId } : {}), name: n.Name, type: n.Driver });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  create(req: NetworkCreateRequest): Promise<{ Id: string; Warning: string }> {
    return this.serial(() => this.createNow(req));
  }

  private async createNow(req: NetworkCreateRequest): Promise<{ Id: string; Warning: string }> {
    const name = req.Name ?? '';
    if (!NAME_RE.test(name)) throw new InvalidParameterError(`invalid network name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (this.d.store.list().some((n) => n.Name === name)) throw new ConflictError(`network with name ${name} already exists`);
    if (req.EnableIPv6) throw new InvalidParameterError('IPv6 networks are not supported by berth yet (EnableIPv6)');
    if (req.EnableIPv4 === false) throw new InvalidParameterError('IPv4 cannot be disabled: berth networks are IPv4 only');
    if (req.Ingress || req.ConfigOnly || req.ConfigFrom?.Network) throw new InvalidParameterError('ingress, config-only and config-from networks are swarm features berth does not have');
    if (req.Scope && req.Scope !== 'local') throw new InvalidParameterError(`scope ${req.Scope} is not supported: berth networks are local`);
    const driver = req.Driver || 'bridge';
    if (driver === 'host' || driver === 'null') throw new ForbiddenError(`only one instance of "${driver}" network is allowed`);
    const n = this.newRecord(undefined, name, driver);
    n.Internal = !!req.Internal;
    n.Attachable = !!req.Attachable;
    n.Options = { ...(req.Options ?? {}) };
    n.Labels = { ...(req.Labels ?? {}) };
    const ipam = req.IPAM ?? {};
    if (ipam.Driver && ipam.Driver !== 'default') throw new InvalidParameterError(`IPAM driver ${ipam.Driver} is not supported by berth (only "default")`);
    n.IPAM.Options = ipam.Options ?? null;
    if (driver === 'bridge') {
      n.IPAM.Config = [await this.pool(ipam.Config ?? [])];
      n.berth.bridge = n.Options[OPT_BRIDGE] ?? `br-${n.Id.slice(0, 12)}`;
      if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(n.berth.bridge)) throw new InvalidParameterError(`invalid bridge name ${JSON.stringify(n.berth.bridge)}: at most 15 of [a-zA-Z0-9_.-]`);
      if (this.d.store.list().some((o) => o.berth.bridge === n.berth.bridge)) throw new ConflictError(`bridge ${n.berth.bridge} is used by another network`);
      // dockerd's user networks masquerade unless told not to; berth's only when told to (docs/networking.md)
      if (n.Options[OPT_MASQ] !== undefined && parseGoBool(n.Options[OPT_MASQ]) === undefined) {
        throw new InvalidParameterError(`invalid value ${JSON.stringify(n.Options[OPT_MASQ])} for option ${OPT_MASQ}: expected a boolean`);
      }
      if (n.Options[OPT_MTU] !== undefined) {
        const mtu = Number(n.Options[OPT_MTU]);
        if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new InvalidParameterError(`invalid MTU ${JSON.stringify(n.Options[OPT_MTU])}`);
        n.berth.mtu = mtu;
      }
    } else {
      n.berth.conflist = await this.customConfList(driver);
    }
    await this.d.store.save(n);
    this.event(n, 'create');
    return { Id: n.Id, Warning: '' };
  }

  /** The one IPv4 pool of a bridge network: given (checked) or the first free one of the default pools. */
  private async pool(config: NonNullable<NonNullable<NetworkCreateRequest['IPAM']>['Config']>): Promise<IpamPoolConfig> {
    if (config.length > 1) throw new InvalidParameterError('berth networks have one IPv4 subnet: more than one IPAM config given');
    const c = config[0];
    if (c && Object.keys(c.AuxiliaryAddresses ?? {}).length) throw new InvalidParameterError('IPAM AuxiliaryAddresses are not supported by berth yet');
    const taken = await this.taken();
    if (!c?.Subnet) {
      if (c?.Gateway || c?.IPRange) throw new InvalidParameterError('a gateway or ip-range needs a subnet');
      const s = pickSubnet(this.opts.defaultAddressPools ?? DEFAULT_POOLS, taken);
      return { Subnet: formatCidr(s), Gateway: firstHost(s) };
    }
    const s = parseCidr(c.Subnet, 'subnet', true);
    if (s.prefix > 30) throw new InvalidParameterError(`subnet ${c.Subnet} is too small: a /30 at least`);
    if (this.d.store.list().some((n) => n.IPAM.Config.some((p) => overlaps(parseCidr(p.Subnet), s)))) throw new ForbiddenError('invalid pool request: Pool overlaps with other one on this address space');
    const gateway = c.Gateway || firstHost(s);
    if (!contains(s, gateway)) throw new InvalidParameterError(`gateway ${gateway} is not within the subnet ${c.Subnet}`);
    if (c.IPRange) rangeWithin(s, c.IPRange, 'ip-range');
    return { Subnet: formatCidr(s), Gateway: gateway, ...(c.IPRange ? { IPRange: c.IPRange } : {}) };
  }

  /** A custom driver: the conflist in the config dir whose name or first plugin's type is `driver`. */
  private async customConfList(driver: string): Promise<CniConfList> {
    const files = (await readdir(this.opts.confDir).catch(() => [] as string[])).filter((f) => f.endsWith('.conflist')).sort();
    for (const f of files) {
      let list: CniConfList;
      try {
        list = parseConfList(await readFile(join(this.opts.confDir, f), 'utf8'));
      } catch (err) {
        this.d.logger.warn('skipping an unreadable CNI config list', { file: f, error: (err as Error).message });
        continue;
      }
      if (list.name === driver || list.plugins[0]?.type === driver) return list;
    }
    throw new NotFoundError(`plugin "${driver}" not found: no CNI config list named ${driver} (or whose first plugin is ${driver}) in ${this.opts.confDir}`);
  }

  /** The network's active endpoints, from the containers' records and the CNI result cache. */
  async endpoints(n: NetworkRecord): Promise<NetworkResource['Containers']> {
    const out: NetworkResource['Containers'] = {};
    for (const c of this.d.containers.list()) {
      const e = Object.values(c.NetworkSettings?.Networks ?? {}).find((x) => x.NetworkID === n.Id);
      if (!e?.EndpointID) continue;
      if (!(await this.d.attacher.attachments(c.ID)).some((a) => a.networkId === n.Id)) continue;
      out[c.ID] = { Name: c.Name.replace(/^\//, ''), EndpointID: e.EndpointID, MacAddress: e.MacAddress ?? '', IPv4Address: e.IPAddress ? `${e.IPAddress}/${e.IPPrefixLen}` : '', IPv6Address: '' };
    }
    return out;
  }

  async inspect(ref: string): Promise<NetworkResource> {
    const n = this.d.store.get(ref);
    return this.resource(n, await this.endpoints(n));
  }

  private resource(n: NetworkRecord, containers: NetworkResource['Containers']): NetworkResource {
    const { berth: _b, ...api } = n;
    return { ...structuredClone(api), Containers: containers };
  }

  async list(filters?: DockerFilters): Promise<NetworkResource[]> {
    checkFilterNames(filters, LIST_FILTERS);
    const f = (k: string) => filters?.get(k);
    const out: NetworkResource[] = [];
    for (const n of this.d.store.list()) {
      const builtin = PREDEFINED.includes(n.Name as (typeof PREDEFINED)[number]) && !!n.berth.builtin;
      if (f('name')?.size && ![...f('name')!].some((v) => n.Name.includes(v))) continue;
      if (f('id')?.size && ![...f('id')!].some((v) => n.Id.startsWith(v))) continue;
      if (f('driver')?.size && !f('driver')!.has(n.Driver)) continue;
      if (f('scope')?.size && !f('scope')!.has('local')) continue;
      if (f('type')?.size) {
        for (const t of f('type')!) if (t !== 'custom' && t !== 'builtin') throw new InvalidParameterError(`invalid filter: 'type'='${t}'`);
        if (!f('type')!.has(builtin ? 'builtin' : 'custom')) continue;
      }
      if (!matchLabels(f('label'), n.Labels) || !matchNoLabel(f('label!'), n.Labels)) continue;
      if (f('dangling')?.size) {
        const v = [...f('dangling')!][0];
        if (!['true', 'false', '1', '0'].includes(v)) throw new InvalidParameterError(`invalid filter 'dangling=${v}'`);
        const dangling = !builtin && Object.keys(await this.endpoints(n)).length === 0;
        if (dangling !== (v === 'true' || v === '1')) continue;
      }
      out.push(this.resource(n, {}));
    }
    return out.sort((a, b) => a.Created.localeCompare(b.Created));
  }

  remove(ref: string): Promise<void> {
    return this.serial(() => this.removeNow(ref));
  }

  private async removeNow(ref: string): Promise<void> {
    const n = this.d.store.get(ref);
    if (n.berth.builtin) throw new ForbiddenError(`${n.Name} is a pre-defined network and cannot be removed`);
    if (Object.keys(await this.endpoints(n)).length) throw new ForbiddenError(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
    await this.d.store.remove(n.Id);
    this.event(n, 'destroy');
    if (n.berth.bridge) await execFileP('ip', ['link', 'del', n.berth.bridge]).catch(() => {}); // made by the bridge plugin at the first attach, if ever
    await rm(join(this.d.ipamDir, n.Id), { recursive: true, force: true });
  }

  prune(filters?: DockerFilters): Promise<{ NetworksDeleted: string[] }> {
    return this.serial(() => this.pruneNow(filters));
  }

  private async pruneNow(filters?: DockerFilters): Promise<{ NetworksDeleted: string[] }> {
    checkFilterNames(filters, PRUNE_FILTERS);
    const until = filters?.get('until');
    const deleted: string[] = [];
    for (const n of this.d.store.list()) {
      if (n.berth.builtin || !matchLabels(filters?.get('label'), n.Labels) || !matchNoLabel(filters?.get('label!'), n.Labels)) continue;
      if (until?.size && ![...until].every((u) => Date.parse(n.Created) < (parseDockerTimeMs(u, 'until', Date.now()) ?? Infinity))) continue;
      if (Object.keys(await this.endpoints(n)).length) continue;
      await this.removeNow(n.Id);
      deleted.push(n.Name);
    }
    // dockerd logs one after every prune, with no actor ID and nothing reclaimed
    this.d.events?.publish('network', 'prune', '', { reclaimed: '0' });
    return { NetworksDeleted: deleted };
  }

  /**
   * The endpoint of a container on `net` after an attach (dockerd's fields); `req` is what the
   * container asked for (create's EndpointsConfig or connect's EndpointConfig). Logs the
   * network's `connect` event, as dockerd does for each network a container joins at its start
   * and for a connect of a running container.
   */
  async attach(rec: DeepReadonly<ContainerRecord>, net: NetworkRecord, netns: string, ifName: string, req: EndpointRequest): Promise<EndpointSettings> {
    const a = await this.d.attacher.attach(net, rec.ID, netns, ifName, req);
    this.event(net, 'connect', rec.ID);
    const user = !net.berth.builtin;
    const aliases = req.Aliases?.length ? [...req.Aliases] : null;
    return {
      IPAMConfig: req.IPAMConfig ? { ...req.IPAMConfig } : null,
      Links: req.Links?.length ? [...req.Links] : null,
      Aliases: aliases,
      MacAddress: a.MacAddress,
      DriverOpts: req.DriverOpts ? { ...req.DriverOpts } : null,
      NetworkID: net.Id,
      EndpointID: req.endpointId ?? newEndpointId(),
      Gateway: a.Gateway,
      IPAddress: a.IPAddress,
      IPPrefixLen: a.IPPrefixLen,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      DNSNames: user ? [rec.Name.replace(/^\//, ''), ...(aliases ?? []), rec.ID.slice(0, 12)] : null,
    };
  }

  /** Check an endpoint request against its network (dockerd's refusals on the default bridge; the address in the subnet). */
  checkRequest(net: NetworkRecord, req: EndpointRequest | undefined): void {
    if (!req) return;
    const ip = req.IPAMConfig?.IPv4Address;
    if ((ip || req.IPAMConfig?.IPv6Address) && net.berth.builtin) throw new InvalidParameterError('user specified IP address is supported on user defined networks only');
    if (req.Aliases?.length && net.berth.builtin) throw new InvalidParameterError('network-scoped alias is supported only for containers in user defined networks');
    if (req.IPAMConfig?.IPv6Address) throw new InvalidParameterError('IPv6 addresses are not supported by berth yet');
    if (ip) {
      const pool = net.IPAM.Config[0];
      if (!pool || !contains(parseCidr(pool.Subnet), ip)) throw new InvalidParameterError(`invalid address ${ip}: it does not belong to any of this network's subnets`);
    }
    if (req.MacAddress && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(req.MacAddress)) throw new InvalidParameterError(`invalid MAC address: ${req.MacAddress}`);
  }

  /**
   * Release the container's attachments (all of them, networks at once); a `disconnect` event
   * for each network one was released from (dockerd's releaseNetwork logs them at a stop).
   */
  async releaseAll(containerId: string): Promise<void> {
    for (const id of await this.d.attacher.detachAll(containerId)) {
      const n = this.d.store.find(id);
      if (n) this.event(n, 'disconnect', containerId);
    }
  }

  /**
   * `docker network connect` (dockerd's ConnectToNetwork), called under the container's lock
   * with its live record, which it changes (the caller persists it): a running container gets
   * the interface at once (the next ethN), a record in its /etc/hosts for the new address, and
   * the network's DNS server (`joined`); a stopped one gets the endpoint request recorded for
   * its next start.
   */
  async connect(rec: ContainerRecord, ref: string, endpoint: EndpointRequest | undefined): Promise<void> {
    const net = this.d.store.get(ref);
    const mode = rec.HostConfig.NetworkMode ?? '';
    if (net.Driver === 'host' || net.Driver === 'null' || mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
      throw new ForbiddenError('container sharing network namespace with another container or host cannot be connected to any other network');
    }
    const networks = rec.NetworkSettings.Networks;
    if (Object.entries(networks).some(([name, e]) => name === net.Name || (e.NetworkID && e.NetworkID === net.Id))) {
      throw new ForbiddenError(`endpoint with name ${rec.Name.replace(/^\//, '')} already exists in network ${net.Name}`);
    }
    this.checkRequest(net, endpoint);
    if (!attachedNow(rec)) {
      networks[net.Name] = { ...(structuredClone(endpoint ?? {}) as EndpointSettings) };
      return;
    }
    const ifName = await this.d.attacher.nextInterface(rec.ID);
    const ep = await this.attach(structuredClone(rec), net, rec.NetworkSettings.SandboxKey, ifName, endpoint ?? {});
    networks[net.Name] = ep;
    if (rec.HostsPath) await addHostsRecords(rec.HostsPath, rec, ep.IPAddress ? [ep.IPAddress] : []);
    await this.d.joined?.(rec, net, ep);
  }

  /**
   * `docker network disconnect` (dockerd's DisconnectFromNetwork), under the container's lock
   * with its live record, which it changes: a running container loses the interface (DEL), its
   * /etc/hosts record of that address and, with it the last on the network, the network's DNS
   * server (`left`). Returns whether the record changed.
   */
  async disconnect(rec: ContainerRecord, ref: string, force: boolean): Promise<boolean> {
    const found = this.d.store.find(ref);
    const networks = rec.NetworkSettings.Networks;
    const key = Object.keys(networks).find((name) => (found ? name === found.Name || networks[name].NetworkID === found.Id : name === ref));
    if (!key) {
      if (!found && !force) throw new NotFoundError(`network ${ref} not found`);
      if (!force) throw new ForbiddenError(`container ${rec.ID} is not connected to network ${ref}`);
      return false;
    }
    const ep = networks[key];
    if (found && attachedNow(rec)) {
      const a = (await this.d.attacher.attachments(rec.ID)).find((x) => x.networkId === found.Id);
      if (a) {
        await this.d.attacher.detach(rec.ID, a.ifName);
        this.event(found, 'disconnect', rec.ID);
      }
    }
    delete networks[key];
    if (found && attachedNow(rec)) {
      if (rec.HostsPath && ep.IPAddress) await removeHostsRecords(rec.HostsPath, rec, ep.IPAddress);
      await this.d.left?.(rec);
    }
    return true;
  }
}

/** A container whose namespace is attached now (running, with the namespace file berth keeps). */
function attachedNow(rec: DeepReadonly<ContainerRecord>): boolean {
  return rec.State.Running && !!rec.NetworkSettings.SandboxKey;
}
