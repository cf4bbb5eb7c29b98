/**
 * --userns-remap with a user-defined bridge network, end to end through the real docker CLI
 * against berthd (runc + conmon + Debian's CNI plugins). Under a user namespace the runtime
 * makes the container's network namespace and network-cni attaches it in beforeStart (bind of
 * /proc/<pid>/ns/net, the CNI ADD there); this proves that path:
 *  - a remapped container (uid_map 0 → the remap range) on the network gets an address of its
 *    subnet, its resolv.conf names the network's DNS server;
 *  - another remapped container on the network resolves it by name (nslookup) and fetches its
 *    page by name (wget);
 *  - its published port (127.0.0.1, ephemeral) serves the page to the host;
 *  - stop leaves no veth on the network's bridge and no namespace file; rm neither.
 * The remap user lives in the test's own id files (helpers/userns.ts), never in /etc. Traffic
 * stays on the test's own bridges (benchmarking range 198.18.0.0/15) and loopback; bridges,
 * ip_forward and portmap's rules are put back as found, also on failure. Needs root, runc,
 * conmon, user namespaces and the CNI plugins, else skipped.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE, type Berthd } from './helpers/berthd.js';
import { cniSkipReason, testNetworks, useNetworkBerthd } from './helpers/network-host.js';
import { HOST_UID, remapDir, usernsSkipReason } from './helpers/userns.js';

const skip = cniSkipReason(usernsSkipReason());

const nets = testNetworks('bu', ['d', 'u']);
const BRIDGE = nets.u.bridge;
/** A shell script serving one page (berth-page) with busybox httpd on port 80. */
const PAGE = 'mkdir -p /www && echo berth-page > /www/index.html && exec httpd -f -p 80 -h /www';

/** The page at http://127.0.0.1:port/, retried while the container's httpd comes up (bounded). */
async function pageOf(port: number): Promise<string> {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
      const body = await r.text();
      if (r.ok) return body;
      last = new Error(`HTTP ${r.status}`);
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw last;
}

describe.skipIf(skip)(`--userns-remap on a user network through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  useNetworkBerthd((b) => (d = b), {
    nets,
    defaultBridge: nets.d,
    // berthd on the remap user's dir (removed at the end with berthd's)
    start: () => ({ ...remapDir(), args: ['--userns-remap', 'berth-e2e'] }),
    beforeCleanup: async (b) => {
      await b.docker(['rm', '-f', 'nu-srv', 'nu-cli']);
      await b.docker(['network', 'rm', 'nu-net']);
    },
  });

  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `${args.join(' ')}: ${JSON.stringify(r)}`).toBe(0);
    return r.stdout.trim();
  };
  const veths = () => execFileSync('ip', ['-o', 'link', 'show', 'master', BRIDGE], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
  const netnsFiles = () => {
    const dir = path.join(d.execRoot, 'netns');
    return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  };

  it('a remapped container gets an address, is resolved and reached by name, publishes a port to the host; stop/rm leave no veth or netns', async () => {
    await ok(['network', 'create', '--subnet', `${nets.u.net}.0/24`, '-o', `com.docker.network.bridge.name=${BRIDGE}`, 'nu-net']);
    await ok(['run', '-d', '--name', 'nu-srv', '--network', 'nu-net', '-p', '127.0.0.1::80', TEST_IMAGE, 'sh', '-c', PAGE]);
    expect((await ok(['exec', 'nu-srv', 'cat', '/proc/self/uid_map'])).split(/\s+/)).toEqual(['0', String(HOST_UID), '65536']);
    const ip = await ok(['inspect', '-f', '{{(index .NetworkSettings.Networks "nu-net").IPAddress}}', 'nu-srv']);
    expect(ip).toMatch(new RegExp(`^${nets.u.net.replace(/\./g, '\\.')}\\.\\d+$`));
    expect(await ok(['exec', 'nu-srv', 'sh', '-c', 'ip -o -4 addr show eth0'])).toContain(`${ip}/24`);
    expect(await ok(['exec', 'nu-srv', 'cat', '/etc/resolv.conf'])).toMatch(new RegExp(`^nameserver ${nets.u.net.replace(/\./g, '\\.')}\\.1$`, 'm'));

    // another remapped container on the network: the name, then the page by name
    const cli = await ok(['run', '--name', 'nu-cli', '--network', 'nu-net', TEST_IMAGE, 'sh', '-c',
      "nslookup nu-srv | awk '/^Address: /{print $2}' | tail -1; for i in $(seq 50); do wget -qO- http://nu-srv/ && break; sleep 0.1; done"]);
    expect(cli.split('\n')).toEqual([ip, 'berth-page']);
    await ok(['rm', 'nu-cli']);

    // the published port serves the host (loopback: the userland proxy)
    const port = Number((await ok(['port', 'nu-srv', '80/tcp'])).split(':').pop());
    expect(port).toBeGreaterThan(0);
    expect((await pageOf(port)).trim()).toBe('berth-page');

    expect(veths()).toBe(1);
    expect(netnsFiles()).toHaveLength(1);
    await ok(['stop', '-t', '1', 'nu-srv']);
    expect(veths()).toBe(0);
    expect(netnsFiles()).toEqual([]);
    await ok(['rm', 'nu-srv']);
    expect(veths()).toBe(0);
    expect(netnsFiles()).toEqual([]);
  }, 180_000);
});
