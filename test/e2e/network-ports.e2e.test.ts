/**
 * Published ports and DNS on user networks (network-cni's publish.ts/proxy.ts/dns.ts) through
 * the real docker CLI against berthd (runc + conmon + Debian's CNI plugins):
 *  - `docker run -d -p 127.0.0.1:18080:80 berth-test/busybox httpd -f -p 80` answers HTTP on
 *    the host's loopback; `docker port`, NetworkSettings.Ports; the same port again → dockerd's
 *    "port is already allocated" and the failed container holds no listener; a port another
 *    process holds → "address already in use"; stop frees the port, start takes it again;
 *  - `-P` with `--expose`: a port of the kernel's ip_local_port_range on 0.0.0.0, served;
 *  - live restore: berthd restarted with the container running serves the same port again;
 *  - a user network: containers reach each other by name and by alias (wget over the test's
 *    bridge), resolv.conf names the network's gateway.
 * Traffic only over loopback and the test's own bridges; no NAT, no iptables rule, nothing
 * routed out (names outside the network are never asked); bridges removed and ip_forward put
 * back as found, also on failure. Needs root, runc, conmon and the CNI plugins, else skipped.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const CNI_BIN = '/usr/lib/cni';
function skipReason(): string | null {
  const s = berthdSkipReason();
  if (s) return s;
  for (const p of ['loopback', 'bridge', 'host-local']) if (!fs.existsSync(path.join(CNI_BIN, p))) return `the CNI plugin ${p} is not in ${CNI_BIN} (apt-get install containernetworking-plugins)`;
  return null;
}
const skip = skipReason();

const tag = process.pid % 100000;
const DEFAULT_BRIDGE = `bpd${tag}`;
const USER_BRIDGE = `bpu${tag}`;
// 198.18.250-254 / 198.19.250-254 (benchmarking range): network-cni.e2e uses .0-.249
const DEFAULT_NET = `198.18.${250 + (tag % 5)}`;
const USER_NET = `198.19.${250 + (tag % 5)}`;
const FORWARD = '/proc/sys/net/ipv4/ip_forward';
/** A shell script serving one page (berth-page) with busybox httpd on port 80. */
const PAGE = 'mkdir -p /www && echo berth-page > /www/index.html && exec httpd -f -p 80 -h /www';

/** GET http://127.0.0.1:port/ → status and body (rejects on a refused connection). */
function get(port: number, host = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', agent: false, timeout: 20_000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Retries a GET while the container's httpd is still coming up. */
async function getWhenUp(port: number): Promise<{ status: number; body: string }> {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      const r = await get(port);
      if (r.status) return r;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw last;
}

/** Listening TCP sockets on a port (ss). */
function tcpListeners(port: number): number {
  return execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
}

describe.skipIf(skip)(`published ports and DNS through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let dir: string | undefined;
  let forward: string | undefined;
  const args = ['--bridge', DEFAULT_BRIDGE, '--bip', `${DEFAULT_NET}.1/24`, '--live-restore'];
  beforeAll(async () => {
    forward = fs.readFileSync(FORWARD, 'utf8');
    d = await startBerthd({ args });
    dir = d.dir;
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'np-a', 'np-b', 'np-c', 'np-p', 'np-srv', 'np-cli']).catch(() => {});
    await d?.docker(['network', 'rm', 'np-user']).catch(() => {});
    await d?.cleanup();
    // a berthd restarted on the first one's dir leaves the dir to its creator
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    for (const b of [DEFAULT_BRIDGE, USER_BRIDGE]) {
      try {
        execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' });
      } catch {
        // not made, or already gone
      }
    }
    if (forward !== undefined) fs.writeFileSync(FORWARD, forward);
    removeTestImageTarball();
  }, 120_000);

  it('-p 127.0.0.1:18080:80: httpd answers on the host, docker port, a taken port refused and rolled back, stop frees it', async () => {
    const r = await d.docker(['run', '-d', '--name', 'np-a', '-p', '127.0.0.1:18080:80', TEST_IMAGE, 'httpd', '-f', '-p', '80']);
    expect(r.code, JSON.stringify(r)).toBe(0);
    // busybox httpd with no index.html still answers with an HTTP status
    const res = await getWhenUp(18080);
    expect(res.status).toBeGreaterThanOrEqual(200);
    expect((await d.docker(['port', 'np-a'])).stdout.trim()).toBe('80/tcp -> 127.0.0.1:18080');
    const ports = JSON.parse((await d.docker(['inspect', '-f', '{{json .NetworkSettings.Ports}}', 'np-a'])).stdout);
    expect(ports).toEqual({ '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }] });
    expect(tcpListeners(18080)).toBe(1);

    // the same port again: dockerd's words, the start rolled back (no listener, not running)
    const dup = await d.docker(['run', '-d', '--name', 'np-b', '-p', '127.0.0.1:18080:80', TEST_IMAGE, 'httpd', '-f', '-p', '80']);
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toMatch(/driver failed programming external connectivity on endpoint np-b \([0-9a-f]{64}\): Bind for 127\.0\.0\.1:18080 failed: port is already allocated/);
    expect((await d.docker(['inspect', '-f', '{{.State.Running}}', 'np-b'])).stdout.trim()).toBe('false');
    expect(tcpListeners(18080)).toBe(1);
    expect(fs.readdirSync(path.join(d.execRoot, 'netns')).length).toBe(1);

    // a port another process holds
    const holder = net.createServer();
    await new Promise<void>((ok) => holder.listen({ host: '127.0.0.1', port: 0 }, () => ok()));
    const held = (holder.address() as net.AddressInfo).port;
    try {
      const inUse = await d.docker(['run', '-d', '--name', 'np-c', '-p', `127.0.0.1:${held}:80`, TEST_IMAGE, 'httpd', '-f', '-p', '80']);
      expect(inUse.code).not.toBe(0);
      expect(inUse.stderr).toContain(`listen tcp4 127.0.0.1:${held}: bind: address already in use`);
    } finally {
      await new Promise<void>((ok) => holder.close(() => ok()));
    }

    // stop frees the port; start takes it again
    expect((await d.docker(['stop', '-t', '1', 'np-a'])).code).toBe(0);
    expect(tcpListeners(18080)).toBe(0);
    await expect(get(18080)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect((await d.docker(['start', 'np-a'])).code).toBe(0);
    expect((await getWhenUp(18080)).status).toBeGreaterThanOrEqual(200);
    await d.docker(['rm', '-f', 'np-a', 'np-b', 'np-c']);
    expect(tcpListeners(18080)).toBe(0);
  }, 180_000);

  it('-P with --expose: a port of ip_local_port_range on 0.0.0.0 serving the page, kept across a live restore', async () => {
    const r = await d.docker(['run', '-d', '--name', 'np-p', '--expose', '80', '-P', TEST_IMAGE, 'sh', '-c', PAGE]);
    expect(r.code, JSON.stringify(r)).toBe(0);
    const line = (await d.docker(['port', 'np-p', '80/tcp'])).stdout.trim().split('\n')[0];
    const m = /^0\.0\.0\.0:(\d+)$/.exec(line);
    expect(m, line).not.toBeNull();
    const port = Number(m![1]);
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    expect(port).toBeGreaterThanOrEqual(lo);
    expect(port).toBeLessThanOrEqual(hi);
    expect((await getWhenUp(port)).body).toBe('berth-page\n');

    // berthd goes away with the container running: the listener goes with it, and comes back
    await d.stop('SIGTERM');
    expect(tcpListeners(port)).toBe(0);
    d = await startBerthd({ dir: d.dir, args });
    expect((await d.docker(['inspect', '-f', '{{.State.Running}}', 'np-p'])).stdout.trim()).toBe('true');
    expect((await getWhenUp(port)).body).toBe('berth-page\n');
    await d.docker(['rm', '-f', 'np-p']);
    expect(tcpListeners(port)).toBe(0);
  }, 180_000);

  it('a user network: names and aliases resolve to the containers, resolv.conf names the gateway', async () => {
    const c = await d.docker(['network', 'create', '--subnet', `${USER_NET}.0/24`, '-o', `com.docker.network.bridge.name=${USER_BRIDGE}`, 'np-user']);
    expect(c.code, JSON.stringify(c)).toBe(0);
    const srv = await d.docker(['run', '-d', '--name', 'np-srv', '--network', 'np-user', '--network-alias', 'web', TEST_IMAGE, 'sh', '-c', PAGE]);
    expect(srv.code, JSON.stringify(srv)).toBe(0);
    const ip = (await d.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "np-user").IPAddress}}', 'np-srv'])).stdout.trim();
    const cli = await d.docker([
      'run', '--rm', '--name', 'np-cli', '--network', 'np-user', TEST_IMAGE, 'sh', '-c',
      // the image's static busybox cannot use getaddrinfo (no NSS modules: its wget crashes even
      // on an address); its nslookup asks resolv.conf's server itself, nc then fetches the page
      'cat /etc/resolv.conf; for n in np-srv web; do a=$(nslookup $n | awk \'/^Address: /{print $2}\'); echo "$n=$a"; ' +
        'for i in $(seq 50); do printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc $a 80 | tail -n 1 | grep . && break; sleep 0.2; done; done',
    ]);
    expect(cli.code, JSON.stringify(cli)).toBe(0);
    expect(cli.stdout).toContain(`nameserver ${USER_NET}.1`);
    expect(cli.stdout).toContain('options ndots:0');
    expect(cli.stdout, JSON.stringify(cli)).toContain(`np-srv=${ip}\nberth-page\n`);
    expect(cli.stdout).toContain(`web=${ip}\nberth-page\n`);
    await d.docker(['rm', '-f', 'np-srv']);
    expect((await d.docker(['network', 'rm', 'np-user'])).code).toBe(0);
  }, 180_000);
});
