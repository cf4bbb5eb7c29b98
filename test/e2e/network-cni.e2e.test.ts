/**
 * Networking on CNI (the network-cni plugin) through the real docker CLI against berthd (runc +
 * conmon + Debian's CNI plugins): the default bridge (the test's own bridge and --bip from the
 * benchmarking range 198.18.0.0/15), a user network on which two containers reach each other
 * by IP (ping over the test's bridge only), --ip/--network-alias in inspect, network
 * create/ls --filter/inspect/connect/disconnect/rm (in use → dockerd's message)/prune,
 * --network none (lo only), --network host (the host's hostname), container:<name> (shares the
 * interface), and a failed start (address taken) leaving no veth, namespace or allocation.
 * No NAT, no route off the machine; the test's bridges are removed and ip_forward is put back
 * as found, also on failure. Needs root, runc, conmon and the CNI plugins, else skipped.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, type Berthd } from './helpers/berthd.js';
import { cniSkipReason, testNetworks, useNetworkBerthd } from './helpers/network-host.js';

const skip = cniSkipReason(berthdSkipReason(), ['bridge', 'host-local', 'tuning']);

const nets = testNetworks('bt', ['d', 'u', 'o']);
const DEFAULT_BRIDGE = nets.d.bridge;
const USER_BRIDGE = nets.u.bridge;
const OTHER_BRIDGE = nets.o.bridge;

const links = (master: string): string[] => {
  try {
    return execFileSync('ip', ['-o', 'link', 'show', 'master', master], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

describe.skipIf(skip)(`networking on CNI through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  useNetworkBerthd((b) => (d = b), {
    nets,
    defaultBridge: nets.d,
    beforeCleanup: async (b) => {
      await b.docker(['rm', '-f', 'nc-a', 'nc-b', 'nc-c', 'nc-dup']);
      await b.docker(['network', 'rm', 'nc-user', 'nc-other']);
    },
  });

  it('the default bridge: an address from --bip, the gateway reachable over the test bridge, NetworkSettings and /etc/hosts', async () => {
    const r = await d.docker(['run', '-d', '--name', 'nc-a', TEST_IMAGE, 'sleep', '300']);
    expect(r.code, JSON.stringify(r)).toBe(0);
    const ns = JSON.parse((await d.docker(['inspect', '-f', '{{json .NetworkSettings}}', 'nc-a'])).stdout) as Record<string, any>;
    const ep = ns.Networks.bridge;
    expect(ep.IPAddress).toMatch(new RegExp(`^${nets.d.net.replace(/\./g, '\\.')}\\.\\d+$`));
    expect(ep).toMatchObject({ Gateway: `${nets.d.net}.1`, IPPrefixLen: 24 });
    expect(ep.MacAddress).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(ns.IPAddress).toBe(ep.IPAddress);
    const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'nc-a'])).stdout.trim();
    expect(ns.SandboxKey).toBe(path.join(d.execRoot, 'netns', id));
    const inside = await d.docker(['exec', 'nc-a', 'sh', '-c', `ip -o -4 addr show eth0; ping -c 1 -W 3 ${nets.d.net}.1 >/dev/null && echo pong; cat /etc/hosts`]);
    expect(inside.code, JSON.stringify(inside)).toBe(0);
    expect(inside.stdout).toContain(`${ep.IPAddress}/24`);
    expect(inside.stdout).toContain('pong');
    expect(inside.stdout).toContain(`${ep.IPAddress}\t${id.slice(0, 12)}`);
    expect(links(DEFAULT_BRIDGE)).toHaveLength(1);
    const net = JSON.parse((await d.docker(['network', 'inspect', 'bridge'])).stdout)[0];
    expect(Object.keys(net.Containers)).toEqual([id]);
    expect(net.IPAM.Config).toEqual([{ Subnet: `${nets.d.net}.0/24`, Gateway: `${nets.d.net}.1` }]);
    // --add-host NAME:host-gateway → the default bridge's gateway
    const gw = await d.docker(['run', '--rm', '--add-host', 'hgw:host-gateway', TEST_IMAGE, 'grep', 'hgw', '/etc/hosts']);
    expect(gw.stdout.trim()).toBe(`${nets.d.net}.1\thgw`);
    await d.docker(['rm', '-f', 'nc-a']);
    expect(links(DEFAULT_BRIDGE)).toEqual([]);
    expect(fs.existsSync(ns.SandboxKey)).toBe(false);
  }, 120_000);

  it('a user network: create/ls/inspect, two containers reach each other by IP, --ip and --network-alias, connect/disconnect, rm in use refused, prune', async () => {
    const c = await d.docker(['network', 'create', '--subnet', `${nets.u.net}.0/24`, '--label', 'nc.test=1', '-o', `com.docker.network.bridge.name=${USER_BRIDGE}`, 'nc-user']);
    expect(c.code, JSON.stringify(c)).toBe(0);
    const ls = await d.docker(['network', 'ls', '--filter', 'label=nc.test=1', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']);
    expect(ls.stdout.trim()).toBe('nc-user bridge local');
    const dup = await d.docker(['network', 'create', 'nc-user']);
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toContain('network with name nc-user already exists');

    expect((await d.docker(['run', '-d', '--name', 'nc-a', '--network', 'nc-user', TEST_IMAGE, 'sleep', '300'])).code).toBe(0);
    const b = await d.docker(['run', '-d', '--name', 'nc-b', '--network', 'nc-user', '--ip', `${nets.u.net}.50`, '--network-alias', 'web', TEST_IMAGE, 'sleep', '300']);
    expect(b.code, JSON.stringify(b)).toBe(0);
    const epB = JSON.parse((await d.docker(['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'nc-b'])).stdout)['nc-user'];
    expect(epB).toMatchObject({ IPAddress: `${nets.u.net}.50`, Aliases: ['web'], IPAMConfig: { IPv4Address: `${nets.u.net}.50` } });
    const ping = await d.docker(['exec', 'nc-a', 'ping', '-c', '1', '-W', '3', `${nets.u.net}.50`]);
    expect(ping.code, JSON.stringify(ping)).toBe(0);

    const inspect = JSON.parse((await d.docker(['network', 'inspect', 'nc-user'])).stdout)[0];
    expect(Object.values(inspect.Containers).map((x: any) => x.Name).sort()).toEqual(['nc-a', 'nc-b']);
    expect(inspect.Labels).toEqual({ 'nc.test': '1' });
    const rm = await d.docker(['network', 'rm', 'nc-user']);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain(`error while removing network: network nc-user id ${inspect.Id} has active endpoints`);

    // connect a running container: a second interface at once; disconnect removes it
    expect((await d.docker(['network', 'create', '--subnet', `${nets.o.net}.0/24`, '-o', `com.docker.network.bridge.name=${OTHER_BRIDGE}`, 'nc-other'])).code).toBe(0);
    const con = await d.docker(['network', 'connect', 'nc-other', 'nc-a']);
    expect(con.code, JSON.stringify(con)).toBe(0);
    const eth1 = await d.docker(['exec', 'nc-a', 'ip', '-o', '-4', 'addr', 'show', 'eth1']);
    expect(eth1.stdout).toContain(`${nets.o.net}.`);
    expect(Object.keys(JSON.parse((await d.docker(['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'nc-a'])).stdout)).sort()).toEqual(['nc-other', 'nc-user']);
    expect((await d.docker(['network', 'disconnect', 'nc-other', 'nc-a'])).code).toBe(0);
    expect((await d.docker(['exec', 'nc-a', 'ip', '-o', 'link', 'show', 'eth1'])).code).not.toBe(0);
    expect(links(OTHER_BRIDGE)).toEqual([]);

    // container:<name> shares nc-b's interface
    const shared = await d.docker(['run', '--rm', '--network', 'container:nc-b', TEST_IMAGE, 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
    expect(shared.stdout).toContain(`${nets.u.net}.50/24`);

    await d.docker(['rm', '-f', 'nc-a', 'nc-b']);
    expect(links(USER_BRIDGE)).toEqual([]);
    const pruned = await d.docker(['network', 'prune', '-f']);
    expect(pruned.code, JSON.stringify(pruned)).toBe(0);
    expect(pruned.stdout).toContain('nc-user');
    expect(pruned.stdout).toContain('nc-other');
    expect((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').filter(Boolean).sort()).toEqual(['bridge', 'host', 'none']);
    expect(fs.existsSync(path.join(d.dataRoot, 'network-cni', 'ipam', inspect.Id))).toBe(false);
  }, 180_000);

  it('a failed start (address taken) leaves no veth, namespace or allocation', async () => {
    expect((await d.docker(['network', 'create', '--subnet', `${nets.u.net}.0/24`, '-o', `com.docker.network.bridge.name=${USER_BRIDGE}`, 'nc-user'])).code).toBe(0);
    const netId = (await d.docker(['network', 'inspect', '-f', '{{.Id}}', 'nc-user'])).stdout.trim();
    expect((await d.docker(['run', '-d', '--name', 'nc-c', '--network', 'nc-user', '--ip', `${nets.u.net}.60`, TEST_IMAGE, 'sleep', '300'])).code).toBe(0);
    const ipamDir = path.join(d.dataRoot, 'network-cni', 'ipam', netId);
    const before = fs.readdirSync(ipamDir).sort();
    const r = await d.docker(['run', '--name', 'nc-dup', '--network', 'nc-user', '--ip', `${nets.u.net}.60`, TEST_IMAGE, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${nets.u.net}.60`);
    const dupId = (await d.docker(['inspect', '-f', '{{.Id}}', 'nc-dup'])).stdout.trim();
    expect(links(USER_BRIDGE)).toHaveLength(1); // nc-c's veth only
    expect(fs.existsSync(path.join(d.execRoot, 'netns', dupId))).toBe(false);
    expect(fs.readdirSync(ipamDir).sort()).toEqual(before);
    expect(fs.readdirSync(path.join(d.dataRoot, 'network-cni', 'results')).filter((f) => f.startsWith(dupId))).toEqual([]);
    await d.docker(['rm', '-f', 'nc-c', 'nc-dup']);
    expect((await d.docker(['network', 'rm', 'nc-user'])).code).toBe(0);
  }, 120_000);

  it('--network none has only lo; --network host sees the host’s hostname and interfaces', async () => {
    const none = await d.docker(['run', '--rm', '--network', 'none', TEST_IMAGE, 'sh', '-c', "ip -o link | awk -F': ' '{print $2}'"]);
    expect(none.stdout.split('\n').filter(Boolean)).toEqual(['lo']);
    const host = await d.docker(['run', '--rm', '--network', 'host', TEST_IMAGE, 'sh', '-c', `hostname; ip -o link show ${DEFAULT_BRIDGE} >/dev/null && echo sees-bridge`]);
    expect(host.code, JSON.stringify(host)).toBe(0);
    expect(host.stdout.split('\n')[0]).toBe(os.hostname());
    expect(host.stdout).toContain('sees-bridge');
  }, 60_000);
});
