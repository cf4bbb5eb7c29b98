/**
 * The attach/detach path: one container's namespace ↔ one network, through the CNI runner.
 *  - attach: ADD the network's conflist for interface ethN in the container's namespace (the
 *    requested address and MAC as capability arguments), → the endpoint's addresses.
 *  - detach: DEL one attachment with its cached result (idempotent).
 *  - detachAll: DEL every attachment the result cache still holds for the container (the
 *    container's active endpoints, also those of a daemon killed mid-start), networks at once.
 * The namespace itself (netns.ts, lo up in it) is made and dropped by the plugin around these.
 */
import { randomBytes } from 'node:crypto';
import type { CniResult, CniRunner } from './cni.js';
import { confListFor } from './conflist.js';
import type { CniPortMapping } from './ports.js';
import type { NetworkRecord } from './store.js';

/** What a container asks of an endpoint (Docker's EndpointSettings as given at create/connect). */
export interface EndpointRequest {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] } | null;
  Aliases?: string[] | null;
  MacAddress?: string;
  DriverOpts?: Record<string, string> | null;
  Links?: string[] | null;
  /** berth's, not Docker's: the published ports DNAT serves (first network at start; adds portmap). */
  portMappings?: CniPortMapping[];
  /** berth's, not Docker's: the endpoint ID chosen before the attach (named in a port error). */
  endpointId?: string;
}

/** The addresses an attachment got. */
export interface EndpointAddresses {
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  MacAddress: string;
}

/** The conflist name of the loopback attachment daemons before netns.ts's lo up made (still DELed at release). */
const LEGACY_LOOPBACK = 'berth-loopback';

export function newEndpointId(): string {
  return randomBytes(32).toString('hex');
}

/** The first address of a CNI result, its gateway and the MAC of the interface it is on. */
export function addressesOf(r: CniResult, ifName: string): EndpointAddresses {
  const ip = r.ips?.find((i) => !i.address.includes(':')) ?? r.ips?.[0];
  const [addr, prefix] = (ip?.address ?? '/0').split('/');
  const iface = ip?.interface !== undefined ? r.interfaces?.[ip.interface] : r.interfaces?.find((i) => i.name === ifName && i.sandbox);
  return { IPAddress: addr, IPPrefixLen: Number(prefix) || 0, Gateway: ip?.gateway ?? '', MacAddress: iface?.mac ?? '' };
}

export class Attacher {
  constructor(
    private readonly runner: CniRunner,
    private readonly opts: { ipamDir: string },
  ) {}

  /** ADD `net` for interface `ifName`; a failed ADD leaves nothing (the runner DELs it). */
  async attach(net: NetworkRecord, containerId: string, netns: string, ifName: string, req: EndpointRequest = {}): Promise<EndpointAddresses> {
    const caps: Record<string, unknown> = {};
    const ip = req.IPAMConfig?.IPv4Address;
    if (ip) caps.ips = [ip];
    if (req.MacAddress) caps.mac = req.MacAddress;
    if (req.portMappings?.length) caps.portMappings = req.portMappings;
    const list = confListFor(net, { ipamDir: this.opts.ipamDir, mac: !!req.MacAddress, ports: !!req.portMappings?.length });
    const result = await this.runner.add(list, { containerId, netns, ifName, args: [['IgnoreUnknown', '1']], ...(Object.keys(caps).length ? { capabilityArgs: caps } : {}) });
    return addressesOf(result, ifName);
  }

  async detach(containerId: string, ifName: string): Promise<void> {
    await this.runner.del({ containerId, ifName });
  }

  /** The container's attachments (interface → network ID), from the result cache. */
  async attachments(containerId: string): Promise<Array<{ ifName: string; networkId: string; result?: CniResult }>> {
    return (await this.runner.attachments(containerId)).map((a) => ({ ifName: a.ifName, networkId: a.networkName, ...(a.result ? { result: a.result } : {}) }));
  }

  /** The next free ethN of the container. */
  async nextInterface(containerId: string): Promise<string> {
    const used = new Set((await this.runner.attachments(containerId)).map((a) => a.ifName));
    let n = 0;
    while (used.has(`eth${n}`)) n++;
    return `eth${n}`;
  }

  /**
   * DEL every cached attachment of the container — those of different networks at once (each
   * its own interface, bridge and address range), then a `lo` entry a daemon before netns.ts
   * brought lo up itself may have left; the first error is thrown after all ran. Returns the
   * network IDs whose attachment was released.
   */
  async detachAll(containerId: string): Promise<string[]> {
    const all = await this.runner.attachments(containerId);
    const released: string[] = [];
    let first: unknown;
    const del = async (a: { ifName: string; networkName: string }) => {
      try {
        await this.runner.del({ containerId, ifName: a.ifName });
        released.push(a.networkName);
      } catch (err) {
        first ??= err;
      }
    };
    await Promise.all(all.filter((a) => a.ifName !== 'lo').map(del));
    for (const a of all.filter((x) => x.ifName === 'lo')) await del(a);
    if (first) throw first;
    return released.filter((n) => n !== LEGACY_LOOPBACK);
  }
}
