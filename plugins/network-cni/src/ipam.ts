/**
 * IPv4 address arithmetic and the subnet rules of dockerd's IPAM: the default address pools
 * (172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 cut into /20s), the first free subnet
 * that overlaps neither another network nor a route of the host, the gateway (the first host
 * address), `--bip` (gateway/prefix) and `--fixed-cidr` (the part of the subnet containers get
 * addresses from). The allocations themselves are host-local's (CNI), one file per address in
 * berth's data root: see docs/networking.md "IPAM" for why.
 */
import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { InvalidParameterError } from '@berth/core';

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

/** An address pool: subnets of `size` bits cut from `base` (dockerd's default-address-pools). */
export interface AddressPool {
  base: string;
  size: number;
}

/** dockerd's default local address pools. */
export const DEFAULT_POOLS: readonly AddressPool[] = Object.freeze([
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/16', size: 16 },
  { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
]);

export function ipToNum(ip: string): number {
  if (!isIPv4(ip)) throw new InvalidParameterError(`invalid IPv4 address: ${JSON.stringify(ip)}`);
  return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

export function numToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** "a.b.c.d/n" → its network (host bits cleared when `strict` is false). */
export function parseCidr(s: string, what = 'subnet', strict = false): Cidr {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(s.trim());
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32) throw new InvalidParameterError(`invalid ${what}: ${JSON.stringify(s)}${s.includes(':') ? ' (IPv6 is not supported by berth yet)' : ''}`);
  const prefix = Number(m[2]);
  const addr = ipToNum(m[1]);
  const base = (addr & mask(prefix)) >>> 0;
  if (strict && base !== addr) throw new InvalidParameterError(`invalid ${what} ${s}: it has host bits set (did you mean ${numToIp(base)}/${prefix}?)`);
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${numToIp(c.base)}/${c.prefix}`;
}

/** The last address of a subnet (its broadcast). */
export function lastAddress(c: Cidr): number {
  return (c.base + 2 ** (32 - c.prefix) - 1) >>> 0;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base <= lastAddress(b) && b.base <= lastAddress(a);
}

export function contains(c: Cidr, ip: string | number): boolean {
  const n = typeof ip === 'number' ? ip : ipToNum(ip);
  return n >= c.base && n <= lastAddress(c);
}

/** dockerd's default gateway of a subnet: its first host address. */
export function firstHost(c: Cidr): string {
  return numToIp(c.prefix >= 31 ? c.base : c.base + 1);
}

/** Every subnet of the pools, in order (lazily: 192.168/16 in /20s is 16 of them). */
export function* poolSubnets(pools: readonly AddressPool[]): Generator<Cidr> {
  for (const p of pools) {
    const base = parseCidr(p.base, 'address pool base');
    if (!Number.isInteger(p.size) || p.size < base.prefix || p.size > 30) throw new InvalidParameterError(`invalid address pool ${p.base}: size ${p.size} must be between ${base.prefix} and 30`);
    const step = 2 ** (32 - p.size);
    for (let n = base.base; n <= lastAddress(base); n += step) yield { base: n >>> 0, prefix: p.size };
  }
}

/** The first subnet of the pools overlapping none of `taken`; InvalidParameter when all are. */
export function pickSubnet(pools: readonly AddressPool[], taken: readonly Cidr[]): Cidr {
  for (const c of poolSubnets(pools)) if (!taken.some((t) => overlaps(t, c))) return c;
  throw new InvalidParameterError('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
}

/** The host's IPv4 routes (destination subnets, default route excluded) from /proc/net/route, with their interface. */
export async function hostRoutes(file = '/proc/net/route'): Promise<Array<Cidr & { iface: string }>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  const out: Array<Cidr & { iface: string }> = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    // little-endian hex of the kernel's u32s
    const le = (h: string) => Number.parseInt(h.match(/../g)!.reverse().join(''), 16) >>> 0;
    const dst = le(f[1]);
    const m = le(f[7]);
    if (m === 0) continue; // the default route takes nothing away
    let prefix = 0;
    while (prefix < 32 && m & (0x80000000 >>> prefix)) prefix++;
    out.push({ base: dst, prefix, iface: f[0] });
  }
  return out;
}

/** `--bip` ("172.20.0.1/16"): the bridge's own address (the gateway) and its subnet. */
export function parseBip(bip: string): { subnet: Cidr; gateway: string } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(bip.trim());
  if (!m) throw new InvalidParameterError(`invalid bip ${JSON.stringify(bip)}: want an address with a prefix length, e.g. 172.20.0.1/16`);
  const subnet = parseCidr(bip, 'bip');
  if (ipToNum(m[1]) === subnet.base) throw new InvalidParameterError(`invalid bip ${bip}: the address is the network address of the subnet; give the bridge's own address, e.g. ${firstHost(subnet)}/${subnet.prefix}`);
  return { subnet, gateway: m[1] };
}

/** host-local's range for part of a subnet (`--fixed-cidr`, IPAM IPRange): its first and last usable addresses. */
export function rangeWithin(subnet: Cidr, part: string, what: string): { rangeStart: string; rangeEnd: string } {
  const r = parseCidr(part, what);
  if (!(r.base >= subnet.base && lastAddress(r) <= lastAddress(subnet))) throw new InvalidParameterError(`${what} ${part} is not within the subnet ${formatCidr(subnet)}`);
  const start = r.base === subnet.base ? r.base + 1 : r.base;
  const end = lastAddress(r) === lastAddress(subnet) ? lastAddress(r) - 1 : lastAddress(r);
  if (start > end) throw new InvalidParameterError(`${what} ${part} leaves no address for containers`);
  return { rangeStart: numToIp(start), rangeEnd: numToIp(end) };
}
