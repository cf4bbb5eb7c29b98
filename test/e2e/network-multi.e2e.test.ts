/**
 * Name resolution across all of a container's user networks, through the real docker CLI
 * against berthd (runc + conmon + Debian's CNI plugins), as dockerd's embedded DNS answers:
 *  - nm-a on nm-net1 and nm-net2, nm-b on nm-net1, nm-c on nm-net2: nm-a resolves nm-b (its
 *    nm-net1 address) and nm-c (its nm-net2 address) through the one server its resolv.conf
 *    names (nm-net1's gateway);
 *  - `docker network disconnect nm-net1 nm-a` (running): nm-a's resolv.conf names nm-net2's
 *    server now (in place) and nm-a still resolves nm-c;
 *  - nm-d on nm-net3 with `--dns` naming a fake DNS server this test runs on a loopback address
 *    of the host (port 53): a name no container has is answered by that server (berthd relays
 *    to a container's --dns servers, as dockerd to its ExtServers; skipped if port 53 there is
 *    taken). The name asked is under `.invalid` (RFC 6761): only a berth that relays it to the
 *    host's resolvers instead — the defect this guards — would send it off the machine;
 *  - docker-compose 1.29 (if installed): a project with networks frontend and backend, `app` on
 *    both reaches `web` (frontend) and `db` (backend) by service name (nslookup, then the page
 *    over nc); `down` removes the containers and both networks.
 * That nm-b does not resolve nm-c (isolation) is proven by plugins/network-cni's unit test
 * (dns-multi.test.ts): asked here, the miss would be relayed to the host's resolvers, off the
 * machine. Only names the networks' servers or the fake upstream answer are asked.
 * Traffic stays on the test's own bridges (benchmarking range 198.18.0.0/15, no NAT, no route
 * out) and loopback; the bridges are removed and ip_forward put back as found, also on failure. Needs root,
 * runc, conmon and the CNI plugins, else skipped.
 */
import { createSocket } from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, type Berthd } from './helpers/berthd.js';
import { composeSkipReason, runCompose } from './helpers/compose.js';
import { cniSkipReason, testNetworks, useNetworkBerthd } from './helpers/network-host.js';

const skip = cniSkipReason(berthdSkipReason());

// the default bridge, nm-net1..3 (x, y, z), compose's frontend and backend
const nets = testNetworks('bm', ['d', 'x', 'y', 'z', 'f', 'b']);
/** The fake upstream's loopback address (port 53) and the address it answers. */
const FAKE_DNS = `127.53.${process.pid % 250}.1`;
const FAKE_ANSWER = '192.0.2.77';

/**
 * The fake upstream's reply to a DNS query (RFC 1035 wire format, by hand: dns-packet is not a
 * dependency of the e2e package): the question echoed, for type A one answer FAKE_ANSWER,
 * else none. Also the question as `TYPE name` (A or the type number).
 */
function fakeReply(query: Buffer): { reply: Buffer; question: string } {
  const labels: string[] = [];
  let at = 12;
  while (query[at] > 0) {
    labels.push(query.subarray(at + 1, at + 1 + query[at]).toString('latin1'));
    at += 1 + query[at];
  }
  const qtype = query.readUInt16BE(at + 1);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0); // ID
  header.writeUInt16BE(0x8180, 2); // response, recursion desired + available, NOERROR
  header.writeUInt16BE(1, 4); // one question
  header.writeUInt16BE(qtype === 1 ? 1 : 0, 6); // answers
  const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, ...FAKE_ANSWER.split('.').map(Number)]); // name → the question's, A, IN, TTL 5
  const reply = Buffer.concat([header, query.subarray(12, at + 5), ...(qtype === 1 ? [answer] : [])]);
  return { reply, question: `${qtype === 1 ? 'A' : qtype} ${labels.join('.')}` };
}
const PROJECT = `bmp${process.pid % 100000}`;
/** A busybox httpd serving `page` on port 80. */
const serve = (page: string) => `["sh", "-c", "mkdir -p /www && echo ${page} > /www/index.html && exec httpd -f -p 80 -h /www"]`;
const composeFile = () => `version: "2.4"
services:
  web:
    image: ${TEST_IMAGE}
    command: ${serve('web-page')}
    networks: [frontend]
  db:
    image: ${TEST_IMAGE}
    command: ${serve('db-page')}
    networks: [backend]
  app:
    image: ${TEST_IMAGE}
    command: ["sleep", "300"]
    networks: [frontend, backend]
networks:
${([['frontend', nets.f], ['backend', nets.b]] as const).map(([name, n]) => `  ${name}:\n    driver_opts: { com.docker.network.bridge.name: ${n.bridge} }\n    ipam: { config: [{ subnet: ${n.subnet} }] }\n`).join('')}`;
const composeSkip = composeSkipReason();

describe.skipIf(skip)(`DNS across a container's networks through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  useNetworkBerthd((b) => (d = b), {
    nets,
    defaultBridge: nets.d,
    beforeCleanup: async (b) => {
      await b.docker(['rm', '-f', 'nm-a', 'nm-b', 'nm-c', 'nm-d']);
      await b.docker(['network', 'rm', 'nm-net1', 'nm-net2', 'nm-net3']);
      if (fs.existsSync(path.join(b.dir, 'project'))) await runCompose(b, path.join(b.dir, 'project'), PROJECT, ['down', '-t', '1']);
    },
  });

  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `${args.join(' ')}: ${JSON.stringify(r)}`).toBe(0);
    return r.stdout.trim();
  };
  const ipOn = (name: string, net: string) => ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
  /** What `nslookup name` inside `from` answers (its resolv.conf's server): the last address. */
  const lookup = (from: string, name: string) => ok(['exec', from, 'sh', '-c', `nslookup ${name} | awk '/^Address: /{print $2}' | tail -1`]);

  it('a container on two user networks resolves the names of both; after a disconnect its resolv.conf names the other server', async () => {
    await ok(['network', 'create', '--subnet', `${nets.x.net}.0/24`, '-o', `com.docker.network.bridge.name=${nets.x.bridge}`, 'nm-net1']);
    await ok(['network', 'create', '--subnet', `${nets.y.net}.0/24`, '-o', `com.docker.network.bridge.name=${nets.y.bridge}`, 'nm-net2']);
    await ok(['create', '--name', 'nm-a', '--network', 'nm-net1', TEST_IMAGE, 'sleep', '300']);
    await ok(['network', 'connect', 'nm-net2', 'nm-a']);
    await ok(['start', 'nm-a']);
    await ok(['run', '-d', '--name', 'nm-b', '--network', 'nm-net1', TEST_IMAGE, 'sleep', '300']);
    await ok(['run', '-d', '--name', 'nm-c', '--network', 'nm-net2', TEST_IMAGE, 'sleep', '300']);

    expect(await ok(['exec', 'nm-a', 'cat', '/etc/resolv.conf'])).toMatch(new RegExp(`^nameserver ${nets.x.net.replace(/\./g, '\\.')}\\.1$`, 'm'));
    expect(await lookup('nm-a', 'nm-b')).toBe(await ipOn('nm-b', 'nm-net1'));
    expect(await lookup('nm-a', 'nm-c')).toBe(await ipOn('nm-c', 'nm-net2'));
    // and the others resolve nm-a at its address on the network they share with it
    expect(await lookup('nm-b', 'nm-a')).toBe(await ipOn('nm-a', 'nm-net1'));
    expect(await lookup('nm-c', 'nm-a')).toBe(await ipOn('nm-a', 'nm-net2'));

    await ok(['network', 'disconnect', 'nm-net1', 'nm-a']);
    const resolv = await ok(['exec', 'nm-a', 'cat', '/etc/resolv.conf']);
    expect(resolv).toMatch(new RegExp(`^nameserver ${nets.y.net.replace(/\./g, '\\.')}\\.1$`, 'm'));
    expect(resolv).not.toContain(`${nets.x.net}.1`);
    expect(await lookup('nm-a', 'nm-c')).toBe(await ipOn('nm-c', 'nm-net2'));
  }, 180_000);

  it("a container's --dns servers answer the names no container has", async (ctx) => {
    // the fake upstream: every A question gets FAKE_ANSWER (a documentation address, never contacted), other types nothing
    const asked: string[] = [];
    const fake = createSocket('udp4');
    fake.on('message', (msg, from) => {
      const { reply, question } = fakeReply(msg);
      asked.push(question);
      fake.send(reply, from.port, from.address);
    });
    const bindError = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      fake.once('error', resolve);
      fake.bind({ address: FAKE_DNS, port: 53, exclusive: true }, () => resolve(undefined));
    });
    if (bindError?.code === 'EADDRINUSE') {
      fake.close();
      ctx.skip(`${FAKE_DNS}:53 is taken on this host`);
    }
    if (bindError) throw bindError;
    try {
      await ok(['network', 'create', '--subnet', `${nets.z.net}.0/24`, '-o', `com.docker.network.bridge.name=${nets.z.bridge}`, 'nm-net3']);
      await ok(['run', '-d', '--name', 'nm-d', '--network', 'nm-net3', '--dns', FAKE_DNS, TEST_IMAGE, 'sleep', '300']);
      expect(await ok(['exec', 'nm-d', 'cat', '/etc/resolv.conf'])).toMatch(new RegExp(`^nameserver ${nets.z.net.replace(/\./g, '\\.')}\\.1$`, 'm'));
      expect(await lookup('nm-d', 'elsewhere.berth.invalid')).toBe(FAKE_ANSWER);
      expect(asked).toContain('A elsewhere.berth.invalid');
      // its own name is still the network's server's answer
      expect(await lookup('nm-d', 'nm-d')).toBe(await ipOn('nm-d', 'nm-net3'));
    } finally {
      await new Promise<void>((r) => fake.close(() => r()));
    }
  }, 180_000);

  it.skipIf(composeSkip)(`docker-compose: a service on frontend and backend reaches one on each by service name; down removes both networks${composeSkip ? ` (skipped: ${composeSkip})` : ''}`, async () => {
    const dir = path.join(d.dir, 'project');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'docker-compose.yml'), composeFile());
    const compose = (args: string[]) => runCompose(d, dir, PROJECT, args);
    const up = await compose(['up', '-d']);
    expect(up.code, JSON.stringify(up)).toBe(0);
    const webIp = await ipOn(`${PROJECT}_web_1`, `${PROJECT}_frontend`);
    const dbIp = await ipOn(`${PROJECT}_db_1`, `${PROJECT}_backend`);
    expect(webIp.startsWith(`${nets.f.net}.`) && dbIp.startsWith(`${nets.b.net}.`), `${webIp} ${dbIp}`).toBe(true);
    // static busybox: nslookup asks resolv.conf's server, nc fetches the page from the address it gave
    const fetchBy = (svc: string) =>
      `a=$(nslookup ${svc} | awk '/^Address: /{print $2}' | tail -1); echo "${svc}=$a"; ` +
      'for i in $(seq 50); do printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc $a 80 | tail -n 1 | grep . && break; sleep 0.2; done';
    const r = await compose(['exec', '-T', 'app', 'sh', '-c', `${fetchBy('web')}; ${fetchBy('db')}`]);
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(r.stdout).toBe(`web=${webIp}\nweb-page\ndb=${dbIp}\ndb-page\n`);

    const down = await compose(['down', '-t', '1']);
    expect(down.code, JSON.stringify(down)).toBe(0);
    const names = (await ok(['network', 'ls', '--format', '{{.Name}}'])).split('\n');
    expect(names.filter((n) => n.startsWith(`${PROJECT}_`))).toEqual([]);
  }, 300_000);
});
