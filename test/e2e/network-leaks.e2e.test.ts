/**
 * No leaks (issue 15): 50 run/stop/rm cycles on a user network, each publishing a port on every
 * address (CNI portmap's DNAT and the proxy), and 20 starts that fail (the host port is taken)
 * leave no veth on the network's bridge, no network namespace file, no iptables rule naming the
 * network, no portmap rule or chain of the test's containers (CNI-HOSTPORT-DNAT's entries for
 * the network, each container's CNI-DN-* chain), no listener of berthd (ports, the network's DNS
 * server) and no IPAM allocation — counted before and after through the docker CLI against
 * berthd (runc + conmon + Debian's CNI plugins). A container with a published port that dies
 * while berthd is down (berthd SIGKILLed, then its process) is released when berthd comes back:
 * its portmap rules, veth, namespace, address and listener go.
 * Traffic: none beyond the CLI's socket. The test's bridge is removed, ip_forward and the nat
 * chains put back as found, also on failure. Needs root, runc, conmon, the CNI plugins, ss and
 * iptables-save (else skipped with the reason).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, which, type Berthd } from './helpers/berthd.js';
import { cniSkipReason, testNetworks, useNetworkBerthd } from './helpers/network-host.js';

function skipReason(): string | null {
  const s = cniSkipReason(berthdSkipReason(), ['bridge', 'host-local', 'portmap']);
  if (s) return s;
  for (const b of ['ss', 'iptables-save']) if (!which(b)) return `${b} is not installed`;
  return null;
}
const skip = skipReason();

const nets = testNetworks('bl', ['k']);
const BRIDGE = nets.k.bridge;
const CYCLES = 50;
const FAILED = 20;

function lines(cmd: string, args: string[]): string[] {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** portmap's chain for one attachment: CNI-DN- + sha512(network name + container ID), 28 characters (its utils.MustFormatChainNameWithPrefix). */
function dnChain(netName: string, containerId: string): string {
  return `CNI-DN-${createHash('sha512').update(netName + containerId).digest('hex')}`.slice(0, 28);
}

interface Counts {
  veths: number;
  netns: number;
  iptables: number;
  portmap: number;
  listeners: number;
  allocations: number;
}

describe.skipIf(skip)(`no leaks on a user network${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let netId = '';
  /** Every container the test made (their portmap chains are looked for). */
  const ids = new Set<string>();
  const h = useNetworkBerthd((b) => (d = b), {
    nets,
    beforeCleanup: async (b) => {
      await b.docker(['rm', '-f', 'lk-hold', 'lk-dead', ...Array.from({ length: FAILED }, (_, i) => `lk-f${i}`)]);
      await b.docker(['network', 'rm', 'lk-net']);
    },
  });
  beforeAll(async () => {
    const c = await d.docker(['network', 'create', '--subnet', nets.k.subnet, '-o', `com.docker.network.bridge.name=${BRIDGE}`, 'lk-net']);
    expect(c.code, JSON.stringify(c)).toBe(0);
    netId = (await d.docker(['network', 'inspect', '-f', '{{.Id}}', 'lk-net'])).stdout.trim();
  }, 120_000);

  const counts = (): Counts => {
    const pid = d.process.pid;
    const ipamDir = path.join(d.dataRoot, 'network-cni', 'ipam', netId);
    const netnsDir = path.join(d.execRoot, 'netns');
    const nat = lines('iptables-save', ['-t', 'nat']);
    const chains = new Set([...ids].map((id) => dnChain(netId, id)));
    return {
      veths: lines('ip', ['-o', 'link', 'show', 'master', BRIDGE]).length,
      netns: fs.existsSync(netnsDir) ? fs.readdirSync(netnsDir).length : 0,
      iptables: lines('iptables-save', []).filter((l) => l.includes(BRIDGE) || l.includes(`${nets.k.net}.`)).length,
      // CNI-HOSTPORT-DNAT's entries for the network (their comment names it), the containers' CNI-DN-* chains and rules
      portmap: nat.filter((l) => (l.startsWith('-A CNI-HOSTPORT-DNAT ') && l.includes(netId)) || [...chains].some((c) => l.startsWith(`:${c} `) || l.startsWith(`-A ${c} `))).length,
      listeners: [...lines('ss', ['-Hltnp']), ...lines('ss', ['-Hlunp'])].filter((l) => l.includes(`pid=${pid},`)).length,
      // host-local keeps one file per address (plus its lock and last_reserved_ip.N)
      allocations: fs.existsSync(ipamDir) ? fs.readdirSync(ipamDir, { recursive: true }).filter((f) => /\d+\.\d+\.\d+\.\d+$/.test(String(f))).length : 0,
    };
  };

  it(`${CYCLES} run/stop/rm cycles and ${FAILED} failed starts (port taken) leave nothing behind`, async () => {
    const before = counts();
    expect(before).toEqual({ veths: 0, netns: 0, iptables: 0, portmap: 0, listeners: 0, allocations: 0 });

    for (let i = 0; i < CYCLES; i++) {
      const r = await d.docker(['run', '-d', '--name', 'lk-c', '--network', 'lk-net', '-p', '80', TEST_IMAGE, 'sleep', '300']);
      expect(r.code, `cycle ${i}: ${JSON.stringify(r)}`).toBe(0);
      ids.add(r.stdout.trim());
      // its entry rule, chain and DNAT rule
      if (i === 0) expect(counts()).toMatchObject({ veths: 1, netns: 1, portmap: 3, allocations: 1 });
      expect((await d.docker(['stop', '-t', '0', 'lk-c'])).code, `cycle ${i}`).toBe(0);
      expect((await d.docker(['rm', 'lk-c'])).code, `cycle ${i}`).toBe(0);
    }
    expect(counts()).toEqual(before);

    // one container holds the port; 20 starts that want it fail and leave nothing
    const hold = await d.docker(['run', '-d', '--name', 'lk-hold', '--network', 'lk-net', '-p', '18081:80', TEST_IMAGE, 'sleep', '300']);
    expect(hold.code, JSON.stringify(hold)).toBe(0);
    ids.add(hold.stdout.trim());
    const holding = counts();
    // its veth, namespace and address; portmap's entry rule (naming the bridge), chain and DNAT
    // rule (naming the address); its port and the network's DNS server (udp + tcp)
    expect(holding).toEqual({ veths: 1, netns: 1, iptables: 2, portmap: 3, listeners: 3, allocations: 1 });
    for (let i = 0; i < FAILED; i++) {
      const r = await d.docker(['run', '-d', '--name', `lk-f${i}`, '--network', 'lk-net', '-p', '18081:80', TEST_IMAGE, 'sleep', '300']);
      expect(r.code, `failed start ${i}`).not.toBe(0);
      expect(r.stderr).toContain('port is already allocated');
      ids.add((await d.docker(['inspect', '-f', '{{.Id}}', `lk-f${i}`])).stdout.trim());
    }
    expect(counts()).toEqual(holding);
    expect((await d.docker(['rm', '-f', 'lk-hold', ...Array.from({ length: FAILED }, (_, i) => `lk-f${i}`)])).code).toBe(0);
    expect(counts()).toEqual(before);
  }, 900_000);

  it('a container that died while berthd was down is released at its restart: portmap rules and all', async () => {
    const r = await d.docker(['run', '-d', '--name', 'lk-dead', '--network', 'lk-net', '-p', '18082:80', TEST_IMAGE, 'sleep', '300']);
    expect(r.code, JSON.stringify(r)).toBe(0);
    ids.add(r.stdout.trim());
    expect(counts()).toMatchObject({ veths: 1, netns: 1, portmap: 3, allocations: 1 });
    const pid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', 'lk-dead'])).stdout.trim());
    expect(pid).toBeGreaterThan(0);
    // berthd killed, then the container's process: nothing ran the release
    await d.stop('SIGKILL');
    process.kill(pid, 'SIGKILL');
    expect(counts()).toMatchObject({ veths: 1, netns: 1, portmap: 3, allocations: 1 });
    await h.startAgain();
    expect((await d.docker(['inspect', '-f', '{{.State.Running}}', 'lk-dead'])).stdout.trim()).toBe('false');
    expect(counts()).toEqual({ veths: 0, netns: 0, iptables: 0, portmap: 0, listeners: 0, allocations: 0 });
    expect((await d.docker(['rm', 'lk-dead'])).code).toBe(0);
    expect((await d.docker(['network', 'rm', 'lk-net'])).code).toBe(0);
  }, 180_000);
});
