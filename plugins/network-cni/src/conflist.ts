/**
 * A berth network → the CNI configuration list one attachment runs: for the bridge driver the
 * reference `bridge` plugin (the network's Linux bridge as gateway, hairpin on, ipMasq only where
 * the network's `com.docker.network.bridge.enable_ip_masquerade` option is true — never for an
 * internal network; berth's default is no NAT to the outside) with `host-local` IPAM whose dataDir is under
 * berth's data root, then `tuning` when the container asks for a MAC address. A network of a
 * custom driver runs the conflist it was created from. The list is named after the network's
 * ID, so caches and allocations of a removed network never meet a new one of the same name.
 * A container that publishes ports gets the reference `portmap` plugin last, given the bound
 * ports as its `portMappings` capability: iptables DNAT (nat PREROUTING and OUTPUT, destination
 * a local address) to the container, with `snat: false` (no MASQUERADE, no route_localnet) and
 * conditions that leave to the userland proxy what DNAT cannot serve without them: destinations
 * in 127.0.0.0/8 and packets coming in on the network's own bridge (hairpin), as dockerd's rules
 * with its userland proxy on (docs/networking.md, "Published ports").
 */
import type { CniConfList, CniPluginConf } from './cni.js';
import { parseCidr, rangeWithin } from './ipam.js';
import type { NetworkRecord } from './store.js';

export const CNI_VERSION = '1.0.0';

export interface ConfListOptions {
  /** host-local's dataDir: one directory per network, one file per address. */
  ipamDir: string;
  /** The container asks for a MAC address (adds `tuning` with the mac capability). */
  mac?: boolean;
  /** The container publishes ports DNAT serves (adds `portmap` with the portMappings capability). */
  ports?: boolean;
}

/** The `portmap` plugin of a bridge network: DNAT for what is not loopback nor from `bridge` itself. */
export function portmapPlugin(bridge: string): CniPluginConf {
  return { type: 'portmap', capabilities: { portMappings: true }, snat: false, conditionsV4: ['!', '-d', '127.0.0.0/8', '!', '-i', bridge] };
}

/** dockerd's bridge option for masquerading (`--ip-masq` for the default bridge). */
export const OPT_MASQ = 'com.docker.network.bridge.enable_ip_masquerade';

/** A boolean option's value in Go's ParseBool words (as dockerd reads driver options); undefined: not one. */
export function parseGoBool(v: string): boolean | undefined {
  if (/^(1|t|T|TRUE|true|True)$/.test(v)) return true;
  if (/^(0|f|F|FALSE|false|False)$/.test(v)) return false;
  return undefined;
}

/** The network masquerades traffic leaving the machine: its option says true and it is not internal. */
export function masquerades(net: NetworkRecord): boolean {
  return !net.Internal && parseGoBool(net.Options[OPT_MASQ] ?? '') === true;
}

/** The configuration list of an attachment to `net`. */
export function confListFor(net: NetworkRecord, opts: ConfListOptions): CniConfList {
  if (net.Driver !== 'bridge') {
    const custom = net.berth.conflist;
    if (!custom) throw new Error(`network ${net.Name}: driver ${net.Driver} has no CNI configuration list`);
    return { ...custom, name: net.Id };
  }
  const pool = net.IPAM.Config[0];
  const subnet = parseCidr(pool.Subnet);
  const range: Record<string, string> = { subnet: pool.Subnet };
  if (pool.Gateway) range.gateway = pool.Gateway;
  const part = pool.IPRange ?? net.berth.fixedCidr;
  if (part) Object.assign(range, rangeWithin(subnet, part, pool.IPRange ? 'ip-range' : 'fixed-cidr'));
  const bridge: CniPluginConf = {
    type: 'bridge',
    bridge: net.berth.bridge!,
    isGateway: true,
    ipMasq: masquerades(net),
    hairpinMode: true,
    capabilities: { ips: true },
    ipam: {
      type: 'host-local',
      ranges: [[range]],
      // an internal network gets no default route (no way off the network)
      routes: net.Internal ? [] : [{ dst: '0.0.0.0/0' }],
      dataDir: opts.ipamDir,
    },
  };
  if (net.berth.mtu) bridge.mtu = net.berth.mtu;
  const plugins: CniPluginConf[] = [bridge];
  if (opts.mac) plugins.push({ type: 'tuning', capabilities: { mac: true } });
  if (opts.ports) plugins.push(portmapPlugin(net.berth.bridge!));
  return { cniVersion: CNI_VERSION, name: net.Id, plugins };
}
