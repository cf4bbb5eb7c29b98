/**
 * docker-compose (Debian's 1.29, through the Docker API) against berthd with the network-cni
 * plugin: a two-service project — `web` serves a page with busybox httpd, `client` sleeps — on
 * the project's own network; from `client` the service name `web` resolves (the network's DNS
 * server: compose sets the service name as a network alias) to web's address, which serves the
 * page; a published port answers on the host's loopback; `down` removes the containers and the
 * project's network.
 * Traffic only over the test's bridge (a /24 of the benchmarking range 198.18.0.0/15) and
 * loopback; bridge removed, ip_forward and portmap's chains put back as found, also on failure. Needs root, runc, conmon, the CNI plugins and
 * docker-compose (scripts/install-deps.sh installs it), else skipped with the reason.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, type Berthd } from './helpers/berthd.js';
import { composeSkipReason, runCompose } from './helpers/compose.js';
import { cniSkipReason, testNetworks, useNetworkBerthd } from './helpers/network-host.js';

const skip = cniSkipReason(berthdSkipReason(), ['bridge', 'host-local']) ?? composeSkipReason();

const nets = testNetworks('bk', ['p']);
const PROJECT = `bcp${process.pid % 100000}`;
const HOST_PORT = 18082;

const composeFile = () => `version: "2.4"
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
      com.docker.network.bridge.name: ${nets.p.bridge}
    ipam:
      config:
        - subnet: ${nets.p.subnet}
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
  let projectDir = '';
  const compose = (args: string[]) => runCompose(d, projectDir, PROJECT, args);

  useNetworkBerthd((b) => (d = b), { nets, beforeCleanup: () => (projectDir ? compose(['down', '-t', '1']) : Promise.resolve()) });
  beforeAll(() => {
    projectDir = path.join(d.dir, 'project');
    fs.mkdirSync(projectDir);
    fs.writeFileSync(path.join(projectDir, 'docker-compose.yml'), composeFile());
  });

  it('up: client reaches web by its service name; a published port serves the host; down removes containers and network', async () => {
    const up = await compose(['up', '-d']);
    expect(up.code, JSON.stringify(up)).toBe(0);
    const webIp = (await d.docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${PROJECT}_default").IPAddress}}`, `${PROJECT}_web_1`])).stdout.trim();
    expect(webIp).toMatch(new RegExp(`^${nets.p.net.replace(/\./g, '\\.')}\\.\\d+$`));

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
