/**
 * Published ports and DNS on user networks (network-cni's publish.ts/proxy.ts/dns.ts) through
 * the real docker CLI against berthd (runc + conmon + Debian's CNI plugins):
 *  - `docker run -d -p 127.0.0.1:18080:80 berth-test/busybox httpd -f -p 80` answers HTTP on
 *    the host's loopback; `docker port`, NetworkSettings.Ports; the same port again → dockerd's
 *    "port is already allocated" and the failed container holds no listener; a port another
 *    process holds → "address already in use"; stop frees the port, start takes it again;
 *  - `-P` with `--expose`: a port of the kernel's ip_local_port_range on 0.0.0.0, served;
 *  - live restore: berthd restarted with the container running serves the same port again, and
 *    while it is down the port serves through the DNAT rules (the gateway address);
 *  - a port on 0.0.0.0 through CNI portmap's DNAT: reached from the host through the bridge's
 *    gateway and through the host's own non-loopback address, the server seeing the client's
 *    address (not the gateway a proxy connects from); a container of another network reaching it
 *    through the host address (its own address seen); one on the same bridge and a client of
 *    127.0.0.1 served by the proxy (the gateway seen, as dockerd's docker-proxy); UDP through the
 *    DNAT rule (its packet counter); the rules gone with the container;
 *  - a user network: containers reach each other by name and by alias (wget over the test's
 *    bridge), resolv.conf names the network's gateway.
 * Traffic only over loopback, the host's own addresses and the test's own bridges; no
 * MASQUERADE, nothing routed out (names outside the network are never asked); bridges removed,
 * ip_forward and the nat chains put back as found, also on failure. Needs root, runc, conmon and
 * the CNI plugins (portmap: iptables), else skipped.
 */
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, which, type Berthd } from './helpers/berthd.js';
import { cniSkipReason, testNetworks, useNetworkBerthd } from './helpers/network-host.js';

function skipReason(): string | null {
  const s = cniSkipReason(berthdSkipReason(), ['bridge', 'host-local', 'portmap']);
  if (s) return s;
  for (const b of ['ss', 'iptables', 'iptables-save']) if (!which(b)) return `${b} is not installed`;
  return null;
}
const skip = skipReason();

const nets = testNetworks('bp', ['d', 'u', 'o']);
const DEFAULT_BRIDGE = nets.d.bridge;
const USER_BRIDGE = nets.u.bridge;
const OTHER_BRIDGE = nets.o.bridge;
/** A shell script serving one page (berth-page) with busybox httpd on port 80. */
const PAGE = 'mkdir -p /www && echo berth-page > /www/index.html && exec httpd -f -p 80 -h /www';

/**
 * A page at / and a CGI /cgi-bin/peer answering `peer=<client address>` (busybox httpd's
 * REMOTE_ADDR) on port 80.
 */
const PEER = 'mkdir -p /www/cgi-bin && echo berth-page > /www/index.html && ' +
  '{ echo "#!/bin/sh"; echo "echo Content-Type: text/plain"; echo echo; echo "echo peer=\\$REMOTE_ADDR"; } > /www/cgi-bin/peer && ' +
  'chmod +x /www/cgi-bin/peer && exec httpd -f -p 80 -h /www';

/** The CGI's answer with busybox httpd's IPv4-mapped notation ([::ffff:a.b.c.d]) made plain. */
const plain = (text: string) => text.replace(/\[::ffff:([\d.]+)\]/g, '$1');

/** A global IPv4 address of the host on an interface none of the tests' bridges (undefined: none). */
function hostAddress(): string | undefined {
  const out = execFileSync('ip', ['-4', '-o', 'addr', 'show', 'scope', 'global'], { encoding: 'utf8' });
  for (const l of out.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(l);
    if (m && ![DEFAULT_BRIDGE, USER_BRIDGE, OTHER_BRIDGE].includes(m[1]) && !m[1].startsWith('br-')) return m[2];
  }
  return undefined;
}

/** The nat rules (iptables-save -c: with their [packets:bytes] counters) naming a container, and those of the chains they jump to. */
function natRulesOf(id: string): string[] {
  const all = execFileSync('iptables-save', ['-c', '-t', 'nat'], { encoding: 'utf8' }).split('\n');
  const entry = all.filter((l) => l.includes(id));
  const chains = new Set(entry.flatMap((l) => /-j (CNI-DN-\S+)/.exec(l)?.[1] ?? []));
  return [...entry, ...all.filter((l) => [...chains].some((c) => l.includes(`-A ${c} `)))];
}

/** Whether the filter table's FORWARD policy drops (what dockerd sets) — forwarding between bridges then needs rules. */
function iptablesForwardDrops(): boolean {
  return execFileSync('iptables', ['-w', '-S', 'FORWARD'], { encoding: 'utf8' }).split('\n').some((l) => /^-P FORWARD (DROP|REJECT)/.test(l));
}

/** GET http://host:port/path → status and body (rejects on a refused connection). */
function get(port: number, host = '127.0.0.1', urlPath = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // the CGI's header lines end in \n only (busybox httpd passes them on as written)
    const req = http.get({ host, port, path: urlPath, agent: false, timeout: 20_000, insecureHTTPParser: true }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Retries a GET while the container's httpd is still coming up. */
async function getWhenUp(port: number, host = '127.0.0.1', urlPath = '/'): Promise<{ status: number; body: string }> {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      const r = await get(port, host, urlPath);
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
  const h = useNetworkBerthd((b) => (d = b), {
    nets,
    defaultBridge: nets.d,
    start: () => ({ args: ['--live-restore'] }),
    beforeCleanup: async (b) => {
      await b.docker(['rm', '-f', 'np-a', 'np-b', 'np-c', 'np-p', 'np-d', 'np-srv', 'np-cli']);
      await b.docker(['network', 'rm', 'np-user', 'np-other']);
    },
  });

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

    // berthd goes away with the container running: the listener goes with it, and comes back;
    // portmap's DNAT stays in the kernel, so the gateway address serves all along
    await d.stop('SIGTERM');
    expect(tcpListeners(port)).toBe(0);
    expect((await get(port, `${nets.d.net}.1`)).body).toBe('berth-page\n');
    await h.startAgain();
    expect((await d.docker(['inspect', '-f', '{{.State.Running}}', 'np-p'])).stdout.trim()).toBe('true');
    expect((await getWhenUp(port)).body).toBe('berth-page\n');
    await d.docker(['rm', '-f', 'np-p']);
    expect(tcpListeners(port)).toBe(0);
  }, 180_000);

  const hostIp = skip ? undefined : hostAddress();
  it.skipIf(!hostIp)(`-p 18090:80 -p 18091:9999/udp: DNAT for the host's and other networks' clients (their address seen), the proxy for loopback and the own bridge${hostIp ? '' : ' (skipped: the host has no global IPv4 address)'}`, async () => {
    const r = await d.docker(['run', '-d', '--name', 'np-d', '-p', '18090:80', '-p', '18091:9999/udp', TEST_IMAGE, 'sh', '-c', PEER]);
    expect(r.code, JSON.stringify(r)).toBe(0);
    const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'np-d'])).stdout.trim();
    const ip = (await d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'np-d'])).stdout.trim();
    const gw = `${nets.d.net}.1`;
    // portmap's DNAT rules for both ports, and no MASQUERADE of berth's making
    const rules = natRulesOf(id);
    expect(rules.some((l) => l.includes('--dport 18090') && l.includes(`--to-destination ${ip}:80`)), rules.join('\n')).toBe(true);
    expect(rules.some((l) => l.includes('-p udp') && l.includes('--dport 18091') && l.includes(`--to-destination ${ip}:9999`)), rules.join('\n')).toBe(true);
    expect(rules.filter((l) => l.includes('MASQUERADE'))).toEqual([]);

    // the host through its own address: DNAT, the server sees that address; through the gateway likewise
    expect(plain((await getWhenUp(18090, hostIp, '/cgi-bin/peer')).body)).toBe(`peer=${hostIp}\n`);
    expect(plain((await get(18090, gw, '/cgi-bin/peer')).body)).toBe(`peer=${gw}\n`);
    // 127.0.0.1: not DNATed (no route_localnet, no MASQUERADE): the proxy, from the gateway
    expect(plain((await get(18090, '127.0.0.1', '/cgi-bin/peer')).body)).toBe(`peer=${gw}\n`);

    // a container of another network through the host address: DNAT, its own address seen
    const o = await d.docker(['network', 'create', '--subnet', `${nets.o.net}.0/24`, '-o', `com.docker.network.bridge.name=${OTHER_BRIDGE}`, 'np-other']);
    expect(o.code, JSON.stringify(o)).toBe(0);
    const fetchPeer = `for i in $(seq 50); do printf "GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n" | nc ${hostIp} 18090 | grep peer= && break; sleep 0.2; done; ip -4 -o addr show eth0`;
    // forwarded from the other bridge to the server's: a host whose FORWARD policy drops (dockerd
    // sets it so) gets two ACCEPT rules for the test's own bridges, removed right after
    const forwardRules = iptablesForwardDrops() ? [['-i', OTHER_BRIDGE, '-o', DEFAULT_BRIDGE, '-j', 'ACCEPT'], ['-i', DEFAULT_BRIDGE, '-o', OTHER_BRIDGE, '-j', 'ACCEPT']] : [];
    for (const r of forwardRules) execFileSync('iptables', ['-w', '-I', 'FORWARD', ...r]);
    let other: Awaited<ReturnType<Berthd['docker']>>;
    try {
      other = await d.docker(['run', '--rm', '--network', 'np-other', TEST_IMAGE, 'sh', '-c', fetchPeer]);
    } finally {
      for (const r of forwardRules) execFileSync('iptables', ['-w', '-D', 'FORWARD', ...r]);
    }
    expect(other.code, JSON.stringify(other)).toBe(0);
    const otherIp = /inet ([\d.]+)\//.exec(other.stdout)?.[1];
    expect(otherIp, other.stdout).toMatch(new RegExp(`^${nets.o.net.replace(/\./g, '\\.')}\\.`));
    expect(plain(other.stdout)).toContain(`peer=${otherIp}\n`);
    // one on the same bridge: not DNATed (hairpin without MASQUERADE cannot answer): the proxy, as docker-proxy
    const same = await d.docker(['run', '--rm', TEST_IMAGE, 'sh', '-c', fetchPeer]);
    expect(same.code, JSON.stringify(same)).toBe(0);
    expect(plain(same.stdout)).toContain(`peer=${gw}\n`);

    // UDP through the DNAT rule: its packet counter counts the datagram, and it reaches the
    // container's port 9999 (no listener there: the container's kernel counts it in Udp NoPorts;
    // the image's busybox has no UDP server)
    const noPorts = async () => {
      const snmp = (await d.docker(['exec', 'np-d', 'cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
      return Number(snmp[1].split(/\s+/)[snmp[0].split(/\s+/).indexOf('NoPorts')]);
    };
    const before = await noPorts();
    const udp = createSocket('udp4');
    await new Promise<void>((ok, fail) => udp.send('berth-udp\n', 18091, hostIp, (err) => (err ? fail(err) : ok())));
    udp.close();
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await new Promise((ok) => setTimeout(ok, 100));
      after = await noPorts();
    }
    expect(after).toBe(before + 1);
    const udpRule = natRulesOf(id).find((l) => l.includes('-p udp') && l.includes('--dport 18091') && l.includes('DNAT'));
    expect(Number(/^\[(\d+):/.exec(udpRule ?? '')?.[1])).toBeGreaterThanOrEqual(1);

    // rm: the rules go with the CNI DEL, the port is free
    expect((await d.docker(['rm', '-f', 'np-d'])).code).toBe(0);
    expect(natRulesOf(id)).toEqual([]);
    expect(tcpListeners(18090)).toBe(0);
    expect((await d.docker(['network', 'rm', 'np-other'])).code).toBe(0);
  }, 180_000);

  it('a user network: names and aliases resolve to the containers, resolv.conf names the gateway', async () => {
    const c = await d.docker(['network', 'create', '--subnet', `${nets.u.net}.0/24`, '-o', `com.docker.network.bridge.name=${USER_BRIDGE}`, 'np-user']);
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
    expect(cli.stdout).toContain(`nameserver ${nets.u.net}.1`);
    expect(cli.stdout).toContain('options ndots:0');
    expect(cli.stdout, JSON.stringify(cli)).toContain(`np-srv=${ip}\nberth-page\n`);
    expect(cli.stdout).toContain(`web=${ip}\nberth-page\n`);
    await d.docker(['rm', '-f', 'np-srv']);
    expect((await d.docker(['network', 'rm', 'np-user'])).code).toBe(0);
  }, 180_000);
});
