/**
 * Published ports, the pure part: what a container asks to publish (HostConfig.PortBindings,
 * `-P` = PublishAllPorts over Config.ExposedPorts), the kernel's ephemeral range dockerd picks
 * free host ports from, and NetworkSettings.Ports as dockerd fills it (every exposed or
 * published port a key, `null` for one that is exposed but not published), and the bound ports
 * CNI portmap gets as its `portMappings` capability (those DNAT can serve). The listeners
 * themselves are proxy.ts's; the taps are publish.ts's.
 */
import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { InvalidParameterError, type ContainerRecord, type DeepReadonly, type PortBinding } from '@berth/core';

export type Proto = 'tcp' | 'udp';

/** One host port (or range, or any) to bind for one container port. */
export interface PortRequest {
  containerPort: number;
  proto: Proto;
  /** '' = every address (0.0.0.0). */
  hostIp: string;
  /** Inclusive host port range; null = any free port of the ephemeral range. */
  hostPorts: [number, number] | null;
}

/** One bound host port. */
export interface BoundPort {
  containerPort: number;
  proto: Proto;
  hostIp: string;
  hostPort: number;
}

/** dockerd's fallback when /proc gives no range (portallocator's defaults). */
export const DEFAULT_EPHEMERAL: [number, number] = [49153, 65535];

/** The kernel's ip_local_port_range ("32768\t60999"), as dockerd's portallocator reads it. */
export async function ephemeralRange(file = '/proc/sys/net/ipv4/ip_local_port_range'): Promise<[number, number]> {
  try {
    const [lo, hi] = (await readFile(file, 'utf8')).trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo > 0 && lo <= hi && hi <= 65535) return [lo, hi];
  } catch {
    // no /proc: the default range
  }
  return DEFAULT_EPHEMERAL;
}

function parseKey(key: string): { port: number; proto: string } {
  const [p, proto = 'tcp'] = key.split('/');
  return { port: Number(p), proto: proto.toLowerCase() };
}

function parseHostPort(s: string | undefined): [number, number] | null {
  if (!s) return null;
  const [a, b = a] = s.split('-').map(Number);
  return [a, b];
}

/**
 * The ports a container publishes, in a stable order (port, then proto): its PortBindings, and
 * with PublishAllPorts every ExposedPorts key without a binding gets one on any free port.
 */
export function portRequests(c: DeepReadonly<ContainerRecord>): PortRequest[] {
  const out: PortRequest[] = [];
  const bindings = (c.HostConfig.PortBindings ?? {}) as Record<string, readonly PortBinding[] | null>;
  const keys = new Set(Object.keys(bindings));
  if (c.HostConfig.PublishAllPorts) for (const k of Object.keys(c.Config.ExposedPorts ?? {})) keys.add(k);
  for (const key of [...keys].sort(comparePortKeys)) {
    const { port, proto } = parseKey(key);
    if (proto !== 'tcp' && proto !== 'udp') throw new InvalidParameterError(`publishing ${proto} ports is not supported (only tcp and udp): ${key}`);
    const list = bindings[key]?.length ? bindings[key]! : [{ HostIp: '', HostPort: '' }];
    for (const b of list) out.push({ containerPort: port, proto, hostIp: b?.HostIp ?? '', hostPorts: parseHostPort(b?.HostPort) });
  }
  return out;
}

function comparePortKeys(a: string, b: string): number {
  const x = parseKey(a);
  const y = parseKey(b);
  return x.port - y.port || x.proto.localeCompare(y.proto);
}

/** Only when the container publishes or exposes a port do ports need any work. */
export function hasPorts(c: DeepReadonly<ContainerRecord>): boolean {
  return Object.keys(c.HostConfig.PortBindings ?? {}).length > 0 || Object.keys(c.Config.ExposedPorts ?? {}).length > 0;
}

/** NetworkSettings.Ports: every exposed and published port, its bindings or null. */
export function portsMap(c: DeepReadonly<ContainerRecord>, bound: readonly BoundPort[]): Record<string, PortBinding[] | null> {
  const out: Record<string, PortBinding[] | null> = {};
  for (const k of Object.keys(c.Config.ExposedPorts ?? {})) out[normalKey(k)] = null;
  for (const k of Object.keys(c.HostConfig.PortBindings ?? {})) out[normalKey(k)] = null;
  for (const b of bound) {
    const key = `${b.containerPort}/${b.proto}`;
    (out[key] ??= []).push({ HostIp: b.hostIp || '0.0.0.0', HostPort: String(b.hostPort) });
  }
  return out;
}

function normalKey(k: string): string {
  const { port, proto } = parseKey(k);
  return `${port}/${proto}`;
}

/** The bound ports a record's NetworkSettings.Ports names (to bind them again after a daemon restart). */
export function boundFromRecord(c: DeepReadonly<ContainerRecord>): BoundPort[] {
  const out: BoundPort[] = [];
  for (const [key, list] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
    const { port, proto } = parseKey(key);
    if (proto !== 'tcp' && proto !== 'udp') continue;
    for (const b of list ?? []) {
      const hostPort = Number(b.HostPort);
      if (Number.isInteger(hostPort) && hostPort > 0) out.push({ containerPort: port, proto, hostIp: b.HostIp === '0.0.0.0' ? '' : (b.HostIp ?? ''), hostPort });
    }
  }
  return out;
}

/** One entry of CNI's `portMappings` capability (the conventions document's shape, portmap's input). */
export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: Proto;
  /** Absent: every local address (except 127.0.0.0/8, which the conflist's conditions leave to the proxy). */
  hostIP?: string;
}

/**
 * The bound ports DNAT serves, as portmap's `portMappings`: every binding on all addresses or on
 * one non-loopback IPv4 address. A binding on 127.0.0.0/8 or on an IPv6 address is the userland
 * proxy's alone (DNAT of loopback would need route_localnet and a MASQUERADE; the containers
 * have no IPv6 address).
 */
export function portMappings(bound: readonly BoundPort[]): CniPortMapping[] {
  const out: CniPortMapping[] = [];
  for (const b of bound) {
    const any = b.hostIp === '' || b.hostIp === '0.0.0.0';
    if (!any && (!isIPv4(b.hostIp) || b.hostIp.startsWith('127.'))) continue;
    out.push({ hostPort: b.hostPort, containerPort: b.containerPort, protocol: b.proto, ...(any ? {} : { hostIP: b.hostIp }) });
  }
  return out;
}
