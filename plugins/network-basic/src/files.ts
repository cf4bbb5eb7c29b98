/**
 * Pure builders of a container's /etc/hostname, /etc/hosts and /etc/resolv.conf contents,
 * following dockerd's rules (daemon initializeNetworking, libnetwork etchosts and resolvconf).
 */
import { isIP, isIPv6 } from 'node:net';
import { InvalidParameterError, type LinkedContainer } from '@berth/core';

/** One ExtraHosts entry, parsed. */
export interface HostEntry {
  name: string;
  ip: string;
}

/** dockerd's special ExtraHosts value: the host's address on the default bridge (StartContext.hostGatewayIP). */
export const HOST_GATEWAY = 'host-gateway';

/**
 * Parses an ExtraHosts entry "name:ip" or "name=ip" (dockerd's ValidateExtraHost): the
 * separator is the first "=" if there is one, else the first ":" (so IPv6 addresses work
 * after a ":"); an IPv6 address may be written in brackets. Errors carry dockerd's wording.
 * `host-gateway` becomes `hostGateway`; null = not known yet (create: the entry is kept as
 * it is), undefined = there is none (no bridge network): refused, as dockerd does at start.
 */
export function parseExtraHost(raw: string, hostGateway?: string | null): HostEntry {
  const eq = raw.indexOf('=');
  const sep = eq >= 0 ? eq : raw.indexOf(':');
  if (sep <= 0) throw new InvalidParameterError(`bad format for add-host: ${JSON.stringify(raw)}`);
  const name = raw.slice(0, sep);
  let ip = raw.slice(sep + 1);
  if (ip === HOST_GATEWAY) {
    if (hostGateway === null) return { name, ip };
    if (hostGateway === undefined) throw new InvalidParameterError(`unable to derive the IP value for host-gateway: berth has no bridge network (add-host ${JSON.stringify(raw)})`);
    ip = hostGateway;
  }
  if (ip.length > 2 && ip.startsWith('[') && ip.endsWith(']')) {
    const inner = ip.slice(1, -1);
    if (isIPv6(inner)) ip = inner;
  }
  if (isIP(ip) === 0) throw new InvalidParameterError(`invalid IP address in add-host: ${JSON.stringify(ip)}`);
  return { name, ip };
}

/** Validates every ExtraHosts entry (first error wins). */
export function parseExtraHosts(list: readonly string[] | null | undefined, hostGateway?: string | null): HostEntry[] {
  return (list ?? []).map((e) => parseExtraHost(e, hostGateway));
}

/** The hostname file: the hostname and a newline. */
export function buildHostnameFile(hostname: string): string {
  return `${hostname}\n`;
}

/** dockerd's default /etc/hosts records of a container. */
export const DEFAULT_HOSTS: readonly HostEntry[] = Object.freeze([
  { ip: '127.0.0.1', name: 'localhost' },
  { ip: '::1', name: 'localhost ip6-localhost ip6-loopback' },
  { ip: 'fe00::0', name: 'ip6-localnet' },
  { ip: 'ff00::0', name: 'ip6-mcastprefix' },
  { ip: 'ff02::1', name: 'ip6-allnodes' },
  { ip: 'ff02::2', name: 'ip6-allrouters' },
]);

function hostLines(entries: readonly HostEntry[]): string {
  return entries.map((e) => `${e.ip}\t${e.name}\n`).join('');
}

/**
 * The hosts file: the default records (or, with `base`, the host's hosts file as it is) and
 * then the ExtraHosts records, in their order.
 */
export function buildHostsFile(extra: readonly HostEntry[], base?: string): string {
  let head = base ?? hostLines(DEFAULT_HOSTS);
  if (head !== '' && !head.endsWith('\n')) head += '\n';
  return head + hostLines(extra);
}

/**
 * The hosts records of a container's legacy links (dockerd's buildSandboxOptions): the linked
 * container's address under the alias, its hostname and, when the alias differs, its name.
 * A linked container without an address gets none.
 */
export function linkHostEntries(links: readonly Pick<LinkedContainer, 'alias' | 'hostname' | 'childName' | 'ip'>[]): HostEntry[] {
  return links
    .filter((l) => l.ip !== '')
    .map((l) => {
      const name = l.childName.replace(/^\//, '');
      return { ip: l.ip, name: [l.alias, l.hostname, ...(l.alias !== name ? [name] : [])].join(' ') };
    });
}

/** dockerd's fallback nameservers when none of the host's is usable. */
export const DEFAULT_NAMESERVERS: readonly string[] = Object.freeze(['8.8.8.8', '8.8.4.4']);

export interface ResolvConfParts {
  nameservers: string[];
  search: string[] | null;
  options: string[] | null;
  /** Every other line (comments, sortlist, …), in order. */
  other: string[];
}

/** Splits a resolv.conf into its nameserver, search/domain and options directives. */
export function parseResolvConf(content: string): ResolvConfParts {
  const out: ResolvConfParts = { nameservers: [], search: null, options: null, other: [] };
  for (const line of content.split('\n')) {
    const fields = line.trim().split(/\s+/).filter(Boolean);
    const key = fields[0];
    if (key === 'nameserver' && fields.length >= 2) out.nameservers.push(fields[1]);
    // the last search or domain line wins (resolv.conf(5))
    else if ((key === 'search' || key === 'domain') && fields.length >= 2) out.search = fields.slice(1);
    else if (key === 'options' && fields.length >= 2) out.options = [...(out.options ?? []), ...fields.slice(1)];
    else if (line.trim() !== '') out.other.push(line);
  }
  return out;
}

/** True for 127.0.0.0/8 and ::1 (also "::ffff:127.x" and zone-suffixed forms are treated by address). */
export function isLoopbackAddress(ip: string): boolean {
  const addr = ip.split('%')[0];
  if (isIP(addr) === 4) return addr.startsWith('127.');
  if (isIP(addr) === 6) {
    const lower = addr.toLowerCase();
    if (lower === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(lower) || lower === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return !!mapped && mapped[1].startsWith('127.');
  }
  return false;
}

export interface ResolvConfOptions {
  /** The host's resolv.conf ('' if it has none). */
  host: string;
  /** HostConfig.Dns: replaces every nameserver. */
  dns?: readonly string[] | null;
  /** HostConfig.DnsSearch: replaces search/domain ("." alone = no search line). */
  dnsSearch?: readonly string[] | null;
  /** HostConfig.DnsOptions: replaces options. */
  dnsOptions?: readonly string[] | null;
  /**
   * The container has a network namespace of its own: the host's loopback nameservers are
   * unreachable from it (dropped), and so are IPv6 ones (no IPv6 without a network).
   */
  ownNetns: boolean;
}

/** The container's resolv.conf (dockerd's rules, see ResolvConfOptions). */
export function buildResolvConf(o: ResolvConfOptions): string {
  const host = parseResolvConf(o.host);
  let nameservers: string[];
  if (o.dns && o.dns.length > 0) {
    nameservers = [...o.dns];
  } else {
    nameservers = o.ownNetns ? host.nameservers.filter((ns) => !isLoopbackAddress(ns) && isIP(ns.split('%')[0]) !== 6) : host.nameservers;
    if (o.ownNetns && nameservers.length === 0) nameservers = [...DEFAULT_NAMESERVERS];
  }
  let search = host.search;
  if (o.dnsSearch && o.dnsSearch.length > 0) search = o.dnsSearch.length === 1 && o.dnsSearch[0] === '.' ? [] : [...o.dnsSearch];
  const options = o.dnsOptions && o.dnsOptions.length > 0 ? [...o.dnsOptions] : host.options;

  const lines = [...host.other];
  if (search && search.length > 0) lines.push(`search ${search.join(' ')}`);
  for (const ns of nameservers) lines.push(`nameserver ${ns}`);
  if (options && options.length > 0) lines.push(`options ${options.join(' ')}`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}
