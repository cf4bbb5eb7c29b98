/**
 * Published ports, the pure part (ports.ts): requests from PortBindings and -P over
 * ExposedPorts, NetworkSettings.Ports as dockerd fills it, the record → bound ports again
 * (live restore), the kernel's ephemeral range file, the bound ports portmap's DNAT gets.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorKind, type ContainerRecord } from '@berth/core';
import { DEFAULT_EPHEMERAL, boundFromRecord, ephemeralRange, portMappings, portRequests, portsMap } from '../src/ports.js';

function rec(cfg: { exposed?: string[]; bindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>; all?: boolean; ports?: ContainerRecord['NetworkSettings']['Ports'] }): ContainerRecord {
  return {
    ID: 'c1',
    Config: { ExposedPorts: Object.fromEntries((cfg.exposed ?? []).map((k) => [k, {}])) },
    HostConfig: { PortBindings: cfg.bindings ?? {}, PublishAllPorts: !!cfg.all },
    NetworkSettings: { Ports: cfg.ports ?? {}, Networks: {} },
  } as unknown as ContainerRecord;
}

describe('portRequests', () => {
  it('takes each binding, an empty HostPort as any port and a range as a range, sorted by port', () => {
    const r = rec({ bindings: { '8080/udp': [{ HostPort: '9000-9002' }], '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }, { HostPort: '' }] } });
    expect(portRequests(r)).toEqual([
      { containerPort: 80, proto: 'tcp', hostIp: '127.0.0.1', hostPorts: [18080, 18080] },
      { containerPort: 80, proto: 'tcp', hostIp: '', hostPorts: null },
      { containerPort: 8080, proto: 'udp', hostIp: '', hostPorts: [9000, 9002] },
    ]);
  });

  it('with -P publishes every exposed port without a binding on any port; without -P exposed ports are not published', () => {
    expect(portRequests(rec({ exposed: ['53/udp', '80/tcp'], bindings: { '80/tcp': [{ HostPort: '81' }] }, all: true }))).toEqual([
      { containerPort: 53, proto: 'udp', hostIp: '', hostPorts: null },
      { containerPort: 80, proto: 'tcp', hostIp: '', hostPorts: [81, 81] },
    ]);
    expect(portRequests(rec({ exposed: ['80/tcp'] }))).toEqual([]);
  });

  it('refuses sctp with InvalidParameter', () => {
    let err: unknown;
    try {
      portRequests(rec({ bindings: { '80/sctp': [{ HostPort: '80' }] } }));
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe('InvalidParameter');
  });
});

describe('portsMap / boundFromRecord', () => {
  it('lists exposed ports as null and bound ones with 0.0.0.0 for no host address, as dockerd', () => {
    const r = rec({ exposed: ['443/tcp', '80/tcp'], bindings: { '80/tcp': [{}] } });
    const ports = portsMap(r, [
      { containerPort: 80, proto: 'tcp', hostIp: '', hostPort: 32768 },
      { containerPort: 80, proto: 'tcp', hostIp: '127.0.0.1', hostPort: 18080 },
    ]);
    expect(ports).toEqual({ '443/tcp': null, '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '32768' }, { HostIp: '127.0.0.1', HostPort: '18080' }] });
  });

  it('reads the bound ports back from a record', () => {
    const r = rec({ ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '32768' }], '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }], '443/tcp': null } });
    expect(boundFromRecord(r)).toEqual([
      { containerPort: 80, proto: 'tcp', hostIp: '', hostPort: 32768 },
      { containerPort: 53, proto: 'udp', hostIp: '127.0.0.1', hostPort: 5353 },
    ]);
  });
});

describe('ephemeralRange', () => {
  it('reads ip_local_port_range, falls back to dockerd defaults when missing or bad', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'n2-ports-'));
    try {
      await writeFile(join(dir, 'r'), '32768\t60999\n');
      expect(await ephemeralRange(join(dir, 'r'))).toEqual([32768, 60999]);
      await writeFile(join(dir, 'bad'), '9 1\n');
      expect(await ephemeralRange(join(dir, 'bad'))).toEqual(DEFAULT_EPHEMERAL);
      expect(await ephemeralRange(join(dir, 'missing'))).toEqual(DEFAULT_EPHEMERAL);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('portMappings', () => {
  it('gives DNAT the bindings on every address or one non-loopback IPv4 address; loopback and IPv6 stay with the proxy', () => {
    const b = (hostIp: string, hostPort: number, proto: 'tcp' | 'udp' = 'tcp') => ({ containerPort: 80, proto, hostIp, hostPort });
    expect(portMappings([b('', 8080), b('0.0.0.0', 8081, 'udp'), b('192.0.2.7', 8082), b('127.0.0.1', 8083), b('127.1.2.3', 8084), b('::', 8085), b('::1', 8086)])).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 8081, containerPort: 80, protocol: 'udp' },
      { hostPort: 8082, containerPort: 80, protocol: 'tcp', hostIP: '192.0.2.7' },
    ]);
  });
});
