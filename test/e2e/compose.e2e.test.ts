/**
 * docker-compose (Debian's 1.29, through the Docker API) against berthd with the network-cni
 * plugin: a two-service project — `web` serves a page with busybox httpd, `client` sleeps — on
 * the project's own network; from `client` the service name `web` resolves (the network's DNS
 * server: compose sets the service name as a network alias) to web's address, which serves the
 * page; a published port answers on the host's loopback; `down` removes the containers and the
 * project's network.
 * Traffic only over the test's bridge (TEST-NET-3 subnet) and loopback; bridge removed and
 * ip_forward put back as found, also on failure. Needs root, runc, conmon, the CNI plugins and
 * docker-compose (scripts/install-deps.sh installs it), else skipped with the reason.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, which, type Berthd } from './helpers/berthd.js';
import { runCompose } from './helpers/compose.js';
import { cniSkipReason } from './helpers/network-host.js';

function skipReason(): string | null {
  const s = cniSkipReason(berthdSkipReason(), ['bridge', 'host-local']);
  if (s) return s;
  if (!which('docker-compose')) return 'docker-compose is not installed (apt-get install docker-compose)';
  return null;
}
const skip = skipReason();

const tag = process.pid % 100000;
const BRIDGE = `bcp${tag}`;
const PROJECT = `bcp${tag}`;
// TEST-NET-3 (documentation range, never routed), used by no other suite
const NET = '203.0.113';
const HOST_PORT = 18082;
const FORWARD = '/proc/sys/net/ipv4/ip_forward';

const COMPOSE = `version: "2.4"
services:
  web:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo compose-page > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:${HOST_PORT}:80"]
  client:
    image: ${TEST_IMAGE}
    command: ["sleep", "300"]
networks:
  default:
    driver_opts:
      com.docker.network.bridge.name: ${BRIDGE}
    ipam:
      config:
        - subnet: ${NET}.0/24
`;

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 20_000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describe.skipIf(skip)(`docker-compose on user networks${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let forward: string | undefined;
  let projectDir = '';
  const compose = (args: string[]) => runCompose(d, projectDir, PROJECT, args);

  beforeAll(async () => {
    forward = fs.readFileSync(FORWARD, 'utf8');
    d = await startBerthd();
    await d.loadTestImage();
    projectDir = path.join(d.dir, 'project');
    fs.mkdirSync(projectDir);
    fs.writeFileSync(path.join(projectDir, 'docker-compose.yml'), COMPOSE);
  }, 120_000);
  afterAll(async () => {
    if (d && projectDir) await compose(['down', '-t', '1']).catch(() => {});
    await d?.cleanup();
    try {
      execFileSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
    } catch {
      // not made, or already gone
    }
    if (forward !== undefined) fs.writeFileSync(FORWARD, forward);
    removeTestImageTarball();
  }, 120_000);

  it('up: client reaches web by its service name; a published port serves the host; down removes containers and network', async () => {
    const up = await compose(['up', '-d']);
    expect(up.code, JSON.stringify(up)).toBe(0);
    const webIp = (await d.docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${PROJECT}_default").IPAddress}}`, `${PROJECT}_web_1`])).stdout.trim();
    expect(webIp).toMatch(new RegExp(`^${NET.replace(/\./g, '\\.')}\\.\\d+$`));

    // the image's static busybox has no NSS modules (wget crashes): nslookup asks the
    // network's DNS server itself, nc fetches the page from the address it gave
    const script =
      "a=$(nslookup web | awk '/^Address: /{print $2}'); echo \"web=$a\"; " +
      'for i in $(seq 50); do printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc $a 80 | tail -n 1 | grep . && break; sleep 0.2; done';
    const r = await compose(['exec', '-T', 'client', 'sh', '-c', script]);
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(r.stdout).toContain(`web=${webIp}\ncompose-page\n`);
    expect(await get(HOST_PORT)).toBe('compose-page\n');

    const down = await compose(['down', '-t', '1']);
    expect(down.code, JSON.stringify(down)).toBe(0);
    expect((await d.docker(['ps', '-a', '--filter', `label=com.docker.compose.project=${PROJECT}`, '-q'])).stdout.trim()).toBe('');
    expect((await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n')).not.toContain(`${PROJECT}_default`);
    expect(fs.readdirSync(path.join(d.execRoot, 'netns'))).toEqual([]);
    await expect(get(HOST_PORT)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  }, 300_000);
});
