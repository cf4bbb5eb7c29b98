/**
 * The network-basic plugin through the real docker CLI against berthd (runc + conmon):
 * /etc/hostname, /etc/hosts and /etc/resolv.conf exist in a --network none container with
 * dockerd's contents, --hostname/--add-host/--dns/--dns-search/--dns-option show up in them,
 * inspect records their paths in the container's directory, --network host uses the
 * host's hosts file, and --network container:<name|ID prefix> shares the other container's files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

const LOCALHOST_LINES = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

describe.skipIf(skip)(`network-basic files through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'nb-kept', 'nb-first', 'nb-by-name', 'nb-by-prefix']).catch(() => {});
    await d?.cleanup();
    removeTestImageTarball();
  }, 120_000);

  it('--network none: hostname is the short ID, the localhost records, a nameserver', async () => {
    const r = await d.docker(['run', '--name', 'nb-kept', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'cat /etc/hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname']);
    expect(r.code, JSON.stringify(r)).toBe(0);
    const [hostnameFile, hosts, resolv, hostname] = r.stdout.split('---\n');
    const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'nb-kept'])).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(hostnameFile).toBe(`${id.slice(0, 12)}\n`);
    expect(hostname.trim()).toBe(id.slice(0, 12));
    expect(hosts.split('\n').filter(Boolean)).toEqual(LOCALHOST_LINES);
    expect(resolv).toMatch(/^nameserver \S+$/m);
    expect(resolv).not.toMatch(/^nameserver (127\.|::1$)/m);

    const paths = (await d.docker(['inspect', '-f', '{{.HostnamePath}}|{{.HostsPath}}|{{.ResolvConfPath}}', 'nb-kept'])).stdout.trim().split('|');
    const dir = path.join(d.dataRoot, 'containers', id);
    expect(paths).toEqual([path.join(dir, 'hostname'), path.join(dir, 'hosts'), path.join(dir, 'resolv.conf')]);
    expect(fs.readFileSync(paths[0], 'utf8')).toBe(`${id.slice(0, 12)}\n`);
    await d.docker(['rm', 'nb-kept']);
    expect(fs.existsSync(dir)).toBe(false);
  }, 60_000);

  it('--hostname, --add-host, --dns, --dns-search, --dns-option show up', async () => {
    const r = await d.docker([
      'run', '--rm', '--network', 'none', '--hostname', 'x', '--add-host', 'a:10.1.2.3', '--add-host', 'b=10.4.5.6',
      '--dns', '10.0.0.53', '--dns-search', 'example.test', '--dns-option', 'ndots:3',
      TEST_IMAGE, 'sh', '-c', 'cat /etc/hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname',
    ]);
    expect(r.code, JSON.stringify(r)).toBe(0);
    const [hostnameFile, hosts, resolv, hostname] = r.stdout.split('---\n');
    expect(hostnameFile).toBe('x\n');
    expect(hostname).toBe('x\n');
    expect(hosts.split('\n').filter(Boolean)).toEqual([...LOCALHOST_LINES, '10.1.2.3\ta', '10.4.5.6\tb']);
    expect(resolv.split('\n').filter((l) => /^(nameserver|search|options)\b/.test(l))).toEqual([
      'search example.test',
      'nameserver 10.0.0.53',
      'options ndots:3',
    ]);
  }, 60_000);

  it('the files are writable bind mounts (dockerd keeps them rw)', async () => {
    const r = await d.docker(['run', '--rm', '--network', 'none', '--add-host', 'c:10.9.9.9', TEST_IMAGE, 'sh', '-c', 'echo "10.7.7.7 extra" >> /etc/hosts && grep -c . /etc/hosts && grep " /etc/hosts " /proc/self/mountinfo']);
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('8');
    expect(r.stdout).toMatch(/ \/etc\/hosts rw/);
  }, 60_000);

  it('--network host: the host hosts file', async () => {
    const r = await d.docker(['run', '--rm', '--network', 'host', TEST_IMAGE, 'cat', '/etc/hosts']);
    expect(r.code, JSON.stringify(r)).toBe(0);
    expect(r.stdout).toBe(fs.existsSync('/etc/hosts') ? fs.readFileSync('/etc/hosts', 'utf8') : '');
  }, 60_000);

  it('--network container:<name> and container:<ID prefix> share that container\'s files', async () => {
    const first = await d.docker(['run', '-d', '--name', 'nb-first', '--network', 'none', '--hostname', 'first-host', '--add-host', 'q:10.9.8.7', TEST_IMAGE, 'sleep', '120']);
    expect(first.code, JSON.stringify(first)).toBe(0);
    const id = first.stdout.trim();
    const pathsOf = async (ref: string) => (await d.docker(['inspect', '-f', '{{.HostnamePath}}|{{.HostsPath}}|{{.ResolvConfPath}}', ref])).stdout.trim();
    for (const [name, ref] of [['nb-by-name', 'nb-first'], ['nb-by-prefix', id.slice(0, 10)]] as const) {
      const r = await d.docker(['run', '--name', name, '--network', `container:${ref}`, TEST_IMAGE, 'sh', '-c', 'cat /etc/hostname; grep q /etc/hosts']);
      expect(r.code, JSON.stringify(r)).toBe(0);
      expect(r.stdout).toBe('first-host\n10.9.8.7\tq\n');
      expect(await pathsOf(name)).toBe(await pathsOf('nb-first'));
    }
    await d.docker(['rm', '-f', 'nb-first', 'nb-by-name', 'nb-by-prefix']);
  }, 90_000);

  it('a bad --add-host sent straight to the API is refused with 400 and dockerd\'s wording', async () => {
    const res = await d.api('POST', '/containers/create', { Image: TEST_IMAGE, HostConfig: { NetworkMode: 'none', ExtraHosts: ['nohost'] } });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).message).toContain('bad format for add-host: "nohost"');
  }, 60_000);
});
