/**
 * A berth network → the CNI configuration list one attachment runs: for the bridge driver the
 * reference `bridge` plugin (the network's Linux bridge as gateway, hairpin on, ipMasq always
 * off: berth sets up no NAT to the outside) with `host-local` IPAM whose dataDir is under
 * berth's data root, then `tuning` when the container asks for a MAC address. A network of a
 * custom driver runs the conflist it was created from. The list is named after the network's
 * ID, so caches and allocations of a removed network never meet a new one of the same name.
 * (Published ports add `portmap` here: one more plugin at the end, given `portMappings`.)
 */
import type { CniConfList, CniPluginConf } from './cni.js';
import { parseCidr, rangeWithin } from './ipam.js';
import type { NetworkRecord } from './store.js';

export const CNI_VERSION = '1.0.0';

/** The loopback attachment every namespace of berth's making gets (interface lo). */
export const LOOPBACK_LIST: CniConfList = Object.freeze({ cniVersion: CNI_VERSION, name: 'berth-loopback', plugins: [{ type: 'loopback' }] }) as CniConfList;

export interface ConfListOptions {
  /** host-local's dataDir: one directory per network, one file per address. */
  ipamDir: string;
  /** The container asks for a MAC address (adds `tuning` with the mac capability). */
  mac?: boolean;
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
    ipMasq: false,
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
  return { cniVersion: CNI_VERSION, name: net.Id, plugins };
}
